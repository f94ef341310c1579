/* test_sqllex.c: the SQL lexer against PostgreSQL's lexical rules, errors,
 * truncated and hostile input. */
#include "sqllex.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "testutil.h"

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

static const char *const kind_name[] = {
    [SQLX_T_END] = "end",       [SQLX_T_IDENT] = "id",
    [SQLX_T_QIDENT] = "qid",    [SQLX_T_STRING] = "str",
    [SQLX_T_BITSTRING] = "bit", [SQLX_T_NATIONAL] = "nat",
    [SQLX_T_INTEGER] = "int",   [SQLX_T_DECIMAL] = "dec",
    [SQLX_T_PARAM] = "par",     [SQLX_T_OP] = "op",
    [SQLX_T_TYPECAST] = "cast", [SQLX_T_PUNCT] = "p",
};

/*
 * All tokens of src[0..len) (lexed from an exact heap copy, so ASan sees
 * any overread) as "kind:text|kind:text", or "ERR:<rc>@<offset>" at the
 * end. Checks each token's span and value length on the way.
 */
static char *lex_str(const char *src, size_t len)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	struct evbuffer *out = evbuffer_new();
	struct sqlx_lexer *lx;
	struct sqlx_token t;
	enum sqlx_rc rc;
	size_t prev_end = 0;
	char *s;

	REQUIRE(copy != NULL && out != NULL);
	if (len > 0)
		memcpy(copy, src, len);
	lx = sqlx_lexer_new(copy, len);
	REQUIRE(lx != NULL);
	while ((rc = sqlx_next(lx, &t)) == SQLX_OK && t.kind != SQLX_T_END) {
		REQUIRE(t.start >= prev_end && t.end > t.start && t.end <= len);
		REQUIRE(strlen(t.text) == t.len);
		prev_end = t.end;
		evbuffer_add_printf(out, "%s%s:%s",
		                    evbuffer_get_length(out) ? "|" : "",
		                    kind_name[t.kind], t.text);
	}
	if (rc != SQLX_OK) {
		size_t off = sqlx_error_offset(lx);

		evbuffer_add_printf(out, "%sERR:%d@%zu",
		                    evbuffer_get_length(out) ? "|" : "", rc,
		                    off);
		/* Sticky: the same error again. */
		REQUIRE(sqlx_next(lx, &t) == rc);
	} else {
		REQUIRE(t.start == len && sqlx_next(lx, &t) == SQLX_OK &&
		        t.kind == SQLX_T_END);
	}
	sqlx_lexer_free(lx);
	free(copy);
	evbuffer_add(out, "", 1);
	s = strdup((char *)evbuffer_pullup(out, -1));
	evbuffer_free(out);
	return s;
}

struct lex_case {
	const char *src;
	const char *want;
};

static void run_cases(const struct lex_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *got = lex_str(c[i].src, strlen(c[i].src));

		ck_assert_msg(strcmp(got, c[i].want) == 0,
		              "lex [%s]: got [%s], want [%s]", c[i].src, got,
		              c[i].want);
		free(got);
	}
}

/* The error code lex_str reports, or -1 for none. */
static int lex_err(const char *src, size_t len)
{
	char *got = lex_str(src, len);
	char *e = strstr(got, "ERR:");
	int rc = e != NULL ? atoi(e + 4) : -1;

	free(got);
	return rc;
}

START_TEST(test_identifiers)
{
	static const struct lex_case cases[] = {
	    {"INSERT INTO Ev", "id:insert|id:into|id:ev"},
	    {"\"Ev\" \"we\"\"ird\"", "qid:Ev|qid:we\"ird"},
	    {"a$b _x1 x9$", "id:a$b|id:_x1|id:x9$"},
	    {"\xc3\x89T\xc3\xa9", "id:\xc3\x89t\xc3\xa9"}, /* ASCII only */
	    {"\"a b\".\"C\"", "qid:a b|p:.|qid:C"},
	    {"\"\"\"\"", "qid:\""},
	    {"U&\"d\\0061t\\+000061\"", "qid:data"},
	    {"u&\"d!0061\" UESCAPE '!'", "qid:da"},
	    {"ab$$x$$", "id:ab$$x$$"},
	    {"", ""},
	    {"   \t\n\r\f ", ""},
	};

	run_cases(cases, NCASES(cases));
	ck_assert_int_eq(lex_err("\"abc", 4), SQLX_E_UNTERMINATED_QIDENT);
	ck_assert_int_eq(lex_err("\"\"", 2), SQLX_E_EMPTY_QIDENT);
	ck_assert_int_eq(lex_err("U&\"\"", 4), SQLX_E_EMPTY_QIDENT);
	ck_assert_int_eq(lex_err("U&\"\\0000\"", 9), SQLX_E_BAD_UNICODE);
}
END_TEST

START_TEST(test_comments)
{
	static const struct lex_case cases[] = {
	    {"a -- c\nb /* x /* nested */ y */ c", "id:a|id:b|id:c"},
	    {"a--c", "id:a"},
	    {"a/**/b", "id:a|id:b"},
	    {"/* ' \" $$ */x", "id:x"},
	    {"-- only a comment", ""},
	    {"a -- c\rb", "id:a|id:b"},
	    {"/*/ */x", "id:x"},
	};

	run_cases(cases, NCASES(cases));
	ck_assert_int_eq(lex_err("a /* b", 6), SQLX_E_UNTERMINATED_COMMENT);
	ck_assert_int_eq(lex_err("/* /* */", 8), SQLX_E_UNTERMINATED_COMMENT);
	ck_assert_int_eq(lex_err("/*", 2), SQLX_E_UNTERMINATED_COMMENT);
}
END_TEST

START_TEST(test_plain_strings)
{
	static const struct lex_case cases[] = {
	    {"'it''s'", "str:it's"},
	    {"'a\\b'", "str:a\\b"}, /* standard_conforming_strings */
	    {"''", "str:"},
	    {"'a;b'", "str:a;b"},
	    {"'a'\n'b'", "str:ab"},
	    {"'a' 'b'", "str:a|str:b"},
	    {"'a' -- c\n 'b'", "str:ab"},
	    {"'a' /* c */\n'b'", "str:a|str:b"},
	    {"'a'\n\n  'b'\n'c'", "str:abc"},
	    {"'a'\r\n'b'", "str:ab"},
	    {"'a'\n-- x\n'b'", "str:ab"},
	    {"'\xc3\xa9\v'", "str:\xc3\xa9\v"},
	};

	run_cases(cases, NCASES(cases));
	ck_assert_int_eq(lex_err("'abc", 4), SQLX_E_UNTERMINATED_STRING);
	ck_assert_int_eq(lex_err("'a'\n'b", 6), SQLX_E_UNTERMINATED_STRING);
	ck_assert_int_eq(lex_err("'", 1), SQLX_E_UNTERMINATED_STRING);
}
END_TEST

START_TEST(test_escape_strings)
{
	static const struct lex_case cases[] = {
	    {"E'\\n\\t\\b\\f\\r\\\\\\''", "str:\n\t\b\f\r\\'"},
	    {"e'a''b'", "str:a'b"},
	    {"E'\\101\\60\\1'", "str:A0\x01"},
	    {"E'\\x41\\x4a\\x4'", "str:AJ\x04"},
	    {"E'\\xZ'", "str:xZ"},
	    {"E'\\q\\''", "str:q'"},
	    {"E'\\u00e9'", "str:\xc3\xa9"},
	    {"E'\\U0001F600'", "str:\xf0\x9f\x98\x80"},
	    {"E'\\uD83D\\uDE00'", "str:\xf0\x9f\x98\x80"},
	    {"E'\\xc3\\xa9'", "str:\xc3\xa9"},
	    {"E'\\n'\n'\\t'", "str:\n\t"}, /* continues as E'' */
	    {"E'a'E'b'", "str:a|str:b"},
	};

	run_cases(cases, NCASES(cases));
	ck_assert_int_eq(lex_err("E'\\u12'", 7), SQLX_E_BAD_UNICODE);
	ck_assert_int_eq(lex_err("E'\\U0001F60'", 12), SQLX_E_BAD_UNICODE);
	ck_assert_int_eq(lex_err("E'\\uD83D'", 9), SQLX_E_BAD_UNICODE);
	ck_assert_int_eq(lex_err("E'\\uD83Dx'", 10), SQLX_E_BAD_UNICODE);
	ck_assert_int_eq(lex_err("E'\\uDE00'", 9), SQLX_E_BAD_UNICODE);
	ck_assert_int_eq(lex_err("E'\\u0000'", 9), SQLX_E_BAD_UNICODE);
	ck_assert_int_eq(lex_err("E'\\U00110000'", 13), SQLX_E_BAD_UNICODE);
	ck_assert_int_eq(lex_err("E'\\0'", 5), SQLX_E_NUL);
	ck_assert_int_eq(lex_err("E'\\400'", 7), SQLX_E_NUL);
	ck_assert_int_eq(lex_err("E'\\xff'", 7), SQLX_E_BAD_UTF8);
	ck_assert_int_eq(lex_err("E'\\xc3'", 7), SQLX_E_BAD_UTF8);
	ck_assert_int_eq(lex_err("E'\\v'", 5), SQLX_E_BAD_ESCAPE);
	ck_assert_int_eq(lex_err("E'abc", 5), SQLX_E_UNTERMINATED_STRING);
	ck_assert_int_eq(lex_err("E'\\", 3), SQLX_E_UNTERMINATED_STRING);
	ck_assert_int_eq(lex_err("E'\\'", 4), SQLX_E_UNTERMINATED_STRING);
}
END_TEST

START_TEST(test_unicode_strings)
{
	static const struct lex_case cases[] = {
	    {"U&'d\\0061t\\+000061'", "str:data"},
	    {"U&'d!0061t!+000061' UESCAPE '!'", "str:data"},
	    {"U&'d!0061' /*c*/ uescape\n'!' x", "str:da|id:x"},
	    {"U&'\\\\'", "str:\\"},
	    {"U&'!!' UESCAPE '!'", "str:!"},
	    {"U&'\\D83D\\DE00'", "str:\xf0\x9f\x98\x80"},
	    {"U&'a''b'", "str:a'b"},
	    {"U&'a'\n'\\0062'", "str:ab"},
	    {"U&'x' uescapes", "str:x|id:uescapes"},
	};

	run_cases(cases, NCASES(cases));
	ck_assert_int_eq(lex_err("U&'\\zz'", 7), SQLX_E_BAD_ESCAPE);
	ck_assert_int_eq(lex_err("U&'\\12'", 7), SQLX_E_BAD_ESCAPE);
	ck_assert_int_eq(lex_err("U&'\\'", 5), SQLX_E_BAD_ESCAPE);
	ck_assert_int_eq(lex_err("U&'\\D83D'", 9), SQLX_E_BAD_UNICODE);
	ck_assert_int_eq(lex_err("U&'\\0000'", 9), SQLX_E_BAD_UNICODE);
	ck_assert_int_eq(lex_err("U&'\\+110000'", 12), SQLX_E_BAD_UNICODE);
	ck_assert_int_eq(lex_err("U&'x' UESCAPE 'a'", 17), SQLX_E_BAD_UESCAPE);
	ck_assert_int_eq(lex_err("U&'x' UESCAPE '+'", 17), SQLX_E_BAD_UESCAPE);
	ck_assert_int_eq(lex_err("U&'x' UESCAPE ' '", 17), SQLX_E_BAD_UESCAPE);
	ck_assert_int_eq(lex_err("U&'x' UESCAPE ''", 16), SQLX_E_BAD_UESCAPE);
	ck_assert_int_eq(lex_err("U&'x' UESCAPE '!!'", 18), SQLX_E_BAD_UESCAPE);
	ck_assert_int_eq(lex_err("U&'x' UESCAPE", 13), SQLX_E_BAD_UESCAPE);
	ck_assert_int_eq(lex_err("U&'x' UESCAPE x", 15), SQLX_E_BAD_UESCAPE);
	ck_assert_int_eq(lex_err("U&'x' UESCAPE '!'\n'?'", 21),
	                 SQLX_E_BAD_UESCAPE);
	ck_assert_int_eq(lex_err("U&'\\00e", 7), SQLX_E_UNTERMINATED_STRING);
}
END_TEST

START_TEST(test_dollar_quotes)
{
	static const struct lex_case cases[] = {
	    {"$$a$b$$", "str:a$b"},
	    {"$x$ $$ $y$ $x$", "str: $$ $y$ "},
	    {"$x$a$xx$b$x$", "str:a$xx$b"},
	    {"$_$x$_$", "str:x"},
	    {"$\xc3\xa9$x$\xc3\xa9$", "str:x"},
	    {"$$;'\"--/*$$", "str:;'\"--/*"},
	    {"$a", "p:$|id:a"},
	    {"$", "p:$"},
	    {"$1 $12 $65535", "par:$1|par:$12|par:$65535"},
	    {"$1$$x$$", "par:$1|str:x"},
	};

	run_cases(cases, NCASES(cases));
	ck_assert_int_eq(lex_err("$x$abc", 6), SQLX_E_UNTERMINATED_DOLLAR);
	ck_assert_int_eq(lex_err("$$abc$", 6), SQLX_E_UNTERMINATED_DOLLAR);
	ck_assert_int_eq(lex_err("$x$abc$X$", 9), SQLX_E_UNTERMINATED_DOLLAR);
	ck_assert_int_eq(lex_err("$0", 2), SQLX_E_BAD_PARAM);
	ck_assert_int_eq(lex_err("$65536", 6), SQLX_E_BAD_PARAM);
	ck_assert_int_eq(lex_err("$99999999999999999999", 21),
	                 SQLX_E_BAD_PARAM);
	ck_assert_int_eq(lex_err("$1a", 3), SQLX_E_BAD_PARAM);
	ck_assert_int_eq(lex_err("$1_0", 4), SQLX_E_BAD_PARAM);
}
END_TEST

START_TEST(test_numbers)
{
	static const struct lex_case cases[] = {
	    {"1 1.5 .5 1. 1e5 1.5E-3 1e+5 007",
	     "int:1|dec:1.5|dec:.5|dec:1.|dec:1e5|dec:1.5E-3|dec:1e+5|int:007"},
	    {"1..2", "int:1|p:.|dec:.2"},
	    {"1.e5", "dec:1.e5"},
	    {"1.5.6", "dec:1.5|dec:.6"},
	    {"(1,2)", "p:(|int:1|p:,|int:2|p:)"},
	    {"-1", "op:-|int:1"},
	    {"1$$x$$", "int:1|str:x"},
	};
	static const char *const junk[] = {"0x1F",  "1_000",    "1e",   "1e+",
	                                   "12abc", "1.5x",     "0o17", "0b101",
	                                   ".5e",   "1\xc3\xa9"};

	run_cases(cases, NCASES(cases));
	for (size_t i = 0; i < NCASES(junk); i++)
		ck_assert_msg(lex_err(junk[i], strlen(junk[i])) ==
		                  SQLX_E_NUMBER_JUNK,
		              "%s", junk[i]);
}
END_TEST

START_TEST(test_operators)
{
	static const struct lex_case cases[] = {
	    {"a=-1", "id:a|op:=|op:-|int:1"},
	    {"a<>b!=c", "id:a|op:<>|id:b|op:!=|id:c"},
	    {"a@-1", "id:a|op:@-|int:1"},
	    {"a+-1", "id:a|op:+|op:-|int:1"},
	    {"a--comment\n+b", "id:a|op:+|id:b"},
	    {"a+--c\nb", "id:a|op:+|id:b"},
	    {"a+/*c*/b", "id:a|op:+|id:b"},
	    {"a*/b", "id:a|op:*/|id:b"},
	    {"a::int", "id:a|cast:::|id:int"},
	    {"a:=1 : :", "id:a|op::=|int:1|p::|p::"},
	    {"'a'||'b'", "str:a|op:|||str:b"},
	    {"(),;[].", "p:(|p:)|p:,|p:;|p:[|p:]|p:."},
	    {"\\ { }", "p:\\|p:{|p:}"},
	    {"B'0101' x'FF' N'abc'", "bit:b0101|bit:xFF|nat:N|str:abc"},
	    {"b'1'\n'0'", "bit:b10"},
	};

	run_cases(cases, NCASES(cases));
	ck_assert_int_eq(lex_err("a\vb", 3), SQLX_E_BAD_CHAR);
	ck_assert_int_eq(lex_err("B'01", 4), SQLX_E_UNTERMINATED_STRING);
}
END_TEST

START_TEST(test_input_checks)
{
	size_t big = SQLX_MAX_INPUT + 1;
	char *p = malloc(big);

	ck_assert_int_eq(lex_err("a\0b", 3), SQLX_E_NUL);
	ck_assert_int_eq(lex_err("'a\0b'", 5), SQLX_E_NUL);
	ck_assert_int_eq(lex_err("\xff", 1), SQLX_E_BAD_UTF8);
	ck_assert_int_eq(lex_err("'\xc3'", 3), SQLX_E_BAD_UTF8);
	ck_assert_int_eq(lex_err("a \xed\xa0\x80", 5), SQLX_E_BAD_UTF8);
	REQUIRE(p != NULL);
	memset(p, ' ', big);
	ck_assert_int_eq(lex_err(p, big), SQLX_E_TOO_LONG);
	ck_assert_int_eq(lex_err(p, big - 1), -1);
	free(p);
}
END_TEST

START_TEST(test_spans_and_errors)
{
	const char *src = "  abc 'x'\n 'y' ;";
	struct sqlx_lexer *lx = sqlx_lexer_new((const uint8_t *)src, 16);
	struct sqlx_token t;

	ck_assert_int_eq(sqlx_next(lx, &t), SQLX_OK);
	ck_assert_uint_eq(t.start, 2);
	ck_assert_uint_eq(t.end, 5);
	ck_assert_int_eq(sqlx_next(lx, &t), SQLX_OK);
	ck_assert_int_eq(t.kind, SQLX_T_STRING);
	ck_assert_uint_eq(t.start, 6);
	ck_assert_uint_eq(t.end, 14);
	ck_assert_str_eq(t.text, "xy");
	ck_assert_int_eq(sqlx_next(lx, &t), SQLX_OK);
	ck_assert_uint_eq(t.start, 15);
	ck_assert_int_eq(sqlx_next(lx, &t), SQLX_OK);
	ck_assert_int_eq(t.kind, SQLX_T_END);
	ck_assert_uint_eq(sqlx_error_offset(lx), 0);
	sqlx_lexer_free(lx);
	lx = sqlx_lexer_new((const uint8_t *)"ab 'cd", 6);
	ck_assert_int_eq(sqlx_next(lx, &t), SQLX_OK);
	ck_assert_int_eq(sqlx_next(lx, &t), SQLX_E_UNTERMINATED_STRING);
	ck_assert_uint_eq(sqlx_error_offset(lx), 3);
	ck_assert_int_eq(sqlx_next(lx, &t), SQLX_E_UNTERMINATED_STRING);
	sqlx_lexer_free(lx);
	sqlx_lexer_free(NULL);
	for (int rc = SQLX_OK; rc <= SQLX_E_BAD_PARAM; rc++)
		ck_assert_str_ne(sqlx_rc_text((enum sqlx_rc)rc),
		                 "unknown error");
	ck_assert_str_eq(sqlx_rc_text((enum sqlx_rc)999), "unknown error");
}
END_TEST

START_TEST(test_keywords)
{
	static const char *const reserved[] = {
	    "select", "user",          "table",      "from",      "default",
	    "null",   "true",          "on",         "returning", "with",
	    "left",   "authorization", "system_user"};
	static const char *const free_words[] = {
	    "insert",  "copy", "excluded", "int", "values", "conflict",
	    "nothing", "csv",  "stdin",    "ev",  "Select"};

	for (size_t i = 0; i < NCASES(reserved); i++)
		ck_assert_msg(sqlx_keyword_reserved(reserved[i]), "%s",
		              reserved[i]);
	for (size_t i = 0; i < NCASES(free_words); i++)
		ck_assert_msg(!sqlx_keyword_reserved(free_words[i]), "%s",
		              free_words[i]);
}
END_TEST

/* Every prefix of valid input: a clean answer, never an overread. */
START_TEST(test_truncated_everywhere)
{
	static const char *const inputs[] = {
	    ("INSERT INTO \"Ev\" (a) VALUES (E'\\u00e9\\x41', U&'!0061' "
	     "UESCAPE "
	     "'!', $q$x$q$, -1.5e3, $1) /* c /* n */ */ -- t\n;"),
	    "'a'\n'b' \"q\"\"x\" 1..2 a::b @- $$ $a$ $$",
	    "E'\\uD83D\\uDE00' U&\"\\+01F600\" B'01' N'x'",
	};

	for (size_t i = 0; i < NCASES(inputs); i++) {
		size_t len = strlen(inputs[i]);

		ck_assert_int_eq(lex_err(inputs[i], len), -1);
		for (size_t cut = 0; cut < len; cut++)
			free(lex_str(inputs[i], cut));
	}
}
END_TEST

static char *repeat(const char *unit, size_t times, const char *tail)
{
	size_t u = strlen(unit), t = strlen(tail);
	char *p = malloc(u * times + t + 1);

	REQUIRE(p != NULL);
	for (size_t i = 0; i < times; i++)
		memcpy(p + i * u, unit, u);
	memcpy(p + u * times, tail, t + 1);
	return p;
}

/* Concatenation of a and b, on the heap. */
static char *concat(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	char *p = malloc(na + nb + 1);

	REQUIRE(p != NULL);
	memcpy(p, a, na);
	memcpy(p + na, b, nb + 1);
	return p;
}

START_TEST(test_hostile)
{
	char *open = repeat("/*", 100000, "");
	char *closes = repeat("*/", 100000, "x");
	char *nested = concat(open, closes);
	char *longid = repeat("a", 1 << 20, "");
	char *quotes = repeat("''", 1 << 19, "");
	char *escapes = repeat("\\u00e9", 1 << 16, "'");
	char *e = concat("E'", escapes);
	char *got;

	ck_assert_int_eq(lex_err(open, strlen(open)),
	                 SQLX_E_UNTERMINATED_COMMENT);
	got = lex_str(nested, strlen(nested));
	ck_assert_str_eq(got, "id:x");
	free(got);
	got = lex_str(longid, strlen(longid));
	ck_assert_uint_eq(strlen(got), (1u << 20) + 3);
	free(got);
	got = lex_str(quotes, strlen(quotes)); /* '''' ...: strings */
	REQUIRE(strstr(got, "ERR") == NULL);
	free(got);
	ck_assert_int_eq(lex_err(e, strlen(e)), -1);
	free(open);
	free(closes);
	free(nested);
	free(longid);
	free(quotes);
	free(escapes);
	free(e);
}
END_TEST

static Suite *sqllex_suite(void)
{
	Suite *s = suite_create("sqllex");
	TCase *c = tcase_create("cases");

	tcase_add_test(c, test_identifiers);
	tcase_add_test(c, test_comments);
	tcase_add_test(c, test_plain_strings);
	tcase_add_test(c, test_escape_strings);
	tcase_add_test(c, test_unicode_strings);
	tcase_add_test(c, test_dollar_quotes);
	tcase_add_test(c, test_numbers);
	tcase_add_test(c, test_operators);
	tcase_add_test(c, test_input_checks);
	tcase_add_test(c, test_spans_and_errors);
	tcase_add_test(c, test_keywords);
	tcase_add_test(c, test_truncated_everywhere);
	tcase_add_test(c, test_hostile);
	suite_add_tcase(s, c);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sqllex_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
