/* coalesce.c: batches flush units per target, commits them, maps errors to
 * clients. */
#include "coalesce.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "catalog.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "upstream.h"

struct co_unit {
	TAILQ_ENTRY(co_unit) link;
	struct evbuffer *rows;
	uint64_t nrows;
	size_t bytes;
	uint64_t queued_ms;
	struct mt_series *series; /* its target's */
	co_done_cb done;
	void *arg;
	/* Rows moved to the dead-letter table: "(...)" VALUES tuples. */
	struct evbuffer *dead;
	uint64_t ndead;
	uint64_t *removed; /* original row numbers taken out, ascending */
};
TAILQ_HEAD(unit_list, co_unit);

/*
 * A batch's life: WAITING for a connection (holding no units yet), then
 * RUNNING its statement, ROLLING_BACK after an error left a transaction
 * open, back to RUNNING for a retry, and gone when every unit it took has
 * its outcome.
 */
enum batch_state { BATCH_WAITING, BATCH_RUNNING, BATCH_ROLLING_BACK };

struct co_batch {
	TAILQ_ENTRY(co_batch) link;
	struct co_target *t;
	enum batch_state state;
	uint64_t id;
	struct unit_list units;
	uint64_t rows;
	size_t bytes;
	struct pool_waiter *wait;
	struct event *reacquire_ev; /* a retry's wait for a connection */
	struct up_conn *conn;
	struct evbuffer *data; /* what the statement streams (copied rows) */
	char *sql;             /* the statement when it carries dead letters */
	bool taken;            /* units were taken from the target's queue */
	unsigned attempts;
	bool one_by_one; /* after an error no line pins down: a unit per txn */
};
TAILQ_HEAD(batch_list, co_batch);

struct co_target {
	TAILQ_ENTRY(co_target) link;
	struct coalescer *co;
	unsigned refs;
	char *key;
	char *name;               /* schema.table, for logs */
	struct mt_series *series; /* its metrics, outliving the target */
	struct sql_target def;
	char **strings; /* owned copies behind def */
	size_t nstrings;
	char *sql;      /* the batch statement */
	char stage[40]; /* upsert: its staging table */
	bool dead_ok;   /* dead_letter on, and the table has a valid name */
	struct unit_list queue;
	uint64_t queued_rows;
	size_t queued_bytes;
	unsigned inflight; /* batches waiting or running */
	unsigned waiting;  /* of which waiting for a connection */
	struct event *delay_ev;
	struct event *acquire_ev;
};
TAILQ_HEAD(target_list, co_target);

struct coalescer {
	struct event_base *base;
	struct pool *pool;
	struct catalog *cat;
	struct co_config cfg;
	struct target_list targets;
	struct batch_list batches;
	uint64_t next_batch_id;
	struct co_stats stats;
	bool draining; /* shutting down: no unit waits for batch limits */
};

static void try_dispatch(struct co_target *t);
static void run_batch(struct co_batch *b);
static void free_target_if_unused(struct co_target *t);
static bool t_has_dead(const struct co_target *t);

static void set_timer(struct event *ev, uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000u),
	                     .tv_usec = (suseconds_t)(ms % 1000u) * 1000};

	evtimer_add(ev, &tv);
}

/* ---- outcomes ---- */

static void unit_outcome(struct coalescer *co, struct co_unit *u,
                         const struct co_outcome *o)
{
	struct co_outcome full = *o;

	struct mt_series *ms = u->series;

	if (o->sqlstate == NULL) {
		co->stats.units_committed++;
		co->stats.rows_committed += u->nrows;
		ms->flushes_committed++;
		ms->rows_committed += u->nrows;
		ms->bytes_committed += u->bytes;
		full.rows = u->nrows;
	} else {
		co->stats.units_failed++;
		ms->flushes_failed++;
		ms->rows_rejected += u->nrows;
	}
	u->done(&full, u->arg);
	evbuffer_free(u->rows);
	if (u->dead)
		evbuffer_free(u->dead);
	free(u->removed);
	free(u);
}

static void fail_unit(struct coalescer *co, struct co_unit *u,
                      const char *sqlstate, const char *message,
                      const char *detail, uint64_t row)
{
	struct co_outcome o = {.sqlstate = sqlstate,
	                       .message = message ? message : "",
	                       .detail = detail ? detail : "",
	                       .row = row};

	unit_outcome(co, u, &o);
}

static void ack_unit(struct coalescer *co, struct co_unit *u)
{
	struct co_outcome o = {0};

	unit_outcome(co, u, &o);
}

/* Fails and removes every unit the batch holds. */
static void fail_batch_units(struct co_batch *b, const char *sqlstate,
                             const char *message, const char *detail)
{
	struct co_unit *u;

	while ((u = TAILQ_FIRST(&b->units)) != NULL) {
		TAILQ_REMOVE(&b->units, u, link);
		fail_unit(b->t->co, u, sqlstate, message, detail, 0);
	}
	b->rows = 0;
	b->bytes = 0;
}

static void finish_batch(struct co_batch *b)
{
	struct co_target *t = b->t;
	struct coalescer *co = t->co;

	if (b->conn)
		pool_release(co->pool, b->conn);
	if (b->data)
		evbuffer_free(b->data);
	if (b->reacquire_ev)
		event_free(b->reacquire_ev);
	free(b->sql);
	TAILQ_REMOVE(&co->batches, b, link);
	t->inflight--;
	co->stats.inflight--;
	free(b);
	try_dispatch(t);
	free_target_if_unused(t);
}

/* ---- running a batch ---- */

static bool batch_data(struct co_batch *b, struct evbuffer *data)
{
	struct co_unit *u;

	TAILQ_FOREACH(u, &b->units, link)
	{
		struct evbuffer_iovec vec[64];
		struct evbuffer_ptr pos;
		int n;

		/*
		 * A copy, not a reference: after an error the server answers
		 * while CopyData may still sit in the socket's queue, and the
		 * failed unit is freed at once. A memcpy is cheap next to the
		 * network; the unit stays intact for retries.
		 */
		evbuffer_ptr_set(u->rows, &pos, 0, EVBUFFER_PTR_SET);
		while ((n = evbuffer_peek(u->rows, -1, &pos, vec, 64)) > 0) {
			size_t got = 0;

			for (int i = 0; i < n && i < 64; i++) {
				if (evbuffer_add(data, vec[i].iov_base,
				                 vec[i].iov_len) != 0)
					return false;
				got += vec[i].iov_len;
			}
			if (n <= 64)
				break;
			evbuffer_ptr_set(u->rows, &pos, got, EVBUFFER_PTR_ADD);
		}
		if (b->one_by_one)
			break;
	}
	return true;
}

/* The unit holding batch line `line` (1-based) and the line within it. */
static struct co_unit *unit_at_line(struct co_batch *b, uint64_t line,
                                    uint64_t *row)
{
	struct co_unit *u;

	TAILQ_FOREACH(u, &b->units, link)
	{
		if (line <= u->nrows) {
			*row = line;
			return u;
		}
		line -= u->nrows;
		if (b->one_by_one)
			break;
	}
	return NULL;
}

static bool is_retryable(const char *sqlstate)
{
	/* deadlock_detected, serialization_failure */
	return strcmp(sqlstate, "40P01") == 0 || strcmp(sqlstate, "40001") == 0;
}

static bool means_table_changed(const char *sqlstate)
{
	/* undefined table/column, datatype mismatch, wrong object type */
	return strcmp(sqlstate, "42P01") == 0 ||
	       strcmp(sqlstate, "42703") == 0 ||
	       strcmp(sqlstate, "42804") == 0 || strcmp(sqlstate, "42809") == 0;
}

static void after_rollback(struct up_conn *c, const struct up_result *r,
                           void *arg)
{
	struct co_batch *b = arg;

	if (!r->ok) {
		/* The connection is no good; the pool drops it. */
		pool_release(b->t->co->pool, b->conn);
		b->conn = NULL;
	}
	b->state = BATCH_RUNNING;
	run_batch(b);
}

/* Runs the rest of the batch (a retry), rolling back first if needed. */
static void continue_batch(struct co_batch *b, const struct up_result *r)
{
	if (TAILQ_EMPTY(&b->units)) {
		finish_batch(b);
		return;
	}
	if (b->conn && r->txn_status != 'I') {
		b->state = BATCH_ROLLING_BACK;
		if (up_exec(b->conn, "ROLLBACK", NULL, after_rollback, b))
			return;
		pool_release(b->t->co->pool, b->conn);
		b->conn = NULL;
	}
	run_batch(b);
}

/* ---- dead letters ---- */

/* The row's number in the unit as the client sent it. */
static uint64_t original_row(const struct co_unit *u, uint64_t row)
{
	for (uint64_t i = 0; i < u->ndead; i++)
		if (u->removed[i] <= row)
			row++;
	return row;
}

static bool remember_removed(struct co_unit *u, uint64_t orig)
{
	uint64_t *r = realloc(u->removed, (u->ndead + 1) * sizeof(*r));
	uint64_t i;

	if (r == NULL)
		return false;
	u->removed = r;
	for (i = u->ndead; i > 0 && r[i - 1] > orig; i--)
		r[i] = r[i - 1];
	r[i] = orig;
	u->ndead++;
	return true;
}

/* Cuts row (1-based) out of the unit's rows into a NUL-terminated string. */
static char *cut_row(struct co_unit *u, uint64_t row)
{
	struct evbuffer_ptr start, end;
	struct evbuffer *rest = evbuffer_new();
	char *text = NULL;
	size_t len;

	if (rest == NULL)
		return NULL;
	evbuffer_ptr_set(u->rows, &start, 0, EVBUFFER_PTR_SET);
	for (uint64_t i = 1; i < row; i++) {
		start = evbuffer_search(u->rows, "\n", 1, &start);
		if (start.pos < 0)
			goto out;
		evbuffer_ptr_set(u->rows, &start, 1, EVBUFFER_PTR_ADD);
	}
	end = evbuffer_search(u->rows, "\n", 1, &start);
	if (end.pos < 0)
		goto out;
	len = (size_t)(end.pos - start.pos);
	text = malloc(len + 1);
	if (text == NULL)
		goto out;
	/* rows before | the row (dropped) + its newline | rows after */
	evbuffer_remove_buffer(u->rows, rest, (size_t)start.pos);
	evbuffer_remove(u->rows, text, len);
	text[len] = '\0';
	evbuffer_drain(u->rows, 1);
	evbuffer_add_buffer(rest, u->rows);
	evbuffer_add_buffer(u->rows, rest);
out:
	evbuffer_free(rest);
	return text;
}

/* Moves the rejected row to the unit's dead letters; false if it cannot. */
static bool dead_letter_row(struct co_unit *u, uint64_t row,
                            const struct pgw_notice *e)
{
	struct sql_dead_letter d = {.sqlstate = e->sqlstate,
	                            .message = e->message,
	                            .detail = e->detail,
	                            .flush_row = original_row(u, row)};
	char *text;
	bool ok;

	if (u->dead == NULL && (u->dead = evbuffer_new()) == NULL)
		return false;
	if ((text = cut_row(u, row)) == NULL)
		return false;
	u->bytes -= strlen(text) + 1;
	u->nrows--;
	d.row_text = text;
	ok = sql_append_dead_letter_row(u->dead, &d) &&
	     remember_removed(u, d.flush_row);
	free(text);
	return ok;
}

/* The batch statement, with the dead letters of its units before COMMIT. */
static char *statement_with_dead(struct co_batch *b)
{
	struct evbuffer **letters;
	struct co_unit *u;
	size_t n = 0;
	char *sql;

	TAILQ_FOREACH(u, &b->units, link) n++;
	if ((letters = calloc(n ? n : 1, sizeof(*letters))) == NULL)
		return NULL;
	n = 0;
	TAILQ_FOREACH(u, &b->units, link)
	{
		if (u->ndead > 0)
			letters[n++] = u->dead;
		if (b->one_by_one)
			break;
	}
	sql = sql_batch_with_dead_letters(&b->t->def, b->t->stage, letters, n);
	free(letters);
	return sql;
}

static bool batch_has_dead(const struct co_batch *b)
{
	const struct co_unit *u;

	TAILQ_FOREACH(u, &b->units, link)
	{
		if (u->ndead > 0)
			return true;
		if (b->one_by_one)
			break;
	}
	return false;
}

static void on_server_error(struct co_batch *b, const struct up_result *r)
{
	struct coalescer *co = b->t->co;
	const struct pgw_notice *e = &r->error;
	const char *state = e->sqlstate ? e->sqlstate : "XX000";
	uint64_t line, row;
	struct co_unit *u;

	if (means_table_changed(state))
		cat_invalidate(co->cat, b->t->def.schema, b->t->def.table);
	b->attempts++;
	co->stats.batch_retries++;
	if (is_retryable(state) && b->attempts <= co->cfg.max_retries) {
		continue_batch(b, r);
		return;
	}
	if (e->where && sql_copy_error_line(e->where, &line) &&
	    (u = unit_at_line(b, line, &row)) != NULL) {
		if (co->cfg.dead_letter && t_has_dead(b->t) &&
		    dead_letter_row(u, row, e)) {
			/* Progress every time: not a retry that counts. */
			b->attempts--;
			b->rows--;
			b->t->series->rows_dead_lettered++;
			continue_batch(b, r);
			return;
		}
		/* The row is this unit's: it fails, the others go again. */
		TAILQ_REMOVE(&b->units, u, link);
		b->rows -= u->nrows;
		b->bytes -= u->bytes;
		fail_unit(co, u, state, e->message, e->detail, row);
		if (b->attempts > co->cfg.max_retries && !b->one_by_one) {
			b->one_by_one = true;
			co->stats.batches_split++;
		}
		continue_batch(b, r);
		return;
	}
	if (b->one_by_one ||
	    TAILQ_FIRST(&b->units) == TAILQ_LAST(&b->units, unit_list)) {
		/* Only one unit ran: the error is its own. */
		u = TAILQ_FIRST(&b->units);
		TAILQ_REMOVE(&b->units, u, link);
		b->rows -= u->nrows;
		b->bytes -= u->bytes;
		fail_unit(co, u, state, e->message, e->detail, 0);
	} else {
		b->one_by_one = true;
		co->stats.batches_split++;
	}
	continue_batch(b, r);
}

static void on_conn_lost(struct co_batch *b, const struct up_result *r)
{
	struct coalescer *co = b->t->co;
	char msg[400];

	pool_release(co->pool, b->conn);
	b->conn = NULL;
	b->attempts++;
	if (r->copy_done && b->t->def.mode != 'u') {
		/* COMMIT may have run: retrying could insert the rows twice. */
		snprintf(msg, sizeof(msg),
		         "the server connection was lost after the batch was "
		         "sent; its rows may or may not be committed (%s)",
		         r->conn_error ? r->conn_error : "");
		if (b->one_by_one) {
			struct co_unit *u = TAILQ_FIRST(&b->units);
			TAILQ_REMOVE(&b->units, u, link);
			fail_unit(co, u, "08007", msg, "", 0);
		} else {
			fail_batch_units(b, "08007", msg, "");
		}
		continue_batch(b, r);
		return;
	}
	if (b->attempts > co->cfg.max_retries + 1) {
		snprintf(msg, sizeof(msg), "gave up after %u attempts: %s",
		         b->attempts, r->conn_error ? r->conn_error : "");
		fail_batch_units(b, "08000", msg, "");
		finish_batch(b);
		return;
	}
	run_batch(b); /* on another connection */
}

static void batch_done(struct up_conn *c, const struct up_result *r, void *arg)
{
	struct co_batch *b = arg;
	struct coalescer *co = b->t->co;
	struct co_unit *u;

	evbuffer_free(b->data);
	b->data = NULL;
	if (r->ok) {
		while ((u = TAILQ_FIRST(&b->units)) != NULL) {
			TAILQ_REMOVE(&b->units, u, link);
			b->rows -= u->nrows;
			b->bytes -= u->bytes;
			ack_unit(co, u);
			if (b->one_by_one)
				break;
		}
		continue_batch(b, r);
		return;
	}
	if (r->conn_lost) {
		log_warn("batch=%" PRIu64 " event=batch_conn_lost target=%s "
		         "copy_done=%d",
		         b->id, b->t->name, (int)r->copy_done);
		on_conn_lost(b, r);
		return;
	}
	on_server_error(b, r);
}

static void got_conn(struct up_conn *c, void *arg);

/*
 * A retry found no connection within acquire_timeout_ms. Its units never
 * committed (a batch whose COMMIT may have run is not retried), so failing
 * them is safe: their clients retry, rather than wait for the server
 * indefinitely.
 */
static void reacquire_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct co_batch *b = arg;
	struct coalescer *co = b->t->co;
	struct pool_stats ps;
	char msg[300];

	if (b->wait == NULL)
		return;
	pool_cancel(co->pool, b->wait);
	b->wait = NULL;
	pool_get_stats(co->pool, &ps);
	snprintf(msg, sizeof(msg),
	         "the batch lost its server connection and no other came "
	         "within %u ms (%u consecutive connection failures)",
	         co->cfg.acquire_timeout_ms, ps.failures);
	log_warn("batch=%" PRIu64 " event=batch_failed target=%s "
	         "reason=reacquire_timeout rows=%" PRIu64,
	         b->id, b->t->name, b->rows);
	fail_batch_units(b, "08001", msg, "");
	finish_batch(b);
}

static void run_batch(struct co_batch *b)
{
	struct coalescer *co = b->t->co;
	struct evbuffer *data;

	if (TAILQ_EMPTY(&b->units)) {
		finish_batch(b);
		return;
	}
	if (b->conn == NULL) {
		b->state = BATCH_WAITING;
		if (b->reacquire_ev == NULL)
			b->reacquire_ev =
			    evtimer_new(co->base, reacquire_timeout_cb, b);
		b->wait = pool_acquire(co->pool, got_conn, b);
		if (b->wait == NULL || b->reacquire_ev == NULL) {
			if (b->wait)
				pool_cancel(co->pool, b->wait);
			b->wait = NULL;
			fail_batch_units(b, "53200", "out of memory", "");
			finish_batch(b);
			return;
		}
		set_timer(b->reacquire_ev, co->cfg.acquire_timeout_ms);
		return;
	}
	data = evbuffer_new();
	b->state = BATCH_RUNNING;
	free(b->sql);
	b->sql = batch_has_dead(b) ? statement_with_dead(b) : NULL;
	if (data == NULL || !batch_data(b, data) ||
	    !up_exec(b->conn, b->sql ? b->sql : b->t->sql, data, batch_done,
	             b)) {
		/* An idle connection that refuses work is broken: another. */
		if (data)
			evbuffer_free(data);
		co->stats.batch_retries++;
		pool_release(co->pool, b->conn);
		b->conn = NULL;
		b->attempts++;
		if (b->attempts > co->cfg.max_retries + 1) {
			fail_batch_units(b, "08000", "cannot run the batch",
			                 "");
			finish_batch(b);
			return;
		}
		run_batch(b);
		return;
	}
	/* up_exec streams out of data; it is freed when the statement ends. */
	b->data = data;
}

/* ---- forming batches ---- */

/* Takes queued units, oldest first, up to the batch limits (at least one). */
static void take_units(struct co_batch *b)
{
	struct co_target *t = b->t;
	const struct co_config *cfg = &t->co->cfg;
	struct co_unit *u;

	while ((u = TAILQ_FIRST(&t->queue)) != NULL) {
		if (b->rows > 0 && (b->rows + u->nrows > cfg->max_rows ||
		                    b->bytes + u->bytes > cfg->max_bytes))
			break;
		TAILQ_REMOVE(&t->queue, u, link);
		t->queued_rows -= u->nrows;
		t->queued_bytes -= u->bytes;
		t->co->stats.queued_units--;
		t->co->stats.queued_bytes -= u->bytes;
		TAILQ_INSERT_TAIL(&b->units, u, link);
		b->rows += u->nrows;
		b->bytes += u->bytes;
	}
	b->taken = true;
}

static void got_conn(struct up_conn *c, void *arg)
{
	struct co_batch *b = arg;
	struct co_target *t = b->t;

	b->wait = NULL;
	if (b->reacquire_ev)
		evtimer_del(b->reacquire_ev);
	if (c == NULL) {
		fail_batch_units(b, "57P01", "the proxy is shutting down", "");
		finish_batch(b);
		return;
	}
	b->conn = c;
	if (!b->taken) {
		t->waiting--;
		take_units(b);
		t->co->stats.batches++;
		mt_batch(t->series, b->rows);
		log_debug("batch=%" PRIu64 " event=batch_start target=%s "
		          "rows=%" PRIu64 " bytes=%zu conn=%" PRIu64,
		          b->id, t->name, b->rows, b->bytes, up_get_id(c));
		/* More may be queued than one batch takes. */
		try_dispatch(t);
	}
	run_batch(b);
}

static void start_batch(struct co_target *t)
{
	struct coalescer *co = t->co;
	struct co_batch *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return; /* the delay timer or the next unit tries again */
	b->t = t;
	b->id = ++co->next_batch_id;
	b->state = BATCH_WAITING;
	TAILQ_INIT(&b->units);
	b->wait = pool_acquire(co->pool, got_conn, b);
	if (b->wait == NULL) {
		free(b);
		return;
	}
	TAILQ_INSERT_TAIL(&co->batches, b, link);
	t->inflight++;
	t->waiting++;
	co->stats.inflight++;
	if (!evtimer_pending(t->acquire_ev, NULL))
		set_timer(t->acquire_ev, co->cfg.acquire_timeout_ms);
}

static void try_dispatch(struct co_target *t)
{
	const struct co_config *cfg = &t->co->cfg;
	unsigned limit = t->def.mode == 'u' ? 1 : cfg->max_inflight;
	struct co_unit *oldest = TAILQ_FIRST(&t->queue);
	uint64_t age;

	/* A batch still waiting for a connection will take everything. */
	if (oldest == NULL || t->waiting > 0 || t->inflight >= limit)
		return;
	age = clock_now_ms() - oldest->queued_ms;
	if (t->co->draining || t->queued_rows >= cfg->max_rows ||
	    t->queued_bytes >= cfg->max_bytes || age >= cfg->max_delay_ms) {
		start_batch(t);
		return;
	}
	set_timer(t->delay_ev, cfg->max_delay_ms - age);
}

static void delay_cb(evutil_socket_t fd, short what, void *arg)
{
	try_dispatch(arg);
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

	if (t->waiting == 0)
		return;
	pool_get_stats(co->pool, &ps);
	snprintf(msg, sizeof(msg),
	         "no server connection within %" PRIu64 " ms (%u consecutive "
	         "connection failures)",
	         limit, ps.failures);
	while ((u = TAILQ_FIRST(&t->queue)) != NULL &&
	       now - u->queued_ms >= limit) {
		TAILQ_REMOVE(&t->queue, u, link);
		t->queued_rows -= u->nrows;
		t->queued_bytes -= u->bytes;
		co->stats.queued_units--;
		co->stats.queued_bytes -= u->bytes;
		fail_unit(co, u, "08000", msg, "", 0);
	}
	u = TAILQ_FIRST(&t->queue);
	set_timer(t->acquire_ev, u ? limit - (now - u->queued_ms) : limit);
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
	evbuffer_add_printf(b, "%c\x1e%s\x1e%s\x1e", d->mode,
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
	size_t total = 3 + 2 * d->ncols + d->nkeys + d->ncoalesce;
	bool ok = true;

	t->strings = calloc(total, sizeof(char *));
	if (t->strings == NULL)
		return false;
	t->def.mode = d->mode;
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
	if (t->delay_ev)
		event_free(t->delay_ev);
	if (t->acquire_ev)
		event_free(t->acquire_ev);
	free(t->sql);
	free(t->key);
	free(t->name);
	free(t);
}

static void free_target_if_unused(struct co_target *t)
{
	if (t->refs > 0 || t->inflight > 0 || !TAILQ_EMPTY(&t->queue))
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
	if (t->def.mode != 'u') {
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
	if (t->name)
		snprintf(t->name, n, "%s%s%s", def->schema ? def->schema : "",
		         def->schema && def->schema[0] ? "." : "", def->table);
	if (t->name)
		t->series = mt_series_get(t->name, def->mode);
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

void co_target_put(struct co_target *t)
{
	if (t == NULL)
		return;
	t->refs--;
	free_target_if_unused(t);
}

bool co_submit(struct co_target *t, struct evbuffer *rows, uint64_t nrows,
               co_done_cb done, void *arg)
{
	struct coalescer *co = t->co;
	struct co_unit *u = calloc(1, sizeof(*u));

	if (u == NULL || (u->rows = evbuffer_new()) == NULL) {
		free(u);
		return false;
	}
	u->bytes = evbuffer_get_length(rows);
	evbuffer_add_buffer(u->rows, rows);
	u->nrows = nrows;
	u->queued_ms = clock_now_ms();
	u->series = t->series;
	u->done = done;
	u->arg = arg;
	TAILQ_INSERT_TAIL(&t->queue, u, link);
	t->queued_rows += nrows;
	t->queued_bytes += u->bytes;
	co->stats.queued_units++;
	co->stats.queued_bytes += u->bytes;
	try_dispatch(t);
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
	while ((b = TAILQ_FIRST(&co->batches)) != NULL) {
		TAILQ_REMOVE(&co->batches, b, link);
		if (b->wait)
			pool_cancel(co->pool, b->wait);
		/* b->conn stays with the pool, which is freed after us. */
		fail_batch_units(b, "57P01", "the proxy is shutting down", "");
		if (b->data)
			evbuffer_free(b->data);
		if (b->reacquire_ev)
			event_free(b->reacquire_ev);
		free(b->sql);
		free(b);
	}
	while ((t = TAILQ_FIRST(&co->targets)) != NULL) {
		while ((u = TAILQ_FIRST(&t->queue)) != NULL) {
			TAILQ_REMOVE(&t->queue, u, link);
			fail_unit(co, u, "57P01", "the proxy is shutting down",
			          "", 0);
		}
		TAILQ_REMOVE(&co->targets, t, link);
		free_target(t);
	}
	free(co);
}

struct mt_series *co_target_series(const struct co_target *t)
{
	return t->series;
}

void co_set_config(struct coalescer *co, const struct co_config *cfg)
{
	struct co_target *t, *next;

	co->cfg = *cfg;
	for (t = TAILQ_FIRST(&co->targets); t; t = next) {
		next = TAILQ_NEXT(t, link);
		setup_dead_letter(t);
		/* a larger max_inflight may let queued units go now */
		try_dispatch(t);
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
		try_dispatch(t);
	}
}

bool co_is_idle(const struct coalescer *co)
{
	return co->stats.queued_units == 0 && co->stats.inflight == 0;
}
