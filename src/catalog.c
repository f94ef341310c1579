/* catalog.c: looks up and caches target tables' columns and unique indexes. */
#include "catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "pool.h"
#include "sqlgen.h"
#include "upstream.h"

/*
 * An entry's life. Each state has a list in struct catalog that owns the
 * entries in it, so cat_free reaches every entry whatever its state:
 *
 *   CE_LOADING  query waiting for a connection or running;   -> loading
 *               new lookups of the table join it
 *   CE_READY    columns known, served until ttl_s or          -> cached
 *               cat_invalidate
 *   CE_STALE    invalidated while loading: its query still    -> orphans
 *               runs and answers the lookups that joined it,
 *               but new lookups start a new entry
 *   CE_ORPHANED invalidated or failed: kept only while a      -> orphans
 *               lookup still holds it (an answer not yet
 *               delivered); freed when refs drops to 0
 */
enum entry_state { CE_LOADING, CE_READY, CE_STALE, CE_ORPHANED };

static const char *const entry_state_names[] = {"loading", "ready", "stale",
                                                "orphaned"};

struct cat_lookup {
	TAILQ_ENTRY(cat_lookup) link; /* its entry's waiters, or ready */
	struct cat_entry *entry;
	cat_cb cb;
	void *arg;
	char sqlstate[6]; /* set when the lookup failed */
	char message[256];
};
TAILQ_HEAD(lookup_list, cat_lookup);

struct cat_entry {
	TAILQ_ENTRY(cat_entry) link; /* the list of its state */
	struct catalog *cat;
	enum entry_state state;
	unsigned refs; /* lookups holding it, waiting or ready */
	uint64_t loaded_ms;
	struct cat_table t;
	struct lookup_list waiters;
	struct pool_waiter *pool_wait;
	bool querying; /* a statement of ours runs on a lent connection */
	unsigned attempts;
};
TAILQ_HEAD(entry_list, cat_entry);

struct catalog {
	struct event_base *base;
	struct pool *pool;
	uint64_t ttl_ms;
	struct entry_list loading;
	struct entry_list cached;
	struct entry_list orphans; /* CE_STALE and CE_ORPHANED */
	struct lookup_list ready;  /* answers to give from the loop */
	struct event *deliver_ev;
};

static void free_table(struct cat_table *t)
{
	for (size_t i = 0; i < t->ncols; i++) {
		free(t->cols[i].name);
		free(t->cols[i].type);
	}
	for (size_t i = 0; i < t->nindexes; i++) {
		for (size_t j = 0; j < t->indexes[i].ncols; j++)
			free(t->indexes[i].cols[j]);
		free(t->indexes[i].cols);
	}
	free(t->cols);
	free(t->indexes);
	free(t->schema);
	free(t->table);
	free(t->rel_schema);
	free(t->rel_name);
	memset(t, 0, sizeof(*t));
}

static struct entry_list *cat_list_of(struct catalog *cat, enum entry_state st)
{
	switch (st) {
	case CE_LOADING:
		return &cat->loading;
	case CE_READY:
		return &cat->cached;
	default:
		return &cat->orphans;
	}
}

static void set_entry_state(struct cat_entry *e, enum entry_state to)
{
	char q[300];

	log_debug("event=catalog_state table=%s from=%s to=%s",
	          log_quote(q, sizeof(q), e->t.table),
	          entry_state_names[e->state], entry_state_names[to]);
	TAILQ_REMOVE(cat_list_of(e->cat, e->state), e, link);
	e->state = to;
	TAILQ_INSERT_TAIL(cat_list_of(e->cat, to), e, link);
}

static void free_entry(struct cat_entry *e)
{
	TAILQ_REMOVE(cat_list_of(e->cat, e->state), e, link);
	if (e->pool_wait)
		pool_cancel(e->cat->pool, e->pool_wait);
	free_table(&e->t);
	free(e);
}

/* An orphan goes when nothing holds it any more. */
static void free_if_unheld(struct cat_entry *e)
{
	if (e->state == CE_ORPHANED && e->refs == 0)
		free_entry(e);
}

/*
 * A stale load that nobody waits for and that holds no connection yet has
 * nothing left to do: it stops asking for one and goes.
 */
static void settle_stale(struct cat_entry *e)
{
	if (e->state == CE_STALE && e->refs == 0 && !e->querying)
		set_entry_state(e, CE_ORPHANED);
	free_if_unheld(e);
}

/* Out of the cache: lookups from now on start a new entry. */
static void orphan_entry(struct cat_entry *e)
{
	if (e->state == CE_LOADING)
		set_entry_state(e, CE_STALE);
	else if (e->state == CE_READY)
		set_entry_state(e, CE_ORPHANED);
	settle_stale(e);
}

/* ---- answering ---- */

static void answer(struct cat_lookup *l)
{
	struct cat_entry *e = l->entry;
	bool ok = l->sqlstate[0] == '\0';

	l->cb(ok ? &e->t : NULL, ok ? NULL : l->sqlstate,
	      ok ? NULL : l->message, l->arg);
	free(l);
	e->refs--;
	free_if_unheld(e);
}

static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct catalog *cat = arg;
	struct cat_lookup *l;

	(void)fd;
	(void)what;
	while ((l = TAILQ_FIRST(&cat->ready)) != NULL) {
		TAILQ_REMOVE(&cat->ready, l, link);
		answer(l);
	}
}

/* Moves every waiter of e to the ready list, failed when sqlstate is set. */
static void release_waiters(struct cat_entry *e, const char *sqlstate,
                            const char *message)
{
	struct cat_lookup *l;

	while ((l = TAILQ_FIRST(&e->waiters)) != NULL) {
		TAILQ_REMOVE(&e->waiters, l, link);
		if (sqlstate) {
			snprintf(l->sqlstate, sizeof(l->sqlstate), "%s",
			         sqlstate);
			snprintf(l->message, sizeof(l->message), "%s", message);
		}
		TAILQ_INSERT_TAIL(&e->cat->ready, l, link);
	}
	event_active(e->cat->deliver_ev, 0, 0);
}

/* The load ended without a table: its lookups fail, the entry goes. */
static void fail_load(struct cat_entry *e, const char *sqlstate,
                      const char *message)
{
	char q[300], m[300];

	log_info("event=catalog_error table=%s sqlstate=%s error=%s",
	         log_quote(q, sizeof(q), e->t.table), sqlstate,
	         log_quote(m, sizeof(m), message));
	release_waiters(e, sqlstate, message);
	if (e->state == CE_LOADING)
		set_entry_state(e, CE_STALE);
	set_entry_state(e, CE_ORPHANED);
	free_if_unheld(e);
}

/* ---- loading ---- */

/* A lost connection says nothing about the table: ask again, a few times. */
#define LOOKUP_ATTEMPTS 4

static void cat_got_conn(struct up_conn *c, void *arg);

static int cat_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool add_index_col(struct cat_table *t, const char *index_id,
                          const char *col, char *last_id, size_t last_size)
{
	struct cat_index *ix;
	char **cols;

	if (t->nindexes == 0 || strcmp(last_id, index_id) != 0) {
		struct cat_index *grown =
		    realloc(t->indexes, (t->nindexes + 1) * sizeof(*grown));
		if (grown == NULL)
			return false;
		t->indexes = grown;
		memset(&t->indexes[t->nindexes++], 0, sizeof(*grown));
		snprintf(last_id, last_size, "%s", index_id);
	}
	ix = &t->indexes[t->nindexes - 1];
	cols = realloc(ix->cols, (ix->ncols + 1) * sizeof(*cols));
	if (cols == NULL)
		return false;
	ix->cols = cols;
	return (ix->cols[ix->ncols++] = strdup(col)) != NULL;
}

static bool add_column(struct cat_table *t, const char *name, const char *type,
                       const char *not_null)
{
	struct cat_column *cols =
	    realloc(t->cols, (t->ncols + 1) * sizeof(*cols));

	if (cols == NULL)
		return false;
	t->cols = cols;
	cols[t->ncols].name = strdup(name);
	cols[t->ncols].type = strdup(type ? type : "");
	/* "true" or "false", then attidentity */
	cols[t->ncols].not_null = not_null && strncmp(not_null, "true", 4) == 0;
	cols[t->ncols].identity_always =
	    not_null && not_null[0] && not_null[strlen(not_null) - 1] == 'a';
	cols[t->ncols].generated =
	    not_null && not_null[0] && not_null[strlen(not_null) - 1] == 's';
	t->ncols++;
	return cols[t->ncols - 1].name && cols[t->ncols - 1].type;
}

/*
 * The relation rows ('a', 'b': sql_catalog_lookup) into t's resolved
 * names; false with sqlstate and message (in buf when it names the
 * candidates) when there is no single table.
 */
static bool read_relation(struct cat_table *t, const struct up_result *r,
                          const char **sqlstate, const char **message,
                          char *buf, size_t size)
{
	const char *kind, *candidates, *flags;

	*sqlstate = "42P01";
	*message = "table not found";
	if (r->nrows < 2 || r->ncols != 5 || r->truncated ||
	    (kind = up_result_cell(r, 1, 0)) == NULL || kind[0] != 'b')
		return false;
	candidates = up_result_cell(r, 1, 2);
	if (up_result_cell(r, 0, 1) == NULL) {
		if (candidates != NULL) {
			snprintf(buf, size,
			         "several tables match when case is ignored: "
			         "%s; write the exact name",
			         candidates);
			*message = buf;
		}
		return false;
	}
	if (strcmp(up_result_cell(r, 0, 2), "r") != 0 &&
	    strcmp(up_result_cell(r, 0, 2), "p") != 0) {
		*sqlstate = "42809";
		*message = "not a table (a view, sequence or the like)";
		return false;
	}
	if (up_result_cell(r, 0, 3) == NULL || up_result_cell(r, 1, 1) == NULL)
		return false;
	*sqlstate = "53200";
	*message = "out of memory";
	if ((flags = up_result_cell(r, 0, 4)) != NULL) {
		unsigned long f = strtoul(flags, NULL, 10);

		t->has_rules = f & 1;
		t->statement_triggers = (f & 2) != 0;
	}
	t->rel_schema = strdup(up_result_cell(r, 0, 3));
	t->rel_name = strdup(up_result_cell(r, 1, 1));
	return t->rel_schema != NULL && t->rel_name != NULL;
}

/* Fills e->t from the rows; false with sqlstate and message otherwise. */
static bool read_rows(struct cat_entry *e, const struct up_result *r,
                      const char **sqlstate, const char **message, char *buf,
                      size_t size)
{
	struct cat_table *t = &e->t;
	char last_id[32] = "";

	if (!read_relation(t, r, sqlstate, message, buf, size))
		return false;
	for (size_t i = 2; i < r->nrows; i++) {
		const char *kind = up_result_cell(r, i, 0);
		const char *a = up_result_cell(r, i, 1);
		const char *b = up_result_cell(r, i, 2);

		if (kind == NULL || a == NULL || b == NULL)
			continue;
		if (kind[0] == 'c' &&
		    !add_column(t, a, b, up_result_cell(r, i, 3)))
			return false;
		if (kind[0] == 'u' &&
		    !add_index_col(t, a, b, last_id, sizeof(last_id)))
			return false;
	}
	for (size_t i = 0; i < t->nindexes; i++)
		qsort(t->indexes[i].cols, t->indexes[i].ncols, sizeof(char *),
		      cat_cmp_str);
	return true;
}

static void cat_loaded(struct up_conn *c, const struct up_result *r, void *arg)
{
	struct cat_entry *e = arg;
	const char *sqlstate = NULL, *message = NULL;
	char q[300], msg[256];

	e->querying = false;
	pool_release(e->cat->pool, c);
	if (r->conn_lost && ++e->attempts < LOOKUP_ATTEMPTS &&
	    (e->pool_wait = pool_acquire(e->cat->pool, cat_got_conn, e)) !=
	        NULL)
		return;
	if (!r->ok) {
		sqlstate = r->conn_lost ? "08006" : r->error.sqlstate;
		message = r->conn_lost ? r->conn_error : r->error.message;
		fail_load(e, sqlstate ? sqlstate : "XX000",
		          message ? message : "");
		return;
	}
	if (!read_rows(e, r, &sqlstate, &message, msg, sizeof(msg))) {
		fail_load(e, sqlstate, message);
		return;
	}
	e->loaded_ms = clock_now_ms();
	log_info("event=catalog_loaded table=%s columns=%zu unique_indexes=%zu",
	         log_quote(q, sizeof(q), e->t.table), e->t.ncols,
	         e->t.nindexes);
	release_waiters(e, NULL, NULL);
	/* A stale entry answers the lookups that joined it, then goes. */
	set_entry_state(e, e->state == CE_LOADING ? CE_READY : CE_ORPHANED);
	free_if_unheld(e);
}

static void cat_got_conn(struct up_conn *c, void *arg)
{
	struct cat_entry *e = arg;
	char *sql;

	e->pool_wait = NULL;
	if (c == NULL) {
		fail_load(e, "57P01", "the proxy is shutting down");
		return;
	}
	sql = sql_catalog_lookup(e->t.schema, e->t.table);
	if (sql == NULL || !up_exec(c, sql, NULL, cat_loaded, e)) {
		pool_release(e->cat->pool, c);
		fail_load(e, "08006", "cannot run the catalog query");
	} else {
		e->querying = true;
	}
	free(sql);
}

/* ---- public ---- */

struct catalog *cat_new(struct event_base *base, struct pool *pool,
                        unsigned ttl_s)
{
	struct catalog *cat = calloc(1, sizeof(*cat));

	if (cat == NULL)
		return NULL;
	cat->base = base;
	cat->pool = pool;
	cat->ttl_ms = (uint64_t)ttl_s * 1000u;
	TAILQ_INIT(&cat->loading);
	TAILQ_INIT(&cat->cached);
	TAILQ_INIT(&cat->orphans);
	TAILQ_INIT(&cat->ready);
	cat->deliver_ev = event_new(base, -1, 0, deliver_cb, cat);
	if (cat->deliver_ev == NULL) {
		free(cat);
		return NULL;
	}
	return cat;
}

/* The entry new lookups of schema.table use: cached or loading. */
static struct cat_entry *find_entry(struct catalog *cat, const char *schema,
                                    const char *table)
{
	struct entry_list *lists[] = {&cat->cached, &cat->loading};
	struct cat_entry *e;

	for (size_t i = 0; i < 2; i++) {
		TAILQ_FOREACH(e, lists[i], link)
		{
			if (strcmp(e->t.schema, schema) == 0 &&
			    strcmp(e->t.table, table) == 0)
				return e;
		}
	}
	return NULL;
}

static struct cat_entry *new_entry(struct catalog *cat, const char *schema,
                                   const char *table)
{
	struct cat_entry *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	e->cat = cat;
	e->state = CE_LOADING;
	TAILQ_INIT(&e->waiters);
	e->t.schema = strdup(schema);
	e->t.table = strdup(table);
	e->pool_wait = pool_acquire(cat->pool, cat_got_conn, e);
	if (e->t.schema == NULL || e->t.table == NULL || e->pool_wait == NULL) {
		if (e->pool_wait)
			pool_cancel(cat->pool, e->pool_wait);
		free(e->t.schema);
		free(e->t.table);
		free(e);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&cat->loading, e, link);
	return e;
}

struct cat_lookup *cat_lookup(struct catalog *cat, const char *schema,
                              const char *table, cat_cb cb, void *arg)
{
	struct cat_entry *e = find_entry(cat, schema ? schema : "", table);
	struct cat_lookup *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	if (e && e->state == CE_READY && cat->ttl_ms &&
	    clock_now_ms() - e->loaded_ms > cat->ttl_ms) {
		orphan_entry(e);
		e = NULL;
	}
	if (e == NULL &&
	    (e = new_entry(cat, schema ? schema : "", table)) == NULL) {
		free(l);
		return NULL;
	}
	l->entry = e;
	l->cb = cb;
	l->arg = arg;
	e->refs++;
	if (e->state == CE_LOADING) {
		TAILQ_INSERT_TAIL(&e->waiters, l, link);
	} else {
		TAILQ_INSERT_TAIL(&cat->ready, l, link);
		event_active(cat->deliver_ev, 0, 0);
	}
	return l;
}

static bool lookup_waits(const struct cat_lookup *l)
{
	const struct cat_lookup *x;

	TAILQ_FOREACH(x, &l->entry->waiters, link)
	{
		if (x == l)
			return true;
	}
	return false;
}

void cat_cancel(struct catalog *cat, struct cat_lookup *l)
{
	struct cat_entry *e = l->entry;

	if (lookup_waits(l))
		TAILQ_REMOVE(&e->waiters, l, link);
	else
		TAILQ_REMOVE(&cat->ready, l, link);
	free(l);
	e->refs--;
	settle_stale(e);
}

/* Is e's loaded relation schema.table (the catalog's names)? */
static bool resolves_to(const struct cat_entry *e, const char *schema,
                        const char *table)
{
	return e->t.rel_name != NULL && strcmp(e->t.rel_name, table) == 0 &&
	       (schema[0] == '\0' || strcmp(e->t.rel_schema, schema) == 0);
}

/*
 * A batch names its table as resolved ("public"."events"), a lookup as
 * asked ("Events"): entries matching either way go.
 */
void cat_invalidate(struct catalog *cat, const char *schema, const char *table)
{
	struct cat_entry *e, *next;

	schema = schema ? schema : "";
	if ((e = find_entry(cat, schema, table)) != NULL)
		orphan_entry(e);
	for (e = TAILQ_FIRST(&cat->cached); e != NULL; e = next) {
		next = TAILQ_NEXT(e, link);
		if (resolves_to(e, schema, table))
			orphan_entry(e);
	}
}

void cat_set_ttl(struct catalog *cat, unsigned ttl_s)
{
	cat->ttl_ms = (uint64_t)ttl_s * 1000u;
}

static void answer_shutdown(struct cat_lookup *l)
{
	snprintf(l->sqlstate, sizeof(l->sqlstate), "57P01");
	snprintf(l->message, sizeof(l->message), "the proxy is shutting down");
	l->cb(NULL, l->sqlstate, l->message, l->arg);
	l->entry->refs--;
	free(l);
}

/*
 * Every lookup is answered 57P01, then every entry on every list is freed.
 * A query still running belongs to a connection the pool lent us; the
 * pool (freed after the catalog) closes it with up_free, which drops its
 * callback, so nothing calls back into a freed entry.
 */
void cat_free(struct catalog *cat)
{
	struct entry_list *lists[3];
	struct cat_entry *e;
	struct cat_lookup *l;

	if (cat == NULL)
		return;
	while ((l = TAILQ_FIRST(&cat->ready)) != NULL) {
		TAILQ_REMOVE(&cat->ready, l, link);
		answer_shutdown(l);
	}
	lists[0] = &cat->loading;
	lists[1] = &cat->cached;
	lists[2] = &cat->orphans;
	for (size_t i = 0; i < 3; i++) {
		while ((e = TAILQ_FIRST(lists[i])) != NULL) {
			while ((l = TAILQ_FIRST(&e->waiters)) != NULL) {
				TAILQ_REMOVE(&e->waiters, l, link);
				answer_shutdown(l);
			}
			free_entry(e);
		}
	}
	event_free(cat->deliver_ev);
	free(cat);
}

bool cat_same_folded(const char *a, const char *b)
{
	for (; *a != '\0' && *b != '\0'; a++, b++) {
		char x = (*a >= 'A' && *a <= 'Z') ? (char)(*a + 32) : *a;
		char y = (*b >= 'A' && *b <= 'Z') ? (char)(*b + 32) : *b;

		if (x != y)
			return false;
	}
	return *a == *b;
}

const struct cat_column *cat_find_column(const struct cat_table *t,
                                         const char *name, bool *ambiguous)
{
	const struct cat_column *found = NULL;

	*ambiguous = false;
	for (size_t i = 0; i < t->ncols; i++) {
		if (strcmp(t->cols[i].name, name) == 0)
			return &t->cols[i];
	}
	for (size_t i = 0; i < t->ncols; i++) {
		if (!cat_same_folded(t->cols[i].name, name))
			continue;
		if (found != NULL) {
			*ambiguous = true;
			return NULL;
		}
		found = &t->cols[i];
	}
	return found;
}

bool cat_has_unique(const struct cat_table *t, const char *const *cols,
                    size_t ncols)
{
	for (size_t i = 0; i < t->nindexes; i++) {
		const struct cat_index *ix = &t->indexes[i];
		size_t found = 0;

		if (ix->ncols != ncols)
			continue;
		for (size_t j = 0; j < ncols; j++) {
			if (bsearch(&cols[j], ix->cols, ix->ncols,
			            sizeof(char *), cat_cmp_str))
				found++;
		}
		if (found == ncols)
			return true;
	}
	return false;
}
