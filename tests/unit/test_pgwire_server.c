/* test_pgwire_server.c: the server side of the PostgreSQL v3 codec: startup
 * packets, backend encoders and the client's authentication messages. */
#include "pgwire.h"

#include <check.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "rng.h"
#include "testutil.h"

#define LIT(s) (const uint8_t *)(s), (sizeof(s) - 1)

/* length + code + body in an exact heap block (ASan sees overreads). */
static uint8_t *startup_of(uint32_t code, const uint8_t *body, size_t len,
                           size_t *total)
{
	uint8_t *p = malloc(8 + len);

	REQUIRE(p != NULL);
	put_be32(p, (uint32_t)(8 + len));
	put_be32(p + 4, code);
	if (len > 0)
		memcpy(p + 8, body, len);
	*total = 8 + len;
	return p;
}

/* The last packet parsed: s points into it until the next parse. */
static uint8_t *held;

static enum pgw_rc parse_startup(uint32_t code, const uint8_t *body, size_t len,
                                 struct pgw_startup *s)
{
	size_t total;

	free(held);
	held = startup_of(code, body, len, &total);
	return pgw_parse_startup(held, total, s);
}

static void release_held(void)
{
	free(held);
	held = NULL;
}

START_TEST(test_startup_v3)
{
	static const uint8_t body[] = "user\0alice\0database\0db1\0"
	                              "application_name\0psql\0\0";
	struct pgw_startup s;

	ck_assert_int_eq(
	    parse_startup(PGW_PROTOCOL_V3, body, sizeof(body) - 1, &s), PGW_OK);
	ck_assert_int_eq(s.kind, PGW_STARTUP_PROTO);
	ck_assert_uint_eq(s.minor, 0);
	ck_assert_uint_eq(s.nparams, 3);
	ck_assert_str_eq(s.user, "alice");
	ck_assert_str_eq(s.database, "db1");
	ck_assert_str_eq(s.names[2], "application_name");
	ck_assert_str_eq(s.values[2], "psql");
	ck_assert_uint_eq(s.noptions, 0);
	ck_assert_uint_eq(s.len, 8 + sizeof(body) - 1);
}
END_TEST

START_TEST(test_startup_v32_options)
{
	static const uint8_t body[] = "user\0bob\0_pq_.foo\0x\0\0";
	struct pgw_startup s;

	ck_assert_int_eq(
	    parse_startup(3u << 16 | 2, body, sizeof(body) - 1, &s), PGW_OK);
	ck_assert_uint_eq(s.minor, 2);
	ck_assert_uint_eq(s.noptions, 1);
	ck_assert_ptr_null(s.database);
}
END_TEST

START_TEST(test_startup_requests)
{
	static const uint8_t key[] = {1, 2, 3, 4};
	uint8_t cancel[8];
	struct pgw_startup s;

	ck_assert_int_eq(parse_startup(PGW_SSL_REQUEST_CODE, NULL, 0, &s),
	                 PGW_OK);
	ck_assert_int_eq(s.kind, PGW_STARTUP_SSL);
	ck_assert_int_eq(parse_startup(PGW_GSSENC_REQUEST_CODE, NULL, 0, &s),
	                 PGW_OK);
	ck_assert_int_eq(s.kind, PGW_STARTUP_GSSENC);
	put_be32(cancel, 4242);
	memcpy(cancel + 4, key, 4);
	ck_assert_int_eq(
	    parse_startup(PGW_CANCEL_REQUEST_CODE, cancel, sizeof(cancel), &s),
	    PGW_OK);
	ck_assert_int_eq(s.kind, PGW_STARTUP_CANCEL);
	ck_assert_uint_eq(s.cancel_pid, 4242);
	ck_assert_uint_eq(s.cancel_key_len, 4);
	ck_assert_mem_eq(s.cancel_key, key, 4);
}
END_TEST

START_TEST(test_startup_rejected)
{
	static const struct {
		uint32_t code;
		const char *body;
		size_t len;
	} bad[] = {
	    {PGW_SSL_REQUEST_CODE, "x", 1},           /* body after a request */
	    {PGW_GSSENC_REQUEST_CODE, "\0", 1},       /* the same */
	    {PGW_CANCEL_REQUEST_CODE, "\0\0\0\1", 4}, /* no key */
	    {PGW_CANCEL_REQUEST_CODE, "\0\0\0\1abc", 7}, /* short key */
	    {2u << 16, "user\0a\0\0", 8},                /* protocol 2 */
	    {4u << 16, "user\0a\0\0", 8},                /* protocol 4 */
	    {12345, "", 0},                              /* unknown code */
	    {PGW_PROTOCOL_V3, "user\0a\0", 7},           /* no terminator */
	    {PGW_PROTOCOL_V3, "user\0a", 6},             /* unterminated */
	    {PGW_PROTOCOL_V3, "user\0", 5},       /* name without value */
	    {PGW_PROTOCOL_V3, "user\0a\0\0x", 9}, /* bytes after the end */
	    {PGW_PROTOCOL_V3, "user\0a\0user\0b\0\0", 15}, /* repeated */
	    {PGW_PROTOCOL_V3, "", 0},                      /* empty body */
	};
	struct pgw_startup s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse_startup(bad[i].code,
		                            (const uint8_t *)bad[i].body,
		                            bad[i].len, &s) == PGW_ERROR,
		              "case %zu accepted", i);
}
END_TEST

START_TEST(test_startup_lengths)
{
	uint8_t hdr[8];
	struct pgw_startup s;
	uint8_t *big;
	size_t n = 0;

	/* too short, too long: refused from the length alone */
	put_be32(hdr, 7);
	ck_assert_int_eq(pgw_parse_startup(hdr, 4, &s), PGW_ERROR);
	put_be32(hdr, PGW_MAX_STARTUP_LEN + 1);
	ck_assert_int_eq(pgw_parse_startup(hdr, 4, &s), PGW_ERROR);
	put_be32(hdr, 0xffffffffu);
	ck_assert_int_eq(pgw_parse_startup(hdr, 4, &s), PGW_ERROR);
	/* fewer than 4 bytes, or fewer than the length: wait */
	ck_assert_int_eq(pgw_parse_startup(hdr, 3, &s), PGW_AGAIN);
	put_be32(hdr, 100);
	ck_assert_int_eq(pgw_parse_startup(hdr, 8, &s), PGW_AGAIN);
	/* 65 parameters: one too many */
	big = malloc(4000);
	for (int i = 0; i < 65; i++)
		n += (size_t)snprintf((char *)big + n, 4000 - n, "k%d%cv%c", i,
		                      0, 0);
	big[n++] = 0;
	ck_assert_int_eq(parse_startup(PGW_PROTOCOL_V3, big, n, &s), PGW_ERROR);
	free(big);
}
END_TEST

START_TEST(test_startup_evbuffer)
{
	static const uint8_t body[] = "user\0u\0\0";
	struct evbuffer *b = evbuffer_new();
	struct pgw_startup s;
	size_t total;
	uint8_t *p =
	    startup_of(PGW_PROTOCOL_V3, body, sizeof(body) - 1, &total);

	/* byte by byte: AGAIN until the whole packet is there */
	for (size_t i = 0; i < total; i++) {
		ck_assert_int_eq(pgw_startup_next(b, &s), PGW_AGAIN);
		evbuffer_add(b, p + i, 1);
	}
	evbuffer_add(b, "Q", 1); /* the next message stays */
	ck_assert_int_eq(pgw_startup_next(b, &s), PGW_OK);
	ck_assert_str_eq(s.user, "u");
	pgw_startup_consume(b, &s);
	ck_assert_uint_eq(evbuffer_get_length(b), 1);
	free(p);
	evbuffer_free(b);
}
END_TEST

/* Every prefix of a valid packet is AGAIN, never OK or a read past it. */
START_TEST(test_startup_truncated)
{
	static const uint8_t body[] = "user\0alice\0database\0d\0\0";
	size_t total;
	uint8_t *p =
	    startup_of(PGW_PROTOCOL_V3, body, sizeof(body) - 1, &total);
	struct pgw_startup s;

	for (size_t cut = 0; cut < total; cut++) {
		uint8_t *q = malloc(cut ? cut : 1);

		memcpy(q, p, cut);
		REQUIRE(pgw_parse_startup(q, cut, &s) == PGW_AGAIN);
		free(q);
	}
	free(p);
}
END_TEST

static uint64_t rng_state;

/* fixed seed: a failure reproduces exactly */
static uint64_t rng(void)
{
	return rng_next(&rng_state);
}

/* Random and mutated packets: never a crash, and OK ones are consistent. */
START_TEST(test_startup_random)
{
	static const uint8_t body[] = "user\0alice\0database\0d\0\0";
	size_t ok = 0;

	rng_state = 0x9e3779b97f4a7c15ull;
	for (int it = 0; it < 200000; it++) {
		size_t total;
		uint8_t *p =
		    startup_of(PGW_PROTOCOL_V3, body, sizeof(body) - 1, &total);
		struct pgw_startup s;

		for (int m = 0; m < 1 + (int)(rng() % 3); m++)
			p[8 + rng() % (total - 8)] = (uint8_t)rng();
		if (rng() % 4 == 0)
			p[rng() % 8] = (uint8_t)rng();
		if (pgw_parse_startup(p, total, &s) == PGW_OK) {
			ok++;
			REQUIRE(s.len <= total);
			for (size_t i = 0; i < s.nparams; i++)
				REQUIRE(s.names[i][0] != '\0');
		}
		free(p);
	}
	REQUIRE(ok > 100);
}
END_TEST

/* ---- backend encoders, byte for byte ---- */

START_TEST(test_put_backend_messages)
{
	struct evbuffer *b = evbuffer_new();

	ck_assert(pgw_put_auth(b, PGW_AUTH_OK, NULL, 0));
	expect_buf(b, LIT("R\0\0\0\x08\0\0\0\0"));
	evbuffer_drain(b, evbuffer_get_length(b));
	ck_assert(pgw_put_auth_sasl(b, "SCRAM-SHA-256"));
	expect_buf(b, LIT("R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0"));
	evbuffer_drain(b, evbuffer_get_length(b));
	ck_assert(pgw_put_auth(b, PGW_AUTH_SASL_FINAL, "v=x", 3));
	expect_buf(b, LIT("R\0\0\0\x0b\0\0\0\x0cv=x"));
	evbuffer_drain(b, evbuffer_get_length(b));
	ck_assert(pgw_put_param_status(b, "TimeZone", "UTC"));
	expect_buf(b, LIT("S\0\0\0\x11TimeZone\0UTC\0"));
	evbuffer_drain(b, evbuffer_get_length(b));
	ck_assert(pgw_put_backend_key(b, 0x01020304, 0xa0b0c0d0));
	expect_buf(b, LIT("K\0\0\0\x0c\x01\x02\x03\x04\xa0\xb0\xc0\xd0"));
	evbuffer_drain(b, evbuffer_get_length(b));
	ck_assert(pgw_put_ready(b, 'T'));
	expect_buf(b, LIT("Z\0\0\0\x05T"));
	evbuffer_drain(b, evbuffer_get_length(b));
	ck_assert(!pgw_put_ready(b, 'x'));
	ck_assert(!pgw_put_auth(b, 0, NULL, 3));
	ck_assert_uint_eq(evbuffer_get_length(b), 0);
	ck_assert(pgw_put_cancel_request(b, 7, 9));
	expect_buf(b, LIT("\0\0\0\x10\x04\xd2\x16\x2e\0\0\0\x07\0\0\0\x09"));
	evbuffer_free(b);
}
END_TEST

START_TEST(test_put_notice_roundtrip)
{
	struct pgw_notice n = {.severity = "ERROR",
	                       .severity_nl = "ERROR",
	                       .sqlstate = "23505",
	                       .message = "dup",
	                       .detail = "Key (id)=(1) exists.",
	                       .hint = "h",
	                       .schema = "public",
	                       .table = "t",
	                       .constraint = "t_pkey",
	                       .routine = "r"},
	                  back;
	struct evbuffer *b = evbuffer_new();
	struct pgw_frame f;

	ck_assert(pgw_put_notice(b, PGW_MSG_ERROR, &n));
	ck_assert_int_eq(pgw_frame_next(b, 1 << 20, &f), PGW_OK);
	ck_assert_int_eq(pgw_parse_notice(&f, &back), PGW_OK);
	ck_assert_str_eq(back.sqlstate, "23505");
	ck_assert_str_eq(back.detail, "Key (id)=(1) exists.");
	ck_assert_str_eq(back.constraint, "t_pkey");
	ck_assert_str_eq(back.routine, "r");
	ck_assert_ptr_null(back.where);
	pgw_frame_consume(b, &f);
	ck_assert(pgw_put_error(b, "FATAL", "28P01", "no"));
	expect_buf(b, LIT("E\0\0\0\x1eSFATAL\0VFATAL\0C28P01\0Mno\0\0"));
	ck_assert(!pgw_put_notice(b, 'Q', &n));
	evbuffer_free(b);
}
END_TEST

START_TEST(test_put_negotiate)
{
	const char *opts[] = {"_pq_.a", "_pq_.b"};
	struct evbuffer *b = evbuffer_new();
	struct pgw_frame f;
	uint32_t minor, n;

	ck_assert(pgw_put_negotiate_version(b, 0, opts, 2));
	expect_buf(b, LIT("v\0\0\0\x1a\0\0\0\0\0\0\0\x02_pq_.a\0_pq_.b\0"));
	ck_assert_int_eq(pgw_frame_next(b, 1 << 20, &f), PGW_OK);
	ck_assert_int_eq(pgw_parse_negotiate_version(&f, &minor, &n), PGW_OK);
	ck_assert_uint_eq(n, 2);
	evbuffer_free(b);
}
END_TEST

/* ---- client authentication messages ---- */

START_TEST(test_parse_sasl_initial)
{
	struct pgw_frame f =
	    frame_of('p', LIT("SCRAM-SHA-256\0\0\0\0\x05n,,n="));
	const char *mech;
	const uint8_t *data;
	size_t len;

	ck_assert_int_eq(pgw_parse_sasl_initial(&f, &mech, &data, &len),
	                 PGW_OK);
	ck_assert_str_eq(mech, "SCRAM-SHA-256");
	ck_assert_uint_eq(len, 5);
	ck_assert_mem_eq(data, "n,,n=", 5);
	frame_free(&f);
	f = frame_of('p', LIT("M\0\xff\xff\xff\xff"));
	ck_assert_int_eq(pgw_parse_sasl_initial(&f, &mech, &data, &len),
	                 PGW_OK);
	ck_assert_ptr_null(data);
	frame_free(&f);
	/* lengths that lie, negative ones, bytes after the data */
	static const struct {
		const char *b;
		size_t len;
	} bad[] = {
	    {"M\0\0\0\0\x06n,,n=", 11},
	    {"M\0\xff\xff\xff\xfe", 6},
	    {"M\0\x80\0\0\0", 6},
	    {"M\0\0\0\0\x01"
	     "ab",
	     8},
	    {"M", 1},
	    {"M\0\0\0", 4},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f = frame_of('p', (const uint8_t *)bad[i].b, bad[i].len);
		ck_assert_msg(pgw_parse_sasl_initial(&f, &mech, &data, &len) ==
		                  PGW_ERROR,
		              "case %zu", i);
		frame_free(&f);
	}
}
END_TEST

START_TEST(test_parse_password_and_response)
{
	struct pgw_frame f = frame_of('p', LIT("secret\0"));
	const char *pw;
	const uint8_t *data;
	size_t len;

	ck_assert_int_eq(pgw_parse_password(&f, &pw), PGW_OK);
	ck_assert_str_eq(pw, "secret");
	ck_assert_int_eq(pgw_parse_sasl_response(&f, &data, &len), PGW_OK);
	ck_assert_uint_eq(len, 7);
	frame_free(&f);
	f = frame_of('p', LIT("secret"));
	ck_assert_int_eq(pgw_parse_password(&f, &pw), PGW_ERROR);
	frame_free(&f);
	f = frame_of('p', LIT("a\0b\0"));
	ck_assert_int_eq(pgw_parse_password(&f, &pw), PGW_ERROR);
	frame_free(&f);
	f = frame_of('Q', LIT("a\0"));
	ck_assert_int_eq(pgw_parse_password(&f, &pw), PGW_ERROR);
	ck_assert_int_eq(pgw_parse_sasl_response(&f, &data, &len), PGW_ERROR);
	frame_free(&f);
}
END_TEST

/* Parse: name, query, types; the rest of a kept statement alone too. */
START_TEST(test_parse_parse_types)
{
	struct pgw_frame f = frame_of(
	    'P',
	    LIT("s1\0INSERT INTO t VALUES ($1, $2)\0\0\2\0\0\0\x17\0\0\0\0"));
	struct pgw_parse_msg m, r;

	ck_assert_int_eq(pgw_parse_parse(&f, &m), PGW_OK);
	ck_assert_str_eq(m.name, "s1");
	ck_assert_str_eq(m.query, "INSERT INTO t VALUES ($1, $2)");
	ck_assert_uint_eq(m.ntypes, 2);
	ck_assert_uint_eq(get_be32(m.types), 23);
	ck_assert_uint_eq(get_be32(m.types + 4), 0);
	ck_assert_int_eq(pgw_parse_parse_rest(m.rest, m.rest_len, &r), PGW_OK);
	ck_assert_str_eq(r.query, m.query);
	ck_assert_uint_eq(r.ntypes, 2);
	/* every shorter rest is refused, never read past */
	for (size_t n = 0; n < m.rest_len; n++)
		ck_assert_int_eq(pgw_parse_parse_rest(m.rest, n, &r),
		                 PGW_ERROR);
	frame_free(&f);
	f = frame_of('P', LIT("\0q\0\xff\xff"));
	ck_assert_int_eq(pgw_parse_parse(&f, &m), PGW_ERROR); /* count -1 */
	frame_free(&f);
}
END_TEST

/* Bind: formats 0, 1 or n codes; NULL; result formats; nothing after. */
START_TEST(test_bind_values)
{
	/* portal "", statement "s", formats (1, 0), 42 and NULL, result 1 */
	static const char ok2[] = "\0s\0"
	                          "\0\2\0\1\0\0"
	                          "\0\2\0\0\0\4\0\0\0\x2a\xff\xff\xff\xff"
	                          "\0\1\0\1";
	struct pgw_frame f =
	    frame_of('B', (const uint8_t *)ok2, sizeof(ok2) - 1);
	struct pgw_bind_msg b;
	struct pgw_bind_value v[2];
	uint16_t n;

	ck_assert_int_eq(pgw_parse_bind(&f, &b), PGW_OK);
	ck_assert_int_eq(pgw_bind_count(&b, &n), PGW_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(pgw_parse_bind_values(&b, v, n), PGW_OK);
	ck_assert_int_eq(v[0].format, 1);
	ck_assert_int_eq(v[0].len, 4);
	ck_assert_uint_eq(get_be32(v[0].data), 42);
	ck_assert_int_eq(v[1].format, 0);
	ck_assert_int_eq(v[1].len, -1);
	ck_assert_ptr_null(v[1].data);
	ck_assert_int_eq(pgw_parse_bind_values(&b, v, 1), PGW_ERROR);
	/* truncated anywhere: an error, never a read past the message */
	for (size_t cut = 0; cut < b.rest_len; cut++) {
		struct pgw_bind_msg t = b;

		t.rest_len = cut;
		if (pgw_bind_count(&t, &n) == PGW_OK && n == 2)
			ck_assert_int_eq(pgw_parse_bind_values(&t, v, n),
			                 PGW_ERROR);
	}
	frame_free(&f);
}
END_TEST

START_TEST(test_bind_values_refused)
{
#define BODY(s)                                                                \
	{                                                                      \
		s, sizeof(s) - 1                                               \
	}
	/* each: portal "", statement "", then the rest */
	static const struct {
		const char *body;
		size_t len;
	} bad[] = {
	    /* format 2 */
	    BODY("\0\0"
	         "\0\1\0\2"
	         "\0\1\0\0\0\0"
	         "\0\0"),
	    /* 3 format codes for 2 params */
	    BODY("\0\0"
	         "\0\3\0\0\0\0\0\0"
	         "\0\2\0\0\0\0\0\0\0\0"
	         "\0\0"),
	    /* a value length of -2 */
	    BODY("\0\0"
	         "\0\0"
	         "\0\1\xff\xff\xff\xfe"
	         "\0\0"),
	    /* a value longer than the message */
	    BODY("\0\0"
	         "\0\0"
	         "\0\1\0\0\0\x09"
	         "ab"
	         "\0\0"),
	    /* bytes after the result formats */
	    BODY("\0\0"
	         "\0\0"
	         "\0\0"
	         "\0\0"
	         "!"),
	    /* a result format of 7 */
	    BODY("\0\0"
	         "\0\0"
	         "\0\0"
	         "\0\1\0\7"),
	};
#undef BODY

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct pgw_frame f =
		    frame_of('B', (const uint8_t *)bad[i].body, bad[i].len);
		struct pgw_bind_msg b;
		struct pgw_bind_value v[4];
		uint16_t n;

		ck_assert_int_eq(pgw_parse_bind(&f, &b), PGW_OK);
		if (pgw_bind_count(&b, &n) == PGW_OK && n <= 4)
			ck_assert_msg(pgw_parse_bind_values(&b, v, n) ==
			                  PGW_ERROR,
			              "case %zu accepted", i);
		frame_free(&f);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("pgwire_server");
	TCase *st = tcase_create("startup");
	TCase *enc = tcase_create("encoders");

	tcase_add_checked_fixture(st, NULL, release_held);
	tcase_add_test(st, test_startup_v3);
	tcase_add_test(st, test_startup_v32_options);
	tcase_add_test(st, test_startup_requests);
	tcase_add_test(st, test_startup_rejected);
	tcase_add_test(st, test_startup_lengths);
	tcase_add_test(st, test_startup_evbuffer);
	tcase_add_test(st, test_startup_truncated);
	tcase_add_test(st, test_startup_random);
	suite_add_tcase(s, st);
	tcase_add_test(enc, test_put_backend_messages);
	tcase_add_test(enc, test_put_notice_roundtrip);
	tcase_add_test(enc, test_put_negotiate);
	tcase_add_test(enc, test_parse_sasl_initial);
	tcase_add_test(enc, test_parse_password_and_response);
	tcase_add_test(enc, test_parse_parse_types);
	tcase_add_test(enc, test_bind_values);
	tcase_add_test(enc, test_bind_values_refused);
	suite_add_tcase(s, enc);
	return s;
}

int main(void)
{
	return run_suite(suite());
}
