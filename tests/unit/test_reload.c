/* test_reload.c: which settings a reload applies, and what each one needs. */
#include "reload.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static struct config cur, next;
static struct rl_plan plan;
static char err[1024];

#define BASE "LAKEBASE_PROXY_UPSTREAM_HOST=db", "LAKEBASE_PROXY_UPSTREAM_USER=u"
#define LAKEBASE                                                               \
	"LAKEBASE_PROXY_LAKEBASE_WORKSPACE_HOST=https://ws.example.net",       \
	    "LAKEBASE_PROXY_LAKEBASE_INSTANCE_NAME=inst",                      \
	    "LAKEBASE_PROXY_LAKEBASE_TOKEN=pat-1"

static void setup(void)
{
	ck_assert(cfg_init(&cur));
	ck_assert(cfg_init(&next));
}

static void teardown(void)
{
	cfg_free(&cur);
	cfg_free(&next);
}

static void load(struct config *cfg, char *const *env)
{
	ck_assert_msg(cfg_load(cfg, NULL, env, err, sizeof(err)), "%s", err);
}

/* Plans cur_env -> next_env. */
static void plan_of(char *const *cur_env, char *const *next_env)
{
	load(&cur, cur_env);
	load(&next, next_env);
	rl_plan(&cur, &next, &plan);
}

static const struct rl_change *change(const char *section, const char *key)
{
	for (size_t i = 0; i < plan.nchanges; i++) {
		if (strcmp(plan.changes[i].section, section) == 0 &&
		    strcmp(plan.changes[i].key, key) == 0)
			return &plan.changes[i];
	}
	ck_abort_msg("no change of %s.%s", section, key);
	return NULL;
}

static const char *applied(void)
{
	static char buf[1024];

	return rl_applied(&plan, buf, sizeof(buf));
}

START_TEST(test_nothing_changed)
{
	char *const env[] = {BASE, NULL};

	plan_of(env, env);
	ck_assert_uint_eq(plan.nchanges, 0);
	ck_assert_uint_eq(plan.actions, 0);
	ck_assert_str_eq(applied(), "none");
}
END_TEST

START_TEST(test_live_sections)
{
	char *const a[] = {BASE, NULL};
	char *const b[] = {BASE,
	                   "LAKEBASE_PROXY_POOL_MIN_SIZE=4",
	                   "LAKEBASE_PROXY_BATCH_MAX_ROWS=10",
	                   "LAKEBASE_PROXY_BATCH_CATALOG_TTL_S=1",
	                   "LAKEBASE_PROXY_LOG_LEVEL=debug",
	                   "LAKEBASE_PROXY_LOG_STATS_PERIOD_S=5",
	                   "LAKEBASE_PROXY_LOG_FILE=/tmp/x.log",
	                   "LAKEBASE_PROXY_SERVER_SHUTDOWN_TIMEOUT_S=5",
	                   NULL};

	plan_of(a, b);
	ck_assert_uint_eq(plan.nchanges, 7);
	ck_assert_uint_eq(plan.actions, RL_POOL | RL_BATCH | RL_LOG_LEVEL |
	                                    RL_STATS | RL_LOG_FILE);
	for (size_t i = 0; i < plan.nchanges; i++)
		ck_assert_ptr_null(plan.changes[i].ignored);
	ck_assert_str_eq(applied(),
	                 "server.shutdown_timeout_s,pool.min_size,"
	                 "batch.max_rows,batch.catalog_ttl_s,log.level,"
	                 "log.stats_period_s,log.file");
}
END_TEST

START_TEST(test_restart_only)
{
	char *const a[] = {BASE, NULL};
	char *const b[] = {BASE,
	                   "LAKEBASE_PROXY_INGEST_LISTEN=127.0.0.1:1",
	                   "LAKEBASE_PROXY_INGEST_MAX_CLIENTS=3",
	                   "LAKEBASE_PROXY_INGEST_AUTH_TOKEN=tok",
	                   "LAKEBASE_PROXY_ADMIN_LISTEN=127.0.0.1:2",
	                   "LAKEBASE_PROXY_ADMIN_AUTH_TOKEN=atok",
	                   "LAKEBASE_PROXY_BATCH_MAX_ROWS=10",
	                   NULL};

	plan_of(a, b);
	ck_assert_uint_eq(plan.nchanges, 6);
	ck_assert_str_eq(change("ingest", "listen")->ignored, RL_NEEDS_RESTART);
	ck_assert_str_eq(change("ingest", "max_clients")->ignored,
	                 RL_NEEDS_RESTART);
	ck_assert_str_eq(change("admin", "listen")->ignored, RL_NEEDS_RESTART);
	/* the others still apply: the secrets rotate live */
	ck_assert_ptr_null(change("ingest", "auth_token")->ignored);
	ck_assert_ptr_null(change("admin", "auth_token")->ignored);
	ck_assert_ptr_null(change("batch", "max_rows")->ignored);
	ck_assert_uint_eq(plan.actions,
	                  RL_BATCH | RL_INGEST_TOKEN | RL_ADMIN_TOKEN);
	ck_assert_str_eq(applied(),
	                 "ingest.auth_token,batch.max_rows,admin.auth_token");
}
END_TEST

START_TEST(test_frontend)
{
#define FE                                                                     \
	"LAKEBASE_PROXY_FRONTEND_AUTH_FILE=/u",                                \
	    "LAKEBASE_PROXY_FRONTEND_TLS=off"
	char *const a[] = {BASE, FE,
	                   "LAKEBASE_PROXY_FRONTEND_LISTEN=127.0.0.1:1", NULL};
	char *const b[] = {BASE,
	                   FE,
	                   "LAKEBASE_PROXY_FRONTEND_LISTEN=127.0.0.1:2",
	                   "LAKEBASE_PROXY_FRONTEND_POOL_MODE=session",
	                   "LAKEBASE_PROXY_FRONTEND_MAX_CLIENT_CONN=5",
	                   NULL};
#undef FE

	plan_of(a, b);
	ck_assert_uint_eq(plan.nchanges, 3);
	ck_assert_str_eq(change("frontend", "listen")->ignored,
	                 RL_NEEDS_RESTART);
	ck_assert_ptr_null(change("frontend", "pool_mode")->ignored);
	ck_assert_ptr_null(change("frontend", "max_client_conn")->ignored);
	ck_assert_uint_eq(plan.actions, RL_FRONTEND);
	ck_assert_str_eq(applied(),
	                 "frontend.pool_mode,frontend.max_client_conn");
}
END_TEST

START_TEST(test_upstream)
{
	char *const a[] = {BASE, "LAKEBASE_PROXY_UPSTREAM_PASSWORD=old", NULL};
	char *const pw[] = {BASE, "LAKEBASE_PROXY_UPSTREAM_PASSWORD=new", NULL};
	char *const port[] = {BASE, "LAKEBASE_PROXY_UPSTREAM_PASSWORD=old",
	                      "LAKEBASE_PROXY_UPSTREAM_PORT=6432", NULL};
	char *const tls[] = {BASE, "LAKEBASE_PROXY_UPSTREAM_PASSWORD=old",
	                     "LAKEBASE_PROXY_UPSTREAM_SSLMODE=require", NULL};

	/* a new password: new connections only, nothing is replaced */
	plan_of(a, pw);
	ck_assert_uint_eq(plan.actions, RL_PASSWORD);
	ck_assert_str_eq(applied(), "upstream.password");

	cfg_free(&cur);
	cfg_free(&next);
	setup();
	plan_of(a, port);
	ck_assert_uint_eq(plan.actions, RL_ENDPOINT);

	cfg_free(&cur);
	cfg_free(&next);
	setup();
	plan_of(a, tls);
	ck_assert_uint_eq(plan.actions, RL_ENDPOINT | RL_TLS);
}
END_TEST

START_TEST(test_lakebase_changes)
{
	char *const a[] = {BASE, LAKEBASE, NULL};
	char *const token[] = {BASE,
	                       LAKEBASE,
	                       "LAKEBASE_PROXY_LAKEBASE_TOKEN=pat-2",
	                       "LAKEBASE_PROXY_UPSTREAM_HOST=other",
	                       "LAKEBASE_PROXY_UPSTREAM_PASSWORD=pw",
	                       "LAKEBASE_PROXY_UPSTREAM_DBNAME=db2",
	                       NULL};
	char *const moved[] = {BASE, LAKEBASE,
	                       "LAKEBASE_PROXY_LAKEBASE_INSTANCE_NAME=inst2",
	                       NULL};

	plan_of(a, token);
	ck_assert_ptr_null(change("lakebase", "token")->ignored);
	/* the control plane gives host and password */
	ck_assert_str_eq(change("upstream", "host")->ignored, RL_LAKEBASE_OWNS);
	ck_assert_str_eq(change("upstream", "password")->ignored,
	                 RL_LAKEBASE_OWNS);
	ck_assert_ptr_null(change("upstream", "dbname")->ignored);
	ck_assert_uint_eq(plan.actions, RL_CONTROL | RL_ENDPOINT);

	cfg_free(&cur);
	cfg_free(&next);
	setup();
	plan_of(a, moved);
	ck_assert_uint_eq(plan.actions, RL_CONTROL | RL_CONTROL_MOVED);
}
END_TEST

START_TEST(test_lakebase_on_or_off_needs_restart)
{
	char *const off[] = {BASE, NULL};
	char *const on[] = {BASE, LAKEBASE, NULL};

	plan_of(off, on);
	ck_assert_uint_eq(plan.nchanges, 3);
	ck_assert_str_eq(change("lakebase", "workspace_host")->ignored,
	                 RL_NEEDS_RESTART);
	ck_assert_str_eq(change("lakebase", "token")->ignored,
	                 RL_NEEDS_RESTART);
	ck_assert_uint_eq(plan.actions, 0);
	ck_assert_str_eq(applied(), "none");

	/* undone in the new config, nothing is left to differ */
	for (size_t i = 0; i < plan.nchanges; i++)
		ck_assert(cfg_copy_key(&next, &cur, plan.changes[i].section,
		                       plan.changes[i].key));
	ck_assert_uint_eq(cfg_diff(&cur, &next, NULL, NULL), 0);

	cfg_free(&cur);
	cfg_free(&next);
	setup();
	plan_of(on, off);
	ck_assert_uint_eq(plan.actions, 0);
	ck_assert_str_eq(change("lakebase", "instance_name")->ignored,
	                 RL_NEEDS_RESTART);
}
END_TEST

START_TEST(test_room_for_every_key)
{
	ck_assert_uint_le(cfg_key_count(), RL_MAX_CHANGES);
}
END_TEST

START_TEST(test_applied_list_keeps_whole_names)
{
	char *const a[] = {BASE, NULL};
	char *const b[] = {BASE, "LAKEBASE_PROXY_POOL_MIN_SIZE=4",
	                   "LAKEBASE_PROXY_POOL_MAX_SIZE=9", NULL};
	char small[24];

	plan_of(a, b);
	ck_assert_str_eq(rl_applied(&plan, small, sizeof(small)),
	                 "pool.min_size");
}
END_TEST

static Suite *reload_suite(void)
{
	Suite *s = suite_create("reload");
	TCase *tc = tcase_create("plan");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_nothing_changed);
	tcase_add_test(tc, test_live_sections);
	tcase_add_test(tc, test_restart_only);
	tcase_add_test(tc, test_upstream);
	tcase_add_test(tc, test_frontend);
	tcase_add_test(tc, test_lakebase_changes);
	tcase_add_test(tc, test_lakebase_on_or_off_needs_restart);
	tcase_add_test(tc, test_room_for_every_key);
	tcase_add_test(tc, test_applied_list_keeps_whole_names);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(reload_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
