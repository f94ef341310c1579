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

enum entry_state { ENTRY_LOADING, ENTRY_READY };

struct cat_lookup {
	TAILQ_ENTRY(cat_lookup) link;
	struct cat_entry *entry;
	cat_cb cb;
	void *arg;
	char sqlstate[6]; /* set when the lookup failed */
	char message[256];
};
TAILQ_HEAD(lookup_list, cat_lookup);

struct cat_entry {
	TAILQ_ENTRY(cat_entry) link;
	struct catalog *cat;
	enum entry_state state;
	bool cached; /* false once invalidated: freed when its lookups are done
	              */
	uint64_t loaded_ms;
	struct cat_table t;
	struct lookup_list waiters;
	struct pool_waiter *pool_wait;
	unsigned attempts;
};
TAILQ_HEAD(entry_list, cat_entry);

struct catalog {
	struct event_base *base;
	struct pool *pool;
	uint64_t ttl_ms;
	struct entry_list entries;
	struct lookup_list ready; /* answers to give from the loop */
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
	memset(t, 0, sizeof(*t));
}

static void free_entry(struct cat_entry *e)
{
	if (e->cached)
		TAILQ_REMOVE(&e->cat->entries, e, link);
	free_table(&e->t);
	free(e);
}

/* ---- answering ---- */

static void answer(struct cat_lookup *l)
{
	struct cat_entry *e = l->entry;
	bool ok = l->sqlstate[0] == '\0';

	l->cb(ok ? &e->t : NULL, ok ? NULL : l->sqlstate,
	      ok ? NULL : l->message, l->arg);
	free(l);
}

static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct catalog *cat = arg;
	struct cat_lookup *l;

	while ((l = TAILQ_FIRST(&cat->ready)) != NULL) {
		struct cat_entry *e = l->entry;

		TAILQ_REMOVE(&cat->ready, l, link);
		answer(l);
		/* An uncached entry lives only as long as answers need it. */
		if (!e->cached && e->state == ENTRY_READY &&
		    TAILQ_EMPTY(&e->waiters)) {
			bool used = false;
			TAILQ_FOREACH(l, &cat->ready, link)
			used |= l->entry == e;
			if (!used)
				free_entry(e);
		}
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

/* ---- loading ---- */

/* A lost connection says nothing about the table: ask again, a few times. */
#define LOOKUP_ATTEMPTS 4

static void got_conn(struct up_conn *c, void *arg);

static char *lookup_sql(const char *schema, const char *table)
{
	struct evbuffer *name = evbuffer_new();
	struct evbuffer *q = evbuffer_new();
	char *qualified = NULL, *sql = NULL;
	size_t n;

	if (name == NULL || q == NULL ||
	    !sql_append_qualified(name, schema, table) ||
	    evbuffer_add(name, "", 1) != 0)
		goto out;
	qualified = (char *)evbuffer_pullup(name, -1);
	/*
	 * One statement, rows tagged by kind and sorted by it: a (the
	 * relation, always first), c (columns), u (unique index columns).
	 */
	evbuffer_add_printf(q, "WITH r AS (SELECT to_regclass(");
	if (!sql_append_literal(q, qualified))
		goto out;
	evbuffer_add_printf(
	    q,
	    ") AS oid) "
	    "SELECT 'a', r.oid::text, c.relkind::text, NULL, 0::bigint "
	    "FROM r LEFT JOIN pg_class c ON c.oid = r.oid "
	    "UNION ALL SELECT 'c', a.attname::text, "
	    "format_type(a.atttypid, a.atttypmod), a.attnotnull::text, "
	    "a.attnum::bigint FROM r JOIN pg_attribute a ON a.attrelid = r.oid "
	    "AND a.attnum > 0 AND NOT a.attisdropped "
	    "UNION ALL SELECT 'u', i.indexrelid::text, a.attname::text, NULL, "
	    "i.indexrelid::bigint * 2000 + a.attnum FROM r JOIN pg_index i ON "
	    "i.indrelid = r.oid AND i.indisunique AND i.indpred IS NULL AND "
	    "i.indexprs IS NULL JOIN pg_attribute a ON a.attrelid = r.oid AND "
	    "a.attnum = ANY(i.indkey) ORDER BY 1, 5");
	n = evbuffer_get_length(q);
	sql = malloc(n + 1);
	if (sql) {
		evbuffer_remove(q, sql, n);
		sql[n] = '\0';
	}
out:
	if (name)
		evbuffer_free(name);
	if (q)
		evbuffer_free(q);
	return sql;
}

static int cmp_str(const void *a, const void *b)
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
	cols[t->ncols].not_null = not_null && strcmp(not_null, "true") == 0;
	t->ncols++;
	return cols[t->ncols - 1].name && cols[t->ncols - 1].type;
}

/* Fills e->t from the rows; false with sqlstate and message otherwise. */
static bool read_rows(struct cat_entry *e, const struct up_result *r,
                      const char **sqlstate, const char **message)
{
	struct cat_table *t = &e->t;
	char last_id[32] = "";

	*sqlstate = "42P01";
	*message = "table not found";
	if (r->nrows == 0 || r->ncols != 5 || r->truncated ||
	    up_result_cell(r, 0, 1) == NULL)
		return false;
	if (strcmp(up_result_cell(r, 0, 2), "r") != 0 &&
	    strcmp(up_result_cell(r, 0, 2), "p") != 0) {
		*sqlstate = "42809";
		*message = "not a table (a view, sequence or the like)";
		return false;
	}
	*sqlstate = "53200";
	*message = "out of memory";
	for (size_t i = 1; i < r->nrows; i++) {
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
		      cmp_str);
	return true;
}

static void loaded(struct up_conn *c, const struct up_result *r, void *arg)
{
	struct cat_entry *e = arg;
	const char *sqlstate = NULL, *message = NULL;
	char q[300];

	pool_release(e->cat->pool, c);
	if (r->conn_lost && ++e->attempts < LOOKUP_ATTEMPTS &&
	    (e->pool_wait = pool_acquire(e->cat->pool, got_conn, e)) != NULL)
		return;
	if (!r->ok) {
		sqlstate = r->conn_lost ? "08006" : r->error.sqlstate;
		message = r->conn_lost ? r->conn_error : r->error.message;
	} else if (!read_rows(e, r, &sqlstate, &message)) {
		/* sqlstate and message say why */
	} else {
		sqlstate = NULL;
	}
	if (sqlstate) {
		log_info("event=catalog_error table=%s sqlstate=%s error=%s",
		         log_quote(q, sizeof(q), e->t.table), sqlstate,
		         log_quote((char[300]){0}, 300, message));
		release_waiters(e, sqlstate, message ? message : "");
		if (e->cached) {
			TAILQ_REMOVE(&e->cat->entries, e, link);
			e->cached = false;
		}
		e->state = ENTRY_READY; /* freed after its answers */
		return;
	}
	e->state = ENTRY_READY;
	e->loaded_ms = clock_now_ms();
	log_info("event=catalog_loaded table=%s columns=%zu unique_indexes=%zu",
	         log_quote(q, sizeof(q), e->t.table), e->t.ncols,
	         e->t.nindexes);
	release_waiters(e, NULL, NULL);
}

static void got_conn(struct up_conn *c, void *arg)
{
	struct cat_entry *e = arg;
	char *sql;

	e->pool_wait = NULL;
	if (c == NULL) {
		release_waiters(e, "57P01", "the proxy is shutting down");
		return;
	}
	sql = lookup_sql(e->t.schema, e->t.table);
	if (sql == NULL || !up_exec(c, sql, NULL, loaded, e)) {
		pool_release(e->cat->pool, c);
		release_waiters(e, "08006", "cannot run the catalog query");
		if (e->cached) {
			TAILQ_REMOVE(&e->cat->entries, e, link);
			e->cached = false;
		}
		e->state = ENTRY_READY;
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
	TAILQ_INIT(&cat->entries);
	TAILQ_INIT(&cat->ready);
	cat->deliver_ev = event_new(base, -1, 0, deliver_cb, cat);
	if (cat->deliver_ev == NULL) {
		free(cat);
		return NULL;
	}
	return cat;
}

static struct cat_entry *find_entry(struct catalog *cat, const char *schema,
                                    const char *table)
{
	struct cat_entry *e;

	TAILQ_FOREACH(e, &cat->entries, link)
	{
		if (strcmp(e->t.schema, schema) == 0 &&
		    strcmp(e->t.table, table) == 0)
			return e;
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
	e->state = ENTRY_LOADING;
	e->cached = true;
	TAILQ_INIT(&e->waiters);
	e->t.schema = strdup(schema);
	e->t.table = strdup(table);
	e->pool_wait = pool_acquire(cat->pool, got_conn, e);
	if (e->t.schema == NULL || e->t.table == NULL || e->pool_wait == NULL) {
		if (e->pool_wait)
			pool_cancel(cat->pool, e->pool_wait);
		free(e->t.schema);
		free(e->t.table);
		free(e);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&cat->entries, e, link);
	return e;
}

struct cat_lookup *cat_lookup(struct catalog *cat, const char *schema,
                              const char *table, cat_cb cb, void *arg)
{
	struct cat_entry *e = find_entry(cat, schema ? schema : "", table);
	struct cat_lookup *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	if (e && e->state == ENTRY_READY && cat->ttl_ms &&
	    clock_now_ms() - e->loaded_ms > cat->ttl_ms) {
		cat_invalidate(cat, e->t.schema, e->t.table);
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
	if (e->state == ENTRY_LOADING) {
		TAILQ_INSERT_TAIL(&e->waiters, l, link);
	} else {
		TAILQ_INSERT_TAIL(&cat->ready, l, link);
		event_active(cat->deliver_ev, 0, 0);
	}
	return l;
}

void cat_cancel(struct catalog *cat, struct cat_lookup *l)
{
	struct cat_entry *e = l->entry;
	struct cat_lookup *x;

	TAILQ_FOREACH(x, &e->waiters, link)
	{
		if (x == l) {
			TAILQ_REMOVE(&e->waiters, l, link);
			free(l);
			return;
		}
	}
	TAILQ_REMOVE(&cat->ready, l, link);
	free(l);
}

void cat_invalidate(struct catalog *cat, const char *schema, const char *table)
{
	struct cat_entry *e = find_entry(cat, schema ? schema : "", table);
	struct cat_lookup *l;
	bool used = false;

	if (e == NULL)
		return;
	TAILQ_REMOVE(&cat->entries, e, link);
	e->cached = false;
	if (e->state == ENTRY_LOADING)
		return; /* answers its waiters, then goes */
	TAILQ_FOREACH(l, &cat->ready, link) used |= l->entry == e;
	if (!used)
		free_entry(e);
}

void cat_set_ttl(struct catalog *cat, unsigned ttl_s)
{
	cat->ttl_ms = (uint64_t)ttl_s * 1000u;
}

void cat_free(struct catalog *cat)
{
	struct cat_entry *e;
	struct cat_lookup *l;

	if (cat == NULL)
		return;
	while ((l = TAILQ_FIRST(&cat->ready)) != NULL) {
		TAILQ_REMOVE(&cat->ready, l, link);
		snprintf(l->sqlstate, sizeof(l->sqlstate), "57P01");
		snprintf(l->message, sizeof(l->message), "shutting down");
		answer(l);
	}
	while ((e = TAILQ_FIRST(&cat->entries)) != NULL) {
		while ((l = TAILQ_FIRST(&e->waiters)) != NULL) {
			TAILQ_REMOVE(&e->waiters, l, link);
			snprintf(l->sqlstate, sizeof(l->sqlstate), "57P01");
			snprintf(l->message, sizeof(l->message),
			         "shutting down");
			answer(l);
		}
		if (e->pool_wait)
			pool_cancel(cat->pool, e->pool_wait);
		free_entry(e);
	}
	event_free(cat->deliver_ev);
	free(cat);
}

const struct cat_column *cat_find_column(const struct cat_table *t,
                                         const char *name)
{
	for (size_t i = 0; i < t->ncols; i++) {
		if (strcmp(t->cols[i].name, name) == 0)
			return &t->cols[i];
	}
	return NULL;
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
			            sizeof(char *), cmp_str))
				found++;
		}
		if (found == ncols)
			return true;
	}
	return false;
}
