/* test_harness.c: the test server is up, Lakebase-like and restartable. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "harness_env.h"

static struct harness_env env;

static void setup(void)
{
	ck_assert_msg(harness_env_load(&env),
	              "harness.env not loaded (is the pg fixture running?)");
}

START_TEST(test_env_loaded)
{
	ck_assert_str_eq(env.host, "127.0.0.1");
	ck_assert_str_eq(env.user, "lbp_test");
	ck_assert_str_eq(env.dbname, "lbp_test");
	ck_assert_uint_ne(env.port, 0);
	ck_assert_uint_eq(strlen(env.password), 24);
	ck_assert_str_ne(env.sockdir, "");
	if (env.ssl) {
		ck_assert_str_ne(env.ca_file, "");
		ck_assert_str_ne(env.untrusted_ca, "");
	}
}
END_TEST

START_TEST(test_server_settings)
{
	char out[256];

	ck_assert(harness_sql(&env, "SHOW ssl", out, sizeof(out)));
	ck_assert_str_eq(out, env.ssl ? "on" : "off");
	ck_assert(
	    harness_sql(&env, "SHOW password_encryption", out, sizeof(out)));
	ck_assert_str_eq(out, "scram-sha-256");
}
END_TEST

START_TEST(test_role_secret_is_scram)
{
	char out[512];

	ck_assert(harness_sql(
	    &env, "SELECT rolpassword FROM pg_authid WHERE rolname='lbp_test'",
	    out, sizeof(out)));
	ck_assert_msg(strncmp(out, "SCRAM-SHA-256$", 14) == 0,
	              "stored secret: %.20s", out);
}
END_TEST

START_TEST(test_sql_rows_and_errors)
{
	char out[64];

	ck_assert(harness_sql(&env,
	                      "SELECT 1, 'a b' UNION ALL SELECT 2, 'it''s'",
	                      out, sizeof(out)));
	ck_assert_str_eq(out, "1|a b\n2|it's");
	ck_assert(!harness_sql(&env, "SELECT * FROM no_such_table", out,
	                       sizeof(out)));
	/* Output that does not fit is an error, not a silent truncation. */
	ck_assert(
	    !harness_sql(&env, "SELECT repeat('x', 1000)", out, sizeof(out)));
	ck_assert_uint_eq(strlen(out), sizeof(out) - 1);
}
END_TEST

START_TEST(test_restart_same_port)
{
	char before[128];
	char after[128];
	char port[16];

	ck_assert(harness_sql(&env, "SELECT pg_postmaster_start_time()", before,
	                      sizeof(before)));
	ck_assert(harness_ctl(&env, "restart"));
	ck_assert(harness_sql(&env, "SELECT pg_postmaster_start_time()", after,
	                      sizeof(after)));
	ck_assert_str_ne(before, after);
	ck_assert(harness_sql(&env, "SHOW port", port, sizeof(port)));
	ck_assert_uint_eq(strtoul(port, NULL, 10), env.port);
}
END_TEST

static Suite *harness_suite(void)
{
	Suite *s = suite_create("harness");
	TCase *tc = tcase_create("pg");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_env_loaded);
	tcase_add_test(tc, test_server_settings);
	tcase_add_test(tc, test_role_secret_is_scram);
	tcase_add_test(tc, test_sql_rows_and_errors);
	tcase_add_test(tc, test_restart_same_port);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(harness_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
