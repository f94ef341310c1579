/* test_metrics.c: the registry (families, children, caps), histograms, the
 * Prometheus text, and the gauges collected from module stats. */
#include "metrics.h"

#include "gauges.h"

#include <check.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The whole exposition, as a heap string. */
static char *render(void)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *s;

	ck_assert(mt_render(b));
	len = evbuffer_get_length(b);
	s = malloc(len + 1);
	ck_assert_ptr_nonnull(s);
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	return s;
}

static unsigned occurrences(const char *hay, const char *needle)
{
	unsigned n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void expect_line(const char *text, const char *line)
{
	char want[512];

	snprintf(want, sizeof(want), "\n%s\n", line);
	ck_assert_msg(strstr(text, want) != NULL, "missing line: %s", line);
}

START_TEST(test_label_escape)
{
	char buf[32];

	ck_assert_str_eq(mt_label_escape(buf, sizeof(buf), "public.t"),
	                 "public.t");
	ck_assert_str_eq(mt_label_escape(buf, sizeof(buf), "a\"b\\c\nd"),
	                 "a\\\"b\\\\c\\nd");
	/* Truncation never leaves half an escape. */
	ck_assert_str_eq(mt_label_escape(buf, 4, "ab\"c"), "ab");
	ck_assert_str_eq(mt_label_escape(buf, 1, "abc"), "");
}
END_TEST

static const struct mt_desc rows_d = {
    .name = "t_rows_total",
    .help = "Rows.",
    .type = MT_COUNTER,
    .nlabels = 2,
    .labels = {"table", "mode"},
    .overflow = {"_other", "other"},
    .max_children = 3,
};
static const struct mt_desc temp_d = {
    .name = "t_temperature", .help = "A gauge.", .type = MT_GAUGE};
static const double le[] = {0.001, 0.05, 30};
static const struct mt_desc lat_d = {
    .name = "t_seconds",
    .help = "A histogram.",
    .type = MT_HISTOGRAM,
    .buckets = le,
    .nbuckets = 3,
};

START_TEST(test_children_counted_and_rendered)
{
	const char *a[2] = {"public.ev", "insert"};
	const char *b[2] = {"public.ev", "upsert"};
	const char *w[2] = {"we\"ird", "upsert"};
	struct mt_family *f = mt_family(&rows_d);
	struct mt_metric *m = mt_child(f, a);
	char *text;

	ck_assert_ptr_eq(mt_family(&rows_d), f);
	ck_assert_ptr_eq(mt_child(f, a), m);
	ck_assert_ptr_ne(mt_child(f, b), m);
	mt_add(m, 500);
	mt_add(m, 1);
	mt_add(mt_child(f, w), 7);
	ck_assert(mt_value(m) == 501);
	mt_set(mt_metric_of(&temp_d), 21.5);
	text = render();
	expect_line(text,
	            "t_rows_total{table=\"public.ev\",mode=\"insert\"} 501");
	expect_line(text,
	            "t_rows_total{table=\"public.ev\",mode=\"upsert\"} 0");
	expect_line(text,
	            "t_rows_total{table=\"we\\\"ird\",mode=\"upsert\"} 7");
	expect_line(text, "t_temperature 21.5");
	/* One HELP and one TYPE per family, whatever the number of children;
	 * families in the order they were first asked for. */
	ck_assert_uint_eq(occurrences(text, "# TYPE t_rows_total counter"), 1);
	ck_assert(strstr(text, "# TYPE t_rows_total") <
	          strstr(text, "# TYPE t_temperature gauge"));
	ck_assert_ptr_null(strstr(text, "_other"));
	free(text);
	mt_reset();
}
END_TEST

START_TEST(test_cap_and_overflow)
{
	const char *v[2] = {NULL, "insert"};
	char name[8];
	struct mt_family *f = mt_family(&rows_d);
	struct mt_metric *over;
	char *text;

	for (unsigned i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "t%u", i);
		v[0] = name;
		mt_add(mt_child(f, v), 1);
	}
	v[0] = "one_too_many";
	over = mt_child(f, v);
	v[0] = "another";
	ck_assert_ptr_eq(mt_child(f, v), over);
	mt_add(over, 9);
	text = render();
	expect_line(text, "t_rows_total{table=\"t2\",mode=\"insert\"} 1");
	expect_line(text, "t_rows_total{table=\"_other\",mode=\"other\"} 9");
	ck_assert_ptr_null(strstr(text, "one_too_many"));
	free(text);
	mt_reset();
}
END_TEST

START_TEST(test_histograms_cumulative)
{
	struct mt_metric *h = mt_metric_of(&lat_d);
	char *text;

	mt_observe(h, 0.0003); /* first bucket */
	mt_observe(h, 0.001);  /* exactly the bound: le is inclusive */
	mt_observe(h, 0.04);
	mt_observe(h, 60); /* only +Inf */
	mt_add(h, 5);      /* not a counter: ignored */
	text = render();
	expect_line(text, "# TYPE t_seconds histogram");
	expect_line(text, "t_seconds_bucket{le=\"0.001\"} 2");
	expect_line(text, "t_seconds_bucket{le=\"0.05\"} 3");
	expect_line(text, "t_seconds_bucket{le=\"30\"} 3");
	expect_line(text, "t_seconds_bucket{le=\"+Inf\"} 4");
	expect_line(text, "t_seconds_count 4");
	expect_line(text, "t_seconds_sum 60.0413");
	free(text);
	/* Quantiles by bucket bound: p50 is in the 0.001 bucket. */
	ck_assert(mt_quantile(h, 0.5) == 0.001);
	ck_assert(mt_quantile(h, 0.75) == 0.05);
	ck_assert(mt_quantile(h, 0.99) == 30);
	ck_assert(mt_value(h) == 4);
	mt_reset();
	h = mt_metric_of(&lat_d);
	ck_assert(mt_quantile(h, 0.99) == 0);
	mt_reset();
}
END_TEST

static void collect(void *arg)
{
	(*(int *)arg)++;
	mt_set(mt_metric_of(&temp_d), 1700000000.123);
}

START_TEST(test_collector_and_exact_values)
{
	int runs = 0;
	char *text;

	mt_set_collector(collect, &runs);
	text = render();
	ck_assert_int_eq(runs, 1);
	/* The shortest text that reads back: not 1700000000.1229999. */
	expect_line(text, "t_temperature 1700000000.123");
	free(text);
	/* NULL is a no-op everywhere (an OOM at registration). */
	mt_add(NULL, 1);
	mt_set(NULL, 1);
	mt_observe(NULL, 1);
	ck_assert(mt_value(NULL) == 0);
	ck_assert_ptr_null(mt_child(NULL, NULL));
	mt_reset();
	text = render();
	ck_assert_int_eq(runs, 1); /* mt_reset forgot the collector */
	ck_assert_str_eq(text, "");
	free(text);
}
END_TEST

START_TEST(test_gauges_from_module_stats)
{
	struct gg_values v = {.ing = {.clients = 3, .buffered_bytes = 4096},
	                      .pool = {.idle = 2, .lent = 1, .opened = 5},
	                      .ready = true,
	                      .cpu_s = 1.25,
	                      .credential_expires_ms = -1};
	char *text;

	gg_register();
	gg_collect(&v);
	text = render();
	ck_assert(strncmp(text, "# HELP lbp_build_info ", 22) == 0);
	expect_line(text, "lbp_clients 3");
	expect_line(text, "lbp_upstream_connections{state=\"idle\"} 2");
	expect_line(text, "lbp_upstream_connections{state=\"lent\"} 1");
	expect_line(text, "lbp_upstream_logins_total 5");
	expect_line(text, "lbp_buffered_bytes 4096");
	expect_line(text, "lbp_ready 1");
	expect_line(text, "process_cpu_seconds_total 1.25");
	/* The other modules' families are there before any traffic. */
	expect_line(text, "# TYPE lbp_rows_committed_total counter");
	expect_line(text, "# TYPE lbp_flush_ack_seconds histogram");
	expect_line(text, "# TYPE lbp_upstream_errors_total counter");
	/* No credential: no expiry gauge, rather than a made-up 0. */
	ck_assert_ptr_null(strstr(text, "lbp_credential_expiry"));
	free(text);
	v.credential_expires_ms = 1700000000123;
	gg_collect(&v);
	text = render();
	expect_line(text, "lbp_credential_expiry_timestamp_seconds "
	                  "1700000000.123");
	ck_assert(text[strlen(text) - 1] == '\n');
	free(text);
	mt_reset();
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_add_test(tc, test_label_escape);
	tcase_add_test(tc, test_children_counted_and_rendered);
	tcase_add_test(tc, test_cap_and_overflow);
	tcase_add_test(tc, test_histograms_cumulative);
	tcase_add_test(tc, test_collector_and_exact_values);
	tcase_add_test(tc, test_gauges_from_module_stats);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(metrics_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
