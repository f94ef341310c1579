/* fuzz_ingest.c: libFuzzer target for what clients send: ingest frames and COPY
 * rows. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "copytext.h"
#include "ingest_proto.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whatever text the proxy echoes in an Error goes out as valid UTF-8. */
static void check_error_text(const struct pgw_frame *f)
{
	char *text = malloc(f->len + 1);
	struct evbuffer *out = evbuffer_new();
	struct pgw_frame g;
	struct igp_answer a;

	if (text == NULL || out == NULL)
		abort();
	memcpy(text, f->body, f->len);
	text[f->len] = '\0';
	if (!igp_put_error(out, "08P01", text) ||
	    pgw_frame_next(out, SIZE_MAX, &g) != PGW_OK ||
	    igp_parse_answer(&g, &a) != PGW_OK ||
	    !utf8_valid((const uint8_t *)a.message, strlen(a.message)))
		abort();
	evbuffer_free(out);
	free(text);
}

/*
 * 1.1's progress messages: a decoded row's strings lie inside the frame
 * (their lengths and the fixed fields add up to it), and checking the
 * values never reads past them.
 */
static void check_progress(const struct pgw_frame *f)
{
	struct igp_progress p;
	char state[6], msg[256];
	uint64_t id;

	if (igp_parse_flush_progress(f, &id, &p) == PGW_OK) {
		if (strlen(p.schema) + strlen(p.table) + strlen(p.query_id) +
		        3 + 33 !=
		    f->len)
			abort();
		igp_progress_check(&p, true, state, msg, sizeof(msg));
	}
	if (igp_parse_progress_query(f, &id, &p) == PGW_OK) {
		if (strlen(p.schema) + strlen(p.table) + strlen(p.query_id) +
		        3 + 24 !=
		    f->len)
			abort();
		igp_progress_check(&p, false, state, msg, sizeof(msg));
	}
}

/*
 * CSV to text (the front door's COPY): what is taken ends a record; the
 * text made is whole rows whose count of fields the row checker agrees
 * with when every record has ncols fields.
 */
static void check_csv(const uint8_t *data, size_t size, unsigned ncols)
{
	struct evbuffer *out = evbuffer_new();
	size_t used = 0;
	enum ct_rc rc;

	if (out == NULL)
		return;
	rc = ct_csv_to_text(data, size, out, &used);
	if (used > size || (used > 0 && data[used - 1] != '\n'))
		abort();
	if (rc == CT_OK && used > 0 && evbuffer_get_length(out) == 0)
		abort(); /* whole records make rows */
	if (evbuffer_get_length(out) > 0) {
		const uint8_t *t = evbuffer_pullup(out, -1);
		size_t n = evbuffer_get_length(out);
		uint64_t rows;
		struct ct_error err;

		if (t[n - 1] != '\n')
			abort();
		(void)ct_check_rows(t, n, ncols, &rows, &err);
	}
	evbuffer_free(out);
}

/* First byte: column count for the row checker; the rest: a client's bytes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evbuffer *in;
	struct pgw_frame f;
	unsigned ncols;

	if (size == 0)
		return 0;
	ncols = (unsigned)data[0] % 8 + 1;
	data++;
	size--;
	{
		uint64_t rows;
		struct ct_error err;
		enum ct_rc rc = ct_check_rows(data, size, ncols, &rows, &err);

		/* Invariants: errors point inside the data; OK means
		 * newline-ended. */
		if (rc != CT_OK && rc != CT_NO_NEWLINE && err.offset >= size)
			abort();
		if (rc == CT_OK && (size == 0 || data[size - 1] != '\n'))
			abort();
	}
	check_csv(data, size, ncols);
	in = evbuffer_new();
	evbuffer_add(in, data, size);
	while (pgw_frame_next(in, 1u << 20, &f) == PGW_OK) {
		struct igp_hello h;
		struct igp_open o;
		struct igp_answer a;
		uint64_t id;
		char state[6], msg[256];

		igp_parse_hello(&f, &h);
		if (igp_parse_open(&f, &o) == PGW_OK) {
			igp_open_check(&o, state, msg, sizeof(msg));
			igp_open_free(&o);
		}
		igp_parse_flush(&f, &id);
		check_progress(&f);
		igp_parse_close(&f);
		igp_parse_answer(&f, &a);
		check_error_text(&f);
		pgw_frame_consume(in, &f);
	}
	evbuffer_free(in);
	return 0;
}
