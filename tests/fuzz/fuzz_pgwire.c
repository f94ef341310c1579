/* fuzz_pgwire.c: libFuzzer harness for the pgwire framing and decoders. */
#include "pgwire.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_invariant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(const struct pgw_frame *f, const void *p, size_t len)
{
	uintptr_t b = (uintptr_t)f->body, q = (uintptr_t)p;

	return q >= b && len <= f->len && q - b <= f->len - len;
}

/* A decoded string must end inside the frame: strlen then stays inside. */
static void check_str(const struct pgw_frame *f, const char *s)
{
	if (s != NULL)
		INVARIANT(inside(f, s, strlen(s) + 1));
}

static void fuzz_auth(const struct pgw_frame *f)
{
	struct pgw_auth a;

	if (pgw_parse_auth(f, &a) != PGW_OK)
		return;
	INVARIANT(inside(f, a.data, a.data_len));
	(void)pgw_sasl_offers(&a, "SCRAM-SHA-256");
}

static void fuzz_small(const struct pgw_frame *f)
{
	struct pgw_param_status p;
	struct pgw_backend_key k;
	const char *tag;
	uint64_t rows;
	char st;

	if (pgw_parse_param_status(f, &p) == PGW_OK) {
		check_str(f, p.name);
		check_str(f, p.value);
	}
	(void)pgw_parse_backend_key(f, &k);
	if (pgw_parse_ready(f, &st) == PGW_OK)
		INVARIANT(st == 'I' || st == 'T' || st == 'E');
	if (pgw_parse_command_complete(f, &tag) == PGW_OK) {
		check_str(f, tag);
		(void)pgw_tag_rows(tag, &rows);
	}
}

static void fuzz_rows(const struct pgw_frame *f)
{
	struct pgw_field fl[4];
	struct pgw_value v[4];
	uint16_t n;

	if (pgw_parse_row_description(f, fl, 4, &n) == PGW_OK) {
		for (size_t i = 0; i < n && i < 4; i++)
			check_str(f, fl[i].name);
	}
	if (pgw_parse_data_row(f, v, 4, &n) == PGW_OK) {
		for (size_t i = 0; i < n && i < 4; i++) {
			INVARIANT(v[i].len >= -1);
			if (v[i].len >= 0)
				INVARIANT(
				    inside(f, v[i].data, (size_t)v[i].len));
		}
	}
}

static void fuzz_notice(const struct pgw_frame *f)
{
	struct pgw_notice n, d;

	if (pgw_parse_notice(f, &n) != PGW_OK)
		return;
	check_str(f, n.message);
	check_str(f, n.sqlstate);
	check_str(f, n.where);
	if (!pgw_notice_dup(&n, &d))
		return;
	INVARIANT((n.message == NULL) == (d.message == NULL));
	if (n.message != NULL)
		INVARIANT(strcmp(n.message, d.message) == 0);
	pgw_notice_free(&d);
}

static void fuzz_other(const struct pgw_frame *f)
{
	struct pgw_copy_response r;
	uint32_t minor, nunknown;

	if (pgw_parse_copy_response(f, &r) == PGW_OK)
		INVARIANT(f->len == 3 + 2 * (size_t)r.ncols);
	if (pgw_parse_negotiate_version(f, &minor, &nunknown) == PGW_OK)
		INVARIANT(nunknown <= f->len - 8);
}

/* Every decoder, each seeing the frame under its own type byte. */
static void decode_all(const uint8_t *body, size_t len)
{
	static const char types[] = "RSKZTDCGHWENv";
	uint8_t *copy = fuzz_exact_copy(body, len);

	if (copy == NULL)
		return;
	for (size_t t = 0; t < sizeof(types) - 1; t++) {
		struct pgw_frame f = {(uint8_t)types[t], copy, len};

		fuzz_auth(&f);
		fuzz_small(&f);
		fuzz_rows(&f);
		fuzz_notice(&f);
		fuzz_other(&f);
	}
	free(copy);
}

/* The input as a stream of frames, flat and through an evbuffer. */
static void frame_all(const uint8_t *data, size_t size)
{
	struct evbuffer *in = evbuffer_new();
	struct pgw_frame f;
	size_t off = 0, flen, nflat = 0, nbuf = 0;
	enum pgw_rc flat, buf;

	while ((flat = pgw_frame_parse(data + off, size - off, 256, &f,
	                               &flen)) == PGW_OK) {
		INVARIANT(flen == PGW_HEADER_LEN + f.len && flen <= size - off);
		decode_all(f.body, f.len);
		off += flen;
		nflat++;
	}
	if (in == NULL)
		return;
	/* Split in two chains so pgw_frame_next has to pull up across. */
	evbuffer_add(in, data, size / 2);
	evbuffer_add_reference(in, data + size / 2, size - size / 2, NULL,
	                       NULL);
	while ((buf = pgw_frame_next(in, 256, &f)) == PGW_OK) {
		pgw_frame_consume(in, &f);
		nbuf++;
	}
	INVARIANT(flat == buf && nflat == nbuf);
	INVARIANT(evbuffer_get_length(in) == size - off);
	evbuffer_free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	decode_all(data, size);
	frame_all(data, size);
	return 0;
}
