/* test_pgbinary.c: the Bind parameter codec: every type's fields at exact
 * and edge values, the refusals, every truncation of a valid value, random
 * bytes for every type, and dates and times against the C library. */
#include "pgbinary.h"

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "bytes.h"
#include "copytext.h"
#include "rng.h"
#include "testutil.h"

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))
#define PRE       "pre|"

/* A heap block of exactly len bytes, so ASan sees any read past it. */
static uint8_t *exact(const uint8_t *v, size_t len)
{
	uint8_t *m = malloc(len > 0 ? len : 1);

	REQUIRE(m != NULL);
	if (len > 0)
		memcpy(m, v, len);
	return m;
}

/*
 * Converts v[0..len): on success returns the field (malloc'd, NUL
 * terminated); on refusal NULL, with the message in err. Either way the
 * bytes already in the buffer must be left as they were.
 */
static char *field_of(enum pgb_type t, const uint8_t *v, size_t len, char *err,
                      size_t errlen)
{
	struct evbuffer *b = evbuffer_new();
	uint8_t *copy = exact(v, len);
	char *f = NULL;
	size_t n;

	REQUIRE(b != NULL && evbuffer_add(b, PRE, strlen(PRE)) == 0);
	err[0] = '\0';
	if (pgb_binary_to_copy_text(t, copy, len, b, err, errlen)) {
		n = evbuffer_get_length(b) - strlen(PRE);
		f = malloc(n + 1);
		REQUIRE(f != NULL);
		REQUIRE(memcmp(evbuffer_pullup(b, -1), PRE, strlen(PRE)) == 0);
		memcpy(f, evbuffer_pullup(b, -1) + strlen(PRE), n);
		f[n] = '\0';
	} else {
		REQUIRE(err[0] != '\0');
		REQUIRE(evbuffer_get_length(b) == strlen(PRE));
		REQUIRE(memcmp(evbuffer_pullup(b, -1), PRE, strlen(PRE)) == 0);
	}
	evbuffer_free(b);
	free(copy);
	return f;
}

static size_t unhex(const char *hex, uint8_t *v, size_t cap)
{
	size_t n = 0;

	for (; hex[0] != '\0' && hex[1] != '\0'; hex += 2) {
		unsigned x;

		if (hex[0] == ' ') {
			hex--;
			continue;
		}
		REQUIRE(sscanf(hex, "%2x", &x) == 1 && n < cap);
		v[n++] = (uint8_t)x;
	}
	return n;
}

struct hex_case {
	enum pgb_type type;
	const char *hex;  /* spaces are ignored */
	const char *want; /* NULL: refused */
};

static void run_hex(const struct hex_case *c)
{
	uint8_t v[256];
	size_t len = unhex(c->hex, v, sizeof(v));
	char err[200];
	char *f = field_of(c->type, v, len, err, sizeof(err));

	if (c->want == NULL)
		ck_assert_msg(f == NULL, "%s %s: got \"%s\", want refusal",
		              pgb_type_name(c->type), c->hex, f);
	else
		ck_assert_msg(f != NULL && strcmp(f, c->want) == 0,
		              "%s %s: got \"%s\" (%s), want \"%s\"",
		              pgb_type_name(c->type), c->hex, f ? f : "-", err,
		              c->want);
	free(f);
}

static void run_hex_cases(const struct hex_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++)
		run_hex(&cases[i]);
}

/* ---- types ---- */

START_TEST(test_oids_and_names)
{
	static const uint32_t oids[] = {16,   21,   23,   20,   700, 701,
	                                1700, 25,   1043, 1042, 17,  1082,
	                                1114, 1184, 2950, 114,  3802};
	static const struct {
		const char *name;
		enum pgb_type t;
	} names[] = {
	    {"smallint", PGB_INT2},
	    {"integer", PGB_INT4},
	    {"bigint", PGB_INT8},
	    {"real", PGB_FLOAT4},
	    {"double precision", PGB_FLOAT8},
	    {"numeric", PGB_NUMERIC},
	    {"numeric(10,2)", PGB_NUMERIC},
	    {"numeric(5)", PGB_NUMERIC},
	    {"boolean", PGB_BOOL},
	    {"text", PGB_TEXT},
	    {"character varying", PGB_VARCHAR},
	    {"character varying(20)", PGB_VARCHAR},
	    {"character(5)", PGB_BPCHAR},
	    {"bpchar", PGB_BPCHAR},
	    {"bytea", PGB_BYTEA},
	    {"date", PGB_DATE},
	    {"timestamp without time zone", PGB_TIMESTAMP},
	    {"timestamp(3) without time zone", PGB_TIMESTAMP},
	    {"timestamp with time zone", PGB_TIMESTAMPTZ},
	    {"timestamp(0) with time zone", PGB_TIMESTAMPTZ},
	    {"uuid", PGB_UUID},
	    {"json", PGB_JSON},
	    {"jsonb", PGB_JSONB},
	    /* not ours, or not as format_type writes them */
	    {"", PGB_UNKNOWN},
	    {"integer[]", PGB_UNKNOWN},
	    {"integer(5)", PGB_UNKNOWN},
	    {"int4", PGB_UNKNOWN},
	    {"numeric(", PGB_UNKNOWN},
	    {"numeric()", PGB_UNKNOWN},
	    {"numeric(1,2,3)", PGB_UNKNOWN},
	    {"numeric(1,)", PGB_UNKNOWN},
	    {"numeric(10,2)[]", PGB_UNKNOWN},
	    {"character varying(20) ", PGB_UNKNOWN},
	    {"timestamp(3)", PGB_UNKNOWN},
	    {"timestamp with time zone(3)", PGB_UNKNOWN},
	    {"time without time zone", PGB_UNKNOWN},
	    {"interval", PGB_UNKNOWN},
	    {"\"char\"", PGB_UNKNOWN},
	    {"Integer", PGB_UNKNOWN},
	    {"public.mytype", PGB_UNKNOWN},
	};

	for (size_t i = 0; i < NCASES(oids); i++) {
		enum pgb_type t = pgb_type_from_oid(oids[i]);

		ck_assert_int_ne(t, PGB_UNKNOWN);
		ck_assert_uint_eq(pgb_type_oid(t), oids[i]);
	}
	ck_assert_int_eq(pgb_type_from_oid(0), PGB_UNKNOWN);
	ck_assert_int_eq(pgb_type_from_oid(19), PGB_UNKNOWN);   /* name */
	ck_assert_int_eq(pgb_type_from_oid(1007), PGB_UNKNOWN); /* int4[] */
	ck_assert_uint_eq(pgb_type_oid(PGB_UNKNOWN), 0);
	ck_assert_str_eq(pgb_type_name(PGB_TIMESTAMPTZ), "timestamptz");
	ck_assert_str_eq(pgb_type_name(PGB_UNKNOWN), "unknown");
	ck_assert_int_eq(pgb_type_from_name(NULL), PGB_UNKNOWN);
	for (size_t i = 0; i < NCASES(names); i++)
		ck_assert_msg(pgb_type_from_name(names[i].name) == names[i].t,
		              "\"%s\"", names[i].name);
}
END_TEST

START_TEST(test_param_fits)
{
	ck_assert(pgb_param_fits(PGB_FLOAT4, PGB_FLOAT4));
	ck_assert(pgb_param_fits(PGB_INT2, PGB_INT8));
	ck_assert(pgb_param_fits(PGB_INT4, PGB_NUMERIC));
	ck_assert(pgb_param_fits(PGB_TEXT, PGB_VARCHAR));
	ck_assert(pgb_param_fits(PGB_VARCHAR, PGB_BPCHAR));
	ck_assert(!pgb_param_fits(PGB_INT8, PGB_INT4));
	ck_assert(!pgb_param_fits(PGB_INT4, PGB_FLOAT8));
	ck_assert(!pgb_param_fits(PGB_FLOAT4, PGB_FLOAT8));
	ck_assert(!pgb_param_fits(PGB_BPCHAR, PGB_TEXT));
	ck_assert(!pgb_param_fits(PGB_DATE, PGB_TIMESTAMPTZ));
	ck_assert(!pgb_param_fits(PGB_TIMESTAMP, PGB_TIMESTAMPTZ));
	ck_assert(!pgb_param_fits(PGB_TEXT, PGB_JSON));
	ck_assert(!pgb_param_fits(PGB_UNKNOWN, PGB_UNKNOWN));
	ck_assert(!pgb_param_fits(PGB_TEXT, PGB_UNKNOWN));
}
END_TEST

/* ---- fixed-size values ---- */

START_TEST(test_integers_bool_uuid)
{
	static const struct hex_case cases[] = {
	    {PGB_INT2, "0000", "0"},
	    {PGB_INT2, "8000", "-32768"},
	    {PGB_INT2, "7fff", "32767"},
	    {PGB_INT2, "ffff", "-1"},
	    {PGB_INT4, "80000000", "-2147483648"},
	    {PGB_INT4, "7fffffff", "2147483647"},
	    {PGB_INT4, "00000100", "256"},
	    {PGB_INT8, "8000000000000000", "-9223372036854775808"},
	    {PGB_INT8, "7fffffffffffffff", "9223372036854775807"},
	    {PGB_INT8, "ffffffffffffffff", "-1"},
	    {PGB_INT2, "00", NULL},
	    {PGB_INT2, "000000", NULL},
	    {PGB_INT4, "000000", NULL},
	    {PGB_INT4, "0000000000000000", NULL},
	    {PGB_INT8, "00000000", NULL},
	    {PGB_INT8, "", NULL},
	    {PGB_BOOL, "00", "f"},
	    {PGB_BOOL, "01", "t"},
	    {PGB_BOOL, "02", NULL},
	    {PGB_BOOL, "ff", NULL},
	    {PGB_BOOL, "", NULL},
	    {PGB_BOOL, "0100", NULL},
	    {PGB_UUID, "a0eebc999c0b4ef8bb6d6bb9bd380a11",
	     "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	    {PGB_UUID, "00000000000000000000000000000000",
	     "00000000-0000-0000-0000-000000000000"},
	    {PGB_UUID, "ffffffffffffffffffffffffffffffff",
	     "ffffffff-ffff-ffff-ffff-ffffffffffff"},
	    {PGB_UUID, "a0eebc999c0b4ef8bb6d6bb9bd380a", NULL},
	    {PGB_UUID, "a0eebc999c0b4ef8bb6d6bb9bd380a1100", NULL},
	    {PGB_UNKNOWN, "00000001", NULL},
	};

	run_hex_cases(cases, NCASES(cases));
}
END_TEST

START_TEST(test_floats)
{
	static const struct hex_case cases[] = {
	    {PGB_FLOAT8, "3ff0000000000000", "1"},
	    {PGB_FLOAT8, "3fb999999999999a", "0.10000000000000001"},
	    {PGB_FLOAT8, "0000000000000000", "0"},
	    {PGB_FLOAT8, "8000000000000000", "-0"},
	    {PGB_FLOAT8, "7fefffffffffffff", "1.7976931348623157e+308"},
	    {PGB_FLOAT8, "0000000000000001", "4.9406564584124654e-324"},
	    {PGB_FLOAT8, "8010000000000000", "-2.2250738585072014e-308"},
	    {PGB_FLOAT8, "7ff0000000000000", "Infinity"},
	    {PGB_FLOAT8, "fff0000000000000", "-Infinity"},
	    {PGB_FLOAT8, "7ff8000000000000", "NaN"},
	    /* NaNs the server would keep but a field cannot make */
	    {PGB_FLOAT8, "fff8000000000000", NULL},
	    {PGB_FLOAT8, "7ff8000000000001", NULL},
	    {PGB_FLOAT8, "7ff0000000000001", NULL},
	    {PGB_FLOAT8, "3ff00000", NULL},
	    {PGB_FLOAT8, "3ff000000000000000", NULL},
	    {PGB_FLOAT4, "3f800000", "1"},
	    {PGB_FLOAT4, "3dcccccd", "0.100000001"},
	    {PGB_FLOAT4, "80000000", "-0"},
	    {PGB_FLOAT4, "7f7fffff", "3.40282347e+38"},
	    {PGB_FLOAT4, "00000001", "1.40129846e-45"},
	    {PGB_FLOAT4, "7f800000", "Infinity"},
	    {PGB_FLOAT4, "ff800000", "-Infinity"},
	    {PGB_FLOAT4, "7fc00000", "NaN"},
	    {PGB_FLOAT4, "ffc00000", NULL},
	    {PGB_FLOAT4, "7fc00001", NULL},
	    {PGB_FLOAT4, "7f800001", NULL},
	    {PGB_FLOAT4, "3f8000", NULL},
	    {PGB_FLOAT4, "3ff0000000000000", NULL},
	};

	run_hex_cases(cases, NCASES(cases));
}
END_TEST

/* Every float4 read back with strtof is the same bits (a sample). */
START_TEST(test_float_round_trip)
{
	uint64_t r = 11;

	for (int i = 0; i < 200000; i++) {
		uint64_t bits = rng_next(&r);
		bool f4 = i % 2 == 0;
		uint8_t v[8];
		char err[200];
		char *f;

		if (f4)
			put_be32(v, (uint32_t)bits);
		else
			put_be64(v, bits);
		f = field_of(f4 ? PGB_FLOAT4 : PGB_FLOAT8, v, f4 ? 4 : 8, err,
		             sizeof(err));
		if (f == NULL)
			continue; /* NaNs with payloads */
		if (f4) {
			float x = strtof(f, NULL);
			uint32_t back;

			memcpy(&back, &x, 4);
			REQUIRE(back == (uint32_t)bits ||
			        strcmp(f, "NaN") == 0);
		} else {
			double x = strtod(f, NULL);
			uint64_t back;

			memcpy(&back, &x, 8);
			REQUIRE(back == bits || strcmp(f, "NaN") == 0);
		}
		free(f);
	}
}
END_TEST

/* ---- numeric ---- */

START_TEST(test_numeric)
{
	static const struct hex_case cases[] = {
	    /* ndigits weight sign dscale digits... */
	    {PGB_NUMERIC, "0000 0000 0000 0000", "0"},
	    {PGB_NUMERIC, "0000 0000 0000 0002", "0.00"},
	    {PGB_NUMERIC, "0000 0000 4000 0002", "0.00"},
	    {PGB_NUMERIC, "0002 0000 0000 0001 0001 1388", "1.5"},
	    {PGB_NUMERIC, "0003 0001 4000 0003 0001 0929 1a7c", "-12345.678"},
	    {PGB_NUMERIC, "0001 ffff 0000 0004 0001", "0.0001"},
	    {PGB_NUMERIC, "0001 fffe 0000 0008 0001", "0.00000001"},
	    {PGB_NUMERIC, "0001 fffe 4000 0009 0001", "-0.000000010"},
	    /* digits beyond dscale are dropped, as numeric_recv drops them */
	    {PGB_NUMERIC, "0003 0000 0000 0002 0001 0929 1770", "1.23"},
	    {PGB_NUMERIC, "0001 ffff 4000 0002 0001", "0.00"},
	    {PGB_NUMERIC, "0001 0003 0000 0000 0001", "1000000000000"},
	    {PGB_NUMERIC, "0001 0003 4000 0001 270f", "-9999000000000000.0"},
	    {PGB_NUMERIC, "0002 0001 0000 0000 0000 0005", "5"},
	    {PGB_NUMERIC, "0002 0000 0000 0000 0000 0005", "0"},
	    {PGB_NUMERIC, "0001 0000 0000 0000 270f", "9999"},
	    {PGB_NUMERIC, "0000 0000 c000 0000", "NaN"},
	    {PGB_NUMERIC, "0001 0005 c000 0003 0001", "NaN"},
	    {PGB_NUMERIC, "0000 0000 d000 0000", "Infinity"},
	    {PGB_NUMERIC, "0000 0000 f000 0000", "-Infinity"},
	    /* refused as numeric_recv refuses them */
	    {PGB_NUMERIC, "0001 0000 0000 0000 2710", NULL},
	    {PGB_NUMERIC, "0001 0000 0000 0000 ffff", NULL},
	    {PGB_NUMERIC, "0001 0000 c000 0000 2710", NULL},
	    {PGB_NUMERIC, "0000 0000 8000 0000", NULL},
	    {PGB_NUMERIC, "0000 0000 4001 0000", NULL},
	    {PGB_NUMERIC, "0000 0000 e000 0000", NULL},
	    {PGB_NUMERIC, "0000 0000 0000 4000", NULL},
	    {PGB_NUMERIC, "0000 0000 c000 ffff", NULL},
	    {PGB_NUMERIC, "0002 0000 0000 0000 0001", NULL},
	    {PGB_NUMERIC, "0001 0000 0000 0000 0001 0001", NULL},
	    {PGB_NUMERIC, "0000 0000 0000", NULL},
	    {PGB_NUMERIC, "", NULL},
	};

	run_hex_cases(cases, NCASES(cases));
}
END_TEST

/* The longest fields: weight 32767 and dscale 16383, zeros everywhere. */
START_TEST(test_numeric_extremes)
{
	uint8_t big[] = {0, 1, 0x7f, 0xff, 0, 0, 0, 0, 0, 1};
	uint8_t tiny[] = {0, 1, 0x80, 0, 0x40, 0, 0x3f, 0xff, 0, 1};
	uint8_t scale[] = {0, 1, 0, 0, 0x40, 0, 0x3f, 0xff, 0, 9};
	char err[200];
	char *f = field_of(PGB_NUMERIC, big, sizeof(big), err, sizeof(err));

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(strlen(f), 1 + 4 * 32767);
	ck_assert(f[0] == '1' && strspn(f + 1, "0") == 4 * 32767);
	free(f);
	f = field_of(PGB_NUMERIC, tiny, sizeof(tiny), err, sizeof(err));
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(strlen(f), 2 + 16383);
	ck_assert(strncmp(f, "0.", 2) == 0 && strspn(f + 2, "0") == 16383);
	free(f);
	f = field_of(PGB_NUMERIC, scale, sizeof(scale), err, sizeof(err));
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(strlen(f), 3 + 16383);
	ck_assert(strncmp(f, "-9.", 3) == 0 && strspn(f + 3, "0") == 16383);
	free(f);
}
END_TEST

/* ---- dates and times ---- */

START_TEST(test_dates)
{
	static const struct hex_case cases[] = {
	    {PGB_DATE, "00000000", "2000-01-01"},
	    {PGB_DATE, "ffffffff", "1999-12-31"},
	    {PGB_DATE, "0000003b", "2000-02-29"},    /* day 59 */
	    {PGB_DATE, "ffff718e", "1900-02-28"},    /* -36466 */
	    {PGB_DATE, "ffff718f", "1900-03-01"},    /* 1900: no leap day */
	    {PGB_DATE, "fff4dbf9", "0001-01-01"},    /* -730119 */
	    {PGB_DATE, "fff4dbf8", "0001-12-31 BC"}, /* year 0 */
	    {PGB_DATE, "fff4dac6", "0001-02-29 BC"}, /* year 0 is leap */
	    {PGB_DATE, "fff4da8b", "0001-01-01 BC"},
	    {PGB_DATE, "fff4da8a", "0002-12-31 BC"},
	    {PGB_DATE, "ffda97a7", "4714-11-24 BC"}, /* Julian day 0 */
	    {PGB_DATE, "ffda97a6", NULL},
	    {PGB_DATE, "7fda970c", "5874897-12-31"},
	    {PGB_DATE, "7fda970d", NULL},
	    {PGB_DATE, "7ffffffe", NULL},
	    {PGB_DATE, "80000001", NULL},
	    {PGB_DATE, "7fffffff", "infinity"},
	    {PGB_DATE, "80000000", "-infinity"},
	    {PGB_DATE, "000000", NULL},
	    {PGB_DATE, "0000000000", NULL},
	};

	run_hex_cases(cases, NCASES(cases));
}
END_TEST

START_TEST(test_timestamps)
{
	static const struct hex_case cases[] = {
	    {PGB_TIMESTAMP, "0000000000000000", "2000-01-01 00:00:00"},
	    {PGB_TIMESTAMP, "0000000000000001", "2000-01-01 00:00:00.000001"},
	    {PGB_TIMESTAMP, "ffffffffffffffff", "1999-12-31 23:59:59.999999"},
	    {PGB_TIMESTAMP, "0002b583416e1d20", "2024-02-29 12:34:56.5"},
	    {PGB_TIMESTAMP, "fd0f7cc1411fa000", "4714-11-24 00:00:00 BC"},
	    {PGB_TIMESTAMP, "fd0f7cc1411f9fff", NULL},
	    {PGB_TIMESTAMP, "ff1fe2ffc59c6000", "0001-01-01 00:00:00"},
	    {PGB_TIMESTAMP, "ff1fe2ffc59c5fff",
	     "0001-12-31 23:59:59.999999 BC"},
	    {PGB_TIMESTAMP, "7fffff5bb3b29fff", "294276-12-31 23:59:59.999999"},
	    {PGB_TIMESTAMP, "7fffff5bb3b2a000", NULL},
	    {PGB_TIMESTAMP, "7fffffffffffffff", "infinity"},
	    {PGB_TIMESTAMP, "8000000000000000", "-infinity"},
	    {PGB_TIMESTAMP, "7ffffffffffffffe", NULL},
	    {PGB_TIMESTAMP, "8000000000000001", NULL},
	    {PGB_TIMESTAMP, "00000000", NULL},
	    {PGB_TIMESTAMPTZ, "0000000000000000", "2000-01-01 00:00:00+00"},
	    {PGB_TIMESTAMPTZ, "0002b583416e1d20", "2024-02-29 12:34:56.5+00"},
	    {PGB_TIMESTAMPTZ, "ff1fe2ffc59c5fff",
	     "0001-12-31 23:59:59.999999+00 BC"},
	    {PGB_TIMESTAMPTZ, "fd0f7cc1411fa000", "4714-11-24 00:00:00+00 BC"},
	    {PGB_TIMESTAMPTZ, "7fffff5bb3b29fff",
	     "294276-12-31 23:59:59.999999+00"},
	    {PGB_TIMESTAMPTZ, "7fffff5bb3b2a000", NULL},
	    {PGB_TIMESTAMPTZ, "7fffffffffffffff", "infinity"},
	    {PGB_TIMESTAMPTZ, "8000000000000000", "-infinity"},
	    {PGB_TIMESTAMPTZ, "00000000000000000000", NULL},
	};

	run_hex_cases(cases, NCASES(cases));
}
END_TEST

/* "YYYY-MM-DD[ BC]" of a Unix time, from the C library's gmtime. */
static void reference_date(int64_t unix_secs, char *buf, size_t size)
{
	time_t t = (time_t)unix_secs;
	struct tm tm;
	int64_t y;

	REQUIRE(gmtime_r(&t, &tm) != NULL);
	y = (int64_t)tm.tm_year + 1900;
	snprintf(buf, size, "%04" PRId64 "-%02d-%02d%s", y <= 0 ? 1 - y : y,
	         tm.tm_mon + 1, tm.tm_mday, y <= 0 ? " BC" : "");
}

/* Every date, one in 9973 plus the ends, agrees with gmtime. */
START_TEST(test_dates_against_gmtime)
{
	for (int64_t d = -2451545; d < 2145031949; d += 9973) {
		int64_t day = d + 9973 >= 2145031949 ? 2145031948 : d;
		uint8_t v[4];
		char want[40], err[200];
		char *f;

		put_be32(v, (uint32_t)(int32_t)day);
		f = field_of(PGB_DATE, v, 4, err, sizeof(err));
		reference_date((day + 10957) * 86400, want, sizeof(want));
		REQUIRE(f != NULL && strcmp(f, want) == 0);
		free(f);
	}
}
END_TEST

/* Random instants in range: date, time and fraction against gmtime. */
START_TEST(test_timestamps_against_gmtime)
{
	uint64_t r = 1234;

	for (int i = 0; i < 100000; i++) {
		int64_t lo = -INT64_C(211813488000000000);
		uint64_t span = UINT64_C(9223371331200000000) + (uint64_t)-lo;
		int64_t ts = (int64_t)((uint64_t)lo + rng_next(&r) % span);
		int64_t secs = ts / 1000000 - (ts % 1000000 < 0);
		int64_t frac = ts - secs * 1000000;
		uint8_t v[8];
		char date[40], want[80], err[200];
		char *f, *bc;
		time_t t = (time_t)(secs + INT64_C(946684800));
		struct tm tm;

		put_be64(v, (uint64_t)ts);
		f = field_of(PGB_TIMESTAMP, v, 8, err, sizeof(err));
		REQUIRE(f != NULL && gmtime_r(&t, &tm) != NULL);
		reference_date(secs + INT64_C(946684800), date, sizeof(date));
		bc = strstr(date, " BC");
		if (bc != NULL)
			*bc = '\0';
		snprintf(want, sizeof(want), "%s %02d:%02d:%02d", date,
		         tm.tm_hour, tm.tm_min, tm.tm_sec);
		if (frac != 0) {
			size_t n = strlen(want);

			snprintf(want + n, sizeof(want) - n, ".%06" PRId64,
			         frac);
			while (want[strlen(want) - 1] == '0')
				want[strlen(want) - 1] = '\0';
		}
		if (bc != NULL)
			snprintf(want + strlen(want),
			         sizeof(want) - strlen(want), " BC");
		ck_assert_str_eq(f, want);
		free(f);
	}
}
END_TEST

/* ---- text-like values ---- */

START_TEST(test_texts)
{
	static const struct hex_case cases[] = {
	    {PGB_TEXT, "", ""},
	    {PGB_TEXT, "616263", "abc"},
	    /* a<TAB>b\c<LF>d<CR>e */
	    {PGB_TEXT, "6109625c630a640d65", "a\\tb\\\\c\\nd\\re"},
	    {PGB_TEXT, "5c4e", "\\\\N"},
	    {PGB_TEXT, "5c2e", "\\\\."},
	    {PGB_VARCHAR, "c3a9f09f9880", "\xc3\xa9\xf0\x9f\x98\x80"},
	    {PGB_BPCHAR, "61202020", "a   "},
	    {PGB_JSON, "7b2261223a2209227d", "{\"a\":\"\\t\"}"},
	    {PGB_TEXT, "610062", NULL},
	    {PGB_TEXT, "00", NULL},
	    {PGB_TEXT, "ff", NULL},
	    {PGB_TEXT, "c3", NULL},       /* truncated sequence */
	    {PGB_VARCHAR, "c0af", NULL},  /* overlong */
	    {PGB_BPCHAR, "eda080", NULL}, /* surrogate */
	    {PGB_JSON, "f4908080", NULL}, /* above U+10FFFF */
	    {PGB_JSONB, "017b7d", "{}"},
	    {PGB_JSONB, "015b225c5c225d", "[\"\\\\\\\\\"]"},
	    {PGB_JSONB, "01", ""},
	    {PGB_JSONB, "", NULL},
	    {PGB_JSONB, "027b7d", NULL},
	    {PGB_JSONB, "007b7d", NULL},
	    {PGB_JSONB, "017b00", NULL},
	    {PGB_BYTEA, "", "\\\\x"},
	    {PGB_BYTEA, "00ff5c0a09", "\\\\x00ff5c0a09"},
	    {PGB_BYTEA, "deadbeef", "\\\\xdeadbeef"},
	};
	struct evbuffer *b = evbuffer_new();
	char err[100];

	run_hex_cases(cases, NCASES(cases));
	/* a text parameter: the same checks and escapes */
	ck_assert(pgb_text_to_copy_text((const uint8_t *)"1\t2", 3, b, err,
	                                sizeof(err)));
	expect_buf(b, (const uint8_t *)"1\\t2", 4);
	ck_assert(!pgb_text_to_copy_text((const uint8_t *)"1\0", 2, b, err,
	                                 sizeof(err)));
	ck_assert(strstr(err, "zero byte") != NULL);
	ck_assert(!pgb_text_to_copy_text((const uint8_t *)"\xe2\x82", 2, b, err,
	                                 sizeof(err)));
	ck_assert(strstr(err, "UTF-8") != NULL);
	ck_assert(pgb_text_to_copy_text((const uint8_t *)"", 0, b, NULL, 0));
	expect_buf(b, (const uint8_t *)"1\\t2", 4);
	evbuffer_free(b);
}
END_TEST

/* ---- hostile input ---- */

/* Valid values whose every strict prefix is malformed. */
static const struct hex_case whole[] = {
    {PGB_BOOL, "01", "t"},
    {PGB_INT2, "8000", "-32768"},
    {PGB_INT4, "80000000", "-2147483648"},
    {PGB_INT8, "8000000000000000", "-9223372036854775808"},
    {PGB_FLOAT4, "80000000", "-0"},
    {PGB_FLOAT8, "7ff8000000000000", "NaN"},
    {PGB_NUMERIC, "0003 0001 4000 0003 0001 0929 1a7c", "-12345.678"},
    {PGB_NUMERIC, "0000 0000 d000 0000", "Infinity"},
    {PGB_DATE, "80000000", "-infinity"},
    {PGB_TIMESTAMP, "0000000000000001", "2000-01-01 00:00:00.000001"},
    {PGB_TIMESTAMPTZ, "7fffffffffffffff", "infinity"},
    {PGB_UUID, "a0eebc999c0b4ef8bb6d6bb9bd380a11",
     "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
    {PGB_JSONB, "01", ""},
};

START_TEST(test_every_truncation_is_refused)
{
	for (size_t i = 0; i < NCASES(whole); i++) {
		uint8_t v[64];
		size_t len = unhex(whole[i].hex, v, sizeof(v));
		char err[200];

		run_hex(&whole[i]);
		for (size_t n = 0; n < len; n++) {
			char *f =
			    field_of(whole[i].type, v, n, err, sizeof(err));

			ck_assert_msg(f == NULL, "%s: %zu of %zu bytes: \"%s\"",
			              pgb_type_name(whole[i].type), n, len, f);
		}
	}
}
END_TEST

/* A field is one COPY text field: it passes the row checker alone. */
static void check_field(const char *f)
{
	size_t n = strlen(f);
	char *row = malloc(n + 2);
	uint64_t rows;
	struct ct_error e;

	REQUIRE(row != NULL);
	memcpy(row, f, n);
	memcpy(row + n, "\n", 2);
	REQUIRE(ct_check_rows((const uint8_t *)row, n + 1, 1, &rows, &e) ==
	        CT_OK);
	REQUIRE(rows == 1);
	free(row);
}

/* Random bytes of every length up to 40 for every type, and the messages
 * fit any err buffer (even none). */
START_TEST(test_random_bytes)
{
	uint64_t r = 99;

	for (int i = 0; i < 300000; i++) {
		enum pgb_type t = (enum pgb_type)(i % (PGB_JSONB + 1));
		size_t len = rng_next(&r) % 41;
		uint8_t v[48];
		char err[200], tiny[4];
		struct evbuffer *b = evbuffer_new();
		char *f;

		for (size_t k = 0; k < len; k++)
			v[k] = (uint8_t)rng_next(&r);
		if (len >= 8 && t == PGB_NUMERIC) /* a plausible header */
			put_be16(v, (uint16_t)((len - 8) / 2));
		f = field_of(t, v, len, err, sizeof(err));
		if (f != NULL)
			check_field(f);
		free(f);
		REQUIRE(b != NULL);
		(void)pgb_binary_to_copy_text(t, v, len, b, tiny, sizeof(tiny));
		REQUIRE(strlen(tiny) < sizeof(tiny));
		(void)pgb_binary_to_copy_text(t, v, len, b, NULL, 0);
		evbuffer_free(b);
	}
}
END_TEST

static Suite *pgbinary_suite(void)
{
	Suite *s = suite_create("pgbinary");
	TCase *tc = tcase_create("cases");
	TCase *wide = tcase_create("wide");

	tcase_add_test(tc, test_oids_and_names);
	tcase_add_test(tc, test_param_fits);
	tcase_add_test(tc, test_integers_bool_uuid);
	tcase_add_test(tc, test_floats);
	tcase_add_test(tc, test_numeric);
	tcase_add_test(tc, test_numeric_extremes);
	tcase_add_test(tc, test_dates);
	tcase_add_test(tc, test_timestamps);
	tcase_add_test(tc, test_texts);
	tcase_add_test(tc, test_every_truncation_is_refused);
	suite_add_tcase(s, tc);
	tcase_add_test(wide, test_float_round_trip);
	tcase_add_test(wide, test_dates_against_gmtime);
	tcase_add_test(wide, test_timestamps_against_gmtime);
	tcase_add_test(wide, test_random_bytes);
	suite_add_tcase(s, wide);
	return s;
}

int main(void)
{
	return run_suite(pgbinary_suite());
}
