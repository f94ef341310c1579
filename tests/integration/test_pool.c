/* test_pool.c: the warm pool against a real PostgreSQL: size, repair,
 * recycling. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "harness_env.h"
#include "pool.h"
#include "testloop.h"
#include "tls.h"
#include "upstream_params.h"

static struct harness_env env;
static struct event_base *base;
static struct evdns_base *dns;
static SSL_CTX *ctx;

static void setup(void)
{
	char err[256];

	ck_assert(harness_env_load(&env));
	base = event_base_new();
	dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	ctx = tls_client_ctx_new(SSLMODE_VERIFY_FULL, env.ca_file, err,
	                         sizeof(err));
	ck_assert_msg(ctx != NULL, "%s", err);
}

static void teardown(void)
{
	SSL_CTX_free(ctx);
	evdns_base_free(dns, 0);
	event_base_free(base);
}

static struct up_params params(void)
{
	struct up_params p = harness_up_params(&env, ctx);

	p.connect_timeout_ms = 2000;
	p.login_timeout_ms = 5000;
	p.query_timeout_ms = 10000;
	return p;
}

struct idle_goal {
	struct pool *pool;
	unsigned idle;
};

static bool idle_reached(void *arg)
{
	struct idle_goal *g = arg;
	struct pool_stats s;

	pool_get_stats(g->pool, &s);
	return s.idle == g->idle && s.opening == 0 && s.checking == 0;
}

static void wait_idle(struct pool *p, unsigned n)
{
	struct idle_goal g = {p, n};
	struct pool_stats s;

	if (!testloop_until(base, idle_reached, &g, 30)) {
		pool_get_stats(p, &s);
		ck_abort_msg("pool not at %u idle: opening=%u idle=%u "
		             "failures=%u",
		             n, s.opening, s.idle, s.failures);
	}
}

/* Backend pids of the proxy's TLS sessions, as the server sees them. */
static void server_pids(char *out, size_t size)
{
	ck_assert(harness_sql(&env,
	                      "SELECT coalesce(string_agg(a.pid::text, ',' "
	                      "ORDER BY a.pid), '') FROM pg_stat_activity a "
	                      "JOIN pg_stat_ssl s USING (pid) WHERE "
	                      "a.application_name = 'lakebase-proxy' AND "
	                      "a.usename = 'lbp_test' AND s.ssl",
	                      out, size));
}

static unsigned count_pids(const char *list)
{
	unsigned n = list[0] ? 1 : 0;

	for (const char *p = list; *p; p++)
		n += *p == ',';
	return n;
}

struct pids_goal {
	unsigned want;
	const char *not_containing; /* none of these pids may remain */
};

static bool pids_reached(void *arg)
{
	struct pids_goal *g = arg;
	char now[1024];

	server_pids(now, sizeof(now));
	if (count_pids(now) != g->want)
		return false;
	if (g->not_containing == NULL)
		return true;
	/* compare as sets of whole numbers */
	char copy[1024];
	snprintf(copy, sizeof(copy), "%s", g->not_containing);
	for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
		char needle[32];
		snprintf(needle, sizeof(needle), ",%s,", tok);
		char hay[1100];
		snprintf(hay, sizeof(hay), ",%s,", now);
		if (strstr(hay, needle))
			return false;
	}
	return true;
}

static void wait_server_pids(unsigned want, const char *gone)
{
	struct pids_goal g = {want, gone};
	char now[1024];

	if (!testloop_until(base, pids_reached, &g, 30)) {
		server_pids(now, sizeof(now));
		ck_abort_msg("server shows pids [%s], want %u not in [%s]", now,
		             want, gone ? gone : "");
	}
}

START_TEST(warm_pool_shows_in_pg_stat_ssl)
{
	struct cfg_pool pc = harness_pool_cfg(3, 6);
	struct up_params p = params();
	struct pool *pool = pool_new(base, dns, &p, &pc);

	wait_idle(pool, 3);
	wait_server_pids(3, NULL);
	pool_free(pool);
	wait_server_pids(0, NULL);
}
END_TEST

struct borrower {
	struct pool *pool;
	struct up_conn *conn;
	bool called;
};

static void got_conn(struct up_conn *c, void *arg)
{
	struct borrower *b = arg;

	b->conn = c;
	b->called = true;
}

static bool all_called(void *arg)
{
	struct borrower *b = arg;

	for (int i = 0; i < 4; i++)
		if (!b[i].called)
			return false;
	return true;
}

START_TEST(acquire_grows_to_max_then_queues)
{
	struct cfg_pool pc = harness_pool_cfg(1, 4);
	struct up_params p = params();
	struct pool *pool = pool_new(base, dns, &p, &pc);
	struct borrower b[5] = {{0}};
	struct pool_stats s;

	wait_idle(pool, 1);
	for (int i = 0; i < 5; i++) {
		b[i].pool = pool;
		ck_assert_ptr_nonnull(pool_acquire(pool, got_conn, &b[i]));
	}
	ck_assert(testloop_until(base, all_called, b, 20));
	testloop_run_for(base, 0.3);
	ck_assert(!b[4].called);
	pool_get_stats(pool, &s);
	ck_assert_uint_eq(s.lent, 4);
	ck_assert_uint_eq(s.waiters, 1);
	/* Four distinct connections, all usable. */
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++)
			ck_assert_ptr_ne(b[i].conn, b[j].conn);
	pool_release(pool, b[2].conn);
	ck_assert(testloop_until(base, testloop_flag, &b[4].called, 5));
	ck_assert_ptr_eq(b[4].conn, b[2].conn);
	for (int i = 0; i < 5; i++)
		if (i != 2)
			pool_release(pool, b[i].conn);
	wait_idle(pool, 4);
	pool_free(pool);
}
END_TEST

START_TEST(terminated_backend_is_replaced)
{
	struct cfg_pool pc = harness_pool_cfg(3, 6);
	struct up_params p = params();
	struct pool *pool = pool_new(base, dns, &p, &pc);
	char before[1024], out[128], sql[128];
	struct pool_stats s;

	wait_idle(pool, 3);
	wait_server_pids(3, NULL);
	server_pids(before, sizeof(before));
	char victim[32];
	snprintf(victim, sizeof(victim), "%.*s", (int)strcspn(before, ","),
	         before);
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%s)", victim);
	ck_assert(harness_sql(&env, sql, out, sizeof(out)));
	wait_server_pids(3, victim);
	wait_idle(pool, 3);
	pool_get_stats(pool, &s);
	ck_assert_uint_eq(s.opened, 4);
	ck_assert_uint_eq(s.closed, 1);
	pool_free(pool);
}
END_TEST

START_TEST(pool_whole_again_after_server_restart)
{
	struct cfg_pool pc = harness_pool_cfg(3, 6);
	struct up_params p = params();
	struct pool *pool = pool_new(base, dns, &p, &pc);
	char before[1024];

	wait_idle(pool, 3);
	wait_server_pids(3, NULL);
	server_pids(before, sizeof(before));
	ck_assert(harness_ctl(&env, "restart"));
	wait_server_pids(3, before);
	wait_idle(pool, 3);
	pool_free(pool);
}
END_TEST

START_TEST(idle_connections_are_checked)
{
	struct cfg_pool pc = harness_pool_cfg(2, 2);
	struct up_params p = params();
	struct pool *pool;
	char out[256];

	pc.health_check_s = 1;
	pool = pool_new(base, dns, &p, &pc);
	wait_idle(pool, 2);
	testloop_run_for(base, 2.5);
	/* The check is an empty query; the server records it as the last. */
	ck_assert(harness_sql(&env,
	                      "SELECT count(*) FROM pg_stat_activity WHERE "
	                      "application_name = 'lakebase-proxy' AND "
	                      "query = ';'",
	                      out, sizeof(out)));
	ck_assert_str_eq(out, "2");
	pool_free(pool);
}
END_TEST

START_TEST(connections_recycled_after_max_lifetime)
{
	struct cfg_pool pc = harness_pool_cfg(2, 2);
	struct up_params p = params();
	struct pool *pool;
	char before[1024];
	struct pool_stats s;

	pc.max_lifetime_s = 1;
	pool = pool_new(base, dns, &p, &pc);
	wait_idle(pool, 2);
	wait_server_pids(2, NULL);
	server_pids(before, sizeof(before));
	wait_server_pids(2, before);
	pool_get_stats(pool, &s);
	ck_assert_uint_ge(s.closed, 2);
	pool_free(pool);
}
END_TEST

static bool opening_at_most_one(struct pool *pool)
{
	struct pool_stats s;

	pool_get_stats(pool, &s);
	return s.opening <= 1;
}

START_TEST(down_server_sees_a_trickle_not_a_storm)
{
	struct cfg_pool pc = harness_pool_cfg(8, 8);
	struct up_params p = params();
	struct pool *pool;
	struct pool_stats s;
	double end;

	p.password = "wrong-password";
	pool = pool_new(base, dns, &p, &pc);
	/* The first wave may open all eight; after one failure, only probes. */
	testloop_run_for(base, 0.5);
	end = testloop_now() + 2.0;
	while (testloop_now() < end) {
		ck_assert(opening_at_most_one(pool));
		testloop_run_for(base, 0.05);
	}
	pool_get_stats(pool, &s);
	/* Backoff 50 ms doubling to 500 ms: a storm would be hundreds. */
	ck_assert_uint_ge(s.failed, 3);
	ck_assert_uint_le(s.failed, 8 + 12);
	ck_assert_uint_eq(s.opened, 0);
	ck_assert_uint_ge(s.failures, 3);
	pool_free(pool);
}
END_TEST

static void count_failing(unsigned failures, void *arg)
{
	(*(unsigned *)arg)++;
}

/* The control plane's use: no host at first, then host and new passwords. */
START_TEST(waits_for_host_then_takes_new_password)
{
	struct cfg_pool pc = harness_pool_cfg(2, 2);
	struct up_params p = params();
	struct pool *pool;
	struct pool_stats s;
	unsigned failing = 0;
	char password[128];

	snprintf(password, sizeof(password), "%s", p.password);
	p.host = NULL;
	p.password = "wrong-password";
	pool = pool_new(base, dns, &p, &pc);
	pool_on_failing(pool, 2, count_failing, &failing);
	testloop_run_for(base, 0.3);
	pool_get_stats(pool, &s);
	ck_assert_uint_eq(s.opening + s.idle + s.failed, 0);

	ck_assert(pool_set_host(pool, env.host));
	testloop_run_for(base, 1.0);
	pool_get_stats(pool, &s);
	ck_assert_uint_ge(s.failed, 2);
	ck_assert_uint_ge(failing, 1);
	ck_assert_uint_eq(s.opened, 0);

	/* the caller's buffer may change: the pool keeps its own copy */
	ck_assert(pool_set_password(pool, password));
	memset(password, 'x', sizeof(password) - 1);
	wait_idle(pool, 2);
	pool_free(pool);
}
END_TEST

static void borrow(struct pool *pool, struct borrower *b)
{
	b->pool = pool;
	b->called = false;
	ck_assert_ptr_nonnull(pool_acquire(pool, got_conn, b));
}

/* A reload's new sizes: more room serves waiters, less closes idle ones. */
START_TEST(reconfigure_grows_and_shrinks)
{
	struct cfg_pool pc = harness_pool_cfg(1, 1);
	struct up_params p = params();
	struct pool *pool = pool_new(base, dns, &p, &pc);
	struct borrower b[3] = {{0}};
	struct pool_stats s;

	wait_idle(pool, 1);
	borrow(pool, &b[0]);
	borrow(pool, &b[1]);
	ck_assert(testloop_until(base, testloop_flag, &b[0].called, 5));
	testloop_run_for(base, 0.3);
	ck_assert(!b[1].called);

	pc = harness_pool_cfg(1, 2);
	pool_reconfigure(pool, &pc);
	ck_assert(testloop_until(base, testloop_flag, &b[1].called, 10));
	pool_release(pool, b[0].conn);
	pool_release(pool, b[1].conn);
	wait_idle(pool, 2);

	/* smaller: the idle surplus goes now */
	pc = harness_pool_cfg(1, 1);
	pool_reconfigure(pool, &pc);
	pool_get_stats(pool, &s);
	ck_assert_uint_eq(s.idle, 1);
	ck_assert_uint_eq(s.closed, 1);
	wait_server_pids(1, NULL);

	pc = harness_pool_cfg(3, 4);
	pool_reconfigure(pool, &pc);
	wait_idle(pool, 3);
	for (int i = 0; i < 3; i++)
		borrow(pool, &b[i]);
	for (int i = 0; i < 3; i++)
		ck_assert(testloop_until(base, testloop_flag, &b[i].called, 5));

	/* smaller while all are lent: closed as they come back */
	pc = harness_pool_cfg(0, 1);
	pool_reconfigure(pool, &pc);
	pool_get_stats(pool, &s);
	ck_assert_uint_eq(s.lent, 3);
	for (int i = 0; i < 3; i++)
		pool_release(pool, b[i].conn);
	pool_get_stats(pool, &s);
	ck_assert_uint_eq(s.idle, 1);
	ck_assert_uint_eq(s.lent, 0);
	ck_assert_uint_eq(s.closed, 3);
	wait_server_pids(1, NULL);
	pool_free(pool);
}
END_TEST

static unsigned sessions_of(const char *app)
{
	char sql[256], out[32];

	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM pg_stat_activity WHERE "
	         "application_name = '%s'",
	         app);
	ck_assert(harness_sql(&env, sql, out, sizeof(out)));
	return (unsigned)strtoul(out, NULL, 10);
}

struct app_goal {
	const char *app;
	unsigned want;
};

static bool app_reached(void *arg)
{
	struct app_goal *g = arg;

	return sessions_of(g->app) == g->want;
}

static void wait_app(const char *app, unsigned want)
{
	struct app_goal g = {app, want};

	if (!testloop_until(base, app_reached, &g, 30))
		ck_abort_msg("%u sessions of %s, want %u", sessions_of(app),
		             app, want);
}

/* New connection settings: idle connections now, lent ones on release. */
START_TEST(set_endpoint_replaces_connections)
{
	struct cfg_pool pc = harness_pool_cfg(2, 4);
	struct up_params p = params();
	struct pool *pool = pool_new(base, dns, &p, &pc);
	struct borrower lent = {0};
	char app[32], user[64];
	struct pool_stats s;

	wait_idle(pool, 2);
	wait_app("lakebase-proxy", 2);
	borrow(pool, &lent);
	ck_assert(testloop_until(base, testloop_flag, &lent.called, 5));

	/* the pool keeps its own copies: these buffers change right after */
	snprintf(app, sizeof(app), "lbp-endpoint-b");
	snprintf(user, sizeof(user), "%s", p.user);
	p.application_name = app;
	p.user = user;
	p.host = NULL; /* keeps the host it has */
	ck_assert(pool_set_endpoint(pool, &p));
	memset(app, 'x', sizeof(app) - 1);
	memset(user, 'x', sizeof(user) - 1);
	pool_get_stats(pool, &s);
	ck_assert_uint_eq(s.closed, 1); /* the idle one */
	ck_assert_uint_eq(s.lent, 1);

	/* the lent one stays open until it comes back */
	wait_app("lakebase-proxy", 1);
	pool_release(pool, lent.conn);
	pool_get_stats(pool, &s);
	ck_assert_uint_eq(s.closed, 2);
	wait_app("lakebase-proxy", 0);
	wait_idle(pool, 2);
	wait_app("lbp-endpoint-b", 2);
	pool_free(pool);
}
END_TEST

static Suite *pool_suite(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("real_postgres");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, warm_pool_shows_in_pg_stat_ssl);
	tcase_add_test(tc, acquire_grows_to_max_then_queues);
	tcase_add_test(tc, terminated_backend_is_replaced);
	tcase_add_test(tc, pool_whole_again_after_server_restart);
	tcase_add_test(tc, idle_connections_are_checked);
	tcase_add_test(tc, connections_recycled_after_max_lifetime);
	tcase_add_test(tc, down_server_sees_a_trickle_not_a_storm);
	tcase_add_test(tc, waits_for_host_then_takes_new_password);
	tcase_add_test(tc, reconfigure_grows_and_shrinks);
	tcase_add_test(tc, set_endpoint_replaces_connections);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pool_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
