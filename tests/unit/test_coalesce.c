/* test_coalesce.c: the coalescer's pure parts (the failure back-off). */
#include "coalesce.h"

#include <check.h>
#include <limits.h>
#include <stdlib.h>

START_TEST(test_backoff_starts_at_the_second_failure)
{
	ck_assert_uint_eq(co_backoff_ms(0, 100, 5000), 0);
	ck_assert_uint_eq(co_backoff_ms(1, 100, 5000), 0);
	ck_assert_uint_eq(co_backoff_ms(2, 100, 5000), 100);
	ck_assert_uint_eq(co_backoff_ms(3, 100, 5000), 200);
	ck_assert_uint_eq(co_backoff_ms(4, 100, 5000), 400);
	ck_assert_uint_eq(co_backoff_ms(7, 100, 5000), 3200);
}
END_TEST

START_TEST(test_backoff_stops_at_its_ceiling)
{
	ck_assert_uint_eq(co_backoff_ms(8, 100, 5000), 5000);
	ck_assert_uint_eq(co_backoff_ms(40, 100, 5000), 5000);
	ck_assert_uint_eq(co_backoff_ms(UINT_MAX, 100, 5000), 5000);
	/* the largest values the configuration takes do not overflow */
	ck_assert_uint_eq(co_backoff_ms(UINT_MAX, 3600000, 3600000), 3600000);
	ck_assert_uint_eq(co_backoff_ms(2, 5000, 5000), 5000);
	ck_assert_uint_eq(co_backoff_ms(3, 3000, 5000), 5000);
}
END_TEST

START_TEST(test_backoff_off_when_base_is_zero)
{
	ck_assert_uint_eq(co_backoff_ms(2, 0, 5000), 0);
	ck_assert_uint_eq(co_backoff_ms(UINT_MAX, 0, 5000), 0);
}
END_TEST

static Suite *coalesce_suite(void)
{
	Suite *s = suite_create("coalesce");
	TCase *tc = tcase_create("backoff");

	tcase_add_test(tc, test_backoff_starts_at_the_second_failure);
	tcase_add_test(tc, test_backoff_stops_at_its_ceiling);
	tcase_add_test(tc, test_backoff_off_when_base_is_zero);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(coalesce_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
