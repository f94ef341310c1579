/* test_sqlgen.c: quoting and the exact batch statements, incl. COPY error
 * lines. */
#include "sqlgen.h"

#include <check.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

/* What an append function wrote, as a heap string. */
static char *text_of(struct evbuffer *b)
{
	size_t len = evbuffer_get_length(b);
	char *s = malloc(len + 1);

	ck_assert_ptr_nonnull(s);
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	return s;
}

static void expect_ident(const char *name, const char *want)
{
	struct evbuffer *b = evbuffer_new();
	char *got;

	ck_assert(sql_append_ident(b, name));
	got = text_of(b);
	ck_assert_str_eq(got, want);
	free(got);
	evbuffer_free(b);
}

static void expect_literal(const char *s, const char *want)
{
	struct evbuffer *b = evbuffer_new();
	char *got;

	ck_assert(sql_append_literal(b, s));
	got = text_of(b);
	ck_assert_str_eq(got, want);
	free(got);
	evbuffer_free(b);
}

static void expect_qualified(const char *schema, const char *table,
                             const char *want)
{
	struct evbuffer *b = evbuffer_new();
	char *got;

	ck_assert(sql_append_qualified(b, schema, table));
	got = text_of(b);
	ck_assert_str_eq(got, want);
	free(got);
	evbuffer_free(b);
}

/* ---- names and literals ---- */

START_TEST(test_ident_valid)
{
	char name[SQL_MAX_IDENT + 2];

	ck_assert(sql_ident_valid("t"));
	ck_assert(sql_ident_valid("Mixed Case \"q\" ;--"));
	ck_assert(sql_ident_valid("caf\xc3\xa9_\xf0\x9f\x98\x80"));
	ck_assert(!sql_ident_valid(NULL));
	ck_assert(!sql_ident_valid(""));
	ck_assert(!sql_ident_valid("a\tb"));
	ck_assert(!sql_ident_valid("a\nb"));
	ck_assert(!sql_ident_valid("\x1f"));
	ck_assert(!sql_ident_valid("a\x7f"));
	ck_assert(!sql_ident_valid("\xc3("));
	ck_assert(!sql_ident_valid("\xed\xa0\x80"));
	ck_assert(!sql_ident_valid("\xc3"));
	memset(name, 'x', sizeof(name));
	name[SQL_MAX_IDENT] = '\0';
	ck_assert(sql_ident_valid(name));
	name[SQL_MAX_IDENT] = 'x';
	name[SQL_MAX_IDENT + 1] = '\0';
	ck_assert(!sql_ident_valid(name));
	/* 63 bytes of which the last 2 are one character: fine. */
	name[SQL_MAX_IDENT - 2] = (char)0xc3;
	name[SQL_MAX_IDENT - 1] = (char)0xa9;
	name[SQL_MAX_IDENT] = '\0';
	ck_assert(sql_ident_valid(name));
}
END_TEST

START_TEST(test_append_ident)
{
	expect_ident("t", "\"t\"");
	expect_ident("a\"b", "\"a\"\"b\"");
	expect_ident("\"", "\"\"\"\"");
	expect_ident("\"\"x\"", "\"\"\"\"\"x\"\"\"");
	expect_ident("Robert'); DROP TABLE x;--",
	             "\"Robert'); DROP TABLE x;--\"");
	expect_qualified("public", "t", "\"public\".\"t\"");
	expect_qualified("", "t", "\"t\"");
	expect_qualified(NULL, "t", "\"t\"");
	expect_qualified("s\"", "t\"", "\"s\"\"\".\"t\"\"\"");
}
END_TEST

START_TEST(test_append_literal)
{
	expect_literal("", "''");
	expect_literal("abc", "'abc'");
	expect_literal("it's", "'it''s'");
	expect_literal("''", "''''''");
	expect_literal("a\\b", "E'a\\\\b'");
	expect_literal("a\\'b", "E'a\\\\''b'");
	expect_literal("\\", "E'\\\\'");
	expect_literal("caf\xc3\xa9", "'caf\xc3\xa9'");
}
END_TEST

/* ---- insert ---- */

static const char *const cols2[] = {"id", "v"};

START_TEST(test_set_params)
{
	const char *names[] = {"TimeZone", "application_name"};
	const char *values[] = {"Europe/Paris", "it's \\ mine"};
	char *sql = sql_set_params(names, values, 2);

	ck_assert_str_eq(sql, "SET \"TimeZone\" TO 'Europe/Paris';"
	                      "SET \"application_name\" TO E'it''s \\\\ mine'");
	free(sql);
	ck_assert_ptr_null(sql_set_params(names, values, 0));
}
END_TEST

START_TEST(test_insert_batch)
{
	struct sql_target t = {.schema = "public",
	                       .table = "t",
	                       .mode = SQL_INSERT,
	                       .ncols = 2,
	                       .cols = cols2};
	char *sql = sql_insert_batch(&t);

	ck_assert_str_eq(sql,
	                 "BEGIN; COPY \"public\".\"t\" (\"id\", \"v\") FROM "
	                 "STDIN; COMMIT");
	free(sql);
	t.mode = SQL_BULK_INSERT;
	t.schema = NULL;
	t.table = "we\"ird";
	sql = sql_insert_batch(&t);
	ck_assert_str_eq(sql, "BEGIN; COPY \"we\"\"ird\" (\"id\", \"v\") FROM "
	                      "STDIN; COMMIT");
	free(sql);
}
END_TEST

/* The front door's settings: SET LOCAL after BEGIN, names quoted, values
 * literals; the begin-only form leaves the transaction open. */
START_TEST(test_batch_settings)
{
	static const char *const names[] = {"DateStyle", "TimeZone"};
	static const char *const values[] = {"ISO, DMY", "Europe/O'Brien"};
	struct sql_target t = {.schema = "s",
	                       .table = "t",
	                       .mode = SQL_INSERT,
	                       .ncols = 2,
	                       .cols = cols2,
	                       .nsettings = 2,
	                       .setting_names = names,
	                       .setting_values = values};
	char *sql = sql_insert_batch(&t);

	ck_assert_str_eq(sql, "BEGIN; SET LOCAL \"DateStyle\" TO 'ISO, DMY'; "
	                      "SET LOCAL \"TimeZone\" TO 'Europe/O''Brien'; "
	                      "COPY \"s\".\"t\" (\"id\", \"v\") FROM STDIN; "
	                      "COMMIT");
	free(sql);
	sql = sql_insert_begin(&t);
	ck_assert_str_eq(sql, "BEGIN; SET LOCAL \"DateStyle\" TO 'ISO, DMY'; "
	                      "SET LOCAL \"TimeZone\" TO 'Europe/O''Brien'; "
	                      "COPY \"s\".\"t\" (\"id\", \"v\") FROM STDIN");
	free(sql);
	t.mode = SQL_UPSERT;
	ck_assert_ptr_null(sql_insert_begin(&t));
}
END_TEST

START_TEST(test_insert_refused)
{
	static const char *const bad[] = {"id", ""};
	struct sql_target t = {
	    .table = "t", .mode = SQL_UPSERT, .ncols = 2, .cols = cols2};

	ck_assert_ptr_null(sql_insert_batch(&t));
	t.mode = SQL_INSERT;
	t.ncols = 0;
	ck_assert_ptr_null(sql_insert_batch(&t));
	t.ncols = 2;
	t.cols = bad;
	ck_assert_ptr_null(sql_insert_batch(&t));
	t.cols = cols2;
	t.table = "";
	ck_assert_ptr_null(sql_insert_batch(&t));
	ck_assert_ptr_null(sql_insert_batch(NULL));
}
END_TEST

/* ---- upsert ---- */

static const char *const ucols[] = {"id", "a", "k", "v"};
static const char *const utypes[] = {"integer", "integer[]", "text", "bigint"};
static const char *const ukeys[] = {"id"};
static const char *const uco[] = {"k", "a"};

#define STAGE_PREFIX                                                           \
	"CREATE TEMP TABLE IF NOT EXISTS \"lbp_stage_1\" (lbp_seq "            \
	"bigserial, \"id\" integer, \"a\" integer[], \"k\" text, \"v\" "       \
	"bigint) ON COMMIT DELETE ROWS; BEGIN; COPY \"lbp_stage_1\" (\"id\", " \
	"\"a\", \"k\", \"v\") FROM STDIN; INSERT INTO \"public\".\"tgt\" AS "  \
	"t (\"id\", \"a\", \"k\", \"v\") SELECT DISTINCT ON (\"id\") "

static struct sql_target upsert_target(void)
{
	return (struct sql_target){.schema = "public",
	                           .table = "tgt",
	                           .mode = SQL_UPSERT,
	                           .ncols = 4,
	                           .cols = ucols,
	                           .types = utypes,
	                           .nkeys = 1,
	                           .keys = ukeys};
}

static void expect_upsert(const struct sql_target *t, const char *want)
{
	char *sql = sql_upsert_batch(t, "lbp_stage_1");

	ck_assert_ptr_nonnull(sql);
	ck_assert_str_eq(sql, want);
	free(sql);
}

START_TEST(test_upsert_plain)
{
	struct sql_target t = upsert_target();

	expect_upsert(&t, STAGE_PREFIX
	              "\"id\", \"a\", \"k\", \"v\" FROM \"lbp_stage_1\" ORDER "
	              "BY \"id\", lbp_seq DESC ON CONFLICT (\"id\") DO UPDATE "
	              "SET \"a\" = EXCLUDED.\"a\", \"k\" = EXCLUDED.\"k\", "
	              "\"v\" = EXCLUDED.\"v\"; COMMIT");
}
END_TEST

/* DO NOTHING (the front door's): the first row of a key, and which staged
 * rows went in, as positions in the batch. */
START_TEST(test_upsert_first_wins)
{
	struct sql_target t = upsert_target();
	char *sql;

	t.first_wins = true;
	sql = sql_upsert_batch(&t, "lbp_stage_1");
	ck_assert_ptr_nonnull(sql);
	ck_assert_ptr_nonnull(strstr(
	    sql, "; BEGIN; COPY \"lbp_stage_1\" (\"id\", \"a\", \"k\", "
	         "\"v\") FROM STDIN; WITH i AS (INSERT INTO \"public\"."
	         "\"tgt\" AS t (\"id\", \"a\", \"k\", \"v\") SELECT "
	         "DISTINCT ON (\"id\") \"id\", \"a\", \"k\", \"v\" FROM "
	         "\"lbp_stage_1\" ORDER BY \"id\", lbp_seq ON CONFLICT "
	         "(\"id\") DO NOTHING RETURNING \"id\") SELECT (SELECT "
	         "min(s.lbp_seq) FROM \"lbp_stage_1\" s WHERE s.\"id\" = "
	         "i.\"id\") - (SELECT min(lbp_seq) FROM \"lbp_stage_1\") "
	         "FROM i ORDER BY 1; COMMIT"));
	free(sql);
	/* no version or coalesce columns with it */
	t.version_col = "v";
	ck_assert_ptr_null(sql_upsert_batch(&t, "lbp_stage_1"));
}
END_TEST

/*
 * With a version column: the DO block (sqlgen.c): the stage in one INSERT
 * when no key repeats, else rounds. ROUNDS is the rounds query of
 * upsert_target() with version "v" (lbp_c4) and, for CO_*, the coalesce
 * columns "k" (lbp_c3) and "a" (lbp_c2); SET is the conflict action.
 */
#define ROUNDS(leads, absorbed)                                                \
	"SELECT x.*, row_number() OVER (PARTITION BY x.lbp_c1 ORDER BY "       \
	"x.lbp_seq) AS lbp_round FROM (SELECT y.*, lead(y.lbp_seq) OVER w AS " \
	"lbp_nseq, lead(y.lbp_c4) OVER w AS lbp_n4" leads                      \
	" FROM (SELECT s.lbp_seq, s.\"id\" AS lbp_c1, s.\"a\" AS lbp_c2, "     \
	"s.\"k\" AS lbp_c3, s.\"v\" AS lbp_c4, lag(s.\"v\") OVER (PARTITION "  \
	"BY s.\"id\" ORDER BY s.lbp_seq) AS lbp_pv FROM \"lbp_stage_1\" s) y " \
	"WHERE NOT (y.lbp_c4 IS NOT NULL AND y.lbp_pv IS NOT NULL AND "        \
	"y.lbp_pv >= y.lbp_c4) WINDOW w AS (PARTITION BY y.lbp_c1 ORDER BY "   \
	"y.lbp_seq)) x WHERE x.lbp_nseq IS NULL OR NOT ((x.lbp_n4 IS NULL OR " \
	"(x.lbp_c4 IS NOT NULL AND x.lbp_n4 > x.lbp_c4))" absorbed ")"
#define GUARD                                                                  \
	" WHERE EXCLUDED.\"v\" IS NULL OR t.\"v\" IS NULL OR EXCLUDED.\"v\" "  \
	"> "                                                                   \
	"t.\"v\""
#define INTO_TGT                                                               \
	"INSERT INTO \"public\".\"tgt\" AS t (\"id\", \"a\", \"k\", \"v\") "   \
	"SELECT "
#define VERSIONED(set, leads, absorbed)                                        \
	"CREATE TEMP TABLE IF NOT EXISTS \"lbp_stage_1\" (lbp_seq bigserial, " \
	"\"id\" integer, \"a\" integer[], \"k\" text, \"v\" bigint) ON "       \
	"COMMIT "                                                              \
	"DELETE ROWS; BEGIN; COPY \"lbp_stage_1\" (\"id\", \"a\", \"k\", "     \
	"\"v\") "                                                              \
	"FROM STDIN; DO $lbp0$BEGIN IF NOT EXISTS (SELECT FROM "               \
	"\"lbp_stage_1\" "                                                     \
	"GROUP BY \"id\" HAVING count(*) > 1) THEN " INTO_TGT                  \
	"\"id\", \"a\", \"k\", \"v\" FROM \"lbp_stage_1\" ORDER BY \"id\" ON " \
	"CONFLICT (\"id\") DO UPDATE SET " set GUARD                           \
	"; ELSE <<lbp>> DECLARE r bigint := 1; n bigint := 1; BEGIN WHILE r "  \
	"<= n LOOP WITH q AS MATERIALIZED (" ROUNDS(                           \
	    leads, absorbed) "), i AS (" INTO_TGT                              \
	                     "q.lbp_c1, q.lbp_c2, q.lbp_c3, q.lbp_c4 FROM q "  \
	                     "WHERE q.lbp_round = lbp.r ORDER BY q.lbp_c1 ON " \
	                     "CONFLICT (\"id\") DO "                           \
	                     "UPDATE SET " set GUARD                           \
	                     ") SELECT coalesce(max(q.lbp_round), 0) INTO "    \
	                     "n FROM q; r := r + 1; END LOOP; END; END IF; "   \
	                     "END$lbp0$; COMMIT"

START_TEST(test_upsert_version)
{
	struct sql_target t = upsert_target();

	t.version_col = "v";
	expect_upsert(&t, VERSIONED("\"a\" = EXCLUDED.\"a\", \"k\" = "
	                            "EXCLUDED.\"k\", \"v\" = EXCLUDED.\"v\"",
	                            "", ""));
}
END_TEST

START_TEST(test_upsert_coalesce)
{
	struct sql_target t = upsert_target();

	t.ncoalesce = 2;
	t.coalesce = uco;
	expect_upsert(
	    &t, STAGE_PREFIX
	    "\"id\", first_value(\"a\") OVER (PARTITION BY \"id\" ORDER BY "
	    "\"a\" IS NULL, lbp_seq DESC) AS \"a\", first_value(\"k\") OVER "
	    "(PARTITION BY \"id\" ORDER BY \"k\" IS NULL, lbp_seq DESC) AS "
	    "\"k\", \"v\" FROM \"lbp_stage_1\" ORDER BY \"id\", lbp_seq DESC "
	    "ON CONFLICT (\"id\") DO UPDATE SET \"a\" = "
	    "COALESCE(EXCLUDED.\"a\", "
	    "t.\"a\"), \"k\" = COALESCE(EXCLUDED.\"k\", t.\"k\"), \"v\" = "
	    "EXCLUDED.\"v\"; COMMIT");
}
END_TEST

START_TEST(test_upsert_coalesce_version)
{
	struct sql_target t = upsert_target();

	t.ncoalesce = 2;
	t.coalesce = uco;
	t.version_col = "v";
	expect_upsert(
	    &t, VERSIONED("\"a\" = COALESCE(EXCLUDED.\"a\", t.\"a\"), \"k\" = "
	                  "COALESCE(EXCLUDED.\"k\", t.\"k\"), \"v\" = "
	                  "EXCLUDED.\"v\"",
	                  ", lead(y.lbp_c3) OVER w AS lbp_n3, lead(y.lbp_c2) "
	                  "OVER w AS lbp_n2",
	                  " AND (x.lbp_n3 IS NOT NULL OR x.lbp_c3 IS NULL) AND "
	                  "(x.lbp_n2 IS NOT NULL OR x.lbp_c2 IS NULL)"));
}
END_TEST

/* The version column coalesced too: its lead is taken once. */
START_TEST(test_upsert_coalesced_version)
{
	static const char *const co_v[] = {"v", "k"};
	struct sql_target t = upsert_target();
	char *sql;

	t.ncoalesce = 2;
	t.coalesce = co_v;
	t.version_col = "v";
	sql = sql_upsert_batch(&t, "lbp_stage_1");
	ck_assert_ptr_nonnull(strstr(
	    sql, "lbp_nseq, lead(y.lbp_c4) OVER w AS lbp_n4, lead(y.lbp_c3) "
	         "OVER w AS lbp_n3 FROM"));
	ck_assert_ptr_nonnull(strstr(
	    sql, "x.lbp_n4 > x.lbp_c4)) AND (x.lbp_n4 IS NOT NULL OR x.lbp_c4 "
	         "IS NULL) AND (x.lbp_n3 IS NOT NULL OR x.lbp_c3 IS NULL))"));
	ck_assert_ptr_nonnull(strstr(
	    sql, "\"v\" = COALESCE(EXCLUDED.\"v\", t.\"v\") WHERE EXCLUDED."));
	free(sql);
}
END_TEST

/* Statements outside dollar quotes, i.e. what the server answers one by one. */
static size_t top_level_statements(const char *sql)
{
	size_t n = 0;
	const char *tag_end;

	for (const char *p = sql; *p != '\0'; p++) {
		if (*p == ';')
			n++;
		if (strncmp(p, "DO $", 4) == 0 &&
		    (tag_end = strchr(p + 4, '$')) != NULL) {
			char tag[32] = {0};
			size_t len = (size_t)(tag_end - (p + 3)) + 1;

			ck_assert_uint_lt(len, sizeof(tag));
			memcpy(tag, p + 3, len);
			p = strstr(tag_end + 1, tag);
			ck_assert_ptr_nonnull(p);
			p += len - 1;
		}
	}
	return n;
}

/* A name holding the dollar-quote tag moves the tag on; still one DO. */
START_TEST(test_upsert_rounds_quote_tag_and_refusals)
{
	static const char *const odd[] = {"id", "$lbp0$", "k", "v"};
	static const char *const missing[] = {"nope"};
	struct sql_target t = upsert_target();
	char *sql;

	t.version_col = "v";
	sql = sql_upsert_batch(&t, "st");
	ck_assert_uint_eq(top_level_statements(sql), SQL_UPSERT_COMMIT_INDEX);
	free(sql);
	t.cols = odd;
	sql = sql_upsert_batch(&t, "st");
	ck_assert_ptr_nonnull(strstr(sql, "; DO $lbp1$BEGIN"));
	ck_assert_ptr_nonnull(strstr(sql, "END$lbp1$; COMMIT"));
	ck_assert_uint_eq(top_level_statements(sql), SQL_UPSERT_COMMIT_INDEX);
	free(sql);
	t = upsert_target();
	t.version_col = "nope"; /* not a column of the batch */
	ck_assert_ptr_null(sql_upsert_batch(&t, "st"));
	t = upsert_target();
	t.ncoalesce = 1;
	t.coalesce = missing;
	ck_assert_ptr_null(sql_upsert_batch(&t, "st"));
	t = upsert_target();
	t.keys = missing;
	ck_assert_ptr_null(sql_upsert_batch(&t, "st"));
}
END_TEST

START_TEST(test_upsert_keys_only_and_order)
{
	static const char *const c[] = {"x", "k1", "k2"};
	static const char *const ty[] = {"text", "int", "uuid"};
	static const char *const k[] = {"k2", "k1"};
	struct sql_target t = {.table = "m",
	                       .mode = SQL_UPSERT,
	                       .ncols = 2,
	                       .cols = c + 1,
	                       .types = ty + 1,
	                       .nkeys = 2,
	                       .keys = k};
	char *sql = sql_upsert_batch(&t, "s");

	ck_assert_str_eq(
	    sql, "CREATE TEMP TABLE IF NOT EXISTS \"s\" (lbp_seq bigserial, "
	         "\"k1\" int, \"k2\" uuid) ON COMMIT DELETE ROWS; BEGIN; COPY "
	         "\"s\" (\"k1\", \"k2\") FROM STDIN; INSERT INTO \"m\" AS t "
	         "(\"k1\", \"k2\") SELECT DISTINCT ON (\"k2\", \"k1\") \"k1\", "
	         "\"k2\" FROM \"s\" ORDER BY \"k2\", \"k1\", lbp_seq DESC ON "
	         "CONFLICT (\"k2\", \"k1\") DO NOTHING; COMMIT");
	free(sql);
	/* Keys after a non-key column: the column order stays the target's. */
	t.ncols = 3;
	t.cols = c;
	t.types = ty;
	sql = sql_upsert_batch(&t, "s");
	ck_assert_ptr_nonnull(strstr(
	    sql, "INSERT INTO \"m\" AS t (\"x\", \"k1\", \"k2\") SELECT "
	         "DISTINCT ON (\"k2\", \"k1\") \"x\", \"k1\", \"k2\" FROM"));
	ck_assert_ptr_nonnull(
	    strstr(sql, "DO UPDATE SET \"x\" = EXCLUDED.\"x\";"));
	free(sql);
}
END_TEST

/* The statement count matters: the caller finds COMMIT's reply by index. */
START_TEST(test_statement_indexes)
{
	struct sql_target t = upsert_target();
	char *sql = sql_upsert_batch(&t, "st");
	size_t semis = 0;

	for (const char *p = sql; *p != '\0'; p++)
		semis += *p == ';';
	ck_assert_uint_eq(semis, SQL_UPSERT_COMMIT_INDEX);
	ck_assert_ptr_nonnull(strstr(sql, "; COMMIT"));
	free(sql);
	t.mode = SQL_INSERT;
	sql = sql_insert_batch(&t);
	semis = 0;
	for (const char *p = sql; *p != '\0'; p++)
		semis += *p == ';';
	ck_assert_uint_eq(semis, SQL_INSERT_COMMIT_INDEX);
	free(sql);
}
END_TEST

START_TEST(test_upsert_refused)
{
	static const char *const seq_cols[] = {"id", "lbp_seq"};
	static const char *const no_type[] = {"integer", ""};
	struct sql_target t = upsert_target();

	ck_assert_ptr_null(sql_upsert_batch(&t, ""));
	ck_assert_ptr_null(sql_upsert_batch(&t, NULL));
	t.nkeys = 0;
	ck_assert_ptr_null(sql_upsert_batch(&t, "s"));
	t = upsert_target();
	t.mode = SQL_INSERT;
	ck_assert_ptr_null(sql_upsert_batch(&t, "s"));
	t = upsert_target();
	t.types = NULL;
	ck_assert_ptr_null(sql_upsert_batch(&t, "s"));
	t = upsert_target();
	t.ncols = 2;
	t.types = no_type;
	ck_assert_ptr_null(sql_upsert_batch(&t, "s"));
	t.types = utypes;
	t.cols = seq_cols; /* would collide with the stage's own column */
	ck_assert_ptr_null(sql_upsert_batch(&t, "s"));
	t = upsert_target();
	t.version_col = "bad\x01";
	ck_assert_ptr_null(sql_upsert_batch(&t, "s"));
}
END_TEST

/* ---- COPY error lines ---- */

static void expect_line(const char *where, bool ok, uint64_t want)
{
	uint64_t line = 12345;

	ck_assert_msg(sql_copy_error_line(where, &line) == ok, "%s", where);
	if (ok)
		ck_assert_uint_eq(line, want);
	else
		ck_assert_uint_eq(line, 12345);
}

START_TEST(test_copy_error_line)
{
	expect_line("COPY t, line 3, column n: \"x\"", true, 3);
	expect_line("COPY t, line 17: \"1\t2\"", true, 17);
	expect_line("COPY t, line 9", true, 9);
	expect_line("COPY lbp_stage_1, line 1, column a: \"{[1, 2]}\"", true,
	            1);
	expect_line("PL/pgSQL function f() line 3 at RAISE\nCOPY t, line 42",
	            true, 42);
	expect_line("COPY a, line 1\nSQL statement \"...\"\nCOPY b, line 7, "
	            "column c: null input",
	            true, 7);
	/* The value is client data: the first ", line N" is the real one. */
	expect_line("COPY t, line 5, column c: \"x, line 9, y\"", true, 5);
	expect_line("COPY t, line 18446744073709551615", true, UINT64_MAX);
}
END_TEST

START_TEST(test_copy_error_line_malformed)
{
	expect_line(NULL, false, 0);
	expect_line("", false, 0);
	expect_line("SQL function \"f\" statement 1", false, 0);
	expect_line("PL/pgSQL function f() line 3 at RAISE", false, 0);
	expect_line("COPY t, line ", false, 0);
	expect_line("COPY t, line x", false, 0);
	expect_line("COPY t, line 3x", false, 0);
	expect_line("COPY t, line 0", false, 0);
	expect_line("COPY t, line 18446744073709551616", false, 0);
	expect_line("COPY t, line 99999999999999999999999", false, 0);
	expect_line("COPY t line 3", false, 0);
	expect_line(" COPY t, line 3", false, 0);
	/* The last COPY line decides, even when an earlier one parses. */
	expect_line("COPY a, line 2\nCOPY b, line oops", false, 0);
	expect_line("COPY t,\n line 3", false, 0);
}
END_TEST

/* ---- dead letters and the catalog statement ---- */

START_TEST(test_dead_letter_create)
{
	char long_name[64];
	char *sql = sql_dead_letter_create("s\"x", "ev");

	ck_assert_str_eq(
	    sql, "CREATE TABLE IF NOT EXISTS \"s\"\"x\".\"ev_dead_letter\" "
	         "(received_at timestamptz NOT NULL DEFAULT now(), "
	         "sqlstate text, message text, detail text, flush_row "
	         "bigint, row_text text)");
	free(sql);
	/* 51 + 12 = 63 bytes fits; 52 does not */
	memset(long_name, 'a', 51);
	long_name[51] = '\0';
	sql = sql_dead_letter_create(NULL, long_name);
	ck_assert_ptr_nonnull(sql);
	free(sql);
	long_name[51] = 'a';
	long_name[52] = '\0';
	ck_assert_ptr_null(sql_dead_letter_create(NULL, long_name));
	ck_assert_ptr_null(sql_dead_letter_create(NULL, NULL));
}
END_TEST

START_TEST(test_dead_letter_rows)
{
	struct evbuffer *b = evbuffer_new();
	struct sql_dead_letter d = {.sqlstate = "23505",
	                            .message = "dup 'x'",
	                            .detail = NULL,
	                            .flush_row = 18446744073709551615ull,
	                            .row_text = "1\t\\N"};
	char *got;

	ck_assert(sql_append_dead_letter_row(b, &d));
	d.sqlstate = NULL;
	d.flush_row = 2;
	d.row_text = "";
	ck_assert(sql_append_dead_letter_row(b, &d));
	got = text_of(b);
	ck_assert_str_eq(got,
	                 "('23505', 'dup ''x''', '', 18446744073709551615, "
	                 "E'1\t\\\\N'), ('', 'dup ''x''', '', 2, '')");
	free(got);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_batch_with_dead_letters)
{
	static const char *const types2[] = {"bigint", "text"};
	static const char *const key[] = {"id"};
	struct sql_target t = {.schema = "public",
	                       .table = "t",
	                       .mode = SQL_INSERT,
	                       .ncols = 2,
	                       .cols = cols2};
	struct evbuffer *l[3] = {evbuffer_new(), evbuffer_new(),
	                         evbuffer_new()};
	struct sql_dead_letter d = {"22P02", "bad", "", 3, "x"};
	char *sql, *plain;

	/* no letters at all: no statement */
	ck_assert_ptr_null(sql_batch_with_dead_letters(&t, NULL, l, 3));
	ck_assert(sql_append_dead_letter_row(l[0], &d));
	d.flush_row = 1;
	ck_assert(sql_append_dead_letter_row(l[2], &d));
	sql = sql_batch_with_dead_letters(&t, NULL, l, 3);
	ck_assert_str_eq(
	    sql, "CREATE TABLE IF NOT EXISTS \"public\".\"t_dead_letter\" "
	         "(received_at timestamptz NOT NULL DEFAULT now(), sqlstate "
	         "text, message text, detail text, flush_row bigint, row_text "
	         "text); BEGIN; COPY \"public\".\"t\" (\"id\", \"v\") FROM "
	         "STDIN; INSERT INTO \"public\".\"t_dead_letter\" (sqlstate, "
	         "message, detail, flush_row, row_text) VALUES ('22P02', "
	         "'bad', '', 3, 'x'), ('22P02', 'bad', '', 1, 'x'); COMMIT");
	free(sql);
	/* the letters are read, not drained: a retry sends them again */
	ck_assert_uint_gt(evbuffer_get_length(l[0]), 0);
	/* upsert: the staged statements, then the letters */
	t.mode = SQL_UPSERT;
	t.types = types2;
	t.nkeys = 1;
	t.keys = key;
	sql = sql_batch_with_dead_letters(&t, "lbp_stage_1", l, 1);
	plain = sql_upsert_batch(&t, "lbp_stage_1");
	ck_assert_ptr_nonnull(sql);
	ck_assert_ptr_nonnull(plain);
	plain[strlen(plain) - strlen("; COMMIT")] = '\0';
	ck_assert_ptr_nonnull(strstr(sql, plain));
	ck_assert_ptr_nonnull(
	    strstr(sql, "VALUES ('22P02', 'bad', '', 3, 'x'); COMMIT"));
	free(sql);
	free(plain);
	ck_assert_ptr_null(sql_batch_with_dead_letters(&t, "", l, 1));
	for (int i = 0; i < 3; i++)
		evbuffer_free(l[i]);
}
END_TEST

/* ---- exactly-once progress rows ---- */

#define PROGRESS_CREATE(name)                                                  \
	"CREATE TABLE IF NOT EXISTS " name " (query_id text NOT NULL, "        \
	"partition_id bigint NOT NULL, epoch_id bigint NOT NULL, "             \
	"rows_committed bigint NOT NULL, complete boolean NOT NULL DEFAULT "   \
	"false, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY "   \
	"(query_id, partition_id, epoch_id))"

START_TEST(test_progress_read)
{
	struct sql_progress p = {.schema = "s\"x",
	                         .table = "P",
	                         .query_id = "q'1\\",
	                         .partition_id = 3,
	                         .epoch_id = 4};
	char *sql = sql_progress_read(&p);
	struct sql_progress *copy;

	ck_assert_str_eq(
	    sql, PROGRESS_CREATE("\"s\"\"x\".\"P\"") "; SELECT rows_committed, "
	                                             "complete FROM "
	                                             "\"s\"\"x\".\"P\" WHERE "
	                                             "query_id = E'q''1\\\\' "
	                                             "AND partition_id = 3 AND "
	                                             "epoch_id = 4");
	free(sql);
	copy = sql_progress_copy(&p);
	ck_assert_str_eq(copy->schema, "s\"x");
	ck_assert_str_eq(copy->table, "P");
	ck_assert_str_eq(copy->query_id, "q'1\\");
	ck_assert(copy->table != p.table && copy->epoch_id == 4);
	free(copy);
	p.schema = NULL;
	copy = sql_progress_copy(&p);
	ck_assert_str_eq(copy->schema, "");
	free(copy);
	sql = sql_progress_read(&p);
	ck_assert_ptr_nonnull(strstr(sql, "FROM \"P\" WHERE"));
	free(sql);
	p.partition_id = -1;
	ck_assert_ptr_null(sql_progress_read(&p));
	p.partition_id = 0;
	p.query_id = "";
	ck_assert_ptr_null(sql_progress_read(&p));
	p.query_id = "q";
	p.table = "";
	ck_assert_ptr_null(sql_progress_read(&p));
}
END_TEST

#define PROGRESS_UPSERT(table, q, vals)                                        \
	"; INSERT INTO " table " AS p (query_id, partition_id, epoch_id, "     \
	"rows_committed, complete) VALUES (" q ", " vals                       \
	") ON CONFLICT (query_id, partition_id, epoch_id) DO UPDATE SET "      \
	"rows_committed = GREATEST(p.rows_committed, "                         \
	"EXCLUDED.rows_committed), complete = p.complete OR "                  \
	"EXCLUDED.complete, updated_at = now()"
#define PROGRESS_PRUNE(table, q, epoch)                                        \
	"; DELETE FROM " table " WHERE query_id = " q " AND epoch_id < " epoch

START_TEST(test_batch_statement_progress)
{
	struct sql_target t = {
	    .table = "t", .mode = SQL_INSERT, .ncols = 2, .cols = cols2};
	struct sql_progress a = {.table = "pr",
	                         .query_id = "q",
	                         .partition_id = 2,
	                         .epoch_id = 1,
	                         .rows_committed = 30};
	struct sql_progress b = a, c = a, d = a;
	const struct sql_progress *rows[] = {&a, &b, &c, &d};
	char *sql, *plain;

	b.partition_id = 1;
	b.rows_committed = 7;
	b.complete = true;
	c.query_id = "p";
	c.partition_id = 1;
	c.rows_committed = 9;
	d.partition_id = 5;
	d.epoch_id = 0;
	/* nothing extra: the plain batch */
	sql = sql_batch_statement(&t, NULL, NULL, 0, NULL, 0);
	plain = sql_insert_batch(&t);
	ck_assert_str_eq(sql, plain);
	free(sql);
	free(plain);
	/* one CREATE per table; rows in key order; one prune per query, below
	 * its smallest epoch in the batch, for every partition key */
	sql = sql_batch_statement(&t, NULL, NULL, 0, rows, 4);
	ck_assert_str_eq(
	    sql,
	    PROGRESS_CREATE(
	        "\"pr\"") "; BEGIN; COPY \"t\" "
	                  "(\"id\", \"v\") FROM STDIN" PROGRESS_UPSERT(
	                      "\"pr\"", "'p'", "1, 1, 9, false")
	                      PROGRESS_PRUNE("\"pr\"", "'p'", "1")
	                          PROGRESS_UPSERT("\"pr\"", "'q'",
	                                          "1, 1, 7, true")
	                              PROGRESS_UPSERT("\"pr\"", "'q'",
	                                              "2, 1, 30, false")
	                                  PROGRESS_UPSERT("\"pr\"", "'q'",
	                                                  "5, 0, 30, false")
	                                      PROGRESS_PRUNE("\"pr\"", "'q'",
	                                                     "0") "; COMMIT");
	free(sql);
	/* an invalid row: no statement */
	c.rows_committed = -1;
	ck_assert_ptr_null(sql_batch_statement(&t, NULL, NULL, 0, rows, 4));
	c.rows_committed = 9;
	c.table = "a\x01";
	ck_assert_ptr_null(sql_batch_statement(&t, NULL, NULL, 0, rows, 4));
}
END_TEST

START_TEST(test_batch_statement_progress_with_letters_and_upsert)
{
	static const char *const types2[] = {"bigint", "text"};
	static const char *const key[] = {"id"};
	struct sql_target t = {
	    .table = "t", .mode = SQL_INSERT, .ncols = 2, .cols = cols2};
	struct sql_progress a = {.schema = "s",
	                         .table = "pr",
	                         .query_id = "q",
	                         .partition_id = 0,
	                         .epoch_id = 5,
	                         .rows_committed = 3};
	const struct sql_progress *rows[] = {&a};
	struct evbuffer *l[1] = {evbuffer_new()};
	struct sql_dead_letter d = {"22P02", "bad", "", 3, "x"};
	char *sql, *plain;
	const char *dl, *pc, *begin, *dead, *up;

	ck_assert(sql_append_dead_letter_row(l[0], &d));
	sql = sql_batch_statement(&t, NULL, l, 1, rows, 1);
	dl = strstr(sql, "CREATE TABLE IF NOT EXISTS \"t_dead_letter\"");
	pc = strstr(sql, "CREATE TABLE IF NOT EXISTS \"s\".\"pr\"");
	begin = strstr(sql, "; BEGIN; COPY \"t\"");
	dead = strstr(sql, "; INSERT INTO \"t_dead_letter\"");
	up = strstr(sql, "; INSERT INTO \"s\".\"pr\" AS p");
	ck_assert(dl == sql && pc > dl && begin > pc && dead > begin &&
	          up > dead);
	ck_assert_ptr_nonnull(
	    strstr(up, "; DELETE FROM \"s\".\"pr\" WHERE query_id = 'q' AND "
	               "epoch_id < 5; COMMIT"));
	free(sql);
	/* upsert: the staged statements, then the progress row */
	t.mode = SQL_UPSERT;
	t.types = types2;
	t.nkeys = 1;
	t.keys = key;
	sql = sql_batch_statement(&t, "lbp_stage_1", NULL, 0, rows, 1);
	plain = sql_upsert_batch(&t, "lbp_stage_1");
	plain[strlen(plain) - strlen("; COMMIT")] = '\0';
	ck_assert_ptr_nonnull(strstr(sql, plain));
	ck_assert(strstr(sql, plain) < strstr(sql, "INSERT INTO \"s\".\"pr\""));
	ck_assert(strstr(sql, "CREATE TABLE IF NOT EXISTS \"s\".\"pr\"") <
	          sql + 200);
	free(sql);
	free(plain);
	evbuffer_free(l[0]);
}
END_TEST

START_TEST(test_catalog_lookup)
{
	char *sql = sql_catalog_lookup("we'ird", "t\"x");

	ck_assert_ptr_nonnull(sql);
	/* names as literals: exact, and ASCII-folded with translate() */
	ck_assert_ptr_nonnull(strstr(
	    sql, "c.relname = 't\"x' AND n.nspname = 'we''ird' AS exact"));
	ck_assert_ptr_nonnull(strstr(
	    sql, "translate(c.relname, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', "
	         "'abcdefghijklmnopqrstuvwxyz') = translate('t\"x', "
	         "'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') "
	         "AND translate(n.nspname, "));
	/* exact first in path order, else the only candidate */
	ck_assert_ptr_nonnull(strstr(
	    sql, "pick AS (SELECT * FROM cand WHERE exact OR (SELECT "
	         "count(*) FROM cand) = 1 ORDER BY exact DESC, pos NULLS "
	         "LAST LIMIT 1)"));
	ck_assert_ptr_nonnull(strstr(sql, "SELECT 'a', r.oid::text"));
	ck_assert_ptr_nonnull(strstr(sql, "ORDER BY 1, 5"));
	free(sql);
	/* without a schema: the schemas PostgreSQL searches */
	sql = sql_catalog_lookup(NULL, "back\\slash");
	ck_assert_ptr_nonnull(
	    strstr(sql, "c.relname = E'back\\\\slash' AS exact"));
	ck_assert_ptr_nonnull(
	    strstr(sql, "AND n.nspname = ANY(current_schemas(true))), pick"));
	free(sql);
	ck_assert_ptr_null(sql_catalog_lookup("s", NULL));
}
END_TEST

static Suite *sqlgen_suite(void)
{
	Suite *s = suite_create("sqlgen");
	TCase *quote = tcase_create("quoting");
	TCase *stmt = tcase_create("statements");
	TCase *err = tcase_create("copy_error");

	tcase_add_test(quote, test_ident_valid);
	tcase_add_test(quote, test_append_ident);
	tcase_add_test(quote, test_append_literal);
	tcase_add_test(quote, test_set_params);
	suite_add_tcase(s, quote);
	tcase_add_test(stmt, test_insert_batch);
	tcase_add_test(stmt, test_insert_refused);
	tcase_add_test(stmt, test_upsert_plain);
	tcase_add_test(stmt, test_upsert_version);
	tcase_add_test(stmt, test_upsert_coalesce);
	tcase_add_test(stmt, test_upsert_coalesce_version);
	tcase_add_test(stmt, test_upsert_coalesced_version);
	tcase_add_test(stmt, test_upsert_rounds_quote_tag_and_refusals);
	tcase_add_test(stmt, test_upsert_keys_only_and_order);
	tcase_add_test(stmt, test_statement_indexes);
	tcase_add_test(stmt, test_upsert_refused);
	tcase_add_test(stmt, test_dead_letter_create);
	tcase_add_test(stmt, test_dead_letter_rows);
	tcase_add_test(stmt, test_batch_with_dead_letters);
	tcase_add_test(stmt, test_catalog_lookup);
	tcase_add_test(stmt, test_batch_settings);
	tcase_add_test(stmt, test_upsert_first_wins);
	tcase_add_test(stmt, test_progress_read);
	tcase_add_test(stmt, test_batch_statement_progress);
	tcase_add_test(stmt,
	               test_batch_statement_progress_with_letters_and_upsert);
	suite_add_tcase(s, stmt);
	tcase_add_test(err, test_copy_error_line);
	tcase_add_test(err, test_copy_error_line_malformed);
	suite_add_tcase(s, err);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sqlgen_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
