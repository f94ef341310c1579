/* test_userlist.c: PgBouncer's auth_file format, good lines and bad. */
#include "userlist.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static struct userlist *parse(const char *text, char *err, size_t errlen)
{
	return ul_parse(text, strlen(text), err, errlen);
}

START_TEST(test_good_file)
{
	const char *text = "; a comment\n"
	                   "# another\n"
	                   "\n"
	                   "\"alice\" \"SCRAM-SHA-256$4096:c2FsdA==$a:b\"\n"
	                   "  \"bob\"\t\"pa\"\"ss word\"  \r\n"
	                   "\"we\"\"ird\" \"\"\n"
	                   "\"last\" \"x\"";
	char err[200];
	struct userlist *ul = parse(text, err, sizeof(err));

	ck_assert_msg(ul != NULL, "%s", err);
	ck_assert_uint_eq(ul_count(ul), 4);
	ck_assert_str_eq(ul_secret(ul, "alice"),
	                 "SCRAM-SHA-256$4096:c2FsdA==$a:b");
	ck_assert_str_eq(ul_secret(ul, "bob"), "pa\"ss word");
	ck_assert_str_eq(ul_secret(ul, "we\"ird"), "");
	ck_assert_str_eq(ul_secret(ul, "last"), "x");
	ck_assert_ptr_null(ul_secret(ul, "Alice"));
	ck_assert_ptr_null(ul_secret(ul, "carol"));
	ul_free(ul);
}
END_TEST

START_TEST(test_bad_lines)
{
	static const struct {
		const char *text;
		const char *err;
	} bad[] = {
	    {"alice \"x\"\n", "line 1: expected the user name"},
	    {"\n\"alice\" x\n", "line 2: expected the secret"},
	    {"\"alice\" \"x\" junk\n", "line 1: unexpected text"},
	    {"\"alice\" \"x\n", "line 1: the secret's closing quote"},
	    {"\"alice\n", "line 1: the user name's closing quote"},
	    {"\"\" \"x\"\n", "line 1: empty user name"},
	    {"\"a\" \"x\"\n\"a\" \"y\"\n",
	     "line 2: user \"a\" is listed twice"},
	    {"\"a\" \"x\ty\"\n", "line 1: the secret has a control"},
	    {"\"a\"\"\n", "line 1: the user name's closing quote"},
	    {"\"a\"", "line 1: expected the secret"},
	};
	char err[200];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct userlist *ul = parse(bad[i].text, err, sizeof(err));

		ck_assert_msg(ul == NULL, "case %zu accepted", i);
		ck_assert_msg(strncmp(err, bad[i].err, strlen(bad[i].err)) == 0,
		              "case %zu: %s", i, err);
	}
	/* a NUL byte inside */
	ck_assert_ptr_null(ul_parse("\"a\" \"b\0\"\n", 9, err, sizeof(err)));
}
END_TEST

START_TEST(test_long_field)
{
	size_t n = UL_MAX_FIELD + 20;
	char *text = malloc(n + 16);
	char err[200];
	struct userlist *ul;

	/* exactly UL_MAX_FIELD bytes: fine; one more: refused */
	for (int extra = 0; extra <= 1; extra++) {
		size_t len = UL_MAX_FIELD + (size_t)extra;

		text[0] = '"';
		memset(text + 1, 'u', len);
		memcpy(text + 1 + len, "\" \"s\"", 6);
		ul = parse(text, err, sizeof(err));
		ck_assert_int_eq(ul != NULL, extra == 0);
		ul_free(ul);
	}
	free(text);
}
END_TEST

START_TEST(test_format_roundtrip)
{
	char *line = ul_format_line("we\"ird", "p\"\"w");
	char err[200];
	struct userlist *ul;

	ck_assert_str_eq(line, "\"we\"\"ird\" \"p\"\"\"\"w\"\n");
	ul = parse(line, err, sizeof(err));
	ck_assert_ptr_nonnull(ul);
	ck_assert_str_eq(ul_secret(ul, "we\"ird"), "p\"\"w");
	ul_free(ul);
	free(line);
}
END_TEST

/* Every prefix and random damage of a good file: no crash, no leak. */
START_TEST(test_hostile)
{
	const char *good = "\"alice\" \"pw\"\n\"bo\"\"b\" \"x\"\"y\"\n";
	size_t len = strlen(good);
	uint64_t r = 0x9e3779b97f4a7c15ull;
	char err[200];

	for (size_t cut = 0; cut <= len; cut++) {
		char *p = malloc(cut ? cut : 1);

		memcpy(p, good, cut);
		ul_free(ul_parse(p, cut, err, sizeof(err)));
		free(p);
	}
	for (int it = 0; it < 20000; it++) {
		char *p = malloc(len);

		memcpy(p, good, len);
		r ^= r << 13;
		r ^= r >> 7;
		r ^= r << 17;
		p[r % len] = (char)(r >> 32);
		ul_free(ul_parse(p, len, err, sizeof(err)));
		free(p);
	}
}
END_TEST

START_TEST(test_load_missing)
{
	char err[300];

	ck_assert_ptr_null(
	    ul_load("/nonexistent/userlist.txt", err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/userlist.txt"));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("userlist");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_good_file);
	tcase_add_test(tc, test_bad_lines);
	tcase_add_test(tc, test_long_field);
	tcase_add_test(tc, test_format_roundtrip);
	tcase_add_test(tc, test_hostile);
	tcase_add_test(tc, test_load_missing);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(suite());
}
