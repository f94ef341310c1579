/* fe_cotxn.c: a client's explicit transaction of coalescible INSERTs
 * ([frontend] coalesce_transactions): BEGIN, its rows held, COMMIT as one
 * flush unit, and the real server transaction it becomes when a statement
 * is not coalescible. */
#include "fe_coalesce_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "sqlfit.h"

/* ---- coalesced explicit transactions ([frontend] coalesce_transactions) ----
 */

void fco_txn_free(struct fe_client *cl)
{
	struct fco_txn *x = cl->co_txn;

	if (x == NULL)
		return;
	cl->co_txn = NULL;
	cl->fe->stats.co_held_bytes -= x->held;
	co_target_put(x->target);
	if (x->rows != NULL)
		evbuffer_free(x->rows);
	free(x);
}

bool fco_txn_new(struct fe_client *cl)
{
	struct fco_txn *x = calloc(1, sizeof(*x));

	if (x == NULL || (x->rows = evbuffer_new()) == NULL) {
		free(x);
		return false;
	}
	cl->co_txn = x;
	return true;
}

/* q's rows (for q->target, the transaction's target) join it. */
void fco_txn_take(struct fe_client *cl, struct fco_seq *q)
{
	struct fco_txn *x = cl->co_txn;
	size_t bytes = evbuffer_get_length(q->rows);

	if (x->target == NULL) {
		x->target = q->target;
		q->target = NULL;
	}
	evbuffer_add_buffer(x->rows, q->rows);
	x->nrows += q->nrows;
	x->held += bytes;
	cl->fe->stats.co_held_bytes += bytes;
	cl->fe->stats.co_rows += q->nrows;
}

/*
 * The sequence's rows join the client's transaction (answered at once, the
 * commit comes with COMMIT). NULL, or why it must be relayed instead.
 */
const char *fco_add_to_txn(struct fco_seq *q, const struct fco_target *g)
{
	struct fco_txn *x = q->cl->co_txn;
	struct frontend *fe = q->fe;
	size_t bytes = evbuffer_get_length(q->rows);
	struct co_target *t;

	if (g->upsert)
		return "an upsert inside a transaction";
	if (fe->stats.co_held_bytes + bytes > fe->cfg.coalesce_buffer_bytes)
		return "coalesce_buffer_bytes reached";
	if (q->nrows == 0)
		return NULL;
	if ((t = fco_target_of(q, g)) == NULL)
		return "out of memory";
	if (x->target != NULL && x->target != t) {
		co_target_put(t);
		return "a second table in the transaction";
	}
	q->target = t; /* q's reference, given to the transaction or put */
	fco_txn_take(q->cl, q);
	return NULL;
}

/* The transaction-control statement kept under name, if it is one. */
static enum sqlf_txc kept_control(const struct fe_client *cl, const char *name)
{
	const struct fps_stmt *kept = NULL;
	const uint8_t *rest = cl->co_unnamed;
	size_t len = cl->co_unnamed_len;
	struct pgw_parse_msg m;

	if (name[0] != '\0') {
		kept = cl->stmts ? fps_client_find(cl->stmts, name) : NULL;
		rest = kept ? kept->parse_rest : NULL;
		len = kept ? kept->parse_rest_len : 0;
	}
	if (rest == NULL || len == 0 ||
	    pgw_parse_parse_rest(rest, len, &m) != PGW_OK || m.ntypes != 0)
		return SQLF_TXC_NONE;
	return sqlf_txn_control((const uint8_t *)m.query, strlen(m.query));
}

/* What a control sequence is: one Query, or Parse/Bind/Describe/Execute
 * of the unnamed statement and portal, without parameters, and Sync. */
struct control_ctx {
	enum sqlf_txc kind;
	unsigned parses, executes;
	bool bad;
};

static void control_look(struct fco_seq *q, const struct pgw_frame *f,
                         struct control_ctx *x)
{
	struct pgw_parse_msg pm;
	struct pgw_bind_msg bm;
	const char *name;
	uint16_t n;
	char kind;

	switch (f->type) {
	case PGW_FE_QUERY:
		x->parses++;
		x->executes++;
		x->kind = f->len > 0 && f->body[f->len - 1] == '\0'
		              ? sqlf_txn_control(f->body, f->len - 1)
		              : SQLF_TXC_NONE;
		return;
	case PGW_FE_PARSE:
		x->parses++;
		x->kind = pgw_parse_parse(f, &pm) == PGW_OK && pm.ntypes == 0
		              ? sqlf_txn_control((const uint8_t *)pm.query,
		                                 strlen(pm.query))
		              : SQLF_TXC_NONE;
		return;
	case PGW_FE_BIND:
		x->bad |= pgw_parse_bind(f, &bm) != PGW_OK ||
		          bm.portal[0] != '\0' ||
		          pgw_bind_count(&bm, &n) != PGW_OK || n != 0;
		if (!x->bad &&
		    x->parses == 0) { /* a statement kept from before */
			x->parses++;
			x->kind = kept_control(q->cl, bm.statement);
		}
		return;
	case PGW_FE_DESCRIBE:
		x->bad |= pgw_parse_target(f, &kind, &name) != PGW_OK ||
		          kind != 'P' || name[0] != '\0';
		return;
	case PGW_FE_EXECUTE:
		x->executes++;
		return;
	case PGW_FE_SYNC:
		return;
	}
	x->bad = true;
}

/* Stops the walk as soon as the sequence cannot be one control statement
 * (most are INSERTs: their first Parse says so). */
static bool control_fn(struct fco_seq *q, size_t i, const struct pgw_frame *f,
                       void *arg)
{
	struct control_ctx *x = arg;

	(void)i;
	control_look(q, f, x);
	return !x->bad && x->parses <= 1 && x->executes <= 1 &&
	       (x->parses == 0 || x->kind != SQLF_TXC_NONE);
}

static enum sqlf_txc control_of(struct fco_seq *q, struct evbuffer *in)
{
	struct control_ctx x = {SQLF_TXC_NONE, 0, 0, false};

	if (!fco_each_message(q, in, control_fn, &x) || x.parses != 1 ||
	    x.executes != 1)
		return SQLF_TXC_NONE;
	return x.kind;
}

/* The answers to a control sequence, its tag at the Execute (or Query). */
static bool control_answer_fn(struct fco_seq *q, size_t i,
                              const struct pgw_frame *f, void *arg)
{
	const char *tag = arg;
	struct fco_exec *v;

	(void)i;
	switch (f->type) {
	case PGW_FE_PARSE:
		return fco_put_empty(q->answers, '1');
	case PGW_FE_BIND:
		return fco_put_empty(q->answers, '2');
	case PGW_FE_DESCRIBE:
		return fco_put_empty(q->answers, 'n');
	case PGW_FE_SYNC:
		return pgw_put_ready(q->answers, q->status);
	}
	/* Execute or Query */
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return false;
	free(q->execs);
	q->execs = v;
	q->nexecs = 1;
	v->answer_at = evbuffer_get_length(q->answers);
	v->rows = q->nrows;
	return pgw_put_pieces(q->answers, PGW_MSG_COMMAND_COMPLETE,
	                      &(struct pgw_piece){tag, strlen(tag) + 1}, 1) &&
	       (f->type != PGW_FE_QUERY ||
	        pgw_put_ready(q->answers, q->status));
}

/*
 * BEGIN, COMMIT or ROLLBACK of a coalesced transaction: answered here
 * (COMMIT once its rows are committed). FCO_FORWARD for the others.
 */
enum fco_verdict fco_control(struct fe_client *cl, struct fco_seq *q)
{
	struct evbuffer *in = bufferevent_get_input(cl->bev);
	enum sqlf_txc kind = control_of(q, in);
	struct fco_txn *x = cl->co_txn;
	const char *tag = kind == SQLF_TXC_BEGIN    ? "BEGIN"
	                  : kind == SQLF_TXC_COMMIT ? "COMMIT"
	                                            : "ROLLBACK";

	if (kind == SQLF_TXC_NONE || (kind == SQLF_TXC_BEGIN) != (x == NULL) ||
	    (kind == SQLF_TXC_BEGIN && !cl->fe->cfg.coalesce_transactions))
		return FCO_FORWARD;
	if (kind == SQLF_TXC_BEGIN) {
		if (!fco_txn_new(cl))
			return FCO_FORWARD;
		x = cl->co_txn;
	}
	q->status = kind == SQLF_TXC_BEGIN ? 'T' : 'I';
	q->nrows = kind == SQLF_TXC_COMMIT ? x->nrows : 0;
	if ((q->answers = evbuffer_new()) == NULL ||
	    !fco_each_message(q, in, control_answer_fn, (void *)tag) ||
	    !fco_each_message(q, in, fco_keep_fn, NULL)) {
		if (kind == SQLF_TXC_BEGIN)
			fco_txn_free(cl);
		if (q->answers != NULL)
			evbuffer_free(q->answers);
		free(q->execs);
		q->answers = NULL;
		q->execs = NULL;
		q->nexecs = 0;
		q->nrows = 0;
		return FCO_FORWARD;
	}
	evbuffer_drain(in, q->len);
	cl->co_scan = 0;
	if (q->nrows > 0 &&
	    co_submit(x->target, x->rows, x->nrows, fco_unit_done, q)) {
		q->held = x->held; /* the unit's now */
		x->held = 0;
		cl->fe->stats.co_sequences++;
		fco_txn_free(cl);
		cl->co_seq = q;
		fe_set_state(cl, FE_COALESCING);
		fe_update_reading(cl);
		return FCO_TAKEN;
	}
	if (q->nrows > 0) {
		fco_seq_free(q);
		fe_fail(cl, "53200", "out of memory");
		return FCO_TAKEN;
	}
	if (kind != SQLF_TXC_BEGIN)
		fco_txn_free(cl);
	evbuffer_add_buffer(fe_out(cl), q->answers);
	fco_seq_free(q);
	if (cl->fe->draining && cl->co_txn == NULL)
		fe_fail(cl, "57P01", "the proxy is shutting down");
	return FCO_TAKEN;
}

/* ---- a coalesced transaction becomes a server transaction ---- */

static void materialized(struct up_conn *up, const struct up_result *r,
                         void *arg)
{
	struct fe_client *cl = arg;

	cl->exec_running = false;
	if (cl->gone) {
		fe_close(cl); /* gives the connection back, frees cl */
		return;
	}
	fco_txn_free(cl);
	if (cl->state == FE_CLOSING) {
		fe_relay_detach(cl);
		return;
	}
	if (r->ok) {
		fe_relay_start(cl);
		cl->txn = 'T';
		return;
	}
	/* the rows were refused: the statement that needed the server gets
	 * the server's error, and the transaction is over */
	if (cl->co_handover != NULL) {
		/* a COPY the client is still sending: answered now, the rest
		 * of its data is dropped (idle_step) */
		fco_seq_free(cl->co_handover);
		cl->co_handover = NULL;
		fco_put_failure(
		    fe_out(cl),
		    &(struct co_outcome){
		        .sqlstate =
		            r->error.sqlstate ? r->error.sqlstate : "08006",
		        .message = r->error.message ? r->error.message
		                                    : "server error",
		        .error = r->error.sqlstate ? &r->error : NULL});
		pgw_put_ready(fe_out(cl), 'I');
	} else {
		if (r->error.sqlstate == NULL ||
		    !pgw_notice_dup(&r->error, &cl->owed_error))
			memset(&cl->owed_error, 0, sizeof(cl->owed_error));
		snprintf(cl->owed_sqlstate, sizeof(cl->owed_sqlstate), "%s",
		         r->error.sqlstate ? r->error.sqlstate : "08006");
	}
	up_close(up, UP_CLOSE_BY_OWNER, "coalesced transaction failed");
	pool_release(cl->db->pool, up);
	cl->up = NULL;
	fe_set_state(cl, FE_IDLE);
	fe_update_reading(cl);
	event_active(cl->kick, 0, 0);
}

bool fco_materialize(struct fe_client *cl)
{
	struct fco_txn *x = cl->co_txn;
	char *sql;

	if (x == NULL)
		return false;
	sql = x->target ? sql_insert_begin(co_target_def(x->target))
	                : strdup("BEGIN");
	if (log_get_level() <= LOG_DEBUG)
		fe_log(LOG_DEBUG, cl,
		       "event=coalesce_materialize rows=%" PRIu64, x->nrows);
	cl->exec_running =
	    sql != NULL && up_exec(cl->up, sql, x->rows, materialized, cl);
	free(sql);
	if (!cl->exec_running)
		fe_fail(cl, "08006", "server connection not usable");
	return true;
}
