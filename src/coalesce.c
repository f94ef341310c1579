/* coalesce.c: flush units queued per target, and when a batch takes them.
 * A batch's own life is in batch.c. */
#include "coalesce.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "clock.h"
#include "config.h"
#include "coalesce_int.h"
#include "log.h"
#include "metrics.h"
#include "pgwire.h"
#include "pool.h"
#include "timer.h"

/* ---- metrics ---- */

#define TABLE_FAMILY(var, metric, text)                                        \
	static const struct mt_desc var = {                                    \
	    .name = metric,                                                    \
	    .help = text,                                                      \
	    .type = MT_COUNTER,                                                \
	    .nlabels = 2,                                                      \
	    .labels = {"table", "mode"},                                       \
	    .overflow = {"_other", "other"},                                   \
	}

TABLE_FAMILY(rows_received_d, "lbp_rows_received_total",
             "Rows received from clients (checked), per table and mode.");
TABLE_FAMILY(bytes_received_d, "lbp_bytes_received_total",
             "Row bytes received from clients, per table and mode.");
TABLE_FAMILY(rows_committed_d, "lbp_rows_committed_total",
             "Rows committed to the server and acknowledged.");
TABLE_FAMILY(bytes_committed_d, "lbp_bytes_committed_total",
             "Row bytes committed to the server and acknowledged.");
TABLE_FAMILY(rows_rejected_d, "lbp_rows_rejected_total",
             "Rows of flush units answered with an error.");
TABLE_FAMILY(rows_dead_d, "lbp_rows_dead_lettered_total",
             "Rows moved to the table's dead-letter table.");
TABLE_FAMILY(flushes_committed_d, "lbp_flushes_committed_total",
             "Flush units committed and acknowledged.");
TABLE_FAMILY(flushes_failed_d, "lbp_flushes_failed_total",
             "Flush units answered with an error.");
TABLE_FAMILY(batches_d, "lbp_batches_total",
             "Transactions (batches) sent to the server.");
TABLE_FAMILY(backoffs_d, "lbp_target_backoffs_total",
             "Times a target's back-off after repeated identical failures "
             "started or grew.");

static const double batch_rows_le[] = {1,     10,     100,    1000,
                                       10000, 100000, 1000000};
static const struct mt_desc batch_rows_d = {
    .name = "lbp_batch_rows",
    .help = "Rows per batch.",
    .type = MT_HISTOGRAM,
    .buckets = batch_rows_le,
    .nbuckets = sizeof(batch_rows_le) / sizeof(batch_rows_le[0]),
};

void co_register_metrics(void)
{
	static const struct mt_desc *const all[] = {
	    &rows_received_d,     &bytes_received_d, &rows_committed_d,
	    &bytes_committed_d,   &rows_rejected_d,  &rows_dead_d,
	    &flushes_committed_d, &flushes_failed_d, &batches_d,
	    &batch_rows_d,        &backoffs_d};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		mt_family(all[i]);
}

static void table_metrics(struct co_table_metrics *m, const char *table,
                          enum sql_mode mode)
{
	const char *v[2] = {table, sql_mode_name(mode)};

	m->rows_received = mt_child(mt_family(&rows_received_d), v);
	m->bytes_received = mt_child(mt_family(&bytes_received_d), v);
	m->rows_committed = mt_child(mt_family(&rows_committed_d), v);
	m->bytes_committed = mt_child(mt_family(&bytes_committed_d), v);
	m->rows_rejected = mt_child(mt_family(&rows_rejected_d), v);
	m->rows_dead_lettered = mt_child(mt_family(&rows_dead_d), v);
	m->flushes_committed = mt_child(mt_family(&flushes_committed_d), v);
	m->flushes_failed = mt_child(mt_family(&flushes_failed_d), v);
	m->batches = mt_child(mt_family(&batches_d), v);
}

static struct mt_metric *backoff_metric(const char *table, enum sql_mode mode)
{
	const char *v[2] = {table, sql_mode_name(mode)};

	return mt_child(mt_family(&backoffs_d), v);
}

/* ---- outcomes ---- */

static void unit_free(struct co_unit *u)
{
	evbuffer_free(u->rows);
	if (u->dead)
		evbuffer_free(u->dead);
	free(u->removed);
	free(u->progress);
	free(u);
}

static void unit_outcome(struct coalescer *co, struct co_unit *u,
                         const struct co_outcome *o)
{
	const struct co_table_metrics *m = u->metrics;
	struct co_outcome full = *o;

	if (o->sqlstate == NULL) {
		co->stats.units_committed++;
		co->stats.rows_committed += u->nrows;
		mt_add(m->flushes_committed, 1);
		mt_add(m->rows_committed, u->nrows);
		mt_add(m->bytes_committed, u->bytes);
		full.rows = u->nrows;
	} else {
		co->stats.units_failed++;
		mt_add(m->flushes_failed, 1);
		mt_add(m->rows_rejected, u->nrows);
	}
	u->done(&full, u->arg);
	unit_free(u);
}

void co_unit_fail(struct coalescer *co, struct co_unit *u, const char *sqlstate,
                  const char *message, const char *detail, uint64_t row)
{
	struct co_outcome o = {.sqlstate = sqlstate,
	                       .message = message ? message : "",
	                       .detail = detail ? detail : "",
	                       .row = row};

	unit_outcome(co, u, &o);
}

void co_unit_fail_server(struct coalescer *co, struct co_unit *u,
                         const struct pgw_notice *e, uint64_t row)
{
	struct co_outcome o = {.sqlstate = e->sqlstate ? e->sqlstate : "XX000",
	                       .message = e->message ? e->message : "",
	                       .detail = e->detail ? e->detail : "",
	                       .row = row,
	                       .error = e};

	unit_outcome(co, u, &o);
}

void co_unit_ack_inserted(struct coalescer *co, struct co_unit *u,
                          const uint64_t *inserted, size_t n)
{
	struct co_outcome o = {.inserted = inserted, .ninserted = n};

	unit_outcome(co, u, &o);
}

void co_unit_ack(struct coalescer *co, struct co_unit *u)
{
	struct co_outcome o = {0};

	unit_outcome(co, u, &o);
}

void co_config_from(const struct cfg_batch *b, struct co_config *out)
{
	*out = (struct co_config){
	    .max_rows = b->max_rows,
	    .max_bytes = b->max_bytes,
	    .max_delay_ms = b->max_delay_ms,
	    .max_inflight = b->max_inflight,
	    .max_retries = b->max_retries,
	    .acquire_timeout_ms = b->acquire_timeout_ms,
	    .dead_letter = b->dead_letter,
	    .failure_backoff_ms = b->failure_backoff_ms,
	    .failure_backoff_max_ms = b->failure_backoff_max_ms,
	};
}

/* ---- the queue ---- */

static void unqueue_unit(struct co_target *t, struct co_unit *u)
{
	TAILQ_REMOVE(&t->queue, u, link);
	t->queued_rows -= u->nrows;
	t->queued_bytes -= u->bytes;
	t->co->stats.queued_units--;
	t->co->stats.queued_bytes -= u->bytes;
}

void co_take_units(struct co_batch *b)
{
	struct co_target *t = b->t;
	const struct co_config *cfg = &t->co->cfg;
	struct co_unit *u;

	while ((u = TAILQ_FIRST(&t->queue)) != NULL) {
		if (b->rows > 0 && (b->rows + u->nrows > cfg->max_rows ||
		                    b->bytes + u->bytes > cfg->max_bytes))
			break;
		unqueue_unit(t, u);
		TAILQ_INSERT_TAIL(&b->units, u, link);
		b->rows += u->nrows;
		b->bytes += u->bytes;
	}
}

/* ---- dispatch ---- */

static void free_target_if_unused(struct co_target *t);

static void start_batch(struct co_target *t)
{
	if (!batch_start(t))
		return; /* the delay timer or the next unit tries again */
	if (!evtimer_pending(t->acquire_ev, NULL))
		timer_add_ms(t->acquire_ev, t->co->cfg.acquire_timeout_ms);
}

void co_try_dispatch(struct co_target *t)
{
	const struct co_config *cfg = &t->co->cfg;
	unsigned limit = t->def.mode == SQL_UPSERT ? 1 : cfg->max_inflight;
	struct co_unit *oldest = TAILQ_FIRST(&t->queue);
	uint64_t now, age;

	/* A batch still waiting for a connection will take everything. */
	if (oldest == NULL || t->waiting > 0 || t->inflight >= limit)
		return;
	now = clock_now_ms();
	if (!t->co->draining && now < t->backoff_until) {
		/* Backing off: what arrives meanwhile goes out together. */
		timer_add_ms(t->delay_ev, t->backoff_until - now);
		return;
	}
	age = now - oldest->queued_ms;
	if (t->co->draining || t->queued_rows >= cfg->max_rows ||
	    t->queued_bytes >= cfg->max_bytes || age >= cfg->max_delay_ms) {
		start_batch(t);
		return;
	}
	timer_add_ms(t->delay_ev, cfg->max_delay_ms - age);
}

void co_batch_ended(struct co_target *t)
{
	co_try_dispatch(t);
	free_target_if_unused(t);
}

/* ---- back-off ---- */

unsigned co_backoff_ms(unsigned streak, unsigned base_ms, unsigned max_ms)
{
	uint64_t d;

	if (base_ms == 0 || streak < 2)
		return 0;
	d = (uint64_t)base_ms << (streak - 2 > 20 ? 20 : streak - 2);
	return d > max_ms ? max_ms : (unsigned)d;
}

void co_target_failed(struct co_target *t, const char *sqlstate)
{
	const struct co_config *cfg = &t->co->cfg;
	char q[300], st[32];
	unsigned delay;

	if (strncmp(t->fail_state, sqlstate, sizeof(t->fail_state)) != 0) {
		snprintf(t->fail_state, sizeof(t->fail_state), "%s", sqlstate);
		t->fail_streak = 0;
		t->backoff_ms = 0;
	}
	if (t->fail_streak < UINT_MAX)
		t->fail_streak++;
	t->last_fail_ms = clock_now_ms();
	delay = co_backoff_ms(t->fail_streak, cfg->failure_backoff_ms,
	                      cfg->failure_backoff_max_ms);
	if (delay == 0)
		return;
	t->backoff_until = clock_now_ms() + delay;
	if (delay == t->backoff_ms)
		return; /* one line and one count per change, not per unit */
	t->backoff_ms = delay;
	mt_add(t->backoffs, 1);
	log_warn("event=target_backoff table=%s mode=%s sqlstate=%s "
	         "streak=%u delay_ms=%u",
	         log_quote(q, sizeof(q), t->name), sql_mode_name(t->def.mode),
	         log_quote(st, sizeof(st), t->fail_state), t->fail_streak,
	         delay);
}

void co_target_committed(struct co_target *t)
{
	char q[300];

	if (t->fail_streak == 0)
		return;
	if (t->backoff_ms > 0)
		log_info("event=target_backoff_end table=%s mode=%s "
		         "streak=%u",
		         log_quote(q, sizeof(q), t->name),
		         sql_mode_name(t->def.mode), t->fail_streak);
	t->fail_state[0] = '\0';
	t->fail_streak = 0;
	t->backoff_ms = 0;
	t->backoff_until = 0;
}

static void delay_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	co_try_dispatch(arg);
	free_target_if_unused(arg); /* kept for its streak until now */
}

/* No connection came in time: fail the units that waited too long. */
static void acquire_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct co_target *t = arg;
	struct coalescer *co = t->co;
	uint64_t now = clock_now_ms(), limit = co->cfg.acquire_timeout_ms;
	struct co_unit *u;
	struct pool_stats ps;
	char msg[300];

	(void)fd;
	(void)what;
	if (t->waiting == 0)
		return;
	pool_get_stats(co->pool, &ps);
	snprintf(msg, sizeof(msg),
	         "no server connection within %" PRIu64 " ms (%u consecutive "
	         "connection failures)",
	         limit, ps.failures);
	while ((u = TAILQ_FIRST(&t->queue)) != NULL &&
	       now - u->queued_ms >= limit) {
		unqueue_unit(t, u);
		co_unit_fail(co, u, "08000", msg, "", 0);
	}
	u = TAILQ_FIRST(&t->queue);
	timer_add_ms(t->acquire_ev, u ? limit - (now - u->queued_ms) : limit);
}

/* ---- targets ---- */

/* Everything that makes two targets different, one string. */
static char *target_key(const struct sql_target *d)
{
	struct evbuffer *b = evbuffer_new();
	char *key = NULL;
	size_t n;

	if (b == NULL)
		return NULL;
	/* Names never hold control bytes (checked at Open): \x1e, \x1f split.
	 */
	evbuffer_add_printf(b, "%d%s\x1e%s\x1e%s\x1e", (int)d->mode,
	                    d->first_wins ? "f" : "",
	                    d->schema ? d->schema : "", d->table);
	for (size_t i = 0; i < d->ncols; i++)
		evbuffer_add_printf(b, "%s\x1f%s\x1f", d->cols[i],
		                    d->types ? d->types[i] : "");
	evbuffer_add_printf(b, "\x1e");
	for (size_t i = 0; i < d->nkeys; i++)
		evbuffer_add_printf(b, "%s\x1f", d->keys[i]);
	evbuffer_add_printf(b, "\x1e%s\x1e",
	                    d->version_col ? d->version_col : "");
	for (size_t i = 0; i < d->ncoalesce; i++)
		evbuffer_add_printf(b, "%s\x1f", d->coalesce[i]);
	evbuffer_add_printf(b, "\x1e");
	for (size_t i = 0; i < d->nsettings; i++)
		evbuffer_add_printf(b, "%s\x1f%s\x1f", d->setting_names[i],
		                    d->setting_values[i]);
	n = evbuffer_get_length(b);
	key = malloc(n + 1);
	if (key) {
		evbuffer_remove(b, key, n);
		key[n] = '\0';
	}
	evbuffer_free(b);
	return key;
}

static const char *keep(struct co_target *t, const char *s)
{
	char *copy = strdup(s ? s : "");

	if (copy == NULL)
		return NULL;
	t->strings[t->nstrings++] = copy;
	return copy;
}

static const char **keep_list(struct co_target *t, const char *const *v,
                              size_t n, bool *ok)
{
	const char **out = calloc(n ? n : 1, sizeof(*out));

	if (out == NULL) {
		*ok = false;
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		if ((out[i] = keep(t, v[i])) == NULL)
			*ok = false;
	return out;
}

/* Deep copy of def into t, so sessions may go while batches run. */
static bool copy_def(struct co_target *t, const struct sql_target *d)
{
	size_t total =
	    3 + 2 * d->ncols + d->nkeys + d->ncoalesce + 2 * d->nsettings;
	bool ok = true;

	t->strings = calloc(total, sizeof(char *));
	if (t->strings == NULL)
		return false;
	t->def.mode = d->mode;
	t->def.first_wins = d->first_wins;
	t->def.schema = keep(t, d->schema);
	t->def.table = keep(t, d->table);
	t->def.version_col = keep(t, d->version_col);
	t->def.ncols = d->ncols;
	t->def.cols = keep_list(t, d->cols, d->ncols, &ok);
	if (d->types)
		t->def.types = keep_list(t, d->types, d->ncols, &ok);
	t->def.nkeys = d->nkeys;
	t->def.keys = keep_list(t, d->keys, d->nkeys, &ok);
	t->def.ncoalesce = d->ncoalesce;
	t->def.coalesce = keep_list(t, d->coalesce, d->ncoalesce, &ok);
	t->def.nsettings = d->nsettings;
	t->def.setting_names =
	    keep_list(t, d->setting_names, d->nsettings, &ok);
	t->def.setting_values =
	    keep_list(t, d->setting_values, d->nsettings, &ok);
	return ok && t->def.schema && t->def.table && t->def.version_col;
}

static void free_target(struct co_target *t)
{
	for (size_t i = 0; i < t->nstrings; i++)
		free(t->strings[i]);
	free(t->strings);
	free((void *)t->def.cols);
	free((void *)t->def.types);
	free((void *)t->def.keys);
	free((void *)t->def.coalesce);
	free((void *)t->def.setting_names);
	free((void *)t->def.setting_values);
	if (t->delay_ev)
		event_free(t->delay_ev);
	if (t->acquire_ev)
		event_free(t->acquire_ev);
	free(t->sql);
	free(t->key);
	free(t->name);
	free(t);
}

/*
 * A target with a failure streak outlives its sessions by
 * failure_backoff_max_ms after the last failure, so that a client which
 * reconnects to retry finds the streak (and the back-off) still there.
 */
static bool keeps_streak(struct co_target *t)
{
	const struct co_config *cfg = &t->co->cfg;
	uint64_t now = clock_now_ms(), end;

	if (t->fail_streak == 0 || cfg->failure_backoff_ms == 0)
		return false;
	end = t->last_fail_ms + cfg->failure_backoff_max_ms;
	if (end < t->backoff_until)
		end = t->backoff_until;
	if (now >= end)
		return false;
	timer_add_ms(t->delay_ev, end - now);
	return true;
}

static void free_target_if_unused(struct co_target *t)
{
	if (t->refs > 0 || t->inflight > 0 || !TAILQ_EMPTY(&t->queue))
		return;
	if (keeps_streak(t))
		return;
	TAILQ_REMOVE(&t->co->targets, t, link);
	free_target(t);
}

/* 64-bit FNV-1a: a stable short name for a target's staging table. */
static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static bool t_has_dead(const struct co_target *t)
{
	return t->dead_ok;
}

/* With dead_letter on, each target checks once that its table can have one. */
static void setup_dead_letter(struct co_target *t)
{
	char *create;

	if (!t->co->cfg.dead_letter || t_has_dead(t))
		return;
	create = sql_dead_letter_create(t->def.schema, t->def.table);
	t->dead_ok = create != NULL;
	free(create);
	if (!t->dead_ok) {
		/* e.g. a 60-byte table name leaves no room for the suffix */
		log_warn("event=dead_letter_off target=%s reason=\"no valid "
		         "dead-letter table name\"",
		         t->name);
	}
}

static bool build_sql(struct co_target *t)
{
	setup_dead_letter(t);
	if (t->def.mode != SQL_UPSERT) {
		t->sql = sql_insert_batch(&t->def);
		return t->sql != NULL;
	}
	snprintf(t->stage, sizeof(t->stage), "lbp_stage_%016" PRIx64,
	         fnv1a(t->key));
	t->sql = sql_upsert_batch(&t->def, t->stage);
	return t->sql != NULL;
}

static struct co_target *new_target(struct coalescer *co,
                                    const struct sql_target *def, char *key)
{
	struct co_target *t = calloc(1, sizeof(*t));
	size_t n;

	if (t == NULL) {
		free(key);
		return NULL;
	}
	t->co = co;
	t->key = key;
	TAILQ_INIT(&t->queue);
	t->delay_ev = evtimer_new(co->base, delay_cb, t);
	t->acquire_ev = evtimer_new(co->base, acquire_timeout_cb, t);
	n = strlen(def->schema ? def->schema : "") + strlen(def->table) + 2;
	t->name = malloc(n);
	if (t->name) {
		snprintf(t->name, n, "%s%s%s", def->schema ? def->schema : "",
		         def->schema && def->schema[0] ? "." : "", def->table);
		table_metrics(&t->metrics, t->name, def->mode);
		t->backoffs = backoff_metric(t->name, def->mode);
	}
	if (!t->delay_ev || !t->acquire_ev || !t->name || !copy_def(t, def) ||
	    !build_sql(t)) {
		free_target(t);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&co->targets, t, link);
	return t;
}

struct co_target *co_target_get(struct coalescer *co,
                                const struct sql_target *def)
{
	char *key = target_key(def);
	struct co_target *t;

	if (key == NULL)
		return NULL;
	TAILQ_FOREACH(t, &co->targets, link)
	{
		if (strcmp(t->key, key) == 0) {
			free(key);
			t->refs++;
			return t;
		}
	}
	t = new_target(co, def, key);
	if (t)
		t->refs++;
	return t;
}

const struct sql_target *co_target_def(const struct co_target *t)
{
	return &t->def;
}

void co_target_put(struct co_target *t)
{
	if (t == NULL)
		return;
	t->refs--;
	free_target_if_unused(t);
}

const struct co_table_metrics *co_target_metrics(const struct co_target *t)
{
	return &t->metrics;
}

bool co_submit(struct co_target *t, struct evbuffer *rows, uint64_t nrows,
               co_done_cb done, void *arg)
{
	return co_submit_progress(t, rows, nrows, NULL, done, arg);
}

bool co_submit_progress(struct co_target *t, struct evbuffer *rows,
                        uint64_t nrows, const struct sql_progress *progress,
                        co_done_cb done, void *arg)
{
	struct coalescer *co = t->co;
	struct co_unit *u = calloc(1, sizeof(*u));

	if (u == NULL || (u->rows = evbuffer_new()) == NULL ||
	    (progress != NULL &&
	     (!sql_progress_valid(progress) ||
	      (u->progress = sql_progress_copy(progress)) == NULL))) {
		if (u != NULL && u->rows != NULL)
			evbuffer_free(u->rows);
		free(u);
		return false;
	}
	u->bytes = evbuffer_get_length(rows);
	evbuffer_add_buffer(u->rows, rows);
	u->nrows = nrows;
	u->queued_ms = clock_now_ms();
	u->metrics = &t->metrics;
	u->done = done;
	u->arg = arg;
	TAILQ_INSERT_TAIL(&t->queue, u, link);
	t->queued_rows += nrows;
	t->queued_bytes += u->bytes;
	co->stats.queued_units++;
	co->stats.queued_bytes += u->bytes;
	co_try_dispatch(t);
	return true;
}

/* ---- the coalescer ---- */

struct coalescer *co_new(struct event_base *base, struct pool *pool,
                         struct catalog *cat, const struct co_config *cfg)
{
	struct coalescer *co = calloc(1, sizeof(*co));

	if (co == NULL)
		return NULL;
	co->base = base;
	co->pool = pool;
	co->cat = cat;
	co->cfg = *cfg;
	co->batch_rows = mt_metric_of(&batch_rows_d);
	TAILQ_INIT(&co->targets);
	TAILQ_INIT(&co->batches);
	return co;
}

void co_free(struct coalescer *co)
{
	struct co_batch *b;
	struct co_target *t;
	struct co_unit *u;

	if (co == NULL)
		return;
	co_progress_abandon(co);
	while ((b = TAILQ_FIRST(&co->batches)) != NULL)
		batch_abandon(b);
	while ((t = TAILQ_FIRST(&co->targets)) != NULL) {
		while ((u = TAILQ_FIRST(&t->queue)) != NULL) {
			unqueue_unit(t, u);
			co_unit_fail(co, u, "57P01",
			             "the proxy is shutting down", "", 0);
		}
		TAILQ_REMOVE(&co->targets, t, link);
		free_target(t);
	}
	free(co);
}

void co_set_config(struct coalescer *co, const struct co_config *cfg)
{
	struct co_target *t, *next;

	co->cfg = *cfg;
	for (t = TAILQ_FIRST(&co->targets); t; t = next) {
		next = TAILQ_NEXT(t, link);
		setup_dead_letter(t);
		if (cfg->failure_backoff_ms == 0)
			t->backoff_until = 0; /* back-off turned off */
		/* a larger max_inflight may let queued units go now */
		co_try_dispatch(t);
	}
}

void co_get_stats(const struct coalescer *co, struct co_stats *s)
{
	*s = co->stats;
}

void co_drain(struct coalescer *co)
{
	struct co_target *t, *next;

	co->draining = true;
	for (t = TAILQ_FIRST(&co->targets); t; t = next) {
		next = TAILQ_NEXT(t, link);
		co_try_dispatch(t);
	}
}

bool co_is_idle(const struct coalescer *co)
{
	return co->stats.queued_units == 0 && co->stats.inflight == 0;
}
