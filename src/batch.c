/* batch.c: one batch's life: a connection, its statement, and every
 * outcome mapped back to the units it carries. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "catalog.h"
#include "coalesce_int.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "sqlgen.h"
#include "timer.h"
#include "upstream.h"

static const char *const batch_state_names[] = {"acquiring", "running",
                                                "rolling_back", "reacquiring"};

static void batch_run(struct co_batch *b);
static void batch_got_conn(struct up_conn *c, void *arg);

static void batch_set_state(struct co_batch *b, enum batch_state to)
{
	log_debug("batch=%" PRIu64 " event=state from=%s to=%s target=%s",
	          b->id, batch_state_names[b->state], batch_state_names[to],
	          b->t->name);
	b->state = to;
}

/* The units one statement carries: all, or only the first. */
#define FOREACH_RUN_UNIT(u, b)                                                 \
	for ((u) = TAILQ_FIRST(&(b)->units); (u) != NULL;                      \
	     (u) = (b)->scope == SCOPE_ONE_UNIT ? NULL                         \
	                                        : TAILQ_NEXT((u), link))

/* ---- ending ---- */

/* Takes u out of the batch (its outcome is the caller's to give). */
static void batch_remove_unit(struct co_batch *b, struct co_unit *u)
{
	TAILQ_REMOVE(&b->units, u, link);
	b->rows -= u->nrows;
	b->bytes -= u->bytes;
}

/* Fails and removes every unit the batch holds. */
static void batch_fail_units(struct co_batch *b, const char *sqlstate,
                             const char *message)
{
	struct co_unit *u;

	while ((u = TAILQ_FIRST(&b->units)) != NULL) {
		batch_remove_unit(b, u);
		co_unit_fail(b->t->co, u, sqlstate, message, "", 0);
	}
}

static void batch_free(struct co_batch *b)
{
	struct coalescer *co = b->t->co;

	if (b->wait)
		pool_cancel(co->pool, b->wait);
	if (b->data)
		evbuffer_free(b->data);
	if (b->reacquire_ev)
		event_free(b->reacquire_ev);
	free(b->sql);
	TAILQ_REMOVE(&co->batches, b, link);
	b->t->inflight--;
	if (b->state == BATCH_ACQUIRING)
		b->t->waiting--;
	co->stats.inflight--;
	free(b);
}

/* Every unit has its outcome: the connection goes back, the batch goes. */
static void batch_finish(struct co_batch *b)
{
	struct co_target *t = b->t;

	if (b->conn)
		pool_release(t->co->pool, b->conn);
	b->conn = NULL;
	batch_free(b);
	co_batch_ended(t);
}

void batch_abandon(struct co_batch *b)
{
	/* b->conn stays with the pool, which is freed after us. */
	b->conn = NULL;
	batch_fail_units(b, "57P01", "the proxy is shutting down");
	batch_free(b);
}

/* ---- the statement ---- */

/* A copy of every carried unit's rows (see the comment inside). */
static bool batch_data(struct co_batch *b, struct evbuffer *data)
{
	struct co_unit *u;

	FOREACH_RUN_UNIT(u, b)
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
	}
	return true;
}

/* The units it carries hold dead letters or progress rows: its own SQL. */
static bool batch_needs_own_sql(const struct co_batch *b)
{
	const struct co_unit *u;

	FOREACH_RUN_UNIT(u, b)
	{
		if (u->ndead > 0 || u->progress != NULL)
			return true;
	}
	return false;
}

/*
 * The batch statement with, before COMMIT, the dead letters and progress
 * rows of the units it carries now: a unit's progress row goes exactly
 * with its rows, whatever retry or split the batch is in.
 */
static char *statement_with_extras(struct co_batch *b)
{
	struct evbuffer **letters;
	const struct sql_progress **progress;
	struct co_unit *u;
	size_t n = 0, nl = 0, np = 0;
	char *sql = NULL;

	TAILQ_FOREACH(u, &b->units, link) n++;
	letters = calloc(n ? n : 1, sizeof(*letters));
	progress = calloc(n ? n : 1, sizeof(*progress));
	if (letters != NULL && progress != NULL) {
		FOREACH_RUN_UNIT(u, b)
		{
			if (u->ndead > 0)
				letters[nl++] = u->dead;
			if (u->progress != NULL)
				progress[np++] = u->progress;
		}
		sql = sql_batch_statement(&b->t->def, b->t->stage, letters, nl,
		                          progress, np);
	}
	free(letters);
	free(progress);
	return sql;
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

/* ---- after the statement ---- */

/* The rest of the batch runs again, or the batch is done. */
static void batch_next(struct co_batch *b)
{
	if (TAILQ_EMPTY(&b->units))
		batch_finish(b);
	else
		batch_run(b);
}

static void batch_after_rollback(struct up_conn *c, const struct up_result *r,
                                 void *arg)
{
	struct co_batch *b = arg;

	(void)c;
	if (!r->ok) {
		/* The connection is no good; the pool drops it. */
		pool_release(b->t->co->pool, b->conn);
		b->conn = NULL;
	}
	batch_next(b);
}

/*
 * Runs the rest of the batch (a retry), or finishes it. A transaction the
 * server failed cleanly (a permission, a constraint) is rolled back first
 * either way: the connection is fine after ROLLBACK, and handing it back
 * in a failed transaction would make the pool close it and log in anew,
 * once per rejected batch.
 */
static void batch_continue(struct co_batch *b, const struct up_result *r)
{
	if (b->conn && r->txn_status != 'I') {
		batch_set_state(b, BATCH_ROLLING_BACK);
		if (up_exec(b->conn, SQL_ROLLBACK, NULL, batch_after_rollback,
		            b))
			return;
		pool_release(b->t->co->pool, b->conn);
		b->conn = NULL;
	}
	batch_next(b);
}

/* The unit holding batch line `line` (1-based) and the line within it. */
static struct co_unit *unit_at_line(struct co_batch *b, uint64_t line,
                                    uint64_t *row)
{
	struct co_unit *u;

	FOREACH_RUN_UNIT(u, b)
	{
		if (line <= u->nrows) {
			*row = line;
			return u;
		}
		line -= u->nrows;
	}
	return NULL;
}

static bool is_retryable(const struct pgw_notice *e, const char *sqlstate)
{
	/* deadlock_detected, serialization_failure */
	if (strcmp(sqlstate, "40P01") == 0 || strcmp(sqlstate, "40001") == 0)
		return true;
	/*
	 * Two batches' CREATE TABLE IF NOT EXISTS of one table (a progress or
	 * dead-letter table) at the same instant: one fails on the catalog's
	 * unique index, or with duplicate_table; the next attempt finds it.
	 */
	return strcmp(sqlstate, "42P07") == 0 ||
	       (strcmp(sqlstate, "23505") == 0 &&
	        ((e->constraint != NULL &&
	          strcmp(e->constraint, "pg_type_typname_nsp_index") == 0) ||
	         (e->message != NULL &&
	          strstr(e->message, "\"pg_type_typname_nsp_index\"") !=
	              NULL)));
}

static bool means_table_changed(const char *sqlstate)
{
	/* undefined table/column, datatype mismatch, wrong object type */
	return strcmp(sqlstate, "42P01") == 0 ||
	       strcmp(sqlstate, "42703") == 0 ||
	       strcmp(sqlstate, "42804") == 0 || strcmp(sqlstate, "42809") == 0;
}

static void batch_split(struct co_batch *b)
{
	if (b->scope == SCOPE_ONE_UNIT)
		return;
	b->scope = SCOPE_ONE_UNIT;
	b->t->co->stats.batches_split++;
	log_debug("batch=%" PRIu64 " event=split target=%s units=%" PRIu64,
	          b->id, b->t->name, (uint64_t)b->rows);
}

/* The error names a COPY line: the row is u's. */
static void on_row_error(struct co_batch *b, struct co_unit *u, uint64_t row,
                         const struct up_result *r)
{
	struct coalescer *co = b->t->co;
	const struct pgw_notice *e = &r->error;

	if (co->cfg.dead_letter && b->t->dead_ok &&
	    dead_letter_row(u, row, e)) {
		/* Progress every time: not a retry that counts. */
		b->attempts--;
		b->rows--;
		mt_add(b->t->metrics.rows_dead_lettered, 1);
		batch_continue(b, r);
		return;
	}
	/* The row is this unit's: it fails, the others go again. */
	batch_remove_unit(b, u);
	co_target_failed(b->t, e->sqlstate ? e->sqlstate : "XX000");
	co_unit_fail_server(co, u, e, row);
	if (b->attempts > co->cfg.max_retries)
		batch_split(b);
	batch_continue(b, r);
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
	if (is_retryable(e, state) && b->attempts <= co->cfg.max_retries) {
		batch_continue(b, r);
		return;
	}
	if (e->where && sql_copy_error_line(e->where, &line) &&
	    (u = unit_at_line(b, line, &row)) != NULL) {
		on_row_error(b, u, row, r);
		return;
	}
	if (b->scope == SCOPE_ONE_UNIT ||
	    TAILQ_FIRST(&b->units) == TAILQ_LAST(&b->units, unit_list)) {
		/* Only one unit ran: the error is its own. */
		u = TAILQ_FIRST(&b->units);
		batch_remove_unit(b, u);
		co_target_failed(b->t, state);
		co_unit_fail_server(co, u, e, 0);
	} else {
		batch_split(b);
	}
	batch_continue(b, r);
}

static void on_conn_lost(struct co_batch *b, const struct up_result *r)
{
	struct coalescer *co = b->t->co;
	char msg[400];

	pool_release(co->pool, b->conn);
	b->conn = NULL;
	b->attempts++;
	/* an upsert is retried (idempotent), but not a first_wins one:
	 * which rows it inserted would be lost */
	if (r->copy_done &&
	    (b->t->def.mode != SQL_UPSERT || b->t->def.first_wins)) {
		/* COMMIT may have run: retrying could insert the rows twice. */
		snprintf(msg, sizeof(msg),
		         "the server connection was lost after the batch was "
		         "sent; its rows may or may not be committed (%s)",
		         r->conn_error ? r->conn_error : "");
		if (b->scope == SCOPE_ONE_UNIT) {
			struct co_unit *u = TAILQ_FIRST(&b->units);

			batch_remove_unit(b, u);
			co_unit_fail(co, u, "08007", msg, "", 0);
		} else {
			batch_fail_units(b, "08007", msg);
		}
		batch_continue(b, r);
		return;
	}
	if (b->attempts > co->cfg.max_retries + 1) {
		snprintf(msg, sizeof(msg), "gave up after %u attempts: %s",
		         b->attempts, r->conn_error ? r->conn_error : "");
		batch_fail_units(b, "08000", msg);
		batch_finish(b);
		return;
	}
	batch_run(b); /* on another connection */
}

/*
 * A first_wins batch committed: its result rows are the positions of the
 * inserted rows in its data, ascending; each unit learns its own.
 */
static void ack_inserted(struct co_batch *b, const struct up_result *r)
{
	uint64_t *mine = calloc(r->nrows ? r->nrows : 1, sizeof(*mine));
	uint64_t off = 0;
	size_t at = 0;
	struct co_unit *u;

	while ((u = TAILQ_FIRST(&b->units)) != NULL) {
		uint64_t end = off + u->nrows;
		size_t n = 0;

		for (; mine != NULL && at < r->nrows; at++) {
			const char *cell = up_result_cell(r, at, 0);
			uint64_t pos = cell ? strtoull(cell, NULL, 10) : 0;

			if (cell == NULL || pos < off || pos >= end)
				break;
			mine[n++] = pos - off;
		}
		batch_remove_unit(b, u);
		if (mine != NULL)
			co_unit_ack_inserted(b->t->co, u, mine, n);
		else /* out of memory: the client hears of every row */
			co_unit_ack(b->t->co, u);
		off = end;
		if (b->scope == SCOPE_ONE_UNIT)
			break;
	}
	free(mine);
}

static void batch_done(struct up_conn *c, const struct up_result *r, void *arg)
{
	struct co_batch *b = arg;
	struct co_unit *u;

	(void)c;
	evbuffer_free(b->data);
	b->data = NULL;
	if (r->ok) {
		co_target_committed(b->t);
		if (b->t->def.first_wins) {
			ack_inserted(b, r);
		} else {
			while ((u = TAILQ_FIRST(&b->units)) != NULL) {
				batch_remove_unit(b, u);
				co_unit_ack(b->t->co, u);
				if (b->scope == SCOPE_ONE_UNIT)
					break;
			}
		}
		batch_continue(b, r);
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

/* ---- connections ---- */

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

	(void)fd;
	(void)what;
	if (b->state != BATCH_REACQUIRING)
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
	batch_fail_units(b, "08001", msg);
	batch_finish(b);
}

/* Asks the pool for another connection, for at most acquire_timeout_ms. */
static void batch_reacquire(struct co_batch *b)
{
	struct coalescer *co = b->t->co;

	batch_set_state(b, BATCH_REACQUIRING);
	if (b->reacquire_ev == NULL)
		b->reacquire_ev =
		    evtimer_new(co->base, reacquire_timeout_cb, b);
	b->wait = pool_acquire(co->pool, batch_got_conn, b);
	if (b->wait == NULL || b->reacquire_ev == NULL) {
		batch_fail_units(b, "53200", "out of memory");
		batch_finish(b);
		return;
	}
	timer_add_ms(b->reacquire_ev, co->cfg.acquire_timeout_ms);
}

/* An idle connection that refuses work is broken: try another. */
static void batch_conn_refused(struct co_batch *b)
{
	struct coalescer *co = b->t->co;

	co->stats.batch_retries++;
	pool_release(co->pool, b->conn);
	b->conn = NULL;
	b->attempts++;
	if (b->attempts > co->cfg.max_retries + 1) {
		batch_fail_units(b, "08000", "cannot run the batch");
		batch_finish(b);
		return;
	}
	batch_reacquire(b);
}

/* Sends the statement for the units it carries now (conn in hand). */
static void batch_run(struct co_batch *b)
{
	struct evbuffer *data;
	bool own;

	if (TAILQ_EMPTY(&b->units)) {
		batch_finish(b);
		return;
	}
	if (b->conn == NULL) {
		batch_reacquire(b);
		return;
	}
	if (b->state != BATCH_RUNNING)
		batch_set_state(b, BATCH_RUNNING);
	free(b->sql);
	own = batch_needs_own_sql(b);
	b->sql = own ? statement_with_extras(b) : NULL;
	data = evbuffer_new();
	/* Without its own SQL the batch would lose letters or progress. */
	if ((own && b->sql == NULL) || data == NULL || !batch_data(b, data) ||
	    !up_exec(b->conn, b->sql ? b->sql : b->t->sql, data, batch_done,
	             b)) {
		if (data)
			evbuffer_free(data);
		batch_conn_refused(b);
		return;
	}
	/* up_exec streams out of data; it is freed when the statement ends. */
	b->data = data;
}

/* The first connection: the batch takes its units now. */
static void batch_begin(struct co_batch *b)
{
	struct co_target *t = b->t;

	t->waiting--;
	co_take_units(b);
	t->co->stats.batches++;
	mt_add(t->metrics.batches, 1);
	mt_observe(t->co->batch_rows, (double)b->rows);
	log_debug("batch=%" PRIu64 " event=batch_start target=%s "
	          "rows=%" PRIu64 " bytes=%zu conn=%" PRIu64,
	          b->id, t->name, b->rows, b->bytes, up_get_id(b->conn));
}

static void batch_got_conn(struct up_conn *c, void *arg)
{
	struct co_batch *b = arg;
	bool first = b->state == BATCH_ACQUIRING;

	b->wait = NULL;
	if (b->reacquire_ev)
		evtimer_del(b->reacquire_ev);
	if (c == NULL) {
		batch_fail_units(b, "57P01", "the proxy is shutting down");
		batch_finish(b);
		return;
	}
	b->conn = c;
	if (first) {
		batch_set_state(b, BATCH_RUNNING);
		batch_begin(b);
		/* More may be queued than one batch takes. */
		co_try_dispatch(b->t);
	}
	batch_run(b);
}

bool batch_start(struct co_target *t)
{
	struct coalescer *co = t->co;
	struct co_batch *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return false;
	b->t = t;
	b->id = ++co->next_batch_id;
	b->state = BATCH_ACQUIRING;
	b->scope = SCOPE_ALL_UNITS;
	TAILQ_INIT(&b->units);
	b->wait = pool_acquire(co->pool, batch_got_conn, b);
	if (b->wait == NULL) {
		free(b);
		return false;
	}
	TAILQ_INSERT_TAIL(&co->batches, b, link);
	t->inflight++;
	t->waiting++;
	co->stats.inflight++;
	return true;
}
