/* test_metrics.c: counters, histograms, caps and the Prometheus text. */
#include "metrics.h"

#include <check.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The whole exposition for g, as a heap string. */
static char *render(const struct mt_gauges *g)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *s;

	ck_assert(mt_render(b, g));
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

START_TEST(test_series_counted_and_rendered)
{
	struct mt_gauges g = {.credential_expires_ms = -1};
	struct mt_series *a = mt_series_get("public.ev", 'i');
	char *text;

	ck_assert_ptr_eq(mt_series_get("public.ev", 'i'), a);
	ck_assert_ptr_ne(mt_series_get("public.ev", 'u'), a);
	a->rows_committed = 500;
	a->rows_rejected = 3;
	mt_series_get("we\"ird", 'u')->rows_committed = 7;
	text = render(&g);
	expect_line(text, "lbp_rows_committed_total{table=\"public.ev\","
	                  "mode=\"insert\"} 500");
	expect_line(text, "lbp_rows_committed_total{table=\"public.ev\","
	                  "mode=\"upsert\"} 0");
	expect_line(text, "lbp_rows_rejected_total{table=\"public.ev\","
	                  "mode=\"insert\"} 3");
	expect_line(text, "lbp_rows_committed_total{table=\"we\\\"ird\","
	                  "mode=\"upsert\"} 7");
	/* One HELP and one TYPE per family, whatever the number of series. */
	ck_assert_uint_eq(occurrences(text, "# TYPE lbp_rows_committed_total "),
	                  1);
	/* No credential: no expiry gauge, rather than a made-up 0. */
	ck_assert_ptr_null(strstr(text, "lbp_credential_expiry"));
	ck_assert_ptr_null(strstr(text, "_other"));
	free(text);
	mt_reset();
}
END_TEST

START_TEST(test_series_cap)
{
	char name[32];
	struct mt_series *s;
	char *text;
	struct mt_gauges g = {.credential_expires_ms = -1};

	for (unsigned i = 0; i < MT_MAX_SERIES; i++) {
		snprintf(name, sizeof(name), "t%u", i);
		ck_assert_str_eq(mt_series_get(name, 'i')->table, name);
	}
	s = mt_series_get("one_too_many", 'i');
	ck_assert_str_eq(s->table, "_other");
	ck_assert_ptr_eq(mt_series_get("another", 'u'), s);
	s->rows_received = 9;
	text = render(&g);
	expect_line(text, "lbp_rows_received_total{table=\"_other\","
	                  "mode=\"other\"} 9");
	free(text);
	mt_reset();
}
END_TEST

START_TEST(test_histograms_cumulative)
{
	struct mt_gauges g = {.credential_expires_ms = -1};
	struct mt_series *s = mt_series_get("t", 'i');
	char *text;

	mt_batch(s, 1);
	mt_batch(s, 100);
	mt_batch(s, 5000);
	mt_batch(s, 5000000);
	mt_flush_latency_us(300);      /* 0.0003 s: first bucket */
	mt_flush_latency_us(1000);     /* exactly 0.001: le is inclusive */
	mt_flush_latency_us(40000);    /* 0.04 */
	mt_flush_latency_us(60000000); /* 60 s: only +Inf */
	text = render(&g);
	expect_line(text, "lbp_batch_rows_bucket{le=\"1\"} 1");
	expect_line(text, "lbp_batch_rows_bucket{le=\"10\"} 1");
	expect_line(text, "lbp_batch_rows_bucket{le=\"100\"} 2");
	expect_line(text, "lbp_batch_rows_bucket{le=\"10000\"} 3");
	expect_line(text, "lbp_batch_rows_bucket{le=\"1e+06\"} 3");
	expect_line(text, "lbp_batch_rows_bucket{le=\"+Inf\"} 4");
	expect_line(text, "lbp_batch_rows_count 4");
	expect_line(text, "lbp_batch_rows_sum 5005101");
	expect_line(text, "lbp_batches_total{table=\"t\",mode=\"insert\"} 4");
	expect_line(text, "lbp_flush_ack_seconds_bucket{le=\"0.0005\"} 1");
	expect_line(text, "lbp_flush_ack_seconds_bucket{le=\"0.001\"} 2");
	expect_line(text, "lbp_flush_ack_seconds_bucket{le=\"0.05\"} 3");
	expect_line(text, "lbp_flush_ack_seconds_bucket{le=\"30\"} 3");
	expect_line(text, "lbp_flush_ack_seconds_bucket{le=\"+Inf\"} 4");
	free(text);
	/* Quantiles by bucket bound: p50 is in the 0.001 bucket. */
	ck_assert(mt_flush_latency_quantile(0.5) == 0.001);
	ck_assert(mt_flush_latency_quantile(0.75) == 0.05);
	ck_assert(mt_flush_latency_quantile(0.99) == 30);
	mt_reset();
	ck_assert(mt_flush_latency_quantile(0.99) == 0);
}
END_TEST

START_TEST(test_sqlstates)
{
	struct mt_gauges g = {.credential_expires_ms = 1700000000123};
	char code[6], *text;

	mt_upstream_error("23505");
	mt_upstream_error("23505");
	mt_upstream_error(NULL);        /* a server that sent no code */
	mt_upstream_error("bad\"code"); /* not 5 characters: not a label */
	for (unsigned i = 0; i < MT_MAX_SQLSTATES + 5; i++) {
		snprintf(code, sizeof(code), "X%04u", i);
		mt_upstream_error(code);
	}
	text = render(&g);
	expect_line(text, "lbp_upstream_errors_total{sqlstate=\"23505\"} 2");
	expect_line(text, "lbp_upstream_errors_total{sqlstate=\"?????\"} 2");
	/* 2 codes above plus MT_MAX_SQLSTATES - 2 of the loop's; the rest: */
	expect_line(text, "lbp_upstream_errors_total{sqlstate=\"other\"} 7");
	expect_line(text, "lbp_credential_expiry_timestamp_seconds "
	                  "1700000000.123");
	ck_assert_ptr_null(strstr(text, "bad\""));
	free(text);
	mt_reset();
}
END_TEST

START_TEST(test_gauges)
{
	struct mt_gauges g = {.ing = {.clients = 3, .buffered_bytes = 4096},
	                      .pool = {.idle = 2, .lent = 1},
	                      .ready = true,
	                      .credential_expires_ms = -1};
	char *text = render(&g);

	expect_line(text, "lbp_clients 3");
	expect_line(text, "lbp_upstream_connections{state=\"idle\"} 2");
	expect_line(text, "lbp_upstream_connections{state=\"lent\"} 1");
	expect_line(text, "lbp_buffered_bytes 4096");
	expect_line(text, "lbp_ready 1");
	ck_assert(strncmp(text, "# HELP lbp_build_info ", 22) == 0);
	ck_assert(text[strlen(text) - 1] == '\n');
	free(text);
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_add_test(tc, test_label_escape);
	tcase_add_test(tc, test_series_counted_and_rendered);
	tcase_add_test(tc, test_series_cap);
	tcase_add_test(tc, test_histograms_cumulative);
	tcase_add_test(tc, test_sqlstates);
	tcase_add_test(tc, test_gauges);
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
