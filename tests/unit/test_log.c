/* test_log.c: [log] file: lines appended to a file, reopened after a move. */
#include "log.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/lbp-test-log-XXXXXX";
static char path[PATH_MAX], moved[PATH_MAX];
static char err[512];

static void setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/proxy.log", dir);
	snprintf(moved, sizeof(moved), "%s/proxy.log.1", dir);
}

static void teardown(void)
{
	ck_assert(log_set_file(NULL, err, sizeof(err)));
	unlink(path);
	unlink(moved);
	rmdir(dir);
	strcpy(dir + strlen(dir) - 6, "XXXXXX");
}

/* The whole file as a string (static buffer); "" when missing. */
static const char *slurp(const char *p)
{
	static char buf[8192];
	FILE *f = fopen(p, "r");
	size_t n = 0;

	if (f != NULL) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

START_TEST(test_quote_keeps_lines_utf8)
{
	char buf[64];

	ck_assert_str_eq(log_quote(buf, sizeof(buf), "up\xff"), "\"up\\xff\"");
	ck_assert_str_eq(log_quote(buf, sizeof(buf),
	                           "a\x01"
	                           "b\x7f"),
	                 "\"a\\x01b\\x7f\"");
	ck_assert_str_eq(log_quote(buf, sizeof(buf), "caf\xc3\xa9 \"q\""),
	                 "\"caf\xc3\xa9 \\\"q\\\"\"");
	ck_assert_str_eq(log_quote(buf, sizeof(buf), "x\xc3"), "\"x\\xc3\"");
	/* Cut before a sequence that does not fit, never inside it. */
	ck_assert_str_eq(log_quote(buf, 10, "ab\xe2\x82\xac"), "\"ab...\"");
}
END_TEST

START_TEST(test_lines_go_to_the_file)
{
	struct stat st;

	umask(022);
	ck_assert_msg(log_set_file(path, err, sizeof(err)), "%s", err);
	log_info("event=first n=%d", 1);
	log_info("event=second");
	ck_assert_ptr_nonnull(
	    strstr(slurp(path), "level=info event=first n=1\n"));
	ck_assert_ptr_nonnull(strstr(slurp(path), "event=second\n"));
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0640);
}
END_TEST

START_TEST(test_appends_to_what_is_there)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs("old line\n", f);
	fclose(f);
	ck_assert_msg(log_set_file(path, err, sizeof(err)), "%s", err);
	log_warn("event=new");
	ck_assert_int_eq(strncmp(slurp(path), "old line\nts=", 12), 0);
}
END_TEST

/* logrotate: move the file away, then reopen the same path. */
START_TEST(test_reopen_after_move)
{
	ck_assert_msg(log_set_file(path, err, sizeof(err)), "%s", err);
	log_info("event=before");
	ck_assert_int_eq(rename(path, moved), 0);
	log_info("event=still_old");
	ck_assert_msg(log_set_file(path, err, sizeof(err)), "%s", err);
	log_info("event=after");
	ck_assert_ptr_nonnull(strstr(slurp(moved), "event=before"));
	ck_assert_ptr_nonnull(strstr(slurp(moved), "event=still_old"));
	ck_assert_ptr_null(strstr(slurp(moved), "event=after"));
	ck_assert_ptr_nonnull(strstr(slurp(path), "event=after"));
	ck_assert_ptr_null(strstr(slurp(path), "event=before"));
}
END_TEST

START_TEST(test_bad_path_keeps_the_old_file)
{
	char bad[PATH_MAX];

	snprintf(bad, sizeof(bad), "%s/no such dir/x.log", dir);
	ck_assert_msg(log_set_file(path, err, sizeof(err)), "%s", err);
	ck_assert(!log_set_file(bad, err, sizeof(err)));
	/* the path is quoted (it has spaces), the reason given */
	ck_assert_ptr_nonnull(strstr(err, "[log] file \""));
	ck_assert_ptr_nonnull(strstr(err, "no such dir/x.log\": cannot open: "
	                                  "No such file or directory"));
	ck_assert(!log_check_file(bad, err, sizeof(err)));
	log_info("event=kept");
	ck_assert_ptr_nonnull(strstr(slurp(path), "event=kept"));
}
END_TEST

START_TEST(test_check_file_creates_and_closes)
{
	ck_assert_msg(log_check_file(path, err, sizeof(err)), "%s", err);
	ck_assert_int_eq(access(path, F_OK), 0);
	/* lines still go to stderr, so not here */
	log_info("event=to_stderr");
	ck_assert_str_eq(slurp(path), "");
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("file");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_quote_keeps_lines_utf8);
	tcase_add_test(tc, test_lines_go_to_the_file);
	tcase_add_test(tc, test_appends_to_what_is_there);
	tcase_add_test(tc, test_reopen_after_move);
	tcase_add_test(tc, test_bad_path_keeps_the_old_file);
	tcase_add_test(tc, test_check_file_creates_and_closes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(log_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
