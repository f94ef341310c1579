/* test_sqlrec.c: the statement recognizer: every accepted form, the near
 * misses it must refuse, COPY fields of values, splitting, truncated and
 * hostile input. */
#include "sqlrec.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "copytext.h"
#include "testutil.h"

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

/* Recognizes an exact heap copy of sql[0..len), so ASan sees overreads. */
static enum sqlr_rc rec_n(const char *sql, size_t len, struct sqlr_stmt **st,
                          struct sqlr_why *why)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	enum sqlr_rc rc;

	REQUIRE(copy != NULL);
	if (len > 0)
		memcpy(copy, sql, len);
	rc = sqlr_recognize(copy, len, st, why);
	free(copy);
	REQUIRE(rc != SQLR_OK || (*st != NULL && why->reason == NULL));
	REQUIRE(rc == SQLR_OK || (*st == NULL && why->reason != NULL));
	return rc;
}

/* sql must be recognized; the caller frees the statement. */
static struct sqlr_stmt *must_accept(const char *sql)
{
	struct sqlr_stmt *st;
	struct sqlr_why why;
	enum sqlr_rc rc = rec_n(sql, strlen(sql), &st, &why);

	ck_assert_msg(rc == SQLR_OK, "[%s] refused: %s at %zu", sql, why.reason,
	              why.offset);
	return st;
}

/* sql must be refused, with a reason holding want (NULL: any). */
static void must_refuse(const char *sql, const char *want)
{
	struct sqlr_stmt *st;
	struct sqlr_why why;
	enum sqlr_rc rc = rec_n(sql, strlen(sql), &st, &why);

	ck_assert_msg(rc == SQLR_REFUSED, "[%s] accepted", sql);
	ck_assert_msg(want == NULL || strstr(why.reason, want) != NULL,
	              "[%s]: reason \"%s\", want \"%s\"", sql, why.reason,
	              want);
}

static void expect_value(const struct sqlr_stmt *st, size_t i,
                         enum sqlr_vkind kind, const char *text,
                         const char *type)
{
	const struct sqlr_value *v = &st->values[i];

	ck_assert_msg(v->kind == kind, "value %zu: kind %d, want %d", i,
	              v->kind, kind);
	ck_assert_str_eq(v->text, text);
	ck_assert_uint_eq(v->len, strlen(text));
	if (type == NULL)
		ck_assert_ptr_null(v->type);
	else
		ck_assert_str_eq(v->type, type);
}

/* ---- INSERT ---- */

START_TEST(test_insert_values)
{
	struct sqlr_stmt *st = must_accept(
	    "INSERT INTO ev VALUES (1, 'a', NULL, TRUE, false, -2.5, $1, "
	    "+7, - 3, E'x\\ty', U&'\\0041', $$d$q$$, 1e3, -0.0)");

	ck_assert_int_eq(st->kind, SQLR_INSERT);
	ck_assert_ptr_null(st->schema);
	ck_assert_str_eq(st->table, "ev");
	ck_assert_ptr_null(st->alias);
	ck_assert_uint_eq(st->ncols, 0);
	ck_assert_uint_eq(st->nrows, 1);
	ck_assert_uint_eq(st->width, 14);
	ck_assert_int_eq(st->conflict, SQLR_NO_CONFLICT);
	ck_assert_uint_eq(st->max_param, 1);
	expect_value(st, 0, SQLR_V_INTEGER, "1", NULL);
	expect_value(st, 1, SQLR_V_STRING, "a", NULL);
	expect_value(st, 2, SQLR_V_NULL, "", NULL);
	expect_value(st, 3, SQLR_V_BOOL, "t", NULL);
	expect_value(st, 4, SQLR_V_BOOL, "f", NULL);
	expect_value(st, 5, SQLR_V_DECIMAL, "-2.5", NULL);
	expect_value(st, 6, SQLR_V_PARAM, "", NULL);
	ck_assert_uint_eq(st->values[6].param, 1);
	expect_value(st, 7, SQLR_V_INTEGER, "7", NULL);
	expect_value(st, 8, SQLR_V_INTEGER, "-3", NULL);
	expect_value(st, 9, SQLR_V_STRING, "x\ty", NULL);
	expect_value(st, 10, SQLR_V_STRING, "A", NULL);
	expect_value(st, 11, SQLR_V_STRING, "d$q", NULL);
	expect_value(st, 12, SQLR_V_DECIMAL, "1e3", NULL);
	expect_value(st, 13, SQLR_V_DECIMAL, "0.0", NULL); /* no -0 */
	sqlr_stmt_free(st);
}
END_TEST

START_TEST(test_insert_names)
{
	struct sqlr_stmt *st = must_accept("insert into Public.\"Ev\" as E (a, "
	                                   "\"B\", \"we\"\"ird\") values "
	                                   "($1, $2, $3), ($4, $5, $6);");

	ck_assert_str_eq(st->schema, "public");
	ck_assert_str_eq(st->table, "Ev");
	ck_assert_str_eq(st->alias, "e");
	ck_assert_uint_eq(st->ncols, 3);
	ck_assert_str_eq(st->cols[0], "a");
	ck_assert_str_eq(st->cols[1], "B");
	ck_assert_str_eq(st->cols[2], "we\"ird");
	ck_assert_uint_eq(st->nrows, 2);
	ck_assert_uint_eq(st->width, 3);
	ck_assert_uint_eq(st->max_param, 6);
	ck_assert_uint_eq(st->values[4].param, 5);
	sqlr_stmt_free(st);
	st = must_accept("INSERT INTO EV VALUES (1)");
	ck_assert_str_eq(st->table, "ev"); /* folded: the same as ev */
	sqlr_stmt_free(st);
	st = must_accept("INSERT INTO \"EV\" VALUES (1)");
	ck_assert_str_eq(st->table, "EV"); /* quoted: not ev */
	sqlr_stmt_free(st);
	st = must_accept("INSERT INTO int (values, conflict) VALUES (1, 2)");
	ck_assert_str_eq(st->cols[0], "values"); /* not reserved */
	sqlr_stmt_free(st);
	st = must_accept("INSERT INTO \"user\" (\"select\") VALUES (1)");
	ck_assert_str_eq(st->table, "user");
	sqlr_stmt_free(st);
}
END_TEST

START_TEST(test_insert_typed_values)
{
	struct sqlr_stmt *st = must_accept(
	    "INSERT INTO t VALUES ('1'::int, CAST('2020-01-01' AS timestamp "
	    "WITH TIME ZONE), timestamp '2020-01-02', 'x'::character "
	    "varying(10), '{}'::INT[], 'y'::pg_catalog.text, $2::jsonb, "
	    "NULL::int, double precision '1.5', 'z'::\"My \"\"Type\", "
	    "interval '1 day', CAST($1 AS numeric(10,2)), CAST(NULL AS date), "
	    "'w'::national char varying, '{{1}}'::int[3][], "
	    "'t'::time(3) without time zone, 'b'::bit varying(4), E'e'::text, "
	    "'c'::char(2))");

	expect_value(st, 0, SQLR_V_STRING, "1", "int");
	expect_value(st, 1, SQLR_V_STRING, "2020-01-01",
	             "timestamp with time zone");
	expect_value(st, 2, SQLR_V_STRING, "2020-01-02", "timestamp");
	expect_value(st, 3, SQLR_V_STRING, "x", "character varying(10)");
	expect_value(st, 4, SQLR_V_STRING, "{}", "int[]");
	expect_value(st, 5, SQLR_V_STRING, "y", "pg_catalog.text");
	expect_value(st, 6, SQLR_V_PARAM, "", "jsonb");
	expect_value(st, 7, SQLR_V_NULL, "", "int");
	expect_value(st, 8, SQLR_V_STRING, "1.5", "double precision");
	expect_value(st, 9, SQLR_V_STRING, "z", "\"My \"\"Type\"");
	expect_value(st, 10, SQLR_V_STRING, "1 day", "interval");
	expect_value(st, 11, SQLR_V_PARAM, "", "numeric(10,2)");
	expect_value(st, 12, SQLR_V_NULL, "", "date");
	expect_value(st, 13, SQLR_V_STRING, "w", "national char varying");
	expect_value(st, 14, SQLR_V_STRING, "{{1}}", "int[3][]");
	expect_value(st, 15, SQLR_V_STRING, "t", "time(3) without time zone");
	expect_value(st, 16, SQLR_V_STRING, "b", "bit varying(4)");
	expect_value(st, 17, SQLR_V_STRING, "e", "text");
	expect_value(st, 18, SQLR_V_STRING, "c", "char(2)");
	ck_assert_uint_eq(st->max_param, 2);
	sqlr_stmt_free(st);
}
END_TEST

START_TEST(test_insert_conflict)
{
	struct sqlr_stmt *st = must_accept(
	    "INSERT INTO t (a, b, \"C\") VALUES (1, 2, 3) ON CONFLICT (a) DO "
	    "UPDATE SET b = EXCLUDED.b, \"C\" = \"excluded\".\"C\"");

	ck_assert_int_eq(st->conflict, SQLR_DO_UPDATE);
	ck_assert_uint_eq(st->nkeys, 1);
	ck_assert_str_eq(st->keys[0], "a");
	ck_assert_uint_eq(st->nset, 2);
	ck_assert_str_eq(st->set_cols[0], "b");
	ck_assert_str_eq(st->set_cols[1], "C");
	sqlr_stmt_free(st);
	st = must_accept(
	    "insert into t values (1,2) on conflict (a, b) do nothing;");
	ck_assert_int_eq(st->conflict, SQLR_DO_NOTHING);
	ck_assert_uint_eq(st->nkeys, 2);
	ck_assert_str_eq(st->keys[1], "b");
	ck_assert_uint_eq(st->nset, 0);
	sqlr_stmt_free(st);
	st = must_accept(
	    "INSERT INTO t AS x VALUES (1) ON CONFLICT (a) DO UPDATE "
	    "SET a = excluded . a");
	ck_assert_str_eq(st->alias, "x");
	sqlr_stmt_free(st);
}
END_TEST

START_TEST(test_insert_comments_everywhere)
{
	struct sqlr_stmt *st = must_accept(
	    "/*a*/INSERT/*b*/INTO--c\n t/**/(/*x*/a/*y*/)VALUES(/*x*/';'/*y*/"
	    ")--end\n;/* trailing */ ; -- done");

	ck_assert_str_eq(st->table, "t");
	expect_value(st, 0, SQLR_V_STRING, ";", NULL);
	sqlr_stmt_free(st);
	st = must_accept("INSERT INTO t VALUES ('a;b', $x$;$x$, E'\\';', 'c'\n"
	                 "'d', \"x\"'e')");
	expect_value(st, 0, SQLR_V_STRING, "a;b", NULL);
	expect_value(st, 1, SQLR_V_STRING, ";", NULL);
	expect_value(st, 2, SQLR_V_STRING, "';", NULL);
	expect_value(st, 3, SQLR_V_STRING, "cd", NULL);
	expect_value(st, 4, SQLR_V_STRING, "e", "\"x\"");
	sqlr_stmt_free(st);
}
END_TEST

START_TEST(test_insert_refused)
{
	static const struct {
		const char *sql, *why;
	} cases[] = {
	    {"INSERT INTO t VALUES (1) RETURNING id", "RETURNING"},
	    {"INSERT INTO t VALUES (DEFAULT)", "DEFAULT"},
	    {"INSERT INTO t DEFAULT VALUES", "DEFAULT VALUES"},
	    {"INSERT INTO t SELECT 1", "SELECT"},
	    {"INSERT INTO t (a) SELECT 1", "SELECT"},
	    {"INSERT INTO t (SELECT 1)", NULL},
	    {"WITH x AS (SELECT 1) INSERT INTO t VALUES (1)", "WITH"},
	    {"INSERT INTO t OVERRIDING SYSTEM VALUE VALUES (1)", "OVERRIDING"},
	    {"INSERT INTO t VALUES ((SELECT 1))", "subquery"},
	    {"INSERT INTO t VALUES ((1))", "subquery"},
	    {"INSERT INTO t VALUES (now())", "function call"},
	    {"INSERT INTO t VALUES (nextval('s'))", NULL},
	    {"INSERT INTO t VALUES (current_timestamp)", "expression"},
	    {"INSERT INTO t VALUES (1+1)", "expression"},
	    {"INSERT INTO t VALUES (1 + 1)", "expression"},
	    {"INSERT INTO t VALUES ('a'||'b')", "expression"},
	    {"INSERT INTO t VALUES (-'1')", "operator"},
	    {"INSERT INTO t VALUES (- -1)", "operator"},
	    {"INSERT INTO t VALUES (~1)", "operator"},
	    {"INSERT INTO t VALUES (1::int)", "cast of a number"},
	    {"INSERT INTO t VALUES (true::bool)", "cast of a boolean"},
	    {"INSERT INTO t VALUES ('1'::int::text)", "expression"},
	    {"INSERT INTO t VALUES (int '1'::text)", "typed literal"},
	    {"INSERT INTO t VALUES ('a' COLLATE \"C\")", "expression"},
	    {"INSERT INTO t VALUES (B'01')", "bit string"},
	    {"INSERT INTO t VALUES (X'ff')", "bit string"},
	    {"INSERT INTO t VALUES (N'x')", "N''"},
	    {"INSERT INTO t VALUES (interval '1' day)", "expression"},
	    {"INSERT INTO t VALUES (ARRAY[1])", "expression"},
	    {"INSERT INTO t VALUES (CAST(1 AS int))", "only a string"},
	    {"INSERT INTO t VALUES (CAST('1' int))", "AS expected"},
	    {"INSERT INTO t VALUES ('1'::int[)", "']' expected"},
	    {"INSERT INTO t VALUES ('1'::numeric(a))", "type modifier"},
	    {"INSERT INTO t VALUES ('1'::timestamp with zone)", "TIME ZONE"},
	    {"INSERT INTO t VALUES ('1'::double)", "precision"},
	    {"INSERT INTO t VALUES ('1'::select)", "reserved keyword"},
	    {"INSERT INTO t VALUES ('1'::'int')", "type name expected"},
	    {"INSERT INTO t VALUES (coalesce 'x')", "function call"},
	    {"INSERT INTO t VALUES ('x'::values)", "function call"},
	    {"INSERT INTO t VALUES (xmlparse 'x')", "function call"},
	    {"INSERT INTO t VALUES (json_scalar 'x')", "function call"},
	    {"INSERT INTO t VALUES (precision '1')", "function call"},
	    {"INSERT INTO t VALUES (coalesce('x', 'y'))", "function call"},
	    {"INSERT INTO t VALUES (1), (1, 2)", "different widths"},
	    {"INSERT INTO t (a, b) VALUES (1)", "width differs"},
	    {"INSERT INTO t (a) VALUES (1, 2)", "width differs"},
	    {"INSERT INTO t (a, a) VALUES (1, 2)", "named twice"},
	    {"INSERT INTO t (a.b) VALUES (1)", "',' or ')'"},
	    {"INSERT INTO t () VALUES (1)", "name expected"},
	    {"INSERT INTO t VALUES ()", "not a literal"},
	    {"INSERT INTO t VALUES (1,)", "not a literal"},
	    {"INSERT INTO t VALUES (1) LIMIT 1", "expression"},
	    {"INSERT INTO t VALUES (1) ORDER BY 1", "expression"},
	    {"INSERT INTO user VALUES (1)", "reserved keyword"},
	    {"INSERT INTO t (select) VALUES (1)", "reserved keyword"},
	    {"INSERT INTO a.b.c VALUES (1)", "more than two parts"},
	    {"INSERT INTO t t2 VALUES (1)", "VALUES expected"},
	    {"INSERT t VALUES (1)", "INTO expected"},
	    {"INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)",
	     "more than one statement"},
	    {"INSERT INTO t VALUES (1); SELECT 1", "more than one statement"},
	    {"INSERT INTO t VALUES ($0)", "parameter"},
	    {"INSERT INTO t VALUES (0x1F)", "trailing junk"},
	    {"INSERT INTO t VALUES (1_000)", "trailing junk"},
	    {"INSERT INTO t VALUES ('abc", "unterminated"},
	    {"INSERT INTO t VALUES (E'\\v')", "invalid escape"},
	    {"INSERT INTO t VALUES (U&'\\0000')", "Unicode"},
	    {"INSERT INTO t VALUES (1", "expression"},
	    {"INSERT INTO t VALUES", "VALUES: '(' expected"},
	    {"UPDATE t SET a = 1", "not INSERT or COPY"},
	    {"SELECT 1", "not INSERT or COPY"},
	    {"\"insert\" INTO t VALUES (1)", "not INSERT or COPY"},
	    {"", "not INSERT or COPY"},
	    {";", "not INSERT or COPY"},
	    {"BEGIN", "not INSERT or COPY"},
	};

	for (size_t i = 0; i < NCASES(cases); i++)
		must_refuse(cases[i].sql, cases[i].why);
}
END_TEST

START_TEST(test_conflict_refused)
{
	static const struct {
		const char *sql, *why;
	} cases[] = {
	    {"ON CONFLICT ON CONSTRAINT c DO NOTHING", "ON CONSTRAINT"},
	    {"ON CONFLICT DO NOTHING", "without a column list"},
	    {"ON CONFLICT (a) WHERE a > 0 DO NOTHING", "WHERE"},
	    {"ON CONFLICT (lower(a)) DO NOTHING", "',' or ')'"},
	    {"ON CONFLICT (a COLLATE \"C\") DO NOTHING", "',' or ')'"},
	    {"ON CONFLICT (a) DO UPDATE SET a = 1", "EXCLUDED"},
	    {"ON CONFLICT (a) DO UPDATE SET a = EXCLUDED.b", "other column"},
	    {"ON CONFLICT (a) DO UPDATE SET a = t.a", "EXCLUDED"},
	    {"ON CONFLICT (a) DO UPDATE SET a = EXCLUDED.a + 1", "expression"},
	    {"ON CONFLICT (a) DO UPDATE SET a = EXCLUDED.a WHERE a > 1",
	     "DO UPDATE ... WHERE"},
	    {"ON CONFLICT (a) DO UPDATE SET (a) = (EXCLUDED.a)", "SET ("},
	    {"ON CONFLICT (a) DO UPDATE SET a = EXCLUDED.a, a = EXCLUDED.a",
	     "named twice"},
	    {"ON CONFLICT (a) DO UPDATE SET t.a = EXCLUDED.a", "'='"},
	    {"ON CONFLICT (a) DO UPDATE SET a = \"EXCLUDED\".a", "EXCLUDED"},
	    {"ON CONFLICT (a) DO UPDATE a = EXCLUDED.a", "SET expected"},
	    {"ON CONFLICT (a) DO SOMETHING", "DO NOTHING or DO UPDATE"},
	    {"ON CONFLICT (a) DO NOTHING RETURNING a", "RETURNING"},
	    {"ON CONFLICT (a, a) DO NOTHING", "named twice"},
	};
	char sql[256];

	for (size_t i = 0; i < NCASES(cases); i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO t VALUES (1) %s",
		         cases[i].sql);
		must_refuse(sql, cases[i].why);
	}
	must_refuse("INSERT INTO t AS excluded VALUES (1) ON CONFLICT (a) DO "
	            "UPDATE SET a = EXCLUDED.a",
	            "named excluded");
	must_refuse(
	    "INSERT INTO excluded VALUES (1) ON CONFLICT (a) DO UPDATE SET "
	    "a = EXCLUDED.a",
	    "named excluded");
}
END_TEST

START_TEST(test_name_lengths)
{
	char sql[256];
	struct sqlr_stmt *st;
	char name[70];

	memset(name, 'a', sizeof(name));
	name[63] = '\0';
	snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (1)", name);
	st = must_accept(sql);
	ck_assert_uint_eq(strlen(st->table), 63);
	sqlr_stmt_free(st);
	name[63] = 'a';
	name[64] = '\0';
	snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (1)", name);
	must_refuse(sql, "longer than 63");
	snprintf(sql, sizeof(sql), "INSERT INTO t (\"%s\") VALUES (1)", name);
	must_refuse(sql, "longer than 63");
}
END_TEST

/* ---- COPY ---- */

START_TEST(test_copy_accepted)
{
	struct sqlr_stmt *st = must_accept("COPY t FROM STDIN");

	ck_assert_int_eq(st->kind, SQLR_COPY);
	ck_assert_str_eq(st->table, "t");
	ck_assert_int_eq(st->copy.format, SQLR_TEXT);
	ck_assert_int_eq(st->copy.delimiter, '\t');
	ck_assert_str_eq(st->copy.null_str, "\\N");
	ck_assert(!st->copy.header);
	ck_assert_int_eq(st->copy.quote, 0);
	sqlr_stmt_free(st);
	st = must_accept("copy S.\"T\" (a, \"B\") from stdin with (format csv, "
	                 "header, delimiter ';', null 'NA', quote '''', escape "
	                 "'\\');");
	ck_assert_str_eq(st->schema, "s");
	ck_assert_str_eq(st->table, "T");
	ck_assert_uint_eq(st->ncols, 2);
	ck_assert_str_eq(st->cols[1], "B");
	ck_assert_int_eq(st->copy.format, SQLR_CSV);
	ck_assert(st->copy.header);
	ck_assert_int_eq(st->copy.delimiter, ';');
	ck_assert_str_eq(st->copy.null_str, "NA");
	ck_assert_int_eq(st->copy.quote, '\'');
	ck_assert_int_eq(st->copy.escape, '\\');
	sqlr_stmt_free(st);
	st = must_accept("COPY t FROM STDIN WITH CSV HEADER");
	ck_assert_int_eq(st->copy.format, SQLR_CSV);
	ck_assert(st->copy.header);
	ck_assert_int_eq(st->copy.delimiter, ',');
	ck_assert_str_eq(st->copy.null_str, "");
	ck_assert_int_eq(st->copy.quote, '"');
	ck_assert_int_eq(st->copy.escape, '"');
	sqlr_stmt_free(st);
	st = must_accept("COPY t FROM STDIN DELIMITER AS '|' NULL AS ''");
	ck_assert_int_eq(st->copy.format, SQLR_TEXT);
	ck_assert_int_eq(st->copy.delimiter, '|');
	ck_assert_str_eq(st->copy.null_str, "");
	sqlr_stmt_free(st);
	st = must_accept("COPY t FROM stdin (FORMAT 'text', DELIMITER ',')");
	ck_assert_int_eq(st->copy.delimiter, ',');
	sqlr_stmt_free(st);
	st = must_accept("COPY t FROM STDIN (FORMAT csv, HEADER false)");
	ck_assert(!st->copy.header);
	sqlr_stmt_free(st);
	st = must_accept("COPY t FROM STDIN (FORMAT csv, HEADER 1)");
	ck_assert(st->copy.header);
	sqlr_stmt_free(st);
	st = must_accept("COPY t FROM STDIN CSV QUOTE AS '$' ESCAPE '!'");
	ck_assert_int_eq(st->copy.quote, '$');
	ck_assert_int_eq(st->copy.escape, '!');
	sqlr_stmt_free(st);
}
END_TEST

START_TEST(test_copy_refused)
{
	static const struct {
		const char *sql, *why;
	} cases[] = {
	    {"COPY t TO STDOUT", "COPY TO"},
	    {"COPY (SELECT 1) TO STDOUT", "COPY (query)"},
	    {"COPY t FROM '/etc/passwd'", "file"},
	    {"COPY t FROM PROGRAM 'ls'", "PROGRAM"},
	    {"COPY BINARY t FROM STDIN", "BINARY"},
	    {"COPY t FROM STDIN BINARY", "not modelled"},
	    {"COPY t FROM STDIN WITH (FORMAT binary)", "text or csv"},
	    {"COPY t FROM STDIN WITH (FORMAT 'CSV')", "text or csv"},
	    {"COPY t FROM STDIN FREEZE", "not modelled"},
	    {"COPY t FROM STDIN (FREEZE)", "not modelled"},
	    {"COPY t FROM STDIN (FORMAT csv, FORCE_NOT_NULL (a))",
	     "not modelled"},
	    {"COPY t FROM STDIN CSV FORCE NOT NULL a", "not modelled"},
	    {"COPY t FROM STDIN (ENCODING 'utf8')", "not modelled"},
	    {"COPY t FROM STDIN (DEFAULT 'x')", "not modelled"},
	    {"COPY t FROM STDIN (ON_ERROR ignore)", "not modelled"},
	    {"COPY t FROM STDIN (HEADER)", "HEADER in text"},
	    {"COPY t FROM STDIN HEADER", "HEADER in text"},
	    {"COPY t FROM STDIN (QUOTE '\"')", "without CSV"},
	    {"COPY t FROM STDIN (DELIMITER 'ab')", "one-byte"},
	    {"COPY t FROM STDIN (DELIMITER '\xc3\xa9')", "one-byte"},
	    {"COPY t FROM STDIN (DELIMITER '\\')", "delimiter not allowed"},
	    {"COPY t FROM STDIN (DELIMITER 'a')", "delimiter not allowed"},
	    {"COPY t FROM STDIN (DELIMITER E'\\n')", "delimiter not allowed"},
	    {"COPY t FROM STDIN (DELIMITER ',', DELIMITER ',')", "twice"},
	    {"COPY t FROM STDIN CSV CSV", "twice"},
	    {"COPY t FROM STDIN (NULL E'\\n')", "NULL string"},
	    {"COPY t FROM STDIN (DELIMITER ',', NULL 'a,b')", "NULL string"},
	    {"COPY t FROM STDIN (FORMAT csv, NULL '\"')", "NULL string"},
	    {"COPY t FROM STDIN (FORMAT csv, DELIMITER '\"')", "the same"},
	    {"COPY t FROM STDIN (HEADER maybe, FORMAT csv)", "boolean"},
	    {"COPY t FROM STDIN (FORMAT csv) WHERE a > 1", "WHERE"},
	    {"COPY t FROM STDIN WHERE a > 1", "WHERE"},
	    {"COPY t FROM STDIN (FORMAT csv", "')' expected"},
	    {"COPY t FROM STDIN; COPY t FROM STDIN", "more than one"},
	    {"COPY t FROM STDIN extra", "not modelled"},
	    {"COPY t (a, a) FROM STDIN", "named twice"},
	    {"COPY t", "FROM expected"},
	    {"COPY t FROM", "STDIN expected"},
	};

	for (size_t i = 0; i < NCASES(cases); i++)
		must_refuse(cases[i].sql, cases[i].why);
}
END_TEST

/* ---- splitting ---- */

static size_t split(const char *sql, struct sqlr_span *spans, size_t max,
                    enum sqlx_rc want_rc)
{
	size_t n = 99;
	enum sqlx_rc rc =
	    sqlr_split((const uint8_t *)sql, strlen(sql), spans, max, &n);

	ck_assert_int_eq(rc, want_rc);
	return n;
}

static void expect_span(const char *sql, const struct sqlr_span *s,
                        const char *want)
{
	ck_assert_uint_eq(s->end - s->start, strlen(want));
	ck_assert_mem_eq(sql + s->start, want, strlen(want));
}

START_TEST(test_split)
{
	const char *q = "INSERT INTO t VALUES (';'); SELECT $$;$$ ;; -- x;\n";
	const char *r = " /* ; */ a ; b";
	struct sqlr_span s[4];

	ck_assert_uint_eq(split(q, s, 4, SQLX_OK), 2);
	expect_span(q, &s[0], "INSERT INTO t VALUES (';')");
	expect_span(q, &s[1], "SELECT $$;$$");
	ck_assert_uint_eq(split(r, s, 4, SQLX_OK), 2);
	expect_span(r, &s[0], "a");
	expect_span(r, &s[1], "b");
	ck_assert_uint_eq(split("", s, 4, SQLX_OK), 0);
	ck_assert_uint_eq(split(";;; -- c", s, 4, SQLX_OK), 0);
	ck_assert_uint_eq(split("a;b;c;d;e", s, 2, SQLX_OK), 5); /* counts */
	expect_span("a;b;c;d;e", &s[1], "b");
	ck_assert_uint_eq(split("a; 'b", s, 4, SQLX_E_UNTERMINATED_STRING), 1);
	ck_assert_uint_eq(split("a; \"b;\" c", s, 4, SQLX_OK), 2);
}
END_TEST

/* ---- COPY fields of values ---- */

static char *field(const struct sqlr_value *v, bool csv)
{
	struct evbuffer *b = evbuffer_new();
	char *s;

	REQUIRE(b != NULL);
	REQUIRE(csv ? sqlr_value_copy_csv(v, b) : sqlr_value_copy_text(v, b));
	evbuffer_add(b, "", 1);
	s = strdup((char *)evbuffer_pullup(b, -1));
	evbuffer_free(b);
	return s;
}

START_TEST(test_copy_fields)
{
	static const char *const text[] = {
	    "a\\\\b\\tc\\nd\\re\\\\N",
	    "\\N",
	    "t",
	    "f",
	    "-1",
	    "0.0",
	    "1.5e3",
	    "",
	    "x\"y",
	    "\\N",
	    "{1}",
	    "\\\\",
	};
	static const char *const csv[] = {
	    "\"a\\b\tc\nd\re\\N\"",
	    "",
	    "t",
	    "f",
	    "-1",
	    "0.0",
	    "1.5e3",
	    "\"\"",
	    "\"x\"\"y\"",
	    "",
	    "\"{1}\"",
	    "\"\\\"",
	};
	struct sqlr_stmt *st = must_accept(
	    "INSERT INTO t VALUES (E'a\\\\b\\tc\\nd\\re\\\\N', NULL, true, "
	    "FALSE, -1, -0.0, 1.5e3, '', 'x\"y', NULL::int, '{1}'::int[], "
	    "'\\')");
	struct evbuffer *b = evbuffer_new();
	struct sqlr_value param = {.kind = SQLR_V_PARAM, .text = ""};
	uint64_t rows;
	struct ct_error err;

	ck_assert_uint_eq(st->width, NCASES(text));
	for (size_t i = 0; i < st->width; i++) {
		char *t = field(&st->values[i], false);
		char *c = field(&st->values[i], true);

		ck_assert_msg(strcmp(t, text[i]) == 0, "text %zu: [%s]", i, t);
		ck_assert_msg(strcmp(c, csv[i]) == 0, "csv %zu: [%s]", i, c);
		free(t);
		free(c);
		REQUIRE(sqlr_value_copy_text(&st->values[i], b));
		evbuffer_add(b, i + 1 < st->width ? "\t" : "\n", 1);
	}
	/* The row is one valid COPY text row of the statement's width. */
	ck_assert_int_eq(ct_check_rows(evbuffer_pullup(b, -1),
	                               evbuffer_get_length(b),
	                               (unsigned)st->width, &rows, &err),
	                 CT_OK);
	ck_assert(!sqlr_value_copy_text(&param, b));
	ck_assert(!sqlr_value_copy_csv(&param, b));
	evbuffer_free(b);
	sqlr_stmt_free(st);
}
END_TEST

/* ---- truncated and hostile input ---- */

static const char *const valid[] = {
    "INSERT INTO \"Ev\" AS e (a, b, c) VALUES (E'\\u00e9', U&'!0061' "
    "UESCAPE '!', $q$x;$q$), (-1.5e3, $1::jsonb, CAST('1' AS int)) ON "
    "CONFLICT (a) DO UPDATE SET b = EXCLUDED.b /* c */ ; -- end",
    "insert into s.t values ('a'\n'b', timestamp(3) with time zone 'x', "
    "'{}'::int[]) on conflict (a) do nothing;",
    "COPY s.t (a, b) FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER "
    "';', NULL 'x', QUOTE '''', ESCAPE '\\');",
    "COPY t FROM STDIN WITH CSV HEADER DELIMITER AS '|' NULL AS ''",
};

START_TEST(test_truncated_everywhere)
{
	struct sqlr_stmt *st;
	struct sqlr_why why;
	struct sqlr_span spans[4];
	size_t n;

	for (size_t i = 0; i < NCASES(valid); i++) {
		size_t len = strlen(valid[i]);

		sqlr_stmt_free(must_accept(valid[i]));
		for (size_t cut = 0; cut < len; cut++) {
			enum sqlr_rc rc = rec_n(valid[i], cut, &st, &why);

			REQUIRE(rc == SQLR_OK || rc == SQLR_REFUSED);
			sqlr_stmt_free(st);
			(void)sqlr_split((const uint8_t *)valid[i], cut, spans,
			                 4, &n);
		}
	}
}
END_TEST

/* sql with "(1)" repeated: a VALUES list of n rows (or columns). */
static char *many(const char *head, const char *unit, size_t n,
                  const char *tail)
{
	struct evbuffer *b = evbuffer_new();
	char *s;

	REQUIRE(b != NULL);
	evbuffer_add(b, head, strlen(head));
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(b, "%s%s", i ? "," : "", unit);
	evbuffer_add(b, tail, strlen(tail) + 1);
	s = strdup((char *)evbuffer_pullup(b, -1));
	evbuffer_free(b);
	return s;
}

START_TEST(test_hostile)
{
	char *rows = many("INSERT INTO t VALUES ", "(1,'x')", 10000, ";");
	char *too_many = many("INSERT INTO t VALUES ", "(1)", 300000, "");
	char *wide = many("INSERT INTO t (", "a", 1, ") VALUES (1)");
	char *cols = many("COPY t (", "c", 1700, ") FROM STDIN");
	char *parens = many("INSERT INTO t VALUES ", "(((((((((((", 1, "");
	char *big = many("INSERT INTO t VALUES ('", "", 0, "");
	struct sqlr_stmt *st = must_accept(rows);
	size_t blen = 1u << 22;
	char *huge = malloc(blen + 64);

	ck_assert_uint_eq(st->nrows, 10000);
	sqlr_stmt_free(st);
	must_refuse(too_many, "too many values");
	sqlr_stmt_free(must_accept(wide));
	must_refuse(cols, "named twice"); /* c,c,... */
	must_refuse(parens, "subquery");
	REQUIRE(huge != NULL);
	memcpy(huge, big, strlen(big));
	memset(huge + strlen(big), 'x', blen);
	memcpy(huge + strlen(big) + blen, "')", 3);
	st = must_accept(huge);
	ck_assert_uint_eq(st->values[0].len, blen);
	sqlr_stmt_free(st);
	free(rows);
	free(too_many);
	free(wide);
	free(cols);
	free(parens);
	free(big);
	free(huge);
}
END_TEST

START_TEST(test_too_many_columns)
{
	struct evbuffer *b = evbuffer_new();

	REQUIRE(b != NULL);
	evbuffer_add_printf(b, "COPY t (");
	for (int i = 0; i < 1665; i++)
		evbuffer_add_printf(b, "%sc%d", i ? "," : "", i);
	evbuffer_add_printf(b, ") FROM STDIN");
	evbuffer_add(b, "", 1);
	must_refuse((char *)evbuffer_pullup(b, -1), "too many columns");
	evbuffer_free(b);
}
END_TEST

static Suite *sqlrec_suite(void)
{
	Suite *s = suite_create("sqlrec");
	TCase *c = tcase_create("cases");

	tcase_add_test(c, test_insert_values);
	tcase_add_test(c, test_insert_names);
	tcase_add_test(c, test_insert_typed_values);
	tcase_add_test(c, test_insert_conflict);
	tcase_add_test(c, test_insert_comments_everywhere);
	tcase_add_test(c, test_insert_refused);
	tcase_add_test(c, test_conflict_refused);
	tcase_add_test(c, test_name_lengths);
	tcase_add_test(c, test_copy_accepted);
	tcase_add_test(c, test_copy_refused);
	tcase_add_test(c, test_split);
	tcase_add_test(c, test_copy_fields);
	tcase_add_test(c, test_truncated_everywhere);
	tcase_add_test(c, test_hostile);
	tcase_add_test(c, test_too_many_columns);
	suite_add_tcase(s, c);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sqlrec_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
