/* test_copytext.c: COPY text row checks against exact cases and a slow
 * reference. */
#include "copytext.h"
#include "utf8.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

/* Runs the checker on an exact heap copy, so ASan sees any overread. */
static enum ct_rc check_copy(const void *data, size_t len, unsigned ncols,
                             uint64_t *rows, struct ct_error *err)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	enum ct_rc rc;

	REQUIRE(copy != NULL);
	if (len > 0)
		memcpy(copy, data, len);
	rc = ct_check_rows(copy, len, ncols, rows, err);
	free(copy);
	return rc;
}

struct row_case {
	const char *data;
	size_t len; /* 0: strlen(data) */
	unsigned ncols;
	enum ct_rc rc;
	uint64_t rows; /* good rows */
	size_t offset; /* for errors */
};

static void run_case(const struct row_case *c)
{
	size_t len = c->len != 0 ? c->len : strlen(c->data);
	struct ct_error err;
	uint64_t rows = 99;
	enum ct_rc rc = check_copy(c->data, len, c->ncols, &rows, &err);

	ck_assert_msg(rc == c->rc, "\"%s\": rc %d, want %d", c->data, rc,
	              c->rc);
	ck_assert_uint_eq(rows, c->rows);
	if (rc != CT_OK) {
		ck_assert_int_eq(err.rc, rc);
		ck_assert_uint_eq(err.row, c->rows + 1);
		ck_assert_msg(err.offset == c->offset,
		              "\"%s\": offset %zu, want %zu", c->data,
		              err.offset, c->offset);
	}
}

static void run_cases(const struct row_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++)
		run_case(&cases[i]);
}

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

/* ---- exact cases ---- */

START_TEST(test_good_rows)
{
	static const struct row_case cases[] = {
	    {"a\n", 0, 1, CT_OK, 1, 0},
	    {"\n", 0, 1, CT_OK, 1, 0}, /* one empty field */
	    {"\t\t\n", 0, 3, CT_OK, 1, 0},
	    {"1\tx\n2\ty\n3\tz\n", 0, 2, CT_OK, 3, 0},
	    {"\\N\t\\N\n", 0, 2, CT_OK, 1, 0},
	    {"\\N\n", 0, 1, CT_OK, 1, 0},
	    {"a\\\\b\\t\\n\\r\\b\\f\\v\n", 0, 1, CT_OK, 1, 0},
	    {"\\\\N\n", 0, 1, CT_OK, 1, 0}, /* backslash then N: text */
	    {"x\t\\N\ty\n", 0, 3, CT_OK, 1, 0},
	    {"{1,2,NULL}\t\\\\x00ff\n", 0, 2, CT_OK, 1, 0},
	};

	run_cases(cases, NCASES(cases));
}
END_TEST

START_TEST(test_field_count)
{
	static const struct row_case cases[] = {
	    {"a\tb\n", 0, 1, CT_FIELD_COUNT, 0, 1}, /* the extra tab */
	    {"a\n", 0, 2, CT_FIELD_COUNT, 0, 1},    /* the early newline */
	    {"a\tb\nc\n", 0, 2, CT_FIELD_COUNT, 1, 5},
	    {"\t\n", 0, 1, CT_FIELD_COUNT, 0, 0},
	    {"\t\t\t\n", 0, 3, CT_FIELD_COUNT, 0, 2},
	    {"a\n", 0, 0, CT_FIELD_COUNT, 0, 1},
	};

	run_cases(cases, NCASES(cases));
}
END_TEST

START_TEST(test_bad_escapes)
{
	static const struct row_case cases[] = {
	    {"\\0\n", 0, 1, CT_BAD_ESCAPE, 0, 0},
	    {"ab\\123\n", 0, 1, CT_BAD_ESCAPE, 0, 2},
	    {"\\x41\n", 0, 1, CT_BAD_ESCAPE, 0, 0},
	    {"\\.\n", 0, 1, CT_BAD_ESCAPE, 0, 0},
	    {"ok\n\\a\n", 0, 1, CT_BAD_ESCAPE, 1, 3},
	    {"a\\", 0, 1, CT_BAD_ESCAPE, 0, 1},  /* backslash at the end */
	    {"\\\n", 0, 1, CT_BAD_ESCAPE, 0, 0}, /* backslash-newline */
	    {"\\\t\n", 0, 2, CT_BAD_ESCAPE, 0, 0},
	    {"\\n\\", 0, 1, CT_BAD_ESCAPE, 0, 2},
	};

	run_cases(cases, NCASES(cases));
}
END_TEST

START_TEST(test_misplaced_null)
{
	static const struct row_case cases[] = {
	    {"a\\N\n", 0, 1, CT_MISPLACED_NULL, 0, 1},
	    {"\\Na\n", 0, 1, CT_MISPLACED_NULL, 0, 0},
	    {"\\N\\N\n", 0, 1, CT_MISPLACED_NULL, 0, 0},
	    {"x\t\\Nx\n", 0, 2, CT_MISPLACED_NULL, 0, 2},
	    {"\\\\\\N\n", 0, 1, CT_MISPLACED_NULL, 0, 2},
	};

	run_cases(cases, NCASES(cases));
}
END_TEST

START_TEST(test_nul_cr_newline)
{
	static const struct row_case cases[] = {
	    {"a\0b\n", 4, 1, CT_NUL, 0, 1},
	    {"a\n\0\n", 4, 1, CT_NUL, 1, 2},
	    {"a\r\n", 0, 1, CT_CR, 0, 1},
	    {"\r", 0, 1, CT_CR, 0, 0},
	    {"", 0, 1, CT_NO_NEWLINE, 0, 0},
	    {"a", 0, 1, CT_NO_NEWLINE, 0, 1},
	    {"a\nb", 0, 1, CT_NO_NEWLINE, 1, 3},
	    {"a\t", 0, 2, CT_NO_NEWLINE, 0, 2},
	    {"\\N", 0, 1, CT_NO_NEWLINE, 0, 2},
	};
	struct ct_error err;
	uint64_t rows;

	run_cases(cases, NCASES(cases));
	ck_assert_int_eq(ct_check_rows(NULL, 0, 1, &rows, &err), CT_NO_NEWLINE);
	ck_assert_uint_eq(err.row, 1);
	ck_assert_uint_eq(rows, 0);
}
END_TEST

START_TEST(test_utf8_accepted)
{
	static const struct row_case cases[] = {
	    {"caf\xc3\xa9\n", 0, 1, CT_OK, 1, 0},                /* 2 bytes */
	    {"\xe2\x82\xac\t\xe6\x97\xa5\n", 0, 2, CT_OK, 1, 0}, /* 3 */
	    {"\xf0\x9f\x98\x80\n", 0, 1, CT_OK, 1, 0},           /* 4 bytes */
	    {"\xc2\x80\xdf\xbf\n", 0, 1, CT_OK, 1, 0}, /* U+0080, U+07FF */
	    {"\xe0\xa0\x80\xed\x9f\xbf\n", 0, 1, CT_OK, 1, 0}, /* 0800 D7FF */
	    {"\xee\x80\x80\xef\xbf\xbf\n", 0, 1, CT_OK, 1, 0}, /* E000 FFFF */
	    {"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\n", 0, 1, CT_OK, 1, 0},
	    {"\xc3\xa9\\N\n", 0, 1, CT_MISPLACED_NULL, 0, 2},
	};

	run_cases(cases, NCASES(cases));
}
END_TEST

START_TEST(test_utf8_rejected)
{
	static const struct row_case cases[] = {
	    {"\x80\n", 0, 1, CT_BAD_UTF8, 0, 0}, /* stray continuation */
	    {"ab\xbf\n", 0, 1, CT_BAD_UTF8, 0, 2},
	    {"\xc0\x80\n", 0, 1, CT_BAD_UTF8, 0, 0},     /* overlong NUL */
	    {"\xc1\xbf\n", 0, 1, CT_BAD_UTF8, 0, 0},     /* overlong */
	    {"\xe0\x80\x80\n", 0, 1, CT_BAD_UTF8, 0, 0}, /* overlong */
	    {"\xe0\x9f\xbf\n", 0, 1, CT_BAD_UTF8, 0, 0}, /* overlong U+07FF */
	    {"\xf0\x8f\xbf\xbf\n", 0, 1, CT_BAD_UTF8, 0, 0}, /* overlong */
	    {"\xed\xa0\x80\n", 0, 1, CT_BAD_UTF8, 0, 0},     /* U+D800 */
	    {"x\xed\xbf\xbf\n", 0, 1, CT_BAD_UTF8, 0, 1},    /* U+DFFF */
	    {"\xf4\x90\x80\x80\n", 0, 1, CT_BAD_UTF8, 0, 0}, /* U+110000 */
	    {"\xf5\x80\x80\x80\n", 0, 1, CT_BAD_UTF8, 0, 0},
	    {"\xff\n", 0, 1, CT_BAD_UTF8, 0, 0},
	    {"\xfe\n", 0, 1, CT_BAD_UTF8, 0, 0},
	    {"\xc3", 0, 1, CT_BAD_UTF8, 0, 0}, /* cut by the end */
	    {"a\n\xe2\x82", 0, 1, CT_BAD_UTF8, 1, 2},
	    {"\xf0\x9f\x98", 0, 1, CT_BAD_UTF8, 0, 0},
	    {"\xe2\x82\tb\n", 0, 2, CT_BAD_UTF8, 0, 0},  /* cut by a tab */
	    {"\xf0\x9f\x98\n", 0, 1, CT_BAD_UTF8, 0, 0}, /* cut by newline */
	    {"\xc3\\t\n", 0, 1, CT_BAD_UTF8, 0, 0},
	    {"\xe2\x28\xa1\n", 0, 1, CT_BAD_UTF8, 0, 0},
	    {"\xe2\x82\x28\n", 0, 1, CT_BAD_UTF8, 0, 0},
	};

	run_cases(cases, NCASES(cases));
}
END_TEST

START_TEST(test_many_columns)
{
	/* 1600 fields: "0\t1\t...\t1599\n", then one field short and long. */
	size_t cap = 1600 * 6;
	char *row = malloc(cap);
	size_t len = 0;
	struct ct_error err;
	uint64_t rows;

	for (unsigned i = 0; i < 1600; i++)
		len += (size_t)snprintf(row + len, cap - len, "%u%c", i,
		                        i == 1599 ? '\n' : '\t');
	ck_assert_int_eq(check_copy(row, len, 1600, &rows, &err), CT_OK);
	ck_assert_uint_eq(rows, 1);
	ck_assert_int_eq(check_copy(row, len, 1599, &rows, &err),
	                 CT_FIELD_COUNT);
	ck_assert_uint_eq(err.offset, len - 6); /* the tab before 1599 */
	ck_assert_int_eq(check_copy(row, len, 1601, &rows, &err),
	                 CT_FIELD_COUNT);
	ck_assert_uint_eq(err.offset, len - 1);
	free(row);
}
END_TEST

START_TEST(test_row_numbers)
{
	static const char data[] = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\nx\ty\n";
	struct ct_error err;
	uint64_t rows;

	ck_assert_int_eq(check_copy(data, strlen(data), 1, &rows, &err),
	                 CT_FIELD_COUNT);
	ck_assert_uint_eq(rows, 10);
	ck_assert_uint_eq(err.row, 11);
	ck_assert_uint_eq(err.offset, 22);
	/* rows and err may be left out. */
	ck_assert_int_eq(
	    ct_check_rows((const uint8_t *)"a\n", 2, 1, NULL, NULL), CT_OK);
}
END_TEST

START_TEST(test_find_null_keys)
{
	static const bool key0[] = {true, false, false};
	static const bool key2[] = {false, false, true};
	static const char rows[] = "1\ta\tx\n2\t\\N\ty\n\\N\tb\t\\N\n";
	const uint8_t *d = (const uint8_t *)rows;
	unsigned field = 99;

	ck_assert_uint_eq(ct_find_null(d, strlen(rows), key0, 3, &field), 3);
	ck_assert_uint_eq(field, 0);
	ck_assert_uint_eq(ct_find_null(d, strlen(rows), key2, 3, &field), 3);
	ck_assert_uint_eq(field, 2);
	/* \N only as the whole field; "\\N" (a backslash, then N) is text. */
	ck_assert_uint_eq(
	    ct_find_null((const uint8_t *)"\\\\N\tb\tc\n", 8, key0, 3, &field),
	    0);
	ck_assert_uint_eq(ct_find_null(d, 0, key0, 3, &field), 0);
}
END_TEST

START_TEST(test_texts_and_states)
{
	ck_assert_str_eq(ct_rc_sqlstate(CT_BAD_UTF8), "22021");
	ck_assert_str_eq(ct_rc_sqlstate(CT_FIELD_COUNT), "22P04");
	ck_assert_str_eq(ct_rc_sqlstate(CT_CR), "22P04");
	ck_assert_str_eq(ct_rc_sqlstate(CT_NO_NEWLINE), "22P04");
	ck_assert_str_eq(ct_rc_text(CT_FIELD_COUNT), "wrong number of fields");
	for (int rc = CT_FIELD_COUNT; rc <= CT_MISPLACED_NULL; rc++) {
		ck_assert_str_ne(ct_rc_text((enum ct_rc)rc), "ok");
		ck_assert_str_ne(ct_rc_text((enum ct_rc)rc), "unknown error");
		ck_assert_str_ne(ct_rc_sqlstate((enum ct_rc)rc), "00000");
	}
}
END_TEST

/* ---- a slow, obviously-correct reference ---- */

/* Decodes one code point the textbook way; 0 length when invalid. */
static size_t ref_utf8(const uint8_t *p, size_t left)
{
	uint32_t cp, min;
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		n = 2, cp = p[0] & 0x1f, min = 0x80;
	} else if ((p[0] & 0xf0) == 0xe0) {
		n = 3, cp = p[0] & 0x0f, min = 0x800;
	} else if ((p[0] & 0xf8) == 0xf0) {
		n = 4, cp = p[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static enum ct_rc ref_fail(struct ct_error *e, enum ct_rc rc, uint64_t rows,
                           size_t at)
{
	e->rc = rc;
	e->row = rows + 1;
	e->offset = at;
	return rc;
}

static enum ct_rc ref_check(const uint8_t *d, size_t len, unsigned ncols,
                            uint64_t *rows, struct ct_error *e)
{
	unsigned fields = 1;
	size_t start = 0, i = 0;

	*rows = 0;
	while (i < len) {
		uint8_t b = d[i];

		if (b == 0)
			return ref_fail(e, CT_NUL, *rows, i);
		if (b == '\r')
			return ref_fail(e, CT_CR, *rows, i);
		if (b == '\t') {
			if (++fields > ncols)
				return ref_fail(e, CT_FIELD_COUNT, *rows, i);
			start = ++i;
		} else if (b == '\n') {
			if (fields != ncols)
				return ref_fail(e, CT_FIELD_COUNT, *rows, i);
			(*rows)++;
			fields = 1;
			start = ++i;
		} else if (b == '\\') {
			uint8_t n = i + 1 < len ? d[i + 1] : 0;

			if (i + 1 < len && n == 'N') {
				bool end = i + 2 == len || d[i + 2] == '\t' ||
				           d[i + 2] == '\n';
				if (i != start || !end)
					return ref_fail(e, CT_MISPLACED_NULL,
					                *rows, i);
			} else if (i + 1 >= len || !strchr("\\tnrbfv", n) ||
			           n == 0) {
				return ref_fail(e, CT_BAD_ESCAPE, *rows, i);
			}
			i += 2;
		} else {
			size_t n = ref_utf8(d + i, len - i);

			if (n == 0)
				return ref_fail(e, CT_BAD_UTF8, *rows, i);
			i += n;
		}
	}
	if (len == 0 || d[len - 1] != '\n' || start != len)
		return ref_fail(e, CT_NO_NEWLINE, *rows, len);
	return CT_OK;
}

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

/* Pieces that hit every branch: escapes, NULLs, every kind of UTF-8. */
static const char *const pieces[] = {
    "a",
    "xyz",
    "\t",
    "\n",
    "\n",
    "\\",
    "\\N",
    "\\t",
    "\\\\",
    "N",
    "\\x",
    "\\.",
    "\r",
    "\0",
    "\xc3\xa9",
    "\xe2\x82\xac",
    "\xf0\x9f\x98\x80",
    "\xed\xa0\x80",
    "\xc0\x80",
    "\xe2",
    "\x82",
    "\xf4\x90\x80\x80",
    "\xf4\x8f\xbf\xbf",
    "\xff",
    "0123456789",
};
static const size_t piece_len[] = {1, 3, 1, 1, 1, 1, 2, 2, 2, 1, 2, 2, 1,
                                   1, 2, 3, 4, 3, 2, 1, 1, 4, 4, 1, 10};

START_TEST(test_random_vs_reference)
{
	uint8_t buf[96];
	size_t np = sizeof(pieces) / sizeof(pieces[0]);
	long differ = 0, ok = 0;

	ck_assert_uint_eq(np, sizeof(piece_len) / sizeof(piece_len[0]));
	for (long iter = 0; iter < 300000; iter++) {
		size_t len = 0, want = rnd() % 24;
		unsigned ncols = 1 + rnd() % 3;
		struct ct_error e1 = {0}, e2 = {0};
		uint64_t r1, r2;
		enum ct_rc a, b;

		for (size_t k = 0; k < want; k++) {
			size_t p = rnd() % np;

			if (len + piece_len[p] > sizeof(buf))
				break;
			memcpy(buf + len, pieces[p], piece_len[p]);
			len += piece_len[p];
		}
		if (rnd() % 2 && len < sizeof(buf))
			buf[len++] = '\n';
		a = check_copy(buf, len, ncols, &r1, &e1);
		b = ref_check(buf, len, ncols, &r2, &e2);
		if (a != b || r1 != r2 ||
		    (a != CT_OK &&
		     (e1.row != e2.row || e1.offset != e2.offset)))
			differ++;
		ok += a == CT_OK;
	}
	ck_assert_int_eq(differ, 0);
	ck_assert_int_gt(ok, 1000); /* the loop also exercises good data */
}
END_TEST

START_TEST(test_utf8_exhaustive_short)
{
	uint8_t s[4];

	/* Every 1- and 2-byte string, and 3-byte strings with E0..EF leads. */
	for (unsigned a = 0; a < 256; a++) {
		s[0] = (uint8_t)a;
		REQUIRE(utf8_valid(s, 1) == (ref_utf8(s, 1) == 1));
		for (unsigned b = 0; b < 256; b++) {
			s[1] = (uint8_t)b;
			REQUIRE(utf8_seq_len(s, 2) == ref_utf8(s, 2));
		}
	}
	for (unsigned a = 0xe0; a < 0x100; a++) {
		for (unsigned b = 0x80; b < 0xc0; b++) {
			for (unsigned c = 0x70; c < 0xd0; c++) {
				s[0] = (uint8_t)a, s[1] = (uint8_t)b;
				s[2] = (uint8_t)c, s[3] = 0xbf;
				REQUIRE(utf8_seq_len(s, 4) == ref_utf8(s, 4));
			}
		}
	}
	ck_assert(utf8_valid((const uint8_t *)"", 0));
	ck_assert(!utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));
}
END_TEST

/* ---- throughput (printed, never asserted) ---- */

START_TEST(test_throughput)
{
	static const char row[] = "1234567\tspark-user-42\t2026-11-24 "
	                          "12:00:00.123456+00\t3.14159\t\\N\t"
	                          "caf\xc3\xa9 \xe2\x82\xac 10\n";
	size_t rlen = sizeof(row) - 1, total = 64u << 20;
	size_t nrows = total / rlen, len = nrows * rlen;
	uint8_t *data = malloc(len);
	struct timespec t0, t1;
	struct ct_error err;
	uint64_t rows;
	double secs;

	ck_assert_ptr_nonnull(data);
	for (size_t i = 0; i < nrows; i++)
		memcpy(data + i * rlen, row, rlen);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(ct_check_rows(data, len, 6, &rows, &err), CT_OK);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_uint_eq(rows, nrows);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("ct_check_rows: %.0f MB/s over %zu MiB (%zu rows of %zu "
	       "bytes)\n",
	       (double)len / 1e6 / (secs > 0 ? secs : 1e-9), len >> 20, nrows,
	       rlen);
	free(data);
}
END_TEST

/* CSV in, text rows out: the converted text and the bytes taken. */
static enum ct_rc csv(const char *in, char *out, size_t size, size_t *used)
{
	size_t n = strlen(in);
	uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees overreads */
	struct evbuffer *b = evbuffer_new();
	enum ct_rc rc;
	size_t len;

	REQUIRE(copy != NULL && b != NULL);
	memcpy(copy, in, n);
	rc = ct_csv_to_text(copy, n, b, used);
	len = evbuffer_get_length(b);
	REQUIRE(len < size);
	evbuffer_remove(b, out, len);
	out[len] = '\0';
	evbuffer_free(b);
	free(copy);
	return rc;
}

START_TEST(test_csv_to_text)
{
	static const struct {
		const char *in, *want;
		size_t used;
	} cases[] = {
	    {"1,a\n", "1\ta\n", 4},
	    {"1,\"\"\n", "1\t\n", 5}, /* quoted empty: '' */
	    {"1,\n", "1\t\\N\n", 3},  /* unquoted empty: NULL */
	    {",\n", "\\N\t\\N\n", 2},
	    {"\"a,b\",\"c\"\"d\"\n", "a,b\tc\"d\n", 13},
	    {"\"multi\nline\",x\n", "multi\\nline\tx\n", 15},
	    {"tab\there,back\\slash\n", "tab\\there\tback\\\\slash\n", 20},
	    {"a\"b,c\"d,e\n", "ab,cd\te\n", 10}, /* quotes mid-field */
	    {"\"cr\r\",x\n", "cr\\r\tx\n", 8}, /* a CR inside quotes is data */
	    {"1,a\n2,b", "1\ta\n", 4},         /* a partial record stays */
	    {"1,\"open\n2,b\n", "", 0},        /* still inside quotes */
	    {"", "", 0},
	};
	char out[256];
	size_t used;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(csv(cases[i].in, out, sizeof(out), &used),
		                 CT_OK);
		ck_assert_str_eq(out, cases[i].want);
		ck_assert_uint_eq(used, cases[i].used);
	}
	/* left to the server: \r\n line ends, the end-of-data marker */
	ck_assert_int_eq(csv("1,a\r\n", out, sizeof(out), &used), CT_CR);
	ck_assert_int_eq(csv("1,a\n\\.\n2,b\n", out, sizeof(out), &used),
	                 CT_BAD_ESCAPE);
	ck_assert_str_eq(out, "1\ta\n"); /* the records before it */
	ck_assert_uint_eq(used, 4);
}
END_TEST

/* Every prefix of a CSV input converts what is whole and nothing else,
 * and the whole equals the sum of the parts. */
START_TEST(test_csv_prefixes)
{
	static const char in[] = "1,\"a\"\"b\nc\",\n2,,\"\"\n3,x\"y\",\"z\"\n";
	char whole[256], part[256];
	size_t used, n = strlen(in);

	ck_assert_int_eq(csv(in, whole, sizeof(whole), &used), CT_OK);
	ck_assert_uint_eq(used, n);
	ck_assert_str_eq(whole, "1\ta\"b\\nc\t\\N\n2\t\\N\t\n3\txy\tz\n");
	for (size_t cut = 0; cut <= n; cut++) {
		char *prefix = strndup(in, cut);

		REQUIRE(prefix != NULL);
		ck_assert_int_eq(csv(prefix, part, sizeof(part), &used), CT_OK);
		ck_assert(used <= cut);
		ck_assert(strncmp(whole, part, strlen(part)) == 0);
		ck_assert(used == 0 || in[used - 1] == '\n');
		free(prefix);
	}
}
END_TEST

static Suite *copytext_suite(void)
{
	Suite *s = suite_create("copytext");
	TCase *cases = tcase_create("cases");
	TCase *random = tcase_create("random");

	tcase_add_test(cases, test_good_rows);
	tcase_add_test(cases, test_field_count);
	tcase_add_test(cases, test_bad_escapes);
	tcase_add_test(cases, test_misplaced_null);
	tcase_add_test(cases, test_nul_cr_newline);
	tcase_add_test(cases, test_utf8_accepted);
	tcase_add_test(cases, test_utf8_rejected);
	tcase_add_test(cases, test_many_columns);
	tcase_add_test(cases, test_row_numbers);
	tcase_add_test(cases, test_texts_and_states);
	tcase_add_test(cases, test_find_null_keys);
	tcase_add_test(cases, test_csv_to_text);
	tcase_add_test(cases, test_csv_prefixes);
	suite_add_tcase(s, cases);
	tcase_add_test(random, test_random_vs_reference);
	tcase_add_test(random, test_utf8_exhaustive_short);
	tcase_add_test(random, test_throughput);
	suite_add_tcase(s, random);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(copytext_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
