/* test_fe_stmt.c: prepared-statement bookkeeping of the front door. */
#include "fe_stmt.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

START_TEST(test_client_names)
{
	struct fps_client *fc = fps_client_new(7, 3);
	const struct fps_stmt *a, *b, *a2;

	a = fps_client_parse(fc, "s1", (const uint8_t *)"q1", 3);
	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(a->server_name, "lbp_7_1");
	ck_assert_uint_eq(a->parse_rest_len, 3);
	b = fps_client_parse(fc, "s2", (const uint8_t *)"q2", 3);
	ck_assert_str_eq(b->server_name, "lbp_7_2");
	ck_assert_ptr_eq(fps_client_find(fc, "s1"), a);
	/* the same name again: replaced, with a new server name */
	a2 = fps_client_parse(fc, "s1", (const uint8_t *)"other", 6);
	ck_assert_str_eq(a2->server_name, "lbp_7_3");
	ck_assert_mem_eq(a2->parse_rest, "other", 6);
	ck_assert_uint_eq(fps_client_count(fc), 2);
	ck_assert_ptr_nonnull(fps_client_parse(fc, "s3", NULL, 0));
	/* past max */
	ck_assert_ptr_null(fps_client_parse(fc, "s4", NULL, 0));
	fps_client_close(fc, "s2");
	fps_client_close(fc, "nope");
	ck_assert_ptr_null(fps_client_find(fc, "s2"));
	ck_assert_ptr_nonnull(fps_client_find(fc, "s3"));
	ck_assert_ptr_nonnull(fps_client_parse(fc, "s4", NULL, 0));
	ck_assert_uint_eq(fps_client_count(fc), 3);
	fps_client_free(fc);
}
END_TEST

START_TEST(test_server_lru)
{
	struct fps_server *fs = fps_server_new();
	char ev[FPS_NAME_LEN];

	ck_assert(fps_server_add(fs, "a", 2, ev));
	ck_assert_str_eq(ev, "");
	ck_assert(fps_server_add(fs, "b", 2, ev));
	ck_assert(fps_server_has(fs, "a")); /* a is now the most recent */
	ck_assert(fps_server_add(fs, "c", 2, ev));
	ck_assert_str_eq(ev, "b");
	ck_assert(!fps_server_has(fs, "b"));
	ck_assert(fps_server_has(fs, "a"));
	ck_assert(fps_server_has(fs, "c"));
	/* adding what is there evicts nothing */
	ck_assert(fps_server_add(fs, "a", 2, ev));
	ck_assert_str_eq(ev, "");
	fps_server_remove(fs, "a");
	ck_assert_uint_eq(fps_server_count(fs), 1);
	/* max 0: no limit */
	for (int i = 0; i < 100; i++) {
		char n[16];

		snprintf(n, sizeof(n), "x%d", i);
		ck_assert(fps_server_add(fs, n, 0, ev));
	}
	ck_assert_uint_eq(fps_server_count(fs), 101);
	ck_assert(!fps_server_add(fs,
	                          "0123456789012345678901234567890123456789"
	                          "0123456789",
	                          0, ev));
	fps_server_free(fs);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("fe_stmt");
	TCase *tc = tcase_create("stmt");

	tcase_add_test(tc, test_client_names);
	tcase_add_test(tc, test_server_lru);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(suite());
}
