/* test_catalog.c: the table catalog against a real PostgreSQL: lookups, the
 * cache, invalidation, and freeing in every state an entry can be in. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "catalog.h"
#include "harness_env.h"
#include "pool.h"
#include "testloop.h"
#include "tls.h"
#include "upstream_params.h"

static struct harness_env env;
static struct event_base *base;
static struct evdns_base *dns;
static SSL_CTX *ctx;
static struct pool *pool;

static void setup(void)
{
	char err[256], out[64];
	struct up_params p;
	struct cfg_pool pc = harness_pool_cfg(1, 2);

	ck_assert(harness_env_load(&env));
	ck_assert(harness_sql(&env,
	                      "DROP TABLE IF EXISTS cat_t; CREATE TABLE cat_t "
	                      "(id bigint PRIMARY KEY, v text NOT NULL, "
	                      "ts timestamptz); GRANT ALL ON cat_t TO lbp_test",
	                      out, sizeof(out)));
	base = event_base_new();
	dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	ctx = tls_client_ctx_new(SSLMODE_VERIFY_FULL, env.ca_file, err,
	                         sizeof(err));
	ck_assert_msg(ctx != NULL, "%s", err);
	p = harness_up_params(&env, ctx);
	pool = pool_new(base, dns, &p, &pc);
	ck_assert_ptr_nonnull(pool);
}

static void teardown(void)
{
	/* server_free's order: the catalog before the pool it borrows from. */
	pool_free(pool);
	SSL_CTX_free(ctx);
	evdns_base_free(dns, 0);
	event_base_free(base);
}

struct answer {
	bool done;
	bool found;
	char sqlstate[6];
	char message[256];
	char rel[130]; /* schema.table as the catalog has them */
	size_t ncols;
	size_t nindexes;
	char second_type[64];
};

static void on_answer(const struct cat_table *t, const char *sqlstate,
                      const char *message, void *arg)
{
	struct answer *a = arg;

	a->done = true;
	a->found = t != NULL;
	if (t == NULL) {
		snprintf(a->sqlstate, sizeof(a->sqlstate), "%s", sqlstate);
		snprintf(a->message, sizeof(a->message), "%s", message);
		return;
	}
	snprintf(a->rel, sizeof(a->rel), "%s.%s", t->rel_schema, t->rel_name);
	a->ncols = t->ncols;
	a->nindexes = t->nindexes;
	if (t->ncols > 2)
		snprintf(a->second_type, sizeof(a->second_type), "%s",
		         t->cols[2].type);
}

static bool answered(void *arg)
{
	return ((struct answer *)arg)->done;
}

START_TEST(test_lookup_found_and_missing)
{
	struct catalog *cat = cat_new(base, pool, 300);
	struct answer a = {0}, b = {0};

	ck_assert_ptr_nonnull(cat_lookup(cat, "", "cat_t", on_answer, &a));
	ck_assert_ptr_nonnull(
	    cat_lookup(cat, "public", "no_such_table", on_answer, &b));
	ck_assert(!a.done); /* never from inside cat_lookup */
	ck_assert(testloop_until(base, answered, &a, 10));
	ck_assert(testloop_until(base, answered, &b, 10));
	ck_assert(a.found);
	ck_assert_uint_eq(a.ncols, 3);
	ck_assert_uint_eq(a.nindexes, 1);
	ck_assert_str_eq(a.second_type, "timestamp with time zone");
	ck_assert(!b.found);
	ck_assert_str_eq(b.sqlstate, "42P01");
	cat_free(cat);
}
END_TEST

/*
 * The names rule: "CAT_T" finds cat_t (the only table equal ignoring ASCII
 * case) and answers the catalog's names; with two such tables and no exact
 * match the lookup fails naming both; an exact match still wins. A batch
 * invalidates by the resolved names, which must drop the entry asked as
 * "CAT_T" too.
 */
START_TEST(test_lookup_ignores_case_only_when_unambiguous)
{
	struct catalog *cat = cat_new(base, pool, 300);
	struct answer a = {0}, b = {0}, c = {0}, d = {0};
	char out[256];

	ck_assert(harness_sql(&env,
	                      "DROP TABLE IF EXISTS \"Cat_Two\", cat_two; "
	                      "CREATE TABLE \"Cat_Two\" (a int); CREATE "
	                      "TABLE cat_two (a int, b int)",
	                      out, sizeof(out)));
	ck_assert_ptr_nonnull(
	    cat_lookup(cat, "PUBLIC", "CAT_T", on_answer, &a));
	ck_assert_ptr_nonnull(cat_lookup(cat, "", "CAT_TWO", on_answer, &b));
	ck_assert_ptr_nonnull(cat_lookup(cat, "", "Cat_Two", on_answer, &c));
	ck_assert(testloop_until(base, answered, &a, 10));
	ck_assert(testloop_until(base, answered, &b, 10));
	ck_assert(testloop_until(base, answered, &c, 10));
	ck_assert(a.found);
	ck_assert_str_eq(a.rel, "public.cat_t");
	ck_assert(!b.found);
	ck_assert_str_eq(b.sqlstate, "42P01");
	ck_assert_msg(strstr(b.message, "public.\"Cat_Two\", public.cat_two"),
	              "%s", b.message);
	ck_assert(c.found);
	ck_assert_str_eq(c.rel, "public.Cat_Two");
	ck_assert_uint_eq(c.ncols, 1);
	cat_invalidate(cat, "public", "cat_t"); /* as a batch names it */
	ck_assert(harness_sql(&env, "ALTER TABLE cat_t ADD COLUMN extra int",
	                      out, sizeof(out)));
	ck_assert_ptr_nonnull(
	    cat_lookup(cat, "PUBLIC", "CAT_T", on_answer, &d));
	ck_assert(testloop_until(base, answered, &d, 10));
	ck_assert_uint_eq(d.ncols, 4); /* reloaded, not the cached 3 */
	ck_assert(harness_sql(&env,
	                      "ALTER TABLE cat_t DROP COLUMN extra; DROP "
	                      "TABLE \"Cat_Two\", cat_two",
	                      out, sizeof(out)));
	cat_free(cat);
}
END_TEST

/*
 * An entry invalidated while it waits for a connection stays the catalog's
 * to free: freeing the catalog, then the pool (which calls back its
 * waiters), must not call into the freed entry (heap-use-after-free under
 * ASan before entries had owning lists in every state).
 */
START_TEST(test_free_with_invalidated_loading_entry)
{
	struct catalog *cat = cat_new(base, pool, 300);
	struct answer a = {0};

	ck_assert_ptr_nonnull(cat_lookup(cat, "", "cat_t", on_answer, &a));
	cat_invalidate(cat, "", "cat_t");
	cat_free(cat);
	ck_assert(a.done); /* answered 57P01 by cat_free */
	ck_assert_str_eq(a.sqlstate, "57P01");
	pool_free(pool);
	pool = NULL;
}
END_TEST

/*
 * The last lookup of an invalidated entry withdrawn while its query runs:
 * the entry goes when the query ends (it leaked before: LeakSanitizer
 * fails this test's process at exit).
 */
START_TEST(test_cancel_last_lookup_of_orphan)
{
	struct catalog *cat = cat_new(base, pool, 300);
	struct answer a = {0}, b = {0};
	struct cat_lookup *l;

	l = cat_lookup(cat, "", "cat_t", on_answer, &a);
	ck_assert_ptr_nonnull(l);
	cat_invalidate(cat, "", "cat_t");
	cat_cancel(cat, l);
	/* A new lookup of the same table does not join the orphan. */
	ck_assert_ptr_nonnull(cat_lookup(cat, "", "cat_t", on_answer, &b));
	ck_assert(testloop_until(base, answered, &b, 10));
	ck_assert(b.found);
	testloop_run_for(base, 0.3); /* the orphan's query ends too */
	ck_assert(!a.done);
	cat_free(cat);
}
END_TEST

/* Invalidated after it loaded, with its answer not yet delivered. */
START_TEST(test_invalidate_ready_with_answer_pending)
{
	struct catalog *cat = cat_new(base, pool, 300);
	struct answer a = {0}, b = {0};

	ck_assert_ptr_nonnull(cat_lookup(cat, "", "cat_t", on_answer, &a));
	ck_assert(testloop_until(base, answered, &a, 10));
	ck_assert_ptr_nonnull(cat_lookup(cat, "", "cat_t", on_answer, &b));
	cat_invalidate(cat, "", "cat_t");
	ck_assert(!b.done);
	ck_assert(testloop_until(base, answered, &b, 10));
	ck_assert(b.found); /* the answer it was promised, from the orphan */
	ck_assert_uint_eq(b.ncols, 3);
	cat_free(cat);
}
END_TEST

/* A cancelled answer of an orphan frees it; nothing is called back. */
START_TEST(test_cancel_pending_answer_of_orphan)
{
	struct catalog *cat = cat_new(base, pool, 300);
	struct answer a = {0}, b = {0};
	struct cat_lookup *l;

	ck_assert_ptr_nonnull(cat_lookup(cat, "", "cat_t", on_answer, &a));
	ck_assert(testloop_until(base, answered, &a, 10));
	l = cat_lookup(cat, "", "cat_t", on_answer, &b);
	cat_invalidate(cat, "", "cat_t");
	cat_cancel(cat, l);
	testloop_run_for(base, 0.1);
	ck_assert(!b.done);
	cat_free(cat);
}
END_TEST

static Suite *catalog_suite(void)
{
	Suite *s = suite_create("catalog");
	TCase *tc = tcase_create("catalog");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_lookup_found_and_missing);
	tcase_add_test(tc, test_lookup_ignores_case_only_when_unambiguous);
	tcase_add_test(tc, test_free_with_invalidated_loading_entry);
	tcase_add_test(tc, test_cancel_last_lookup_of_orphan);
	tcase_add_test(tc, test_invalidate_ready_with_answer_pending);
	tcase_add_test(tc, test_cancel_pending_answer_of_orphan);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(catalog_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
