/* test_sqlfit.c: which recognised values may go into which column types as
 * COPY fields, cast names in format_type()'s spelling, integer parameters
 * within their declared type, and transaction-control statements. */
#include "sqlfit.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

START_TEST(test_cast_type_names)
{
	static const struct {
		const char *rec, *want;
	} cases[] = {
	    {"int", "integer"},
	    {"int4", "integer"},
	    {"pg_catalog.int8", "bigint"},
	    {"float8", "double precision"},
	    {"double precision", "double precision"},
	    {"bool", "boolean"},
	    {"varchar(10)", "character varying(10)"},
	    {"character varying", "character varying"},
	    {"decimal(10,2)", "numeric(10,2)"},
	    {"timestamp", "timestamp without time zone"},
	    {"timestamp(3)", "timestamp(3) without time zone"},
	    {"timestamptz(6)", "timestamp(6) with time zone"},
	    {"timestamp(3) with time zone", "timestamp(3) with time zone"},
	    {"timestamp without time zone", "timestamp without time zone"},
	    {"jsonb", "jsonb"},
	    {"uuid", "uuid"},
	};
	static const char *const refused[] = {
	    "int[]",     "int4[3]", "\"My Type\"", "char",  "character(3)",
	    "float(24)", "money",   "interval",    "s.int", "varchar(10",
	    "",
	};
	char out[128];

	for (size_t i = 0; i < NCASES(cases); i++) {
		ck_assert_msg(
		    sqlf_cast_type_name(cases[i].rec, out, sizeof(out)),
		    "%s refused", cases[i].rec);
		ck_assert_str_eq(out, cases[i].want);
	}
	for (size_t i = 0; i < NCASES(refused); i++)
		ck_assert_msg(
		    !sqlf_cast_type_name(refused[i], out, sizeof(out)),
		    "%s accepted", refused[i]);
	/* a short output is a refusal, not a truncated name */
	ck_assert(!sqlf_cast_type_name("timestamptz(6)", out, 12));
}
END_TEST

static struct sqlr_value val(enum sqlr_vkind kind, const char *type)
{
	struct sqlr_value v = {
	    .kind = kind, .text = "1", .len = 1, .param = 1, .type = type};

	return v;
}

START_TEST(test_value_fits)
{
	static const char *const all[] = {"integer",
	                                  "bigint",
	                                  "numeric(10,2)",
	                                  "double precision",
	                                  "boolean",
	                                  "text",
	                                  "character varying(5)",
	                                  "date",
	                                  "timestamp with time zone",
	                                  "jsonb",
	                                  "integer[]"};
	struct sqlr_value v;

	for (size_t i = 0; i < NCASES(all); i++) {
		v = val(SQLR_V_STRING, NULL);
		ck_assert(sqlf_value_fits(&v, 0, all[i]));
		v = val(SQLR_V_NULL, NULL);
		ck_assert(sqlf_value_fits(&v, 0, all[i]));
		v = val(SQLR_V_PARAM, NULL);
		ck_assert(sqlf_value_fits(&v, 23, all[i])); /* Bind decides */
	}
	v = val(SQLR_V_BOOL, NULL);
	ck_assert(sqlf_value_fits(&v, 0, "boolean"));
	ck_assert(!sqlf_value_fits(&v, 0, "text")); /* true vs t */
	ck_assert(!sqlf_value_fits(&v, 0, "integer"));
	v = val(SQLR_V_INTEGER, NULL);
	ck_assert(sqlf_value_fits(&v, 0, "smallint"));
	ck_assert(sqlf_value_fits(&v, 0, "numeric(10,2)"));
	ck_assert(sqlf_value_fits(&v, 0, "real"));
	ck_assert(!sqlf_value_fits(&v, 0, "text")); /* 007 vs 7 */
	ck_assert(!sqlf_value_fits(&v, 0, "integer[]"));
	v = val(SQLR_V_DECIMAL, NULL);
	ck_assert(sqlf_value_fits(&v, 0, "numeric"));
	ck_assert(sqlf_value_fits(&v, 0, "double precision"));
	ck_assert(!sqlf_value_fits(&v, 0, "integer")); /* INSERT rounds */
	ck_assert(!sqlf_value_fits(&v, 0, "character varying"));
	/* casts: exactly the column's type, modifier included */
	v = val(SQLR_V_STRING, "numeric(10,2)");
	ck_assert(sqlf_value_fits(&v, 0, "numeric(10,2)"));
	ck_assert(!sqlf_value_fits(&v, 0, "numeric(10,1)"));
	ck_assert(!sqlf_value_fits(&v, 0, "numeric"));
	v = val(SQLR_V_STRING, "timestamptz");
	ck_assert(sqlf_value_fits(&v, 0, "timestamp with time zone"));
	ck_assert(!sqlf_value_fits(&v, 0, "timestamp without time zone"));
	v = val(SQLR_V_NULL, "int");
	ck_assert(sqlf_value_fits(&v, 0, "integer"));
	ck_assert(!sqlf_value_fits(&v, 0, "text"));
	/* a cast parameter: its Parse type must leave the cast to decide */
	v = val(SQLR_V_PARAM, "date");
	ck_assert(sqlf_value_fits(&v, SQLF_OID_UNSPECIFIED, "date"));
	ck_assert(sqlf_value_fits(&v, SQLF_OID_UNKNOWN, "date"));
	ck_assert(!sqlf_value_fits(&v, 25, "date"));
	ck_assert(!sqlf_value_fits(&v, 0, "timestamp without time zone"));
}
END_TEST

static bool in_range(enum pgb_type t, const char *s)
{
	uint8_t *copy = malloc(strlen(s) + 1); /* exact size: ASan */
	bool ok;

	REQUIRE(copy != NULL);
	memcpy(copy, s, strlen(s));
	ok = sqlf_int_text_in_range(t, copy, strlen(s));
	free(copy);
	return ok;
}

START_TEST(test_int_text_in_range)
{
	ck_assert(in_range(PGB_INT2, "32767"));
	ck_assert(in_range(PGB_INT2, "-32768"));
	ck_assert(!in_range(PGB_INT2, "32768"));
	ck_assert(!in_range(PGB_INT2, "-32769"));
	ck_assert(in_range(PGB_INT4, "2147483647"));
	ck_assert(in_range(PGB_INT4, "-2147483648"));
	ck_assert(!in_range(PGB_INT4, "2147483648"));
	ck_assert(in_range(PGB_INT8, "9223372036854775807"));
	ck_assert(in_range(PGB_INT8, "-9223372036854775808"));
	ck_assert(!in_range(PGB_INT8, "9223372036854775808"));
	ck_assert(!in_range(PGB_INT8, "99999999999999999999999"));
	ck_assert(in_range(PGB_INT4, "007"));
	ck_assert(in_range(PGB_INT4, "-0"));
	/* what int4in accepts but COPY into a wider type might read apart */
	ck_assert(!in_range(PGB_INT4, " 1"));
	ck_assert(!in_range(PGB_INT4, "1 "));
	ck_assert(!in_range(PGB_INT4, "+1"));
	ck_assert(!in_range(PGB_INT4, "1.0"));
	ck_assert(!in_range(PGB_INT4, "1e3"));
	ck_assert(!in_range(PGB_INT4, ""));
	ck_assert(!in_range(PGB_INT4, "-"));
	ck_assert(!in_range(PGB_NUMERIC, "1"));
	ck_assert(!in_range(PGB_TEXT, "1"));
}
END_TEST

START_TEST(test_txn_control)
{
	static const struct {
		const char *sql;
		enum sqlf_txc want;
	} cases[] = {
	    {"BEGIN", SQLF_TXC_BEGIN},
	    {"begin;", SQLF_TXC_BEGIN},
	    {"  Begin Work ; ", SQLF_TXC_BEGIN},
	    {"BEGIN TRANSACTION", SQLF_TXC_BEGIN},
	    {"START TRANSACTION", SQLF_TXC_BEGIN},
	    {"/* c */ COMMIT -- done", SQLF_TXC_COMMIT},
	    {"END", SQLF_TXC_COMMIT},
	    {"commit work", SQLF_TXC_COMMIT},
	    {"ROLLBACK", SQLF_TXC_ROLLBACK},
	    {"abort transaction;", SQLF_TXC_ROLLBACK},
	    {"START", SQLF_TXC_NONE},
	    {"START WORK", SQLF_TXC_NONE},
	    {"BEGIN ISOLATION LEVEL SERIALIZABLE", SQLF_TXC_NONE},
	    {"START TRANSACTION READ ONLY", SQLF_TXC_NONE},
	    {"COMMIT AND CHAIN", SQLF_TXC_NONE},
	    {"ROLLBACK TO SAVEPOINT a", SQLF_TXC_NONE},
	    {"COMMIT; COMMIT", SQLF_TXC_NONE},
	    {"BEGIN;;", SQLF_TXC_NONE},
	    {"COMMIT PREPARED 'x'", SQLF_TXC_NONE},
	    {"\"begin\"", SQLF_TXC_NONE},
	    {"SELECT 1", SQLF_TXC_NONE},
	    {"", SQLF_TXC_NONE},
	    {"BEGIN /* unterminated", SQLF_TXC_NONE},
	};

	for (size_t i = 0; i < NCASES(cases); i++) {
		size_t n = strlen(cases[i].sql);
		uint8_t *copy = malloc(n ? n : 1);

		REQUIRE(copy != NULL);
		memcpy(copy, cases[i].sql, n);
		ck_assert_msg(sqlf_txn_control(copy, n) == cases[i].want,
		              "\"%s\"", cases[i].sql);
		free(copy);
	}
}
END_TEST

static Suite *sqlfit_suite(void)
{
	Suite *s = suite_create("sqlfit");
	TCase *tc = tcase_create("fit");

	tcase_add_test(tc, test_cast_type_names);
	tcase_add_test(tc, test_value_fits);
	tcase_add_test(tc, test_int_text_in_range);
	tcase_add_test(tc, test_txn_control);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sqlfit_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
