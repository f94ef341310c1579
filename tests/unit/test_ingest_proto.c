/* test_ingest_proto.c: the ingest protocol codec, byte for byte, incl. hostile
 * frames. */
#include "ingest_proto.h"
#include "utf8.h"
#include "sqlgen.h"

#include <check.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ---- helpers ---- */

/* The single frame in b, through the shared framing code, as a heap copy. */
static struct pgw_frame only_frame(struct evbuffer *b)
{
	size_t avail = evbuffer_get_length(b), flen;
	const uint8_t *p = evbuffer_pullup(b, -1);
	struct pgw_frame f;

	REQUIRE(pgw_frame_parse(p, avail, SIZE_MAX, &f, &flen) == PGW_OK);
	REQUIRE(flen == avail);
	return frame_of(f.type, f.body, f.len);
}

static const char *const cols3[] = {"id", "name", "ts"};
static const char *const keys1[] = {"id"};
static const char *const co1[] = {"name"};

static struct igp_open sample_open(void)
{
	return (struct igp_open){.schema = "public",
	                         .table = "events",
	                         .mode = IGP_MODE_UPSERT,
	                         .ncols = 3,
	                         .cols = (const char **)cols3,
	                         .nkeys = 1,
	                         .keys = (const char **)keys1,
	                         .version_col = "ts",
	                         .ncoalesce = 1,
	                         .coalesce = (const char **)co1};
}

/* ---- the example bytes of section 10 ---- */

START_TEST(test_spec_hello)
{
	static const uint8_t want[] = {0x48, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x01,
	                               0x00, 0x01, 0x74, 0x31, 0x00, 0x00};
	struct evbuffer *b = evbuffer_new();
	struct igp_hello h;
	struct pgw_frame f;

	ck_assert(igp_put_hello(b, "t1", ""));
	expect_buf(b, want, sizeof(want));
	f = only_frame(b);
	ck_assert_int_eq(igp_parse_hello(&f, &h), PGW_OK);
	ck_assert_uint_eq(h.major, 1);
	ck_assert_uint_eq(h.minor, 1);
	ck_assert_str_eq(h.client_name, "t1");
	ck_assert_str_eq(h.token, "");
	frame_free(&f);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_spec_flush)
{
	static const uint8_t want[] = {0x46, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00,
	                               0x00, 0x00, 0x00, 0x00, 0x00, 0x07};
	struct evbuffer *b = evbuffer_new();
	struct pgw_frame f;
	uint64_t id = 0;

	ck_assert(igp_put_flush(b, 7));
	expect_buf(b, want, sizeof(want));
	f = only_frame(b);
	ck_assert_int_eq(igp_parse_flush(&f, &id), PGW_OK);
	ck_assert_uint_eq(id, 7);
	frame_free(&f);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_spec_ack)
{
	static const uint8_t want[] = {
	    0x61, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	    0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xf4};
	struct evbuffer *b = evbuffer_new();
	struct igp_answer a;
	struct pgw_frame f;

	ck_assert(igp_put_ack(b, 7, 500));
	expect_buf(b, want, sizeof(want));
	f = only_frame(b);
	ck_assert_int_eq(igp_parse_answer(&f, &a), PGW_OK);
	ck_assert_uint_eq(a.type, 'a');
	ck_assert_uint_eq(a.flush_id, 7);
	ck_assert_uint_eq(a.rows, 500);
	frame_free(&f);
	evbuffer_free(b);
}
END_TEST

/* ---- exact layouts of the other messages ---- */

START_TEST(test_open_bytes)
{
	static const char *const c[] = {"a", "b"};
	static const char *const k[] = {"a"};
	static const uint8_t want[] = {'O', 0,   0,   0, 23,  's', 0,   't',
	                               0,   'u', 0,   2, 'a', 0,   'b', 0,
	                               0,   1,   'a', 0, 'b', 0,   0,   0};
	struct igp_open o = {.schema = "s",
	                     .table = "t",
	                     .mode = 'u',
	                     .ncols = 2,
	                     .cols = (const char **)c,
	                     .nkeys = 1,
	                     .keys = (const char **)k,
	                     .version_col = "b"};
	struct evbuffer *b = evbuffer_new();

	ck_assert(igp_put_open(b, &o));
	expect_buf(b, want, sizeof(want));
	evbuffer_free(b);
}
END_TEST

START_TEST(test_answer_bytes)
{
	static const uint8_t hello_ok[] = {
	    'h', 0, 0, 0, 24,   0, 1, 0, 1,   0,   0x10, 0, 0,
	    0,   0, 0, 0, 0x40, 0, 0, 0, 'p', 'x', 'y',  0};
	static const uint8_t err[] = {'E', 0,   0,   0, 12,  '0', '8',
	                              'P', '0', '1', 0, 'x', 0};
	static const uint8_t ferr[] = {
	    'e', 0,   0, 0,   30, 0,   0, 0, 0, 0, 0, 0, 9, '2', '2', 'P',
	    '0', '2', 0, 'm', 0,  'd', 0, 0, 0, 0, 0, 0, 0, 0,   17};
	static const uint8_t close_ok[] = {'c', 0, 0, 0, 4};
	struct evbuffer *b = evbuffer_new();

	ck_assert(igp_put_hello_ok(b, 1u << 20, 1ull << 30, "pxy"));
	expect_buf(b, hello_ok, sizeof(hello_ok));
	evbuffer_drain(b, sizeof(hello_ok));
	ck_assert(igp_put_error(b, "08P01", "x"));
	expect_buf(b, err, sizeof(err));
	evbuffer_drain(b, sizeof(err));
	ck_assert(igp_put_flush_error(b, 9, "22P02", "m", "d", 17));
	expect_buf(b, ferr, sizeof(ferr));
	evbuffer_drain(b, sizeof(ferr));
	ck_assert(igp_put_close_ok(b));
	expect_buf(b, close_ok, sizeof(close_ok));
	evbuffer_free(b);
}
END_TEST

START_TEST(test_rows_and_close_bytes)
{
	static const uint8_t rows[] = {'D', 0, 0, 0, 8, '1', '\t', 'x', '\n'};
	static const uint8_t close[] = {'X', 0, 0, 0, 4};
	struct evbuffer *b = evbuffer_new();

	ck_assert(igp_put_rows(b, "1\tx\n", 4));
	expect_buf(b, rows, sizeof(rows));
	evbuffer_drain(b, sizeof(rows));
	ck_assert(igp_put_close(b));
	expect_buf(b, close, sizeof(close));
	evbuffer_drain(b, sizeof(close));
	ck_assert(!igp_put_rows(b, NULL, 3));
	ck_assert_uint_eq(evbuffer_get_length(b), 0);
	evbuffer_free(b);
}
END_TEST

/* ---- round trips ---- */

static void expect_list(const char **got, uint16_t n, const char *const *want)
{
	for (size_t i = 0; i < n; i++)
		ck_assert_str_eq(got[i], want[i]);
}

START_TEST(test_open_round_trip)
{
	struct igp_open in = sample_open(), out;
	struct evbuffer *b = evbuffer_new();
	struct pgw_frame f;

	ck_assert(igp_put_open(b, &in));
	f = only_frame(b);
	ck_assert_uint_eq(f.type, 'O');
	ck_assert_int_eq(igp_parse_open(&f, &out), PGW_OK);
	ck_assert_str_eq(out.schema, "public");
	ck_assert_str_eq(out.table, "events");
	ck_assert_int_eq(out.mode, 'u');
	ck_assert_uint_eq(out.ncols, 3);
	expect_list(out.cols, 3, cols3);
	ck_assert_uint_eq(out.nkeys, 1);
	expect_list(out.keys, 1, keys1);
	ck_assert_str_eq(out.version_col, "ts");
	ck_assert_uint_eq(out.ncoalesce, 1);
	expect_list(out.coalesce, 1, co1);
	/* Pointers into the frame, not copies. */
	ck_assert(out.table > (const char *)f.body &&
	          out.table < (const char *)f.body + f.len);
	igp_open_free(&out);
	ck_assert_ptr_null(out.cols);
	igp_open_free(&out); /* twice is harmless */
	frame_free(&f);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_open_empty_lists)
{
	static const char *const c[] = {"x"};
	struct igp_open in = {.schema = "",
	                      .table = "t",
	                      .mode = 'i',
	                      .ncols = 1,
	                      .cols = (const char **)c,
	                      .version_col = ""},
	                out;
	struct evbuffer *b = evbuffer_new();
	struct pgw_frame f;

	ck_assert(igp_put_open(b, &in));
	f = only_frame(b);
	ck_assert_int_eq(igp_parse_open(&f, &out), PGW_OK);
	ck_assert_str_eq(out.schema, "");
	ck_assert_uint_eq(out.nkeys, 0);
	ck_assert_ptr_null(out.keys);
	ck_assert_uint_eq(out.ncoalesce, 0);
	ck_assert_str_eq(out.version_col, "");
	igp_open_free(&out);
	frame_free(&f);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_answers_round_trip)
{
	static const char *const c[] = {"id", "v"};
	static const char *const t[] = {"bigint", "numeric(10,2)"};
	struct evbuffer *b = evbuffer_new();
	struct igp_answer a;
	struct pgw_frame f;

	ck_assert(igp_put_hello_ok(b, 123456, UINT64_MAX - 1, "lbp-1"));
	f = only_frame(b);
	ck_assert_int_eq(igp_parse_answer(&f, &a), PGW_OK);
	ck_assert_uint_eq(a.type, 'h');
	ck_assert_uint_eq(a.major, 1);
	ck_assert_uint_eq(a.minor, 1);
	ck_assert_uint_eq(a.max_frame, 123456);
	ck_assert_uint_eq(a.max_flush, UINT64_MAX - 1);
	ck_assert_str_eq(a.server_name, "lbp-1");
	ck_assert_ptr_null(a.sqlstate);
	frame_free(&f);
	evbuffer_drain(b, evbuffer_get_length(b));

	ck_assert(igp_put_open_ok(b, 2, c, t));
	f = only_frame(b);
	ck_assert_int_eq(igp_parse_answer(&f, &a), PGW_OK);
	ck_assert_uint_eq(a.type, 'o');
	ck_assert_uint_eq(a.ncols, 2);
	frame_free(&f);
	evbuffer_drain(b, evbuffer_get_length(b));

	ck_assert(
	    igp_put_flush_error(b, 42, "23505", "dup key", "Key (id)=(1)", 17));
	f = only_frame(b);
	ck_assert_int_eq(igp_parse_answer(&f, &a), PGW_OK);
	ck_assert_uint_eq(a.type, 'e');
	ck_assert_uint_eq(a.flush_id, 42);
	ck_assert_str_eq(a.sqlstate, "23505");
	ck_assert_str_eq(a.message, "dup key");
	ck_assert_str_eq(a.detail, "Key (id)=(1)");
	ck_assert_uint_eq(a.row, 17);
	frame_free(&f);
	evbuffer_drain(b, evbuffer_get_length(b));

	ck_assert(igp_put_error(b, "28000", "bad token"));
	f = only_frame(b);
	ck_assert_int_eq(igp_parse_answer(&f, &a), PGW_OK);
	ck_assert_uint_eq(a.type, 'E');
	ck_assert_str_eq(a.sqlstate, "28000");
	ck_assert_str_eq(a.message, "bad token");
	ck_assert_ptr_null(a.detail);
	frame_free(&f);
	evbuffer_drain(b, evbuffer_get_length(b));

	ck_assert(igp_put_close_ok(b));
	f = only_frame(b);
	ck_assert_int_eq(igp_parse_answer(&f, &a), PGW_OK);
	ck_assert_uint_eq(a.type, 'c');
	frame_free(&f);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_pipelined_frames)
{
	struct evbuffer *b = evbuffer_new();
	struct pgw_frame f;
	uint64_t id;

	ck_assert(igp_put_rows(b, "1\n", 2));
	ck_assert(igp_put_flush(b, 1));
	ck_assert(igp_put_flush(b, UINT64_MAX));
	ck_assert(igp_put_close(b));
	ck_assert_int_eq(pgw_frame_next(b, 1024, &f), PGW_OK);
	ck_assert_uint_eq(f.type, 'D');
	ck_assert_uint_eq(f.len, 2);
	pgw_frame_consume(b, &f);
	ck_assert_int_eq(pgw_frame_next(b, 1024, &f), PGW_OK);
	ck_assert_int_eq(igp_parse_flush(&f, &id), PGW_OK);
	ck_assert_uint_eq(id, 1);
	pgw_frame_consume(b, &f);
	ck_assert_int_eq(pgw_frame_next(b, 1024, &f), PGW_OK);
	ck_assert_int_eq(igp_parse_flush(&f, &id), PGW_OK);
	ck_assert_uint_eq(id, UINT64_MAX);
	pgw_frame_consume(b, &f);
	ck_assert_int_eq(pgw_frame_next(b, 1024, &f), PGW_OK);
	ck_assert_uint_eq(f.type, 'X');
	ck_assert_uint_eq(f.len, 0);
	pgw_frame_consume(b, &f);
	ck_assert_int_eq(pgw_frame_next(b, 1024, &f), PGW_AGAIN);
	evbuffer_free(b);
}
END_TEST

/* ---- client names ---- */

START_TEST(test_client_name_limit)
{
	char name[IGP_MAX_CLIENT_NAME + 2];
	uint8_t body[4 + sizeof(name) + 1];
	struct evbuffer *b = evbuffer_new();
	struct igp_hello h;
	struct pgw_frame f;

	memset(name, 'n', sizeof(name));
	name[IGP_MAX_CLIENT_NAME] = '\0';
	ck_assert(igp_put_hello(b, name, "tok"));
	f = only_frame(b);
	ck_assert_int_eq(igp_parse_hello(&f, &h), PGW_OK);
	ck_assert_uint_eq(strlen(h.client_name), IGP_MAX_CLIENT_NAME);
	ck_assert_str_eq(h.token, "tok");
	frame_free(&f);
	evbuffer_drain(b, evbuffer_get_length(b));

	name[IGP_MAX_CLIENT_NAME] = 'n';
	name[IGP_MAX_CLIENT_NAME + 1] = '\0';
	ck_assert(!igp_put_hello(b, name, ""));
	ck_assert_uint_eq(evbuffer_get_length(b), 0);
	/* Built by hand: a 201-byte name is refused by the parser. */
	memset(body, 0, sizeof(body));
	body[1] = 1;
	memcpy(body + 4, name, IGP_MAX_CLIENT_NAME + 2);
	f = frame_of('H', body, 4 + IGP_MAX_CLIENT_NAME + 2 + 1);
	ck_assert_int_eq(igp_parse_hello(&f, &h), PGW_ERROR);
	frame_free(&f);
	evbuffer_free(b);
}
END_TEST

/* ---- 1.1: progress rows (section 10's example bytes) ---- */

static const struct igp_progress sample_progress = {.schema = "",
                                                    .table = "p",
                                                    .query_id = "q",
                                                    .partition_id = 1,
                                                    .epoch_id = 2,
                                                    .rows_committed = 500,
                                                    .complete = 0};

START_TEST(test_spec_flush_progress)
{
	static const uint8_t want[] = {
	    0x50, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	    0x00, 0x07, 0x00, 0x70, 0x00, 0x71, 0x00, 0x00, 0x00, 0x00, 0x00,
	    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	    0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xf4, 0x00};
	struct evbuffer *b = evbuffer_new();
	struct igp_progress p;
	struct pgw_frame f;
	uint64_t id = 0;

	ck_assert(igp_put_flush_progress(b, 7, &sample_progress));
	expect_buf(b, want, sizeof(want));
	f = only_frame(b);
	ck_assert_int_eq(igp_parse_flush_progress(&f, &id, &p), PGW_OK);
	ck_assert_uint_eq(id, 7);
	ck_assert_str_eq(p.schema, "");
	ck_assert_str_eq(p.table, "p");
	ck_assert_str_eq(p.query_id, "q");
	ck_assert_uint_eq(p.partition_id, 1);
	ck_assert_uint_eq(p.epoch_id, 2);
	ck_assert_uint_eq(p.rows_committed, 500);
	ck_assert_uint_eq(p.complete, 0);
	/* A FlushProgress is not a Flush, nor a ProgressQuery. */
	ck_assert_int_ne(igp_parse_flush(&f, &id), PGW_OK);
	ck_assert_int_ne(igp_parse_progress_query(&f, &id, &p), PGW_OK);
	frame_free(&f);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_spec_progress_query_and_answer)
{
	static const uint8_t want_q[] = {
	    0x51, 0x00, 0x00, 0x00, 0x21, 0x00, 0x00, 0x00, 0x00,
	    0x00, 0x00, 0x00, 0x08, 0x00, 0x70, 0x00, 0x71, 0x00,
	    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
	    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02};
	static const uint8_t want_a[] = {
	    0x70, 0x00, 0x00, 0x00, 0x15, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	    0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xf4, 0x01};
	struct evbuffer *b = evbuffer_new();
	struct igp_progress p;
	struct igp_answer a;
	struct pgw_frame f;
	uint64_t id = 0;

	ck_assert(igp_put_progress_query(b, 8, &sample_progress));
	expect_buf(b, want_q, sizeof(want_q));
	f = only_frame(b);
	ck_assert_int_eq(igp_parse_progress_query(&f, &id, &p), PGW_OK);
	ck_assert_uint_eq(id, 8);
	ck_assert_str_eq(p.table, "p");
	ck_assert_uint_eq(p.epoch_id, 2);
	ck_assert_uint_eq(p.rows_committed, 0);
	frame_free(&f);
	evbuffer_drain(b, evbuffer_get_length(b));
	ck_assert(igp_put_progress(b, 8, 500, true));
	expect_buf(b, want_a, sizeof(want_a));
	f = only_frame(b);
	ck_assert_int_eq(igp_parse_answer(&f, &a), PGW_OK);
	ck_assert_uint_eq(a.type, IGP_MSG_PROGRESS);
	ck_assert_uint_eq(a.flush_id, 8);
	ck_assert_uint_eq(a.rows, 500);
	ck_assert_uint_eq(a.complete, 1);
	frame_free(&f);
	evbuffer_free(b);
}
END_TEST

static bool run_progress_check(struct igp_progress p, bool with_count,
                               const char *state)
{
	char st[6] = "", msg[200] = "";
	bool ok = igp_progress_check(&p, with_count, st, msg, sizeof(msg));

	if (state == NULL)
		return ok;
	return !ok && strcmp(st, state) == 0 && msg[0] != '\0';
}

START_TEST(test_progress_check)
{
	struct igp_progress p = sample_progress, q;
	char long_id[IGP_MAX_QUERY_ID + 2];

	ck_assert(run_progress_check(p, true, NULL));
	q = p;
	q.schema = "s";
	ck_assert(run_progress_check(q, true, NULL));
	q.schema = "bad\x01";
	ck_assert(run_progress_check(q, true, "42602"));
	q = p;
	q.table = "";
	ck_assert(run_progress_check(q, true, "42602"));
	q.table = "t\xff";
	ck_assert(run_progress_check(q, true, "42602"));
	q = p;
	q.query_id = "";
	ck_assert(run_progress_check(q, true, "22023"));
	q.query_id = "a\nb";
	ck_assert(run_progress_check(q, true, "22023"));
	memset(long_id, 'q', sizeof(long_id) - 1);
	long_id[IGP_MAX_QUERY_ID + 1] = '\0';
	q.query_id = long_id;
	ck_assert(run_progress_check(q, true, "22023"));
	long_id[IGP_MAX_QUERY_ID] = '\0';
	ck_assert(run_progress_check(q, true, NULL));
	q = p;
	q.partition_id = (uint64_t)INT64_MAX + 1; /* -2^63 on the wire */
	ck_assert(run_progress_check(q, true, "22023"));
	q = p;
	q.epoch_id = UINT64_MAX; /* -1 */
	ck_assert(run_progress_check(q, false, "22023"));
	q = p;
	q.rows_committed = UINT64_MAX;
	ck_assert(run_progress_check(q, true, "22023"));
	ck_assert(run_progress_check(q, false, NULL)); /* a query has none */
	q = p;
	q.complete = 2;
	ck_assert(run_progress_check(q, true, "22023"));
	ck_assert(run_progress_check(q, false, NULL));
	q.complete = 1;
	ck_assert(run_progress_check(q, true, NULL));
}
END_TEST

/* ---- truncation and trailing bytes, for every message ---- */

typedef bool (*parse_fn)(const struct pgw_frame *f);

static bool p_hello(const struct pgw_frame *f)
{
	struct igp_hello h;

	return igp_parse_hello(f, &h) == PGW_OK;
}

static bool p_open(const struct pgw_frame *f)
{
	struct igp_open o;
	bool ok = igp_parse_open(f, &o) == PGW_OK;

	if (!ok)
		REQUIRE(o.cols == NULL && o.keys == NULL && o.coalesce == NULL);
	igp_open_free(&o);
	return ok;
}

static bool p_flush(const struct pgw_frame *f)
{
	uint64_t id;

	return igp_parse_flush(f, &id) == PGW_OK;
}

static bool p_flush_progress(const struct pgw_frame *f)
{
	struct igp_progress p;
	uint64_t id;

	return igp_parse_flush_progress(f, &id, &p) == PGW_OK;
}

static bool p_progress_query(const struct pgw_frame *f)
{
	struct igp_progress p;
	uint64_t id;

	return igp_parse_progress_query(f, &id, &p) == PGW_OK;
}

static bool p_answer(const struct pgw_frame *f)
{
	struct igp_answer a;

	return igp_parse_answer(f, &a) == PGW_OK;
}

/* Every shorter body and one trailing byte are refused; the whole passes. */
static void check_cuts(struct evbuffer *b, parse_fn parse)
{
	const uint8_t *wire = evbuffer_pullup(b, -1);
	size_t total = evbuffer_get_length(b);
	size_t body = total - PGW_HEADER_LEN;
	uint8_t *longer = malloc(body + 1);
	struct pgw_frame f, g;
	size_t flen;

	/* The framing layer waits for every prefix of the wire form. */
	for (size_t n = 0; n < total; n++)
		REQUIRE(pgw_frame_parse(wire, n, SIZE_MAX, &g, &flen) ==
		        PGW_AGAIN);
	for (size_t n = 0; n < body; n++) {
		f = frame_of(wire[0], wire + PGW_HEADER_LEN, n);
		REQUIRE(!parse(&f));
		frame_free(&f);
	}
	f = frame_of(wire[0], wire + PGW_HEADER_LEN, body);
	REQUIRE(parse(&f));
	frame_free(&f);
	memcpy(longer, wire + PGW_HEADER_LEN, body);
	longer[body] = 0;
	f = frame_of(wire[0], longer, body + 1);
	REQUIRE(!parse(&f));
	frame_free(&f);
	free(longer);
	evbuffer_drain(b, total);
}

START_TEST(test_truncated_every_length)
{
	static const char *const c[] = {"a", "bb"};
	static const char *const t[] = {"int", "text"};
	struct igp_open o = sample_open();
	struct evbuffer *b = evbuffer_new();

	ck_assert(igp_put_hello(b, "spark task 17.3", "secret"));
	check_cuts(b, p_hello);
	ck_assert(igp_put_open(b, &o));
	check_cuts(b, p_open);
	ck_assert(igp_put_flush(b, 99));
	check_cuts(b, p_flush);
	ck_assert(igp_put_hello_ok(b, 1, 2, "s"));
	check_cuts(b, p_answer);
	ck_assert(igp_put_open_ok(b, 2, c, t));
	check_cuts(b, p_answer);
	ck_assert(igp_put_ack(b, 1, 2));
	check_cuts(b, p_answer);
	ck_assert(igp_put_flush_error(b, 1, "22P04", "bad", "", 3));
	check_cuts(b, p_answer);
	ck_assert(igp_put_error(b, "08P01", "x"));
	check_cuts(b, p_answer);
	ck_assert(igp_put_flush_progress(b, 3, &sample_progress));
	check_cuts(b, p_flush_progress);
	ck_assert(igp_put_progress_query(b, 4, &sample_progress));
	check_cuts(b, p_progress_query);
	ck_assert(igp_put_progress(b, 4, 10, false));
	check_cuts(b, p_answer);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_empty_messages_strict)
{
	static const uint8_t one = 0;
	struct pgw_frame f = frame_of('c', &one, 1);
	struct pgw_frame g = frame_of('c', NULL, 0);

	ck_assert(!p_answer(&f));
	ck_assert(p_answer(&g));
	frame_free(&f);
	frame_free(&g);
}
END_TEST

START_TEST(test_wrong_types)
{
	static const uint8_t flush[8] = {0};
	struct pgw_frame f = frame_of('a', flush, 8);
	struct pgw_frame unknown = frame_of('Z', NULL, 0);
	struct pgw_frame client = frame_of('F', flush, 8);

	ck_assert(!p_flush(&f));
	ck_assert(!p_hello(&f));
	ck_assert(!p_open(&f));
	ck_assert(!p_answer(&unknown));
	ck_assert(!p_answer(&client)); /* a client message is no answer */
	frame_free(&f);
	frame_free(&unknown);
	frame_free(&client);
}
END_TEST

/* ---- hostile Open ---- */

/* schema "", table "t", mode, then a column count and what follows. */
static struct pgw_frame open_with_count(uint16_t count, size_t names)
{
	size_t len = 5 + 2 + names * 2 + 2 + 1 + 2;
	uint8_t *body = calloc(1, len);
	struct pgw_frame f;
	size_t p = 0;

	REQUIRE(body != NULL);
	body[p++] = 0;
	body[p++] = 't';
	body[p++] = 0;
	body[p++] = 'i';
	body[p++] = (uint8_t)(count >> 8);
	body[p++] = (uint8_t)count;
	for (size_t i = 0; i < names; i++) {
		body[p++] = 'c';
		body[p++] = 0;
	}
	p += 2 + 1 + 2; /* keys 0, version "", coalesce 0 */
	f = frame_of('O', body, p);
	free(body);
	return f;
}

START_TEST(test_hostile_counts)
{
	struct pgw_frame f;

	f = open_with_count(3, 3);
	ck_assert(p_open(&f));
	frame_free(&f);
	f = open_with_count(IGP_MAX_COLUMNS, IGP_MAX_COLUMNS);
	ck_assert(p_open(&f));
	frame_free(&f);
	/* More names than the limit decode (igp_open_check refuses them,
	 * test_open_too_many_columns_is_22023); a count the bytes can not
	 * hold does not. */
	f = open_with_count(IGP_MAX_COLUMNS + 1, IGP_MAX_COLUMNS + 1);
	ck_assert(p_open(&f));
	frame_free(&f);
	f = open_with_count(UINT16_MAX, 3);
	ck_assert(!p_open(&f));
	frame_free(&f);
	/* A count that the remaining bytes can not hold. */
	f = open_with_count(5, 3);
	ck_assert(!p_open(&f));
	frame_free(&f);
	f = open_with_count(2, 3);
	ck_assert(!p_open(&f));
	frame_free(&f);
}
END_TEST

START_TEST(test_hostile_open_ok_count)
{
	uint8_t body[2 + (IGP_MAX_COLUMNS + 1) * 4];
	struct evbuffer *b;
	struct pgw_frame f;

	for (size_t i = 0; i < IGP_MAX_COLUMNS + 1; i++)
		memcpy(body + 2 + i * 4, "c\0t", 4);
	body[0] = (IGP_MAX_COLUMNS + 1) >> 8;
	body[1] = (IGP_MAX_COLUMNS + 1) & 0xff;
	f = frame_of('o', body, sizeof(body));
	ck_assert(!p_answer(&f));
	frame_free(&f);
	body[0] = IGP_MAX_COLUMNS >> 8;
	body[1] = IGP_MAX_COLUMNS & 0xff;
	f = frame_of('o', body, sizeof(body) - 4);
	ck_assert(p_answer(&f));
	frame_free(&f);
	b = evbuffer_new();
	ck_assert(!igp_put_open_ok(b, IGP_MAX_COLUMNS + 1, NULL, NULL));
	ck_assert_uint_eq(evbuffer_get_length(b), 0);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_open_missing_mode_and_nul)
{
	static const uint8_t no_mode[] = {'s', 0, 't', 0};
	static const uint8_t no_nul[] = {'s', 0, 't'};
	struct pgw_frame f;

	f = frame_of('O', no_mode, sizeof(no_mode));
	ck_assert(!p_open(&f));
	frame_free(&f);
	f = frame_of('O', no_nul, sizeof(no_nul));
	ck_assert(!p_open(&f));
	frame_free(&f);
}
END_TEST

START_TEST(test_open_free_zeroed)
{
	struct igp_open o;

	memset(&o, 0, sizeof(o));
	igp_open_free(&o);
	igp_open_free(NULL);
}
END_TEST

/* ---- igp_open_check ---- */

static bool run_check(const struct igp_open *o, const char *state,
                      const char *needle)
{
	char st[6] = "xxxxx", msg[256] = "";
	bool ok = igp_open_check(o, st, msg, sizeof(msg));

	if (state == NULL)
		return ok;
	ck_assert_msg(!ok, "accepted, expected %s", state);
	ck_assert_str_eq(st, state);
	ck_assert_msg(strstr(msg, needle) != NULL, "\"%s\" lacks \"%s\"", msg,
	              needle);
	return ok;
}

START_TEST(test_check_valid)
{
	static const char *const c[] = {"a"};
	struct igp_open o = sample_open();
	struct igp_open ins = {.schema = "",
	                       .table = "t",
	                       .mode = 'i',
	                       .ncols = 1,
	                       .cols = (const char **)c,
	                       .version_col = ""};

	ck_assert(run_check(&o, NULL, NULL));
	ck_assert(run_check(&ins, NULL, NULL));
	ins.mode = 'b';
	ins.schema = NULL;
	ins.version_col = NULL;
	ck_assert(run_check(&ins, NULL, NULL));
}
END_TEST

START_TEST(test_check_names)
{
	static const char *const bad_col[] = {"id", "na\x01me", "ts"};
	static const char *const utf8_col[] = {"id", "n\xc3(", "ts"};
	char long_name[SQL_MAX_IDENT + 2];
	struct igp_open o = sample_open();

	memset(long_name, 'x', sizeof(long_name));
	long_name[SQL_MAX_IDENT + 1] = '\0';
	o.table = "";
	run_check(&o, "42602", "table");
	o.table = long_name;
	run_check(&o, "42602", long_name);
	o = sample_open();
	o.schema = long_name;
	run_check(&o, "42602", "schema");
	o = sample_open();
	o.cols = (const char **)bad_col;
	run_check(&o, "42602", "na\x01me");
	o.cols = (const char **)utf8_col;
	run_check(&o, "42602", "column");
	o = sample_open();
	o.version_col = long_name;
	run_check(&o, "42602", "version");
	/* 63 bytes is the longest allowed. */
	long_name[SQL_MAX_IDENT] = '\0';
	o = sample_open();
	o.table = long_name;
	ck_assert(run_check(&o, NULL, NULL));
}
END_TEST

START_TEST(test_check_rules)
{
	static const char *const dup_cols[] = {"id", "name", "id"};
	static const char *const two_keys[] = {"id", "id"};
	static const char *const ghost_key[] = {"ghost"};
	static const char *const key_co[] = {"id"};
	static const char *const dup_co[] = {"name", "name"};
	static const char *const ghost_co[] = {"nope"};
	struct igp_open o = sample_open();

	o.mode = 'x';
	run_check(&o, "22023", "mode \"x\"");
	o = sample_open();
	o.ncols = 0;
	run_check(&o, "22023", "columns");
	o = sample_open();
	o.cols = (const char **)dup_cols;
	run_check(&o, "22023", "duplicate column \"id\"");
	o = sample_open();
	o.nkeys = 0;
	run_check(&o, "22023", "key");
	o = sample_open();
	o.keys = (const char **)two_keys;
	o.nkeys = 2;
	run_check(&o, "22023", "duplicate key \"id\"");
	o = sample_open();
	o.keys = (const char **)ghost_key;
	run_check(&o, "22023", "\"ghost\"");
	o = sample_open();
	o.version_col = "id";
	run_check(&o, "22023", "version column \"id\"");
	o.version_col = "zz";
	run_check(&o, "22023", "\"zz\"");
	o = sample_open();
	o.coalesce = (const char **)key_co;
	run_check(&o, "22023", "coalesce column \"id\"");
	o.coalesce = (const char **)dup_co;
	o.ncoalesce = 2;
	run_check(&o, "22023", "duplicate coalesce column \"name\"");
	o.coalesce = (const char **)ghost_co;
	o.ncoalesce = 1;
	run_check(&o, "22023", "\"nope\"");
	/* the upsert staging table's own column */
	static const char *const seq_cols[] = {"id", "lbp_seq"};
	o = sample_open();
	o.cols = (const char **)seq_cols;
	o.ncols = 2;
	o.ncoalesce = 0;
	o.version_col = "";
	run_check(&o, "42602", "lbp_seq");
	o.mode = IGP_MODE_INSERT;
	o.nkeys = 0;
	ck_assert(run_check(&o, NULL, NULL));
}
END_TEST

START_TEST(test_check_insert_extras)
{
	struct igp_open o = sample_open();

	o.mode = 'i';
	run_check(&o, "22023", "key \"id\"");
	o.nkeys = 0;
	run_check(&o, "22023", "version column \"ts\"");
	o.version_col = "";
	run_check(&o, "22023", "coalesce column \"name\"");
	o.ncoalesce = 0;
	ck_assert(run_check(&o, NULL, NULL));
	o.mode = 'b';
	o.nkeys = 1;
	run_check(&o, "22023", "insert mode");
}
END_TEST

START_TEST(test_check_1600_columns)
{
	static char names[IGP_MAX_COLUMNS][8];
	static const char *ptrs[IGP_MAX_COLUMNS];
	struct igp_open o = {.table = "wide",
	                     .mode = 'u',
	                     .ncols = IGP_MAX_COLUMNS,
	                     .cols = ptrs,
	                     .nkeys = 1,
	                     .keys = ptrs};

	for (size_t i = 0; i < IGP_MAX_COLUMNS; i++) {
		snprintf(names[i], sizeof(names[i]), "c%zu", i);
		ptrs[i] = names[i];
	}
	ck_assert(run_check(&o, NULL, NULL));
	ptrs[1599] = "c7";
	run_check(&o, "22023", "duplicate column \"c7\"");
}
END_TEST

/* ---- issue 13: what an independent client found ---- */

/* Well-formed but asking too much: 22023 like every invalid Open, not a
 * malformed message (08P01). */
START_TEST(test_open_too_many_columns_is_22023)
{
	static const uint16_t counts[] = {IGP_MAX_COLUMNS + 1, UINT16_MAX};

	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		struct pgw_frame f = open_with_count(counts[i], counts[i]);
		struct igp_open o;

		ck_assert_int_eq(igp_parse_open(&f, &o), PGW_OK);
		ck_assert_uint_eq(o.ncols, counts[i]);
		run_check(&o, "22023", "between 1 and 1600 columns");
		igp_open_free(&o);
		frame_free(&f);
	}
}
END_TEST

START_TEST(test_close_with_a_body_is_malformed)
{
	static const uint8_t one = 0;
	struct pgw_frame empty = frame_of('X', NULL, 0);
	struct pgw_frame body = frame_of('X', &one, 1);
	struct pgw_frame other = frame_of('F', NULL, 0);

	ck_assert_int_eq(igp_parse_close(&empty), PGW_OK);
	ck_assert_int_eq(igp_parse_close(&body), PGW_ERROR);
	ck_assert_int_eq(igp_parse_close(&other), PGW_ERROR);
	frame_free(&empty);
	frame_free(&body);
	frame_free(&other);
}
END_TEST

/* The limit counts the frame's length field (spec section 2). */
START_TEST(test_frame_limit_counts_the_length_field)
{
	const uint64_t max = 1048576;
	uint8_t *p = calloc(1, 5 + max);
	struct pgw_frame f;
	size_t used;

	REQUIRE(p != NULL);
	ck_assert_uint_eq(igp_max_body(max), max - 4);
	ck_assert_uint_eq(igp_max_body(3), 0);
	for (uint64_t len = max - 1; len <= max + 4; len++) {
		p[0] = 'D';
		p[1] = (uint8_t)(len >> 24);
		p[2] = (uint8_t)(len >> 16);
		p[3] = (uint8_t)(len >> 8);
		p[4] = (uint8_t)len;
		ck_assert_int_eq(
		    pgw_frame_parse(p, 1 + len, igp_max_body(max), &f, &used),
		    len <= max ? PGW_OK : PGW_ERROR);
	}
	free(p);
}
END_TEST

static void expect_error_text(const char *message, const char *want)
{
	struct evbuffer *b = evbuffer_new();
	struct pgw_frame f;
	struct igp_answer a;

	REQUIRE(b != NULL);
	ck_assert(igp_put_error(b, "42602", message));
	f = only_frame(b);
	ck_assert_int_eq(igp_parse_answer(&f, &a), PGW_OK);
	ck_assert_str_eq(a.message, want);
	ck_assert(utf8_valid((const uint8_t *)a.message, strlen(a.message)));
	frame_free(&f);
	evbuffer_drain(b, evbuffer_get_length(b));
	ck_assert(igp_put_flush_error(b, 7, "22P02", message, message, 3));
	f = only_frame(b);
	ck_assert_int_eq(igp_parse_answer(&f, &a), PGW_OK);
	ck_assert_str_eq(a.message, want);
	ck_assert_str_eq(a.detail, want);
	frame_free(&f);
	evbuffer_free(b);
}

START_TEST(test_error_text_is_utf8)
{
	expect_error_text("invalid table name \"up\xff\"",
	                  "invalid table name \"up\\xff\"");
	expect_error_text("a\x01"
	                  "b\x7f\tc\n",
	                  "a\\x01b\\x7f\\x09c\\x0a");
	/* Valid UTF-8 stays as it is; a truncated or overlong one does not. */
	expect_error_text("caf\xc3\xa9 \xe2\x82\xac",
	                  "caf\xc3\xa9 \xe2\x82\xac");
	expect_error_text("x\xc3", "x\\xc3");
	expect_error_text("\xc0\xaf", "\\xc0\\xaf");
	expect_error_text("", "");
}
END_TEST

/* Answers go into the output's own chains: a thousand Acks are 21 KB in a
 * few chains, not a thousand chains of a kilobyte each. */
START_TEST(test_answers_share_chains)
{
	struct evbuffer *out = evbuffer_new();
	int chains;

	REQUIRE(out != NULL);
	for (uint64_t i = 1; i <= 1000; i++) {
		REQUIRE(igp_put_ack(out, i, 1));
		REQUIRE(igp_put_flush_error(out, i, "22P02", "bad", "", 1));
	}
	chains = evbuffer_peek(out, -1, NULL, NULL, 0);
	ck_assert_int_le(chains, 64);
	evbuffer_free(out);
}
END_TEST

START_TEST(test_detect_postgres_clients)
{
	static const uint8_t ssl[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
	static const uint8_t gss[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30};
	static const uint8_t startup[8] = {0, 0, 0, 40, 0, 3, 0, 0};
	static const uint8_t other[8] = {0, 0, 0, 8, 0, 2, 0, 0};
	static const uint8_t hello[8] = {'H', 0, 0, 0, 20, 0, 1, 0};

	ck_assert_int_eq(igp_detect_postgres(ssl, 8), PGW_OK);
	ck_assert_int_eq(igp_detect_postgres(gss, 8), PGW_OK);
	ck_assert_int_eq(igp_detect_postgres(startup, 8), PGW_OK);
	ck_assert_int_eq(igp_detect_postgres(other, 8), PGW_ERROR);
	ck_assert_int_eq(igp_detect_postgres(hello, 8), PGW_ERROR);
	ck_assert_int_eq(igp_detect_postgres(hello, 1), PGW_ERROR);
	for (size_t n = 0; n < 8; n++)
		ck_assert_int_eq(igp_detect_postgres(ssl, n), PGW_AGAIN);
}
END_TEST

START_TEST(test_pg_fatal_bytes)
{
	static const uint8_t want[] =
	    "E\0\0\0\x23SFATAL\0VFATAL\0C08P01\0Mno \\x01\0";
	struct evbuffer *b = evbuffer_new();

	REQUIRE(b != NULL);
	ck_assert(igp_put_pg_fatal(b, "08P01", "no \x01"));
	/* sizeof counts the literal's own NUL: the message's terminator. */
	expect_buf(b, want, sizeof(want));
	evbuffer_free(b);
}
END_TEST

/* ---- a fixed-seed mutation loop through every decoder ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

/* Parsed Open re-encodes to exactly the bytes it came from. */
static void check_open_reencodes(const struct pgw_frame *f)
{
	struct igp_open o;
	struct evbuffer *b;

	if (igp_parse_open(f, &o) != PGW_OK)
		return;
	/* The encoder refuses what no proxy accepts. */
	if (o.ncols > IGP_MAX_COLUMNS || o.nkeys > IGP_MAX_COLUMNS ||
	    o.ncoalesce > IGP_MAX_COLUMNS) {
		igp_open_free(&o);
		return;
	}
	b = evbuffer_new();
	REQUIRE(igp_put_open(b, &o));
	REQUIRE(evbuffer_get_length(b) == f->len + PGW_HEADER_LEN);
	REQUIRE(memcmp(evbuffer_pullup(b, -1) + PGW_HEADER_LEN, f->body,
	               f->len) == 0);
	evbuffer_free(b);
	igp_open_free(&o);
}

/* A decoded progress row has its strings inside the frame; checking it
 * never crashes whatever the values. */
static void feed_progress(const struct pgw_frame *f)
{
	struct igp_progress p;
	char st[6], msg[200];
	uint64_t id;

	if (igp_parse_flush_progress(f, &id, &p) == PGW_OK) {
		REQUIRE(strlen(p.schema) + strlen(p.table) +
		            strlen(p.query_id) + 3 + 33 ==
		        f->len);
		(void)igp_progress_check(&p, true, st, msg, sizeof(msg));
	}
	if (igp_parse_progress_query(f, &id, &p) == PGW_OK) {
		REQUIRE(strlen(p.schema) + strlen(p.table) +
		            strlen(p.query_id) + 3 + 24 ==
		        f->len);
		(void)igp_progress_check(&p, false, st, msg, sizeof(msg));
	}
}

static void feed_all(const struct pgw_frame *f)
{
	struct igp_answer a;
	struct igp_hello h;
	uint64_t id;

	check_open_reencodes(f);
	if (igp_parse_hello(f, &h) == PGW_OK)
		REQUIRE(strlen(h.client_name) <= IGP_MAX_CLIENT_NAME);
	if (igp_parse_flush(f, &id) == PGW_OK)
		REQUIRE(f->len == 8);
	if (igp_parse_answer(f, &a) == PGW_OK)
		REQUIRE(a.type == f->type);
	feed_progress(f);
}

static void seed_messages(struct evbuffer *b)
{
	static const char *const c[] = {"a", "b"};
	struct igp_open o = sample_open();

	REQUIRE(igp_put_hello(b, "task", "tok"));
	REQUIRE(igp_put_open(b, &o));
	REQUIRE(igp_put_flush(b, 5));
	REQUIRE(igp_put_hello_ok(b, 1, 2, "s"));
	REQUIRE(igp_put_open_ok(b, 2, c, c));
	REQUIRE(igp_put_ack(b, 1, 2));
	REQUIRE(igp_put_flush_error(b, 1, "22P04", "m", "d", 3));
	REQUIRE(igp_put_error(b, "08P01", "x"));
	REQUIRE(igp_put_close_ok(b));
	REQUIRE(igp_put_flush_progress(b, 6, &sample_progress));
	REQUIRE(igp_put_progress_query(b, 7, &sample_progress));
	REQUIRE(igp_put_progress(b, 7, 500, true));
}

static void mutate(uint8_t *p, size_t *len, size_t cap)
{
	static const uint8_t magic[] = {0, 0xff, 0x06, 0x40, 0x41, 1, 'i'};
	size_t n = 1 + rnd() % 4;

	for (size_t i = 0; i<n && * len> 0; i++) {
		size_t at = rnd() % *len;

		switch (rnd() % 5) {
		case 0:
			p[at] = (uint8_t)rnd();
			break;
		case 1:
			p[at] = magic[rnd() % sizeof(magic)];
			break;
		case 2:
			*len = at;
			break;
		case 3:
			if (*len < cap)
				p[(*len)++] = (uint8_t)rnd();
			break;
		default:
			p[at] ^= (uint8_t)(1u << (rnd() % 8));
		}
	}
}

START_TEST(test_fuzz_decoders)
{
	static const uint8_t types[] = "HODFXhoaeEcZPQp";
	struct evbuffer *b = evbuffer_new();
	struct pgw_frame seeds[16];
	size_t nseeds = 0;
	uint8_t buf[256];

	seed_messages(b);
	while (pgw_frame_next(b, 4096, &seeds[nseeds]) == PGW_OK) {
		seeds[nseeds] = frame_of(seeds[nseeds].type, seeds[nseeds].body,
		                         seeds[nseeds].len);
		pgw_frame_consume(b, &seeds[nseeds]);
		nseeds++;
	}
	ck_assert_uint_eq(nseeds, 12);
	for (long i = 0; i < 150000; i++) {
		const struct pgw_frame *s = &seeds[rnd() % nseeds];
		size_t len = s->len;
		struct pgw_frame f;

		memcpy(buf, s->body, len);
		mutate(buf, &len, sizeof(buf));
		f = frame_of(rnd() % 8 == 0 ? types[rnd() % 15] : s->type, buf,
		             len);
		feed_all(&f);
		frame_free(&f);
	}
	for (size_t i = 0; i < nseeds; i++)
		frame_free(&seeds[i]);
	evbuffer_free(b);
}
END_TEST

static Suite *ingest_proto_suite(void)
{
	Suite *s = suite_create("ingest_proto");
	TCase *bytes = tcase_create("bytes");
	TCase *trip = tcase_create("round_trip");
	TCase *hostile = tcase_create("hostile");
	TCase *check = tcase_create("open_check");

	tcase_add_test(bytes, test_spec_hello);
	tcase_add_test(bytes, test_spec_flush);
	tcase_add_test(bytes, test_spec_ack);
	tcase_add_test(bytes, test_open_bytes);
	tcase_add_test(bytes, test_answer_bytes);
	tcase_add_test(bytes, test_rows_and_close_bytes);
	tcase_add_test(bytes, test_spec_flush_progress);
	tcase_add_test(bytes, test_spec_progress_query_and_answer);
	suite_add_tcase(s, bytes);
	tcase_add_test(trip, test_open_round_trip);
	tcase_add_test(trip, test_open_empty_lists);
	tcase_add_test(trip, test_answers_round_trip);
	tcase_add_test(trip, test_pipelined_frames);
	tcase_add_test(trip, test_client_name_limit);
	suite_add_tcase(s, trip);
	tcase_add_test(hostile, test_truncated_every_length);
	tcase_add_test(hostile, test_empty_messages_strict);
	tcase_add_test(hostile, test_wrong_types);
	tcase_add_test(hostile, test_hostile_counts);
	tcase_add_test(hostile, test_hostile_open_ok_count);
	tcase_add_test(hostile, test_open_missing_mode_and_nul);
	tcase_add_test(hostile, test_open_free_zeroed);
	tcase_add_test(hostile, test_fuzz_decoders);
	suite_add_tcase(s, hostile);
	tcase_add_test(check, test_progress_check);
	tcase_add_test(check, test_check_valid);
	tcase_add_test(check, test_check_names);
	tcase_add_test(check, test_check_rules);
	tcase_add_test(check, test_check_insert_extras);
	tcase_add_test(check, test_check_1600_columns);
	tcase_add_test(check, test_open_too_many_columns_is_22023);
	tcase_add_test(hostile, test_close_with_a_body_is_malformed);
	tcase_add_test(hostile, test_frame_limit_counts_the_length_field);
	tcase_add_test(bytes, test_error_text_is_utf8);
	tcase_add_test(bytes, test_pg_fatal_bytes);
	tcase_add_test(bytes, test_answers_share_chains);
	tcase_add_test(hostile, test_detect_postgres_clients);
	suite_add_tcase(s, check);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ingest_proto_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
