/* test_pgwire.c: unit tests of the PostgreSQL v3 codec, byte for byte. */
#include "pgwire.h"

#include <check.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* A string literal as bytes, without the literal's own trailing NUL. */
#define LIT(s) (const uint8_t *)(s), (sizeof(s) - 1)

/* ---- helpers ---- */

static uint32_t rd_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void wr_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* The wire form (type, length, body) of a body, in an exact heap block. */
static uint8_t *wire_of(uint8_t type, const uint8_t *body, size_t len,
                        size_t *wire_len)
{
	uint8_t *w = malloc(PGW_HEADER_LEN + len);

	REQUIRE(w != NULL);
	w[0] = type;
	wr_be32(w + 1, (uint32_t)(len + 4));
	if (len > 0)
		memcpy(w + PGW_HEADER_LEN, body, len);
	*wire_len = PGW_HEADER_LEN + len;
	return w;
}

/* ---- encoders: byte-exact against hand-written layouts ---- */

START_TEST(test_put_ssl_request)
{
	static const uint8_t want[] = {0x00, 0x00, 0x00, 0x08,
	                               0x04, 0xd2, 0x16, 0x2f};
	struct evbuffer *b = evbuffer_new();

	ck_assert(pgw_put_ssl_request(b));
	expect_buf(b, want, sizeof(want));
	evbuffer_free(b);
}
END_TEST

START_TEST(test_put_startup)
{
	static const char *const params[] = {"user", "alice", "database", "db",
	                                     NULL};
	static const uint8_t want[] = {
	    0x00, 0x00, 0x00, 0x20, 0x00, 0x03, 0x00, 0x00, 'u',  's', 'e',
	    'r',  0x00, 'a',  'l',  'i',  'c',  'e',  0x00, 'd',  'a', 't',
	    'a',  'b',  'a',  's',  'e',  0x00, 'd',  'b',  0x00, 0x00};
	struct evbuffer *b = evbuffer_new();

	ck_assert(pgw_put_startup(b, params));
	expect_buf(b, want, sizeof(want));
	evbuffer_free(b);
}
END_TEST

START_TEST(test_put_startup_empty)
{
	static const char *const params[] = {NULL};
	static const uint8_t want[] = {0x00, 0x00, 0x00, 0x09, 0x00,
	                               0x03, 0x00, 0x00, 0x00};
	struct evbuffer *b = evbuffer_new();

	ck_assert(pgw_put_startup(b, params));
	expect_buf(b, want, sizeof(want));
	evbuffer_free(b);
}
END_TEST

START_TEST(test_put_startup_refused)
{
	/* A key without value, and an empty key (the server's terminator). */
	static const char *const odd[] = {"user", NULL};
	static const char *const empty_key[] = {"", "x", NULL};
	static const char *const empty_key_later[] = {"user", "a", "", "x",
	                                              NULL};
	struct evbuffer *b = evbuffer_new();

	ck_assert(!pgw_put_startup(b, odd));
	ck_assert(!pgw_put_startup(b, empty_key));
	ck_assert(!pgw_put_startup(b, empty_key_later));
	ck_assert_uint_eq(evbuffer_get_length(b), 0);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_put_password)
{
	static const uint8_t want[] = {'p', 0x00, 0x00, 0x00, 0x0b, 's',
	                               'e', 'c',  'r',  'e',  't',  0x00};
	struct evbuffer *b = evbuffer_new();

	ck_assert(pgw_put_password(b, "secret"));
	expect_buf(b, want, sizeof(want));
	evbuffer_free(b);
}
END_TEST

START_TEST(test_put_sasl_initial)
{
	static const uint8_t want[] = {
	    'p', 0x00, 0x00, 0x00, 0x21, 'S', 'C', 'R', 'A', 'M', '-',  'S',
	    'H', 'A',  '-',  '2',  '5',  '6', 0,   0,   0,   0,   0x0b, 'n',
	    ',', ',',  'n',  '=',  ',',  'r', '=', 'a', 'b', 'c'};
	struct evbuffer *b = evbuffer_new();

	ck_assert(pgw_put_sasl_initial(b, "SCRAM-SHA-256", "n,,n=,r=abc", 11));
	expect_buf(b, want, sizeof(want));
	evbuffer_free(b);
}
END_TEST

START_TEST(test_put_sasl_initial_no_data)
{
	static const uint8_t want[] = {
	    'p', 0x00, 0x00, 0x00, 0x16, 'S', 'C',  'R',  'A',  'M',  '-', 'S',
	    'H', 'A',  '-',  '2',  '5',  '6', 0x00, 0xff, 0xff, 0xff, 0xff};
	/* Zero bytes of data is not "no data": length 0, not -1. */
	static const uint8_t want_empty[] = {
	    'p', 0x00, 0x00, 0x00, 0x16, 'S', 'C',  'R', 'A', 'M', '-', 'S',
	    'H', 'A',  '-',  '2',  '5',  '6', 0x00, 0,   0,   0,   0};
	struct evbuffer *b = evbuffer_new();

	ck_assert(pgw_put_sasl_initial(b, "SCRAM-SHA-256", NULL, 0));
	expect_buf(b, want, sizeof(want));
	evbuffer_drain(b, sizeof(want));
	ck_assert(pgw_put_sasl_initial(b, "SCRAM-SHA-256", "", 0));
	expect_buf(b, want_empty, sizeof(want_empty));
	evbuffer_drain(b, sizeof(want_empty));
	ck_assert(!pgw_put_sasl_initial(b, "SCRAM-SHA-256", NULL, 3));
	ck_assert_uint_eq(evbuffer_get_length(b), 0);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_put_sasl_response)
{
	static const uint8_t want[] = {'p', 0x00, 0x00, 0x00, 0x0a, 'c',
	                               '=', 'b',  'i',  'w',  's'};
	struct evbuffer *b = evbuffer_new();

	ck_assert(pgw_put_sasl_response(b, "c=biws", 6));
	expect_buf(b, want, sizeof(want));
	evbuffer_free(b);
}
END_TEST

START_TEST(test_put_query)
{
	static const uint8_t want[] = {'Q', 0x00, 0x00, 0x00, 0x0d, 'S', 'E',
	                               'L', 'E',  'C',  'T',  ' ',  '1', 0x00};
	struct evbuffer *b = evbuffer_new();

	ck_assert(pgw_put_query(b, "SELECT 1"));
	expect_buf(b, want, sizeof(want));
	evbuffer_free(b);
}
END_TEST

START_TEST(test_put_copy_messages)
{
	static const uint8_t want[] = {
	    'd', 0x00, 0x00, 0x00, 0x08, '1', '\t', 'x',  '\n', /* data */
	    'd', 0x00, 0x00, 0x00, 0x04,                        /* empty */
	    'c', 0x00, 0x00, 0x00, 0x04,                        /* done */
	    'f', 0x00, 0x00, 0x00, 0x0c, 'b', 'a',  'd',  ' ',  'r',
	    'o', 'w',  0x00, /* fail */
	    'S', 0x00, 0x00, 0x00, 0x04, 'X', 0x00, 0x00, 0x00, 0x04};
	struct evbuffer *b = evbuffer_new();

	/* Each call appends after what the buffer already holds. */
	ck_assert(pgw_put_copy_data(b, "1\tx\n", 4));
	ck_assert(pgw_put_copy_data(b, NULL, 0));
	ck_assert(pgw_put_copy_done(b));
	ck_assert(pgw_put_copy_fail(b, "bad row"));
	ck_assert(pgw_put_sync(b));
	ck_assert(pgw_put_terminate(b));
	expect_buf(b, want, sizeof(want));
	evbuffer_free(b);
}
END_TEST

START_TEST(test_put_copy_data_from)
{
	static const uint8_t want[] = {'d', 0x00, 0x00, 0x00, 0x08,
	                               'a', 'b',  'c',  'd'};
	struct evbuffer *src = evbuffer_new();
	struct evbuffer *out = evbuffer_new();
	uint8_t rest[2];

	evbuffer_add(src, "abcdef", 6);
	ck_assert(pgw_put_copy_data_from(out, src, 4));
	expect_buf(out, want, sizeof(want));
	ck_assert_uint_eq(evbuffer_get_length(src), 2);
	evbuffer_copyout(src, rest, 2);
	ck_assert_mem_eq(rest, "ef", 2);
	/* More than src holds: refused before anything is written. */
	ck_assert(!pgw_put_copy_data_from(out, src, 3));
	ck_assert_uint_eq(evbuffer_get_length(out), sizeof(want));
	ck_assert_uint_eq(evbuffer_get_length(src), 2);
	evbuffer_free(src);
	evbuffer_free(out);
}
END_TEST

static int payload_released;

static void note_release(const void *data, size_t len, void *arg)
{
	payload_released++;
}

START_TEST(test_put_copy_data_from_moves)
{
	static const char payload[] = "1\talice\n2\tbob\n";
	struct evbuffer *src = evbuffer_new();
	struct evbuffer *out = evbuffer_new();
	struct evbuffer_iovec vec[4];
	int n;
	bool found = false;

	payload_released = 0;
	evbuffer_add_reference(src, payload, sizeof(payload) - 1, note_release,
	                       NULL);
	ck_assert(pgw_put_copy_data_from(out, src, sizeof(payload) - 1));
	ck_assert_uint_eq(evbuffer_get_length(src), 0);
	ck_assert_uint_eq(evbuffer_get_length(out),
	                  PGW_HEADER_LEN + sizeof(payload) - 1);
	/* The payload chain itself moved: out still points at our array. */
	n = evbuffer_peek(out, -1, NULL, vec, 4);
	for (int i = 0; i < n && i < 4; i++)
		found |= vec[i].iov_base == (const void *)payload;
	ck_assert(found);
	ck_assert_int_eq(payload_released, 0);
	evbuffer_free(src);
	evbuffer_free(out);
	ck_assert_int_eq(payload_released, 1);
}
END_TEST

START_TEST(test_put_oversize_refused)
{
	/* The data pointer is never read: the size is refused first. */
	static const uint8_t one[1];
	const size_t over = (size_t)INT32_MAX - 3;
	struct evbuffer *b = evbuffer_new();
	struct evbuffer *src = evbuffer_new();

	ck_assert(!pgw_put_copy_data(b, one, over));
	ck_assert(!pgw_put_copy_data(b, one, SIZE_MAX));
	ck_assert(!pgw_put_sasl_response(b, one, over));
	ck_assert(!pgw_put_sasl_response(b, one, SIZE_MAX));
	/* mechanism\0 (14) + int32 (4) + data must stay <= INT32_MAX - 4. */
	ck_assert(!pgw_put_sasl_initial(b, "SCRAM-SHA-256", one,
	                                (size_t)INT32_MAX - 4 - 18 + 1));
	ck_assert(!pgw_put_sasl_initial(b, "SCRAM-SHA-256", one, SIZE_MAX));
	ck_assert(!pgw_put_copy_data_from(b, src, over));
	ck_assert_uint_eq(evbuffer_get_length(b), 0);
	evbuffer_free(b);
	evbuffer_free(src);
}
END_TEST

/* ---- framing ---- */

START_TEST(test_frame_parse_whole)
{
	static const uint8_t wire[] = {'Z', 0x00, 0x00, 0x00, 0x05, 'I',
	                               'C', 0x00, 0x00, 0x00, 0x04};
	struct pgw_frame f;
	size_t flen = 0;

	ck_assert_int_eq(pgw_frame_parse(wire, sizeof(wire), 100, &f, &flen),
	                 PGW_OK);
	ck_assert_uint_eq(f.type, 'Z');
	ck_assert_uint_eq(f.len, 1);
	ck_assert_ptr_eq(f.body, wire + 5);
	ck_assert_uint_eq(flen, 6);
	/* The next frame starts right after; an empty body is legal. */
	ck_assert_int_eq(
	    pgw_frame_parse(wire + 6, sizeof(wire) - 6, 100, &f, &flen),
	    PGW_OK);
	ck_assert_uint_eq(f.type, 'C');
	ck_assert_uint_eq(f.len, 0);
	ck_assert_uint_eq(flen, 5);
}
END_TEST

START_TEST(test_frame_parse_partial)
{
	static const uint8_t wire[] = {'S', 0x00, 0x00, 0x00, 0x08,
	                               'a', 0x00, 'b',  0x00};
	struct pgw_frame f;
	size_t flen;

	for (size_t n = 0; n < sizeof(wire); n++)
		ck_assert_int_eq(pgw_frame_parse(wire, n, 100, &f, &flen),
		                 PGW_AGAIN);
	ck_assert_int_eq(pgw_frame_parse(wire, sizeof(wire), 100, &f, &flen),
	                 PGW_OK);
}
END_TEST

START_TEST(test_frame_parse_bad_length)
{
	/* Lengths below 4 are errors as soon as the header is complete. */
	uint8_t wire[PGW_HEADER_LEN] = {'D'};
	struct pgw_frame f;
	size_t flen;

	for (uint32_t len = 0; len < 4; len++) {
		wr_be32(wire + 1, len);
		ck_assert_int_eq(
		    pgw_frame_parse(wire, sizeof(wire), SIZE_MAX, &f, &flen),
		    PGW_ERROR);
	}
	/* Negative as an int32: never a frame, whatever max_body says. */
	static const uint32_t huge[] = {0x80000000u, 0xfffffffcu, 0xffffffffu};
	for (size_t i = 0; i < 3; i++) {
		wr_be32(wire + 1, huge[i]);
		ck_assert_int_eq(
		    pgw_frame_parse(wire, sizeof(wire), SIZE_MAX, &f, &flen),
		    PGW_ERROR);
	}
	/* Largest legal length, body not here yet: wait for it. */
	wr_be32(wire + 1, INT32_MAX);
	ck_assert_int_eq(
	    pgw_frame_parse(wire, sizeof(wire), SIZE_MAX, &f, &flen),
	    PGW_AGAIN);
}
END_TEST

START_TEST(test_frame_parse_max_body)
{
	/* Body of exactly max_body is fine; one more is refused at once. */
	uint8_t wire[PGW_HEADER_LEN + 10] = {'D'};
	struct pgw_frame f;
	size_t flen;

	wr_be32(wire + 1, 4 + 10);
	ck_assert_int_eq(pgw_frame_parse(wire, sizeof(wire), 10, &f, &flen),
	                 PGW_OK);
	ck_assert_int_eq(pgw_frame_parse(wire, sizeof(wire), 9, &f, &flen),
	                 PGW_ERROR);
	ck_assert_int_eq(pgw_frame_parse(wire, PGW_HEADER_LEN, 9, &f, &flen),
	                 PGW_ERROR);
	ck_assert_int_eq(pgw_frame_parse(wire, sizeof(wire), 0, &f, &flen),
	                 PGW_ERROR);
	wr_be32(wire + 1, 4);
	ck_assert_int_eq(pgw_frame_parse(wire, sizeof(wire), 0, &f, &flen),
	                 PGW_OK);
	wr_be32(wire + 1, 4 + PGW_MAX_BACKEND_MESSAGE + 1);
	ck_assert_int_eq(pgw_frame_parse(wire, sizeof(wire),
	                                 PGW_MAX_BACKEND_MESSAGE, &f, &flen),
	                 PGW_ERROR);
}
END_TEST

START_TEST(test_frame_next_bytewise)
{
	static const uint8_t wire[] = {'C',  0x00, 0x00, 0x00, 0x0e, 'C',  'O',
	                               'P',  'Y',  ' ',  '1',  '0',  '0',  '0',
	                               0x00, 'Z',  0x00, 0x00, 0x00, 0x05, 'I'};
	struct evbuffer *in = evbuffer_new();
	struct pgw_frame f;

	/* One byte at a time, as a slow socket would deliver it. */
	for (size_t i = 0; i < 14; i++) {
		ck_assert_int_eq(pgw_frame_next(in, 100, &f), PGW_AGAIN);
		ck_assert_uint_eq(evbuffer_get_length(in), i);
		evbuffer_add(in, wire + i, 1);
	}
	evbuffer_add(in, wire + 14, 2);
	ck_assert_int_eq(pgw_frame_next(in, 100, &f), PGW_OK);
	ck_assert_uint_eq(f.type, 'C');
	ck_assert_uint_eq(f.len, 10);
	ck_assert_mem_eq(f.body, "COPY 1000", 10);
	pgw_frame_consume(in, &f);
	ck_assert_uint_eq(evbuffer_get_length(in), 1);
	ck_assert_int_eq(pgw_frame_next(in, 100, &f), PGW_AGAIN);
	evbuffer_add(in, wire + 16, sizeof(wire) - 16);
	ck_assert_int_eq(pgw_frame_next(in, 100, &f), PGW_OK);
	ck_assert_uint_eq(f.type, 'Z');
	ck_assert_uint_eq(f.body[0], 'I');
	pgw_frame_consume(in, &f);
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	evbuffer_free(in);
}
END_TEST

START_TEST(test_frame_next_chains)
{
	/* Header and body spread over separate chains must come out whole. */
	static const uint8_t p1[] = {'S', 0x00, 0x00};
	static const uint8_t p2[] = {0x00, 0x10, 's', 'e', 'r'};
	static const uint8_t p3[] = {'v', 'e', 'r', 0x00, 'U',
	                             'T', 'F', '8', 0x00};
	struct evbuffer *in = evbuffer_new();
	struct pgw_frame f;
	struct pgw_param_status ps;

	evbuffer_add_reference(in, p1, sizeof(p1), NULL, NULL);
	evbuffer_add_reference(in, p2, sizeof(p2), NULL, NULL);
	ck_assert_int_eq(pgw_frame_next(in, 100, &f), PGW_AGAIN);
	evbuffer_add_reference(in, p3, sizeof(p3), NULL, NULL);
	ck_assert_int_eq(pgw_frame_next(in, 100, &f), PGW_OK);
	ck_assert_uint_eq(f.len, 12);
	ck_assert_int_eq(pgw_parse_param_status(&f, &ps), PGW_OK);
	ck_assert_str_eq(ps.name, "server");
	ck_assert_str_eq(ps.value, "UTF8");
	pgw_frame_consume(in, &f);
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	evbuffer_free(in);
}
END_TEST

START_TEST(test_frame_next_errors)
{
	static const uint8_t short_len[] = {'Z', 0x00, 0x00, 0x00, 0x03};
	static const uint8_t neg_len[] = {'D', 0xff, 0xff, 0xff, 0xfe};
	static const uint8_t big_len[] = {'D', 0x00, 0x00, 0x10, 0x00};
	struct evbuffer *in = evbuffer_new();
	struct pgw_frame f;

	evbuffer_add(in, short_len, sizeof(short_len));
	ck_assert_int_eq(pgw_frame_next(in, 100, &f), PGW_ERROR);
	evbuffer_drain(in, sizeof(short_len));
	evbuffer_add(in, neg_len, sizeof(neg_len));
	ck_assert_int_eq(pgw_frame_next(in, SIZE_MAX, &f), PGW_ERROR);
	evbuffer_drain(in, sizeof(neg_len));
	/* 4096 - 4 over a max of 4091: refused before the body arrives. */
	evbuffer_add(in, big_len, sizeof(big_len));
	ck_assert_int_eq(pgw_frame_next(in, 4091, &f), PGW_ERROR);
	ck_assert_int_eq(pgw_frame_next(in, 4092, &f), PGW_AGAIN);
	ck_assert_uint_eq(evbuffer_get_length(in), sizeof(big_len));
	evbuffer_free(in);
}
END_TEST

/* ---- captured-style backend messages (bodies, without the header) ---- */

static const char auth_ok[] = "\0\0\0\0";
static const char auth_md5[] = "\0\0\0\x05"
                               "\x9a\x1b\x2c\x3d";
static const char auth_sasl[] = "\0\0\0\x0a"
                                "SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0";
static const char auth_sasl_continue[] =
    "\0\0\0\x0b"
    "r=fyko+d2lbbFgONRv9qkxdawLHo+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE,"
    "s=QSXCR+Q6sek8bf92,i=4096";
static const char auth_sasl_final[] =
    "\0\0\0\x0c"
    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
static const char param_status[] = "server_version\0"
                                   "15.4";
static const char backend_key[] = "\0\0\x30\x39\x12\x34\x56\x78";
static const char ready_idle[] = "I";
/* SELECT id, name FROM t; id int8, name varchar(32), t has oid 16384. */
static const char row_desc[] = "\0\x02"
                               "id\0"
                               "\0\0\x40\0"
                               "\0\x01"
                               "\0\0\0\x14"
                               "\0\x08"
                               "\xff\xff\xff\xff"
                               "\0\0"
                               "name\0"
                               "\0\0\x40\0"
                               "\0\x02"
                               "\0\0\x04\x13"
                               "\xff\xff"
                               "\0\0\0\x24"
                               "\0\0";
/* Three columns: "42", NULL, "". */
static const char data_row[] = "\0\x03"
                               "\0\0\0\x02"
                               "42"
                               "\xff\xff\xff\xff"
                               "\0\0\0\0";
static const char cmd_copy[] = "COPY 1000000";
static const char copy_in[] = "\0\0\x03\0\0\0\0\0\0";
static const char copy_out_bin[] = "\x01\0\x02\0\x01\0\x01";
static const char err_unique[] =
    "SERROR\0VERROR\0C23505\0"
    "Mduplicate key value violates unique constraint \"t_pkey\"\0"
    "DKey (id)=(1) already exists.\0"
    "spublic\0tt\0nt_pkey\0Fnbtinsert.c\0L666\0R_bt_check_unique\0";
static const char err_copy[] = "SERROR\0VERROR\0C22P02\0"
                               "Minvalid input syntax for type bigint: \"x\"\0"
                               "WCOPY t, line 3, column id: \"x\"\0"
                               "Fnumutils.c\0L617\0Rpg_strtoint64_safe\0";
static const char notice_skip[] =
    "SNOTICE\0VNOTICE\0C42P07\0"
    "Mrelation \"t\" already exists, skipping\0"
    "Fparse_utilcmd.c\0L207\0RtransformCreateStmt\0";
static const char negotiate[] = "\0\0\0\0"
                                "\0\0\0\x01"
                                "_pq_.compression";

/*
 * sizeof() of a literal counts the NUL the compiler adds; the messages
 * above that end in a NUL (string lists, tags, notices) use it as theirs.
 */
#define BODY(s)        (const uint8_t *)(s), sizeof(s)
#define BODY_NO_NUL(s) (const uint8_t *)(s), (sizeof(s) - 1)

struct sample {
	const char *name;
	uint8_t type;
	const uint8_t *body;
	size_t len;
	/* Every proper prefix of the body must be rejected by the decoder. */
	bool strict;
};

static const struct sample samples[] = {
    {"auth_ok", 'R', BODY_NO_NUL(auth_ok), true},
    {"auth_md5", 'R', BODY_NO_NUL(auth_md5), true},
    {"auth_sasl", 'R', BODY(auth_sasl), true},
    {"auth_sasl_continue", 'R', BODY_NO_NUL(auth_sasl_continue), false},
    {"auth_sasl_final", 'R', BODY_NO_NUL(auth_sasl_final), false},
    {"param_status", 'S', BODY(param_status), true},
    {"backend_key", 'K', BODY_NO_NUL(backend_key), true},
    {"ready_idle", 'Z', BODY_NO_NUL(ready_idle), true},
    {"row_desc", 'T', BODY_NO_NUL(row_desc), true},
    {"data_row", 'D', BODY_NO_NUL(data_row), true},
    {"cmd_copy", 'C', BODY(cmd_copy), true},
    {"copy_in", 'G', BODY_NO_NUL(copy_in), true},
    {"copy_out_bin", 'H', BODY_NO_NUL(copy_out_bin), true},
    {"err_unique", 'E', BODY(err_unique), true},
    {"err_copy", 'E', BODY(err_copy), true},
    {"notice_skip", 'N', BODY(notice_skip), true},
    {"negotiate", 'v', BODY(negotiate), true},
};

#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

static struct pgw_frame sample_frame(const char *name)
{
	for (size_t i = 0; i < NSAMPLES; i++) {
		if (strcmp(samples[i].name, name) == 0)
			return frame_of(samples[i].type, samples[i].body,
			                samples[i].len);
	}
	ck_abort_msg("no sample %s", name);
	return (struct pgw_frame){0};
}

static enum pgw_rc decode_as(const struct pgw_frame *f, uint8_t decoder);

/* Runs one body through the decoder of its type, in an exact heap block. */
static enum pgw_rc decode_body(uint8_t type, const uint8_t *body, size_t len)
{
	struct pgw_frame f = frame_of(type, body, len);
	enum pgw_rc rc = decode_as(&f, type);

	frame_free(&f);
	return rc;
}

struct bad_body {
	const char *why;
	const uint8_t *body;
	size_t len;
};

static void expect_all_rejected(uint8_t type, const struct bad_body *bad,
                                size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ck_assert_msg(decode_body(type, bad[i].body, bad[i].len) ==
		                  PGW_ERROR,
		              "%c accepted: %s", type, bad[i].why);
	}
}

/* ---- decoders ---- */

START_TEST(test_auth_ok_md5)
{
	struct pgw_frame f = sample_frame("auth_ok");
	struct pgw_auth a;

	ck_assert_int_eq(pgw_parse_auth(&f, &a), PGW_OK);
	ck_assert_uint_eq(a.code, PGW_AUTH_OK);
	ck_assert_uint_eq(a.data_len, 0);
	ck_assert(!pgw_sasl_offers(&a, "SCRAM-SHA-256"));
	frame_free(&f);

	f = sample_frame("auth_md5");
	ck_assert_int_eq(pgw_parse_auth(&f, &a), PGW_OK);
	ck_assert_uint_eq(a.code, PGW_AUTH_MD5);
	ck_assert_uint_eq(a.data_len, 4);
	ck_assert_ptr_eq(a.data, f.body + 4);
	ck_assert_mem_eq(a.data, "\x9a\x1b\x2c\x3d", 4);
	frame_free(&f);
}
END_TEST

START_TEST(test_auth_sasl)
{
	struct pgw_frame f = sample_frame("auth_sasl");
	struct pgw_auth a;

	ck_assert_int_eq(pgw_parse_auth(&f, &a), PGW_OK);
	ck_assert_uint_eq(a.code, PGW_AUTH_SASL);
	ck_assert_uint_eq(a.data_len, f.len - 4);
	ck_assert(pgw_sasl_offers(&a, "SCRAM-SHA-256"));
	ck_assert(pgw_sasl_offers(&a, "SCRAM-SHA-256-PLUS"));
	ck_assert(!pgw_sasl_offers(&a, "SCRAM-SHA"));
	ck_assert(!pgw_sasl_offers(&a, "SCRAM-SHA-256-PLUSX"));
	ck_assert(!pgw_sasl_offers(&a, ""));
	ck_assert(!pgw_sasl_offers(&a, NULL));
	frame_free(&f);
}
END_TEST

START_TEST(test_auth_sasl_payloads)
{
	struct pgw_frame f = sample_frame("auth_sasl_continue");
	struct pgw_auth a;

	ck_assert_int_eq(pgw_parse_auth(&f, &a), PGW_OK);
	ck_assert_uint_eq(a.code, PGW_AUTH_SASL_CONTINUE);
	ck_assert_uint_eq(a.data_len, 84);
	ck_assert_mem_eq(a.data, "r=fyko+", 7);
	ck_assert_mem_eq(a.data + 78, "i=4096", 6);
	ck_assert(!pgw_sasl_offers(&a, "SCRAM-SHA-256"));
	frame_free(&f);

	f = sample_frame("auth_sasl_final");
	ck_assert_int_eq(pgw_parse_auth(&f, &a), PGW_OK);
	ck_assert_uint_eq(a.code, PGW_AUTH_SASL_FINAL);
	ck_assert_uint_eq(a.data_len, 46);
	ck_assert_mem_eq(a.data, "v=6rri", 6);
	frame_free(&f);

	/* Methods we do not implement still decode: the caller refuses. */
	f = frame_of('R', LIT("\0\0\0\x07"));
	ck_assert_int_eq(pgw_parse_auth(&f, &a), PGW_OK);
	ck_assert_uint_eq(a.code, 7);
	frame_free(&f);
}
END_TEST

START_TEST(test_auth_rejected)
{
	static const struct bad_body bad[] = {
	    {"empty", LIT("")},
	    {"short code", LIT("\0\0\0")},
	    {"ok with data", LIT("\0\0\0\0x")},
	    {"cleartext with data", LIT("\0\0\0\x03x")},
	    {"md5 short salt", LIT("\0\0\0\x05\1\2\3")},
	    {"md5 long salt", LIT("\0\0\0\x05\1\2\3\4\5")},
	    {"sasl empty", LIT("\0\0\0\x0a")},
	    {"sasl no NUL", LIT("\0\0\0\x0aSCRAM-SHA-256")},
	    {"sasl no end", LIT("\0\0\0\x0aSCRAM-SHA-256\0")},
	    {"sasl trailing", LIT("\0\0\0\x0aSCRAM-SHA-256\0\0x")},
	    {"sasl empty first", LIT("\0\0\0\x0a\0SCRAM-SHA-256\0\0")},
	};

	expect_all_rejected('R', bad, sizeof(bad) / sizeof(bad[0]));
}
END_TEST

START_TEST(test_sasl_offers_hostile)
{
	/* Built by hand, never validated: the walk must stay inside. */
	uint8_t *unterminated = malloc(13);
	struct pgw_auth a = {PGW_AUTH_SASL, unterminated, 13};

	memcpy(unterminated, "SCRAM-SHA-256", 13);
	ck_assert(!pgw_sasl_offers(&a, "SCRAM-SHA-256"));
	a.data_len = 0;
	ck_assert(!pgw_sasl_offers(&a, "SCRAM-SHA-256"));
	free(unterminated);
}
END_TEST

START_TEST(test_param_status)
{
	struct pgw_frame f = sample_frame("param_status");
	struct pgw_param_status p;
	static const struct bad_body bad[] = {
	    {"empty", LIT("")},
	    {"name only", LIT("server_version\0")},
	    {"value without NUL", LIT("server_version\0"
	                              "15.4")},
	    {"no NUL at all", LIT("server_version")},
	    {"trailing", LIT("a\0b\0c")},
	    {"trailing NUL", LIT("a\0b\0\0")},
	};

	ck_assert_int_eq(pgw_parse_param_status(&f, &p), PGW_OK);
	ck_assert_str_eq(p.name, "server_version");
	ck_assert_str_eq(p.value, "15.4");
	ck_assert_ptr_eq(p.name, (const char *)f.body);
	frame_free(&f);
	f = frame_of('S', LIT("application_name\0\0"));
	ck_assert_int_eq(pgw_parse_param_status(&f, &p), PGW_OK);
	ck_assert_str_eq(p.value, "");
	frame_free(&f);
	expect_all_rejected('S', bad, sizeof(bad) / sizeof(bad[0]));
}
END_TEST

START_TEST(test_backend_key)
{
	struct pgw_frame f = sample_frame("backend_key");
	struct pgw_backend_key k;
	static const struct bad_body bad[] = {
	    {"empty", LIT("")},
	    {"7 bytes", LIT("\0\0\x30\x39\x12\x34\x56")},
	    {"9 bytes", LIT("\0\0\x30\x39\x12\x34\x56\x78\x9a")},
	};

	ck_assert_int_eq(pgw_parse_backend_key(&f, &k), PGW_OK);
	ck_assert_uint_eq(k.pid, 12345);
	ck_assert_uint_eq(k.secret, 0x12345678u);
	frame_free(&f);
	f = frame_of('K', LIT("\xff\xff\xff\xfe\x80\0\0\x01"));
	ck_assert_int_eq(pgw_parse_backend_key(&f, &k), PGW_OK);
	ck_assert_uint_eq(k.pid, 0xfffffffeu);
	ck_assert_uint_eq(k.secret, 0x80000001u);
	frame_free(&f);
	expect_all_rejected('K', bad, sizeof(bad) / sizeof(bad[0]));
}
END_TEST

START_TEST(test_ready)
{
	static const char states[] = "ITE";
	static const struct bad_body bad[] = {
	    {"empty", LIT("")}, {"unknown X", LIT("X")},  {"lower i", LIT("i")},
	    {"NUL", LIT("\0")}, {"two bytes", LIT("II")},
	};

	for (size_t i = 0; i < 3; i++) {
		struct pgw_frame f =
		    frame_of('Z', (const uint8_t *)&states[i], 1);
		char st = 0;

		ck_assert_int_eq(pgw_parse_ready(&f, &st), PGW_OK);
		ck_assert_int_eq(st, states[i]);
		frame_free(&f);
	}
	expect_all_rejected('Z', bad, sizeof(bad) / sizeof(bad[0]));
}
END_TEST

START_TEST(test_row_description)
{
	struct pgw_frame f = sample_frame("row_desc");
	struct pgw_field fl[4];
	uint16_t n = 0;

	ck_assert_int_eq(pgw_parse_row_description(&f, fl, 4, &n), PGW_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(fl[0].name, "id");
	ck_assert_uint_eq(fl[0].table_oid, 16384);
	ck_assert_int_eq(fl[0].column, 1);
	ck_assert_uint_eq(fl[0].type_oid, 20);
	ck_assert_int_eq(fl[0].type_len, 8);
	ck_assert_int_eq(fl[0].type_mod, -1);
	ck_assert_int_eq(fl[0].format, 0);
	ck_assert_str_eq(fl[1].name, "name");
	ck_assert_uint_eq(fl[1].table_oid, 16384);
	ck_assert_int_eq(fl[1].column, 2);
	ck_assert_uint_eq(fl[1].type_oid, 1043);
	ck_assert_int_eq(fl[1].type_len, -1);
	ck_assert_int_eq(fl[1].type_mod, 36);
	ck_assert_int_eq(fl[1].format, 0);
	frame_free(&f);
}
END_TEST

START_TEST(test_row_description_max)
{
	/* Fewer slots than fields: only fl[0] written, count still 2. */
	struct pgw_frame f = sample_frame("row_desc");
	struct pgw_field fl[2] = {{0}, {.name = "untouched"}};
	uint16_t n = 0;

	ck_assert_int_eq(pgw_parse_row_description(&f, fl, 1, &n), PGW_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(fl[0].name, "id");
	ck_assert_str_eq(fl[1].name, "untouched");
	ck_assert_int_eq(pgw_parse_row_description(&f, NULL, 0, &n), PGW_OK);
	ck_assert_uint_eq(n, 2);
	frame_free(&f);
	/* The fields past max are still validated. */
	f = frame_of('T', (const uint8_t *)row_desc, sizeof(row_desc) - 2);
	ck_assert_int_eq(pgw_parse_row_description(&f, fl, 1, &n), PGW_ERROR);
	frame_free(&f);
	f = frame_of('T', LIT("\0\0"));
	ck_assert_int_eq(pgw_parse_row_description(&f, fl, 1, &n), PGW_OK);
	ck_assert_uint_eq(n, 0);
	frame_free(&f);
}
END_TEST

START_TEST(test_row_description_rejected)
{
	static const struct bad_body bad[] = {
	    {"empty", LIT("")},
	    {"half count", LIT("\0")},
	    {"count 1, no field", LIT("\0\x01")},
	    {"count 0xffff, one field",
	     LIT("\xff\xff"
	         "a\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0")},
	    {"name without NUL", LIT("\0\x01"
	                             "abc")},
	    {"field cut short", LIT("\0\x01"
	                            "a\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff")},
	    {"trailing", LIT("\0\x01"
	                     "a\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff"
	                     "\0\0\0")},
	    {"count 0 with bytes", LIT("\0\0x")},
	};

	expect_all_rejected('T', bad, sizeof(bad) / sizeof(bad[0]));
}
END_TEST

START_TEST(test_data_row)
{
	struct pgw_frame f = sample_frame("data_row");
	struct pgw_value v[4];
	uint16_t n = 0;

	ck_assert_int_eq(pgw_parse_data_row(&f, v, 4, &n), PGW_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(v[0].len, 2);
	ck_assert_ptr_eq(v[0].data, f.body + 6);
	ck_assert_mem_eq(v[0].data, "42", 2);
	ck_assert_int_eq(v[1].len, -1);
	ck_assert_ptr_null(v[1].data);
	ck_assert_int_eq(v[2].len, 0);
	ck_assert_ptr_nonnull(v[2].data);
	/* max below the count: the rest is validated, not stored. */
	v[1].len = 77;
	ck_assert_int_eq(pgw_parse_data_row(&f, v, 1, &n), PGW_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(v[1].len, 77);
	frame_free(&f);
	f = frame_of('D', LIT("\0\0"));
	ck_assert_int_eq(pgw_parse_data_row(&f, v, 4, &n), PGW_OK);
	ck_assert_uint_eq(n, 0);
	frame_free(&f);
}
END_TEST

START_TEST(test_data_row_rejected)
{
	static const struct bad_body bad[] = {
	    {"empty", LIT("")},
	    {"half count", LIT("\x01")},
	    {"length -2", LIT("\0\x01\xff\xff\xff\xfe")},
	    {"length INT32_MIN", LIT("\0\x01\x80\0\0\0")},
	    {"length INT32_MAX", LIT("\0\x01\x7f\xff\xff\xff"
	                             "abc")},
	    {"length past end", LIT("\0\x01\0\0\0\x04"
	                            "abc")},
	    {"count 2, one value", LIT("\0\x02\0\0\0\x01x")},
	    {"count 0xffff", LIT("\xff\xff\xff\xff\xff\xff")},
	    {"trailing", LIT("\0\x01\0\0\0\x01xy")},
	    {"half length", LIT("\0\x01\0\0")},
	};

	expect_all_rejected('D', bad, sizeof(bad) / sizeof(bad[0]));
	/* Past max the values are still checked: -2 in column 2 fails. */
	struct pgw_frame f = frame_of('D', LIT("\0\x02\0\0\0\x01x"
	                                       "\xff\xff\xff\xfe"));
	struct pgw_value v[1];
	uint16_t n;

	ck_assert_int_eq(pgw_parse_data_row(&f, v, 1, &n), PGW_ERROR);
	frame_free(&f);
}
END_TEST

START_TEST(test_command_complete)
{
	struct pgw_frame f = sample_frame("cmd_copy");
	const char *tag = NULL;
	static const struct bad_body bad[] = {
	    {"empty", LIT("")},
	    {"no NUL", LIT("COPY 5")},
	    {"trailing", LIT("COPY 5\0x")},
	    {"two NULs", LIT("COPY 5\0\0")},
	};

	ck_assert_int_eq(pgw_parse_command_complete(&f, &tag), PGW_OK);
	ck_assert_str_eq(tag, "COPY 1000000");
	ck_assert_ptr_eq(tag, (const char *)f.body);
	frame_free(&f);
	expect_all_rejected('C', bad, sizeof(bad) / sizeof(bad[0]));
}
END_TEST

START_TEST(test_tag_rows)
{
	static const struct {
		const char *tag;
		bool ok;
		uint64_t rows;
	} cases[] = {
	    {"COPY 1000000", true, 1000000},
	    {"INSERT 0 5", true, 5},
	    {"UPDATE 3", true, 3},
	    {"SELECT 2", true, 2},
	    {"DELETE 0", true, 0},
	    {"MERGE 7", true, 7},
	    {"COPY 18446744073709551615", true, UINT64_MAX},
	    {"COPY 018446744073709551615", true, UINT64_MAX},
	    {"COPY 18446744073709551616", false, 0},
	    {"COPY 18446744073709551620", false, 0},
	    {"COPY 99999999999999999999999", false, 0},
	    {"BEGIN", false, 0},
	    {"COMMIT", false, 0},
	    {"CREATE TABLE", false, 0},
	    {"", false, 0},
	    {"COPY ", false, 0},
	    {"COPY -1", false, 0},
	    {"COPY +1", false, 0},
	    {"COPY 12a", false, 0},
	    {"COPY 1 ", false, 0},
	    {" 5", false, 0},
	    {"5", false, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t rows = 12345;

		ck_assert_msg(pgw_tag_rows(cases[i].tag, &rows) == cases[i].ok,
		              "tag \"%s\"", cases[i].tag);
		if (cases[i].ok)
			ck_assert_msg(rows == cases[i].rows, "tag \"%s\"",
			              cases[i].tag);
		else
			ck_assert_msg(rows == 12345, "tag \"%s\" wrote",
			              cases[i].tag);
	}
	ck_assert(!pgw_tag_rows(NULL, &(uint64_t){0}));
}
END_TEST

START_TEST(test_copy_response)
{
	struct pgw_frame f = sample_frame("copy_in");
	struct pgw_copy_response r;

	ck_assert_int_eq(pgw_parse_copy_response(&f, &r), PGW_OK);
	ck_assert_uint_eq(r.format, 0);
	ck_assert_uint_eq(r.ncols, 3);
	frame_free(&f);
	f = sample_frame("copy_out_bin");
	ck_assert_int_eq(pgw_parse_copy_response(&f, &r), PGW_OK);
	ck_assert_uint_eq(r.format, 1);
	ck_assert_uint_eq(r.ncols, 2);
	frame_free(&f);
	f = frame_of('W', LIT("\0\0\0"));
	ck_assert_int_eq(pgw_parse_copy_response(&f, &r), PGW_OK);
	ck_assert_uint_eq(r.ncols, 0);
	frame_free(&f);
	/* Binary copy may mix text and binary columns. */
	f = frame_of('G', LIT("\x01\0\x02\0\0\0\x01"));
	ck_assert_int_eq(pgw_parse_copy_response(&f, &r), PGW_OK);
	frame_free(&f);
}
END_TEST

START_TEST(test_copy_response_rejected)
{
	static const struct bad_body bad[] = {
	    {"empty", LIT("")},
	    {"format only", LIT("\0")},
	    {"format 2", LIT("\x02\0\0")},
	    {"count 1, no format", LIT("\0\0\x01")},
	    {"text with binary column", LIT("\0\0\x01\0\x01")},
	    {"column format 2", LIT("\x01\0\x01\0\x02")},
	    {"count 0xffff", LIT("\0\xff\xff\0\0")},
	    {"trailing", LIT("\0\0\x01\0\0\0")},
	};

	expect_all_rejected('G', bad, sizeof(bad) / sizeof(bad[0]));
	expect_all_rejected('H', bad, sizeof(bad) / sizeof(bad[0]));
	expect_all_rejected('W', bad, sizeof(bad) / sizeof(bad[0]));
}
END_TEST

START_TEST(test_notice_unique_violation)
{
	struct pgw_frame f = sample_frame("err_unique");
	struct pgw_notice n;

	ck_assert_int_eq(pgw_parse_notice(&f, &n), PGW_OK);
	ck_assert_str_eq(n.severity, "ERROR");
	ck_assert_str_eq(n.severity_nl, "ERROR");
	ck_assert_str_eq(n.sqlstate, "23505");
	ck_assert_str_eq(n.message,
	                 "duplicate key value violates unique constraint "
	                 "\"t_pkey\"");
	ck_assert_str_eq(n.detail, "Key (id)=(1) already exists.");
	ck_assert_str_eq(n.schema, "public");
	ck_assert_str_eq(n.table, "t");
	ck_assert_str_eq(n.constraint, "t_pkey");
	ck_assert_str_eq(n.file, "nbtinsert.c");
	ck_assert_str_eq(n.line, "666");
	ck_assert_str_eq(n.routine, "_bt_check_unique");
	ck_assert_ptr_null(n.hint);
	ck_assert_ptr_null(n.where);
	ck_assert_ptr_null(n.column);
	ck_assert_ptr_null(n.owned);
	frame_free(&f);
}
END_TEST

START_TEST(test_notice_copy_error)
{
	struct pgw_frame f = sample_frame("err_copy");
	struct pgw_notice n;

	ck_assert_int_eq(pgw_parse_notice(&f, &n), PGW_OK);
	ck_assert_str_eq(n.sqlstate, "22P02");
	ck_assert_str_eq(n.where, "COPY t, line 3, column id: \"x\"");
	ck_assert_ptr_null(n.detail);
	frame_free(&f);
	f = sample_frame("notice_skip");
	ck_assert_int_eq(pgw_parse_notice(&f, &n), PGW_OK);
	ck_assert_str_eq(n.severity, "NOTICE");
	ck_assert_str_eq(n.sqlstate, "42P07");
	frame_free(&f);
}
END_TEST

/* Every documented code once, value = the code itself, plus unknown ones. */
static const char all_fields[] =
    "SS\0VV\0CC\0MM\0DD\0HH\0PP\0pp\0qq\0WW\0ss\0tt\0cc\0dd\0nn\0FF\0LL\0"
    "RR\0Zunknown\0\x01\0";

START_TEST(test_notice_all_fields)
{
	struct pgw_frame f = frame_of('E', BODY(all_fields));
	struct pgw_notice n;

	ck_assert_int_eq(pgw_parse_notice(&f, &n), PGW_OK);
	const char *fields[] = {n.severity, n.severity_nl,  n.sqlstate,
	                        n.message,  n.detail,       n.hint,
	                        n.position, n.int_position, n.int_query,
	                        n.where,    n.schema,       n.table,
	                        n.column,   n.datatype,     n.constraint,
	                        n.file,     n.line,         n.routine};
	static const char codes[] = "SVCMDHPpqWstcdnFLR";

	for (size_t i = 0; i < 18; i++) {
		ck_assert_ptr_nonnull(fields[i]);
		ck_assert_uint_eq(strlen(fields[i]), 1);
		ck_assert_int_eq(fields[i][0], codes[i]);
	}
	frame_free(&f);
}
END_TEST

START_TEST(test_notice_rejected)
{
	static const struct bad_body bad[] = {
	    {"empty", LIT("")},
	    {"no terminator", LIT("SERROR\0")},
	    {"value without NUL", LIT("SERROR")},
	    {"code only", LIT("S")},
	    {"unknown code without NUL", LIT("SERROR\0Zxx")},
	    {"trailing after terminator", LIT("SERROR\0\0x")},
	    {"two terminators", LIT("SERROR\0\0\0")},
	};

	expect_all_rejected('E', bad, sizeof(bad) / sizeof(bad[0]));
	expect_all_rejected('N', bad, sizeof(bad) / sizeof(bad[0]));
	/* A terminator alone is a (useless) well-formed notice. */
	struct pgw_frame f = frame_of('N', LIT("\0"));
	struct pgw_notice n;

	ck_assert_int_eq(pgw_parse_notice(&f, &n), PGW_OK);
	ck_assert_ptr_null(n.message);
	frame_free(&f);
}
END_TEST

START_TEST(test_notice_dup)
{
	struct pgw_frame f = frame_of('E', BODY(all_fields));
	struct pgw_notice n, d;
	size_t total = 0;

	ck_assert_int_eq(pgw_parse_notice(&f, &n), PGW_OK);
	ck_assert(pgw_notice_dup(&n, &d));
	/* The copy must not depend on the frame any more. */
	memset((void *)f.body, '#', f.len);
	frame_free(&f);
	ck_assert_ptr_nonnull(d.owned);
	const char *fields[] = {d.severity, d.severity_nl,  d.sqlstate,
	                        d.message,  d.detail,       d.hint,
	                        d.position, d.int_position, d.int_query,
	                        d.where,    d.schema,       d.table,
	                        d.column,   d.datatype,     d.constraint,
	                        d.file,     d.line,         d.routine};
	static const char codes[] = "SVCMDHPpqWstcdnFLR";
	for (size_t i = 0; i < 18; i++) {
		ck_assert_int_eq(fields[i][0], codes[i]);
		ck_assert_int_eq(fields[i][1], '\0');
		total += 2;
	}
	/* One block: every field points inside owned, packed end to end. */
	for (size_t i = 0; i < 18; i++) {
		ck_assert((uintptr_t)fields[i] >= (uintptr_t)d.owned);
		ck_assert((uintptr_t)fields[i] + 2 <=
		          (uintptr_t)d.owned + total);
	}
	pgw_notice_free(&d);
	ck_assert_ptr_null(d.owned);
	ck_assert_ptr_null(d.severity);
	ck_assert_ptr_null(d.routine);
	pgw_notice_free(&d); /* twice is harmless once zeroed */
}
END_TEST

START_TEST(test_notice_dup_real)
{
	struct pgw_frame f = sample_frame("err_unique");
	struct pgw_notice n, d;

	ck_assert_int_eq(pgw_parse_notice(&f, &n), PGW_OK);
	ck_assert(pgw_notice_dup(&n, &d));
	memset((void *)f.body, 0, f.len);
	frame_free(&f);
	ck_assert_str_eq(d.sqlstate, "23505");
	ck_assert_str_eq(d.detail, "Key (id)=(1) already exists.");
	ck_assert_str_eq(d.routine, "_bt_check_unique");
	ck_assert_ptr_null(d.hint);
	ck_assert_ptr_null(d.where);
	pgw_notice_free(&d);
	/* A notice with no fields at all still duplicates and frees. */
	memset(&n, 0, sizeof(n));
	ck_assert(pgw_notice_dup(&n, &d));
	ck_assert_ptr_null(d.message);
	pgw_notice_free(&d);
	ck_assert_ptr_null(d.owned);
}
END_TEST

START_TEST(test_negotiate_version)
{
	struct pgw_frame f = sample_frame("negotiate");
	uint32_t minor = 99, nunknown = 99;
	static const struct bad_body bad[] = {
	    {"empty", LIT("")},
	    {"minor only", LIT("\0\0\0\x02")},
	    {"count 1, no string", LIT("\0\0\0\0\0\0\0\x01")},
	    {"count 2, one string", LIT("\0\0\0\0\0\0\0\x02_pq_.a\0")},
	    {"string without NUL", LIT("\0\0\0\0\0\0\0\x01_pq_.a")},
	    {"negative count", LIT("\0\0\0\0\xff\xff\xff\xff")},
	    {"huge count", LIT("\0\0\0\0\x7f\xff\xff\xff"
	                       "a\0")},
	    {"negative minor", LIT("\xff\xff\xff\xff\0\0\0\0")},
	    {"trailing", LIT("\0\0\0\0\0\0\0\0x")},
	};

	ck_assert_int_eq(pgw_parse_negotiate_version(&f, &minor, &nunknown),
	                 PGW_OK);
	ck_assert_uint_eq(minor, 0);
	ck_assert_uint_eq(nunknown, 1);
	frame_free(&f);
	f = frame_of('v', LIT("\0\0\0\x02\0\0\0\x02_pq_.a\0_pq_.b\0"));
	ck_assert_int_eq(pgw_parse_negotiate_version(&f, &minor, &nunknown),
	                 PGW_OK);
	ck_assert_uint_eq(minor, 2);
	ck_assert_uint_eq(nunknown, 2);
	frame_free(&f);
	expect_all_rejected('v', bad, sizeof(bad) / sizeof(bad[0]));
}
END_TEST

START_TEST(test_wrong_type_rejected)
{
	/* A valid body handed to the decoder of another message. */
	for (size_t i = 0; i < NSAMPLES; i++) {
		static const char types[] = "RSKZTDCGHWENv";

		for (size_t t = 0; t < sizeof(types) - 1; t++) {
			uint8_t want = (uint8_t)types[t];
			bool same = want == samples[i].type ||
			            (strchr("GHW", want) &&
			             strchr("GHW", samples[i].type)) ||
			            (strchr("EN", want) &&
			             strchr("EN", samples[i].type));
			struct pgw_frame f = frame_of(
			    samples[i].type, samples[i].body, samples[i].len);
			enum pgw_rc rc = PGW_OK;

			if (!same)
				rc = decode_as(&f, want);
			ck_assert_msg(same || rc == PGW_ERROR,
			              "%s accepted as %c", samples[i].name,
			              want);
			frame_free(&f);
		}
	}
}
END_TEST

/* ---- invariants every successful decode must satisfy ---- */

/* s and its NUL both lie inside the frame body. */
static void check_str(const struct pgw_frame *f, const char *s)
{
	uintptr_t b = (uintptr_t)f->body, p = (uintptr_t)s;

	REQUIRE(s != NULL);
	REQUIRE(p >= b && p < b + f->len);
	REQUIRE(memchr(s, 0, b + f->len - p) != NULL);
}

static enum pgw_rc check_auth(const struct pgw_frame *f)
{
	struct pgw_auth a;
	enum pgw_rc rc = pgw_parse_auth(f, &a);

	if (rc == PGW_OK) {
		REQUIRE(f->len >= 4);
		REQUIRE(a.code == rd_be32(f->body));
		REQUIRE(a.data == f->body + 4);
		REQUIRE(a.data_len == f->len - 4);
		(void)pgw_sasl_offers(&a, "SCRAM-SHA-256");
	}
	return rc;
}

static enum pgw_rc check_param_status(const struct pgw_frame *f)
{
	struct pgw_param_status p;
	enum pgw_rc rc = pgw_parse_param_status(f, &p);

	if (rc == PGW_OK) {
		check_str(f, p.name);
		check_str(f, p.value);
		REQUIRE(strlen(p.name) + strlen(p.value) + 2 == f->len);
	}
	return rc;
}

static enum pgw_rc check_backend_key(const struct pgw_frame *f)
{
	struct pgw_backend_key k;
	enum pgw_rc rc = pgw_parse_backend_key(f, &k);

	if (rc == PGW_OK) {
		REQUIRE(f->len == 8);
		REQUIRE(k.pid == rd_be32(f->body));
		REQUIRE(k.secret == rd_be32(f->body + 4));
	}
	return rc;
}

static enum pgw_rc check_ready(const struct pgw_frame *f)
{
	char st = 0;
	enum pgw_rc rc = pgw_parse_ready(f, &st);

	if (rc == PGW_OK) {
		REQUIRE(f->len == 1);
		REQUIRE(st == f->body[0]);
		REQUIRE(strchr("ITE", st) != NULL);
	}
	return rc;
}

#define CHECK_MAX 8

static enum pgw_rc check_row_description(const struct pgw_frame *f)
{
	struct pgw_field fl[CHECK_MAX];
	uint16_t n = 0;
	enum pgw_rc rc = pgw_parse_row_description(f, fl, CHECK_MAX, &n);
	size_t size = 2;

	if (rc != PGW_OK || n > CHECK_MAX)
		return rc;
	for (size_t i = 0; i < n; i++) {
		check_str(f, fl[i].name);
		size += strlen(fl[i].name) + 1 + 18;
	}
	REQUIRE(size == f->len);
	return rc;
}

static enum pgw_rc check_data_row(const struct pgw_frame *f)
{
	struct pgw_value v[CHECK_MAX];
	uint16_t n = 0;
	enum pgw_rc rc = pgw_parse_data_row(f, v, CHECK_MAX, &n);
	uintptr_t end = (uintptr_t)f->body + f->len;
	size_t size = 2;

	if (rc != PGW_OK || n > CHECK_MAX)
		return rc;
	for (size_t i = 0; i < n; i++) {
		REQUIRE(v[i].len >= -1);
		size += 4;
		if (v[i].len == -1) {
			REQUIRE(v[i].data == NULL);
			continue;
		}
		REQUIRE((uintptr_t)v[i].data >= (uintptr_t)f->body);
		REQUIRE((uintptr_t)v[i].data + (size_t)v[i].len <= end);
		size += (size_t)v[i].len;
	}
	REQUIRE(size == f->len);
	return rc;
}

static enum pgw_rc check_command_complete(const struct pgw_frame *f)
{
	const char *tag = NULL;
	uint64_t rows;
	enum pgw_rc rc = pgw_parse_command_complete(f, &tag);

	if (rc == PGW_OK) {
		check_str(f, tag);
		REQUIRE(strlen(tag) + 1 == f->len);
		(void)pgw_tag_rows(tag, &rows);
	}
	return rc;
}

static enum pgw_rc check_copy_response(const struct pgw_frame *f)
{
	struct pgw_copy_response r;
	enum pgw_rc rc = pgw_parse_copy_response(f, &r);

	if (rc == PGW_OK) {
		REQUIRE(3 + 2 * (size_t)r.ncols == f->len);
		REQUIRE(r.format == f->body[0]);
		REQUIRE(r.format <= 1);
	}
	return rc;
}

#define NOTICE_NFIELDS 18

static void notice_fields_of(const struct pgw_notice *n,
                             const char *out[NOTICE_NFIELDS])
{
	const char *all[NOTICE_NFIELDS] = {
	    n->severity,  n->severity_nl, n->sqlstate,   n->message,
	    n->detail,    n->hint,        n->position,   n->int_position,
	    n->int_query, n->where,       n->schema,     n->table,
	    n->column,    n->datatype,    n->constraint, n->file,
	    n->line,      n->routine};

	memcpy(out, all, sizeof(all));
}

static enum pgw_rc check_notice(const struct pgw_frame *f)
{
	struct pgw_notice n, d;
	const char *a[NOTICE_NFIELDS], *b[NOTICE_NFIELDS];
	enum pgw_rc rc = pgw_parse_notice(f, &n);

	if (rc != PGW_OK)
		return rc;
	REQUIRE(f->len >= 1);
	REQUIRE(f->body[f->len - 1] == 0);
	REQUIRE(n.owned == NULL);
	REQUIRE(pgw_notice_dup(&n, &d));
	notice_fields_of(&n, a);
	notice_fields_of(&d, b);
	for (size_t i = 0; i < NOTICE_NFIELDS; i++) {
		REQUIRE((a[i] == NULL) == (b[i] == NULL));
		if (a[i] == NULL)
			continue;
		check_str(f, a[i]);
		REQUIRE(strcmp(a[i], b[i]) == 0);
		REQUIRE(a[i] != b[i]);
	}
	pgw_notice_free(&d);
	return rc;
}

static enum pgw_rc check_negotiate(const struct pgw_frame *f)
{
	uint32_t minor, nunknown;
	enum pgw_rc rc = pgw_parse_negotiate_version(f, &minor, &nunknown);

	if (rc == PGW_OK) {
		REQUIRE(f->len >= 8);
		REQUIRE(minor == rd_be32(f->body));
		REQUIRE(nunknown == rd_be32(f->body + 4));
		REQUIRE(nunknown <= f->len - 8);
	}
	return rc;
}

/* Every type that has a decoder. */
static const char decoder_types[] = "RSKZTDCGHWENv";

/* Runs the decoder for `decoder` on f (whatever f's own type). */
static enum pgw_rc decode_as(const struct pgw_frame *f, uint8_t decoder)
{
	enum pgw_rc rc;

	switch (decoder) {
	case 'R':
		rc = check_auth(f);
		break;
	case 'S':
		rc = check_param_status(f);
		break;
	case 'K':
		rc = check_backend_key(f);
		break;
	case 'Z':
		rc = check_ready(f);
		break;
	case 'T':
		rc = check_row_description(f);
		break;
	case 'D':
		rc = check_data_row(f);
		break;
	case 'C':
		rc = check_command_complete(f);
		break;
	case 'G':
	case 'H':
	case 'W':
		rc = check_copy_response(f);
		break;
	case 'E':
	case 'N':
		rc = check_notice(f);
		break;
	case 'v':
		rc = check_negotiate(f);
		break;
	default:
		ck_abort_msg("no decoder for %c", decoder);
		return PGW_ERROR;
	}
	REQUIRE(rc == PGW_OK || rc == PGW_ERROR);
	return rc;
}

/* ---- truncated and hostile input ---- */

START_TEST(test_truncated_everywhere)
{
	for (size_t i = 0; i < NSAMPLES; i++) {
		const struct sample *s = &samples[i];
		size_t wlen;
		uint8_t *wire = wire_of(s->type, s->body, s->len, &wlen);
		struct pgw_frame f;
		size_t flen;

		/* Framing: every prefix of the wire form is "wait for more". */
		for (size_t n = 0; n < wlen; n++) {
			uint8_t *part = malloc(n > 0 ? n : 1);

			memcpy(part, wire, n);
			ck_assert_msg(pgw_frame_parse(part, n, 4096, &f,
			                              &flen) == PGW_AGAIN,
			              "%s prefix %zu", s->name, n);
			free(part);
		}
		ck_assert_int_eq(pgw_frame_parse(wire, wlen, 4096, &f, &flen),
		                 PGW_OK);
		ck_assert_uint_eq(flen, wlen);
		ck_assert_msg(decode_as(&f, s->type) == PGW_OK, "%s", s->name);
		/* Decoding: every proper prefix of the body is malformed. */
		for (size_t n = 0; n < s->len; n++) {
			enum pgw_rc rc = decode_body(s->type, s->body, n);

			ck_assert_msg(rc == PGW_ERROR || (!s->strict && n >= 4),
			              "%s body prefix %zu accepted", s->name,
			              n);
		}
		free(wire);
	}
}
END_TEST

START_TEST(test_truncated_evbuffer)
{
	for (size_t i = 0; i < NSAMPLES; i++) {
		const struct sample *s = &samples[i];
		size_t wlen;
		uint8_t *wire = wire_of(s->type, s->body, s->len, &wlen);
		struct evbuffer *in = evbuffer_new();
		struct pgw_frame f;

		for (size_t n = 0; n < wlen; n++) {
			ck_assert_int_eq(pgw_frame_next(in, 4096, &f),
			                 PGW_AGAIN);
			ck_assert_uint_eq(evbuffer_get_length(in), n);
			evbuffer_add(in, wire + n, 1);
		}
		ck_assert_int_eq(pgw_frame_next(in, 4096, &f), PGW_OK);
		ck_assert_uint_eq(f.type, s->type);
		ck_assert_uint_eq(f.len, s->len);
		ck_assert_mem_eq(f.body, s->body, s->len);
		pgw_frame_consume(in, &f);
		ck_assert_uint_eq(evbuffer_get_length(in), 0);
		evbuffer_free(in);
		free(wire);
	}
}
END_TEST

/* Large but honest counts work; one value short of the count does not. */
START_TEST(test_max_counts)
{
	const size_t n = 0xffff;
	size_t len = 2 + 4 * n;
	uint8_t *body = malloc(len);
	struct pgw_value v[2];
	uint16_t cols = 0;

	body[0] = 0xff;
	body[1] = 0xff;
	memset(body + 2, 0xff, 4 * n); /* every value NULL */
	ck_assert_int_eq(decode_body('D', body, len), PGW_OK);
	struct pgw_frame f = frame_of('D', body, len);
	ck_assert_int_eq(pgw_parse_data_row(&f, v, 2, &cols), PGW_OK);
	ck_assert_uint_eq(cols, 0xffff);
	ck_assert_int_eq(v[1].len, -1);
	frame_free(&f);
	ck_assert_int_eq(decode_body('D', body, len - 4), PGW_ERROR);
	free(body);

	/* 0xffff fields of 19 bytes each (empty names), then one short. */
	len = 2 + 19 * n;
	body = calloc(1, len);
	body[0] = 0xff;
	body[1] = 0xff;
	ck_assert_int_eq(decode_body('T', body, len), PGW_OK);
	ck_assert_int_eq(decode_body('T', body, len - 1), PGW_ERROR);
	free(body);
}
END_TEST

/* ---- deterministic pseudo-random input through every decoder ---- */

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64*: fixed seed, so a failure reproduces exactly. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* Bytes biased to 0, 0xff and small values, where the edge cases are. */
static uint8_t rng_byte(void)
{
	uint64_t r = rng();

	switch (r % 8) {
	case 0:
	case 1:
		return 0;
	case 2:
		return 0xff;
	case 3:
		return (uint8_t)(r >> 8) % 4;
	case 4:
		return (uint8_t) "ITESVCM"[(r >> 8) % 7];
	default:
		return (uint8_t)(r >> 8);
	}
}

#define RANDOM_ITERATIONS 200000

START_TEST(test_random_bytes)
{
	uint8_t buf[96];
	size_t ok = 0;

	rng_state = 0x9e3779b97f4a7c15ull;
	for (size_t it = 0; it < RANDOM_ITERATIONS; it++) {
		size_t len = rng() % sizeof(buf), flen;
		struct pgw_frame f;

		for (size_t i = 0; i < len; i++)
			buf[i] = rng_byte();
		f = frame_of(0, buf, len);
		for (size_t t = 0; t < sizeof(decoder_types) - 1; t++) {
			f.type = (uint8_t)decoder_types[t];
			ok += decode_as(&f, f.type) == PGW_OK;
		}
		frame_free(&f);
		/* The same bytes as a stream: framing invariants. */
		size_t max = rng() % 128;
		if (pgw_frame_parse(buf, len, max, &f, &flen) == PGW_OK) {
			REQUIRE(f.len <= max);
			REQUIRE(flen == PGW_HEADER_LEN + f.len);
			REQUIRE(flen <= len);
			REQUIRE(f.len + 4 == rd_be32(buf + 1));
		}
	}
	/* Some random inputs must decode, or the loop proves little. */
	REQUIRE(ok > 1000);
}
END_TEST

/* One random edit: overwrite, flip a bit, cut, grow, or set 0/0xff. */
static void mutate(uint8_t *buf, size_t *len, size_t cap)
{
	size_t pos = *len > 0 ? rng() % *len : 0;

	switch (rng() % 5) {
	case 0:
		if (*len > 0)
			buf[pos] = rng_byte();
		break;
	case 1:
		if (*len > 0)
			buf[pos] ^= (uint8_t)(1u << (rng() % 8));
		break;
	case 2:
		*len = rng() % (*len + 1);
		break;
	case 3:
		if (*len < cap)
			buf[(*len)++] = rng_byte();
		break;
	default:
		if (*len > 0)
			buf[pos] = rng() % 2 ? 0 : 0xff;
		break;
	}
}

START_TEST(test_mutated_messages)
{
	uint8_t buf[256];
	size_t ok = 0, bad = 0;

	rng_state = 0x243f6a8885a308d3ull;
	for (size_t it = 0; it < RANDOM_ITERATIONS; it++) {
		const struct sample *s = &samples[rng() % NSAMPLES];
		size_t len = s->len, nmut = 1 + rng() % 3;
		struct pgw_frame f;

		REQUIRE(len <= sizeof(buf));
		memcpy(buf, s->body, len);
		for (size_t m = 0; m < nmut; m++)
			mutate(buf, &len, sizeof(buf));
		f = frame_of(s->type, buf, len);
		if (decode_as(&f, s->type) == PGW_OK)
			ok++;
		else
			bad++;
		frame_free(&f);
	}
	/* Both outcomes must be common: mutations hit valid and bad paths. */
	REQUIRE(ok > 10000);
	REQUIRE(bad > 10000);
}
END_TEST

/* A stream of valid frames with some garbage, for the framing comparison. */
static size_t random_stream(uint8_t *buf, size_t cap)
{
	size_t len = 0;

	while (len < cap - 300) {
		const struct sample *s = &samples[rng() % NSAMPLES];
		size_t wlen;
		uint8_t *w;

		if (rng() % 16 == 0) {
			for (size_t n = 1 + rng() % 6; n > 0; n--)
				buf[len++] = rng_byte();
			continue;
		}
		w = wire_of(s->type, s->body, s->len, &wlen);
		memcpy(buf + len, w, wlen);
		len += wlen;
		free(w);
		if (rng() % 4 == 0)
			break;
	}
	return len;
}

struct flat_frame {
	size_t off;
	struct pgw_frame f;
};

/* What pgw_frame_parse sees in the flat stream; returns its final rc. */
static enum pgw_rc parse_flat(const uint8_t *buf, size_t len, size_t max,
                              struct flat_frame *out, size_t *n)
{
	size_t off = 0, flen;
	enum pgw_rc rc;

	*n = 0;
	while ((rc = pgw_frame_parse(buf + off, len - off, max, &out[*n].f,
	                             &flen)) == PGW_OK) {
		out[(*n)++].off = off;
		off += flen;
	}
	return rc;
}

/* Feeds the stream in random pieces; returns the rc it stopped on. */
static enum pgw_rc feed_evbuffer(const uint8_t *buf, size_t len, size_t max,
                                 const struct flat_frame *want, size_t nwant)
{
	struct evbuffer *in = evbuffer_new();
	struct pgw_frame f;
	size_t fed = 0, got = 0;
	enum pgw_rc rc = PGW_AGAIN;

	while (fed < len && rc != PGW_ERROR) {
		size_t piece = 1 + rng() % 64;

		if (piece > len - fed)
			piece = len - fed;
		if (rng() % 2)
			evbuffer_add_reference(in, buf + fed, piece, NULL,
			                       NULL);
		else
			evbuffer_add(in, buf + fed, piece);
		fed += piece;
		while ((rc = pgw_frame_next(in, max, &f)) == PGW_OK) {
			REQUIRE(got < nwant);
			REQUIRE(f.type == want[got].f.type);
			REQUIRE(f.len == want[got].f.len);
			REQUIRE(memcmp(f.body, want[got].f.body, f.len) == 0);
			pgw_frame_consume(in, &f);
			got++;
		}
	}
	REQUIRE(got == nwant);
	evbuffer_free(in);
	return rc;
}

START_TEST(test_frame_next_matches_parse)
{
	static uint8_t stream[4096];
	static struct flat_frame frames[4096 / PGW_HEADER_LEN];

	rng_state = 0x13198a2e03707344ull;
	for (size_t it = 0; it < 3000; it++) {
		size_t len = random_stream(stream, sizeof(stream)), n;
		size_t max = 40 + rng() % 120;
		enum pgw_rc want = parse_flat(stream, len, max, frames, &n);

		REQUIRE(feed_evbuffer(stream, len, max, frames, n) == want);
	}
}
END_TEST

static Suite *pgwire_suite(void)
{
	Suite *s = suite_create("pgwire");
	TCase *enc = tcase_create("encode");
	TCase *frm = tcase_create("frame");
	TCase *dec = tcase_create("decode");
	TCase *hos = tcase_create("hostile");

	tcase_add_test(enc, test_put_ssl_request);
	tcase_add_test(enc, test_put_startup);
	tcase_add_test(enc, test_put_startup_empty);
	tcase_add_test(enc, test_put_startup_refused);
	tcase_add_test(enc, test_put_password);
	tcase_add_test(enc, test_put_sasl_initial);
	tcase_add_test(enc, test_put_sasl_initial_no_data);
	tcase_add_test(enc, test_put_sasl_response);
	tcase_add_test(enc, test_put_query);
	tcase_add_test(enc, test_put_copy_messages);
	tcase_add_test(enc, test_put_copy_data_from);
	tcase_add_test(enc, test_put_copy_data_from_moves);
	tcase_add_test(enc, test_put_oversize_refused);
	suite_add_tcase(s, enc);

	tcase_add_test(frm, test_frame_parse_whole);
	tcase_add_test(frm, test_frame_parse_partial);
	tcase_add_test(frm, test_frame_parse_bad_length);
	tcase_add_test(frm, test_frame_parse_max_body);
	tcase_add_test(frm, test_frame_next_bytewise);
	tcase_add_test(frm, test_frame_next_chains);
	tcase_add_test(frm, test_frame_next_errors);
	suite_add_tcase(s, frm);

	tcase_add_test(dec, test_auth_ok_md5);
	tcase_add_test(dec, test_auth_sasl);
	tcase_add_test(dec, test_auth_sasl_payloads);
	tcase_add_test(dec, test_auth_rejected);
	tcase_add_test(dec, test_sasl_offers_hostile);
	tcase_add_test(dec, test_param_status);
	tcase_add_test(dec, test_backend_key);
	tcase_add_test(dec, test_ready);
	tcase_add_test(dec, test_row_description);
	tcase_add_test(dec, test_row_description_max);
	tcase_add_test(dec, test_row_description_rejected);
	tcase_add_test(dec, test_data_row);
	tcase_add_test(dec, test_data_row_rejected);
	tcase_add_test(dec, test_command_complete);
	tcase_add_test(dec, test_tag_rows);
	tcase_add_test(dec, test_copy_response);
	tcase_add_test(dec, test_copy_response_rejected);
	tcase_add_test(dec, test_notice_unique_violation);
	tcase_add_test(dec, test_notice_copy_error);
	tcase_add_test(dec, test_notice_all_fields);
	tcase_add_test(dec, test_notice_rejected);
	tcase_add_test(dec, test_notice_dup);
	tcase_add_test(dec, test_notice_dup_real);
	tcase_add_test(dec, test_negotiate_version);
	tcase_add_test(dec, test_wrong_type_rejected);
	suite_add_tcase(s, dec);

	tcase_add_test(hos, test_truncated_everywhere);
	tcase_add_test(hos, test_truncated_evbuffer);
	tcase_add_test(hos, test_max_counts);
	tcase_add_test(hos, test_random_bytes);
	tcase_add_test(hos, test_mutated_messages);
	tcase_add_test(hos, test_frame_next_matches_parse);
	suite_add_tcase(s, hos);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pgwire_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
