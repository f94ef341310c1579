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
		igp_parse_close(&f);
		igp_parse_answer(&f, &a);
		check_error_text(&f);
		pgw_frame_consume(in, &f);
	}
	evbuffer_free(in);
	return 0;
}
