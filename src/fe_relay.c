/* fe_relay.c: front-door clients on server connections: pooling, relaying
 * both ways with backpressure, prepared statements in transaction mode. */
#include "frontend_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "bytes.h"
#include "clock.h"
#include "pgwire.h"
#include "sqlgen.h"
#include "timer.h"

/* What a step of a relay loop left behind. */
enum step { STEP_ON, STEP_STOP, STEP_GONE };

static void start_relay(struct fe_client *cl);
static void count_message(struct fe_client *cl, uint8_t type);

/* A coalesced transaction's rows go first, if there is one. */
static void begin_relay(struct fe_client *cl)
{
	if (!fco_materialize(cl))
		start_relay(cl);
}

static struct evbuffer *cl_in(struct fe_client *cl)
{
	return bufferevent_get_input(cl->bev);
}

/* The header of the next message: false while fewer than 5 bytes. */
static bool peek_header(struct evbuffer *in, uint8_t *type, size_t *body)
{
	uint8_t h[PGW_HEADER_LEN];
	uint32_t len;

	if (evbuffer_copyout(in, h, sizeof(h)) != (ev_ssize_t)sizeof(h))
		return false;
	len = get_be32(h + 1);
	*type = h[0];
	/* a length under 4 or over INT32_MAX: caught by the callers' caps */
	*body = len < 4 ? SIZE_MAX : (size_t)len - 4;
	return true;
}

/* ---- what the server owes: ParseComplete and CloseComplete ---- */

static bool expect_push(struct fe_client *cl, char type, bool swallow,
                        const char *name, bool undo_on_loss)
{
	struct fe_expect *e;

	if (cl->nexpect == cl->expect_cap) {
		size_t cap = cl->expect_cap ? cl->expect_cap * 2 : 16;
		struct fe_expect *v = realloc(cl->expect, cap * sizeof(*v));

		if (v == NULL)
			return false;
		cl->expect = v;
		cl->expect_cap = cap;
	}
	e = &cl->expect[cl->nexpect++];
	memset(e, 0, sizeof(*e));
	e->type = type;
	e->swallow = swallow;
	e->confirm = undo_on_loss;
	e->gen = cl->syncs_sent;
	if (name != NULL)
		snprintf(e->name, sizeof(e->name), "%s", name);
	return true;
}

static void expect_shift(struct fe_client *cl)
{
	memmove(cl->expect, cl->expect + 1,
	        (cl->nexpect - 1) * sizeof(*cl->expect));
	cl->nexpect--;
}

/*
 * At a ReadyForQuery, what was still owed from before that sync point
 * will never come (an error skipped it): a Parse of ours that did not
 * complete means the statement is not on the server after all.
 */
static void expect_drop_stale(struct fe_client *cl)
{
	struct fps_server *srv = up_get_user_data(cl->up);

	while (cl->nexpect > 0 && cl->expect[0].gen < cl->syncs_done) {
		if (cl->expect[0].confirm && srv != NULL)
			fps_server_remove(srv, cl->expect[0].name);
		expect_shift(cl);
	}
}

/* ---- getting a server connection ---- */

static void got_server(struct up_conn *up, void *arg);

void fe_relay_acquire(struct fe_client *cl)
{
	cl->wait_start_us = clock_now_us();
	cl->fe->stats.waits++;
	cl->waiter = pool_acquire(cl->db->pool, got_server, cl);
	if (cl->waiter == NULL) {
		fe_fail(cl, "53200", "out of memory");
		return;
	}
	timer_add_ms(cl->timer, cl->fe->acquire_timeout_ms);
}

void fe_relay_wait_timeout(struct fe_client *cl)
{
	if (cl->waiter != NULL) {
		pool_cancel(cl->db->pool, cl->waiter);
		cl->waiter = NULL;
	}
	fe_fail(cl, "53300",
	        "no server connection became free within %u ms "
	        "(acquire_timeout_ms); the pool of database \"%s\" is "
	        "exhausted or the server is unreachable",
	        cl->fe->acquire_timeout_ms, cl->database);
}

/* The client's session parameters the connection does not have yet. */
static char *vars_to_set(struct fe_client *cl)
{
	const char *names[FE_NVARS], *values[FE_NVARS];
	size_t n = 0;

	for (int k = 0; k < FE_NVARS; k++) {
		const char *have = up_server_param(cl->up, fe_var_names[k]);

		if (cl->vars[k] == NULL ||
		    (have != NULL && strcmp(have, cl->vars[k]) == 0))
			continue;
		names[n] = fe_var_names[k];
		values[n++] = cl->vars[k];
	}
	return n > 0 ? sql_set_params(names, values, n) : NULL;
}

static void vars_done(struct up_conn *up, const struct up_result *r, void *arg)
{
	struct fe_client *cl = arg;

	cl->exec_running = false;
	if (cl->gone) {
		fe_close(cl); /* gives the connection back, frees cl */
		return;
	}
	if (cl->state == FE_CLOSING) {
		fe_relay_detach(cl);
		return;
	}
	if (!r->ok) {
		fe_fail(cl, r->error.sqlstate ? r->error.sqlstate : "08006",
		        "cannot set the session's parameters: %s",
		        r->error.message        ? r->error.message
		        : r->conn_error != NULL ? r->conn_error
		                                : "server error");
		return;
	}
	begin_relay(cl);
}

/* Transaction mode's first login: the server told its parameters. */
static void login_released(struct fe_client *cl)
{
	pool_release(cl->db->pool, cl->up);
	cl->up = NULL;
	pgw_put_ready(fe_out(cl), 'I');
	fe_set_state(cl, FE_IDLE);
	fe_update_reading(cl);
	event_active(cl->kick, 0, 0);
}

static void got_server(struct up_conn *up, void *arg)
{
	struct fe_client *cl = arg;
	struct fps_server *srv;
	char *sql;

	cl->waiter = NULL;
	evtimer_del(cl->timer);
	if (up == NULL) {
		fe_fail(cl, "57P01", "the proxy is shutting down");
		return;
	}
	cl->up = up;
	cl->fe->stats.wait_us_sum += clock_now_us() - cl->wait_start_us;
	mt_observe(cl->fe->m_wait,
	           (double)(clock_now_us() - cl->wait_start_us) / 1e6);
	fe_db_remember_params(cl->db, up);
	if (up_get_user_data(up) == NULL && (srv = fps_server_new()) != NULL)
		up_set_user_data(up, srv, fps_server_free);
	if (cl->state == FE_LOGIN) {
		fe_finish_login(cl);
		if (cl->fe->cfg.pool_mode == FE_POOL_TRANSACTION) {
			login_released(cl);
			return;
		}
	}
	sql = vars_to_set(cl);
	if (sql == NULL) {
		begin_relay(cl);
		return;
	}
	cl->exec_running = up_exec(up, sql, NULL, vars_done, cl);
	free(sql);
	if (!cl->exec_running)
		fe_fail(cl, "08006", "server connection not usable");
}

/* ---- the relay's own events ---- */

static void server_input_cb(struct up_conn *up, void *arg)
{
	fe_relay_server_input(arg);
}

static void server_drained_cb(struct up_conn *up, void *arg)
{
	struct fe_client *cl = arg;

	fe_update_reading(cl);
	event_active(cl->kick, 0, 0);
}

static void reset_counters(struct fe_client *cl)
{
	cl->syncs_sent = cl->syncs_done = 0;
	cl->unsynced = 0;
	cl->nexpect = 0;
	cl->sv_skip = 0;
	cl->server_paused = false;
}

/*
 * The server connection died under the client. A client that waits for
 * answers gets 08006 and a ReadyForQuery per Sync it is owed; one idle in
 * a transaction gets the error at its next statement. Either way its next
 * transaction runs on a new connection (session mode: the session is
 * gone, and so is the client).
 */
static void server_closed_cb(struct up_conn *up, void *arg)
{
	struct fe_client *cl = arg;
	uint64_t owed = cl->syncs_sent - cl->syncs_done;

	cl->fe->stats.server_lost++;
	fe_log(LOG_WARN, cl, "event=server_lost conn=%" PRIu64 " owed=%" PRIu64,
	       up_get_id(up), owed);
	pool_release(cl->db->pool, up);
	cl->up = NULL;
	if (!cl->rewrite) {
		fe_fail(cl, "08006", "server connection lost");
		return;
	}
	if (owed > 0) {
		pgw_put_error(
		    fe_out(cl), "ERROR", "08006",
		    "server connection lost; the transaction is gone");
		for (uint64_t i = 0; i < owed; i++)
			pgw_put_ready(fe_out(cl), 'I');
	} else if (cl->txn != 'I' || cl->unsynced > 0) {
		snprintf(cl->owed_sqlstate, sizeof(cl->owed_sqlstate), "08006");
	}
	cl->cl_drop = cl->cl_skip;
	cl->cl_skip = 0;
	cl->txn = 'I';
	reset_counters(cl);
	fe_set_state(cl, FE_IDLE);
	fe_update_reading(cl);
	event_active(cl->kick, 0, 0);
}

void fe_relay_start(struct fe_client *cl)
{
	start_relay(cl);
}

static void start_relay(struct fe_client *cl)
{
	struct up_relay r = {server_input_cb, server_drained_cb,
	                     server_closed_cb, cl};
	bool login = cl->state == FE_LOGIN;

	if (!up_relay_begin(cl->up, &r)) {
		fe_fail(cl, "08006", "server connection not usable");
		return;
	}
	cl->rewrite = cl->fe->cfg.pool_mode == FE_POOL_TRANSACTION;
	cl->unnamed_on_server = false;
	reset_counters(cl);
	if (login)
		pgw_put_ready(fe_out(cl), 'I');
	if (cl->co_handover != NULL) {
		cl->sv_swallow_copyin = true;
		count_message(cl, PGW_FE_QUERY);
		if (!fco_relay_started(cl, up_relay_output(cl->up))) {
			fe_fail(cl, "53200", "out of memory");
			return;
		}
	}
	fe_set_state(cl, FE_ACTIVE);
	fe_update_reading(cl);
	event_active(cl->kick, 0, 0);
}

/* ---- giving a connection back ---- */

static void reset_done(struct up_conn *up, const struct up_result *r, void *arg)
{
	pool_release(arg, up); /* discards it unless the reset worked */
}

/* Nothing in flight either way, and no half message on either side. */
static bool relay_clean(const struct fe_client *cl)
{
	return cl->syncs_done == cl->syncs_sent && cl->unsynced == 0 &&
	       cl->cl_skip == 0 && cl->sv_skip == 0 &&
	       evbuffer_get_length(up_relay_input(cl->up)) == 0;
}

/*
 * The client leaves while holding a connection: a clean one goes back
 * (rolled back, or reset with DISCARD ALL in session mode); one with a
 * statement in flight is closed, which aborts it on the server.
 */
static void give_back(struct fe_client *cl)
{
	struct pool *pool = cl->db->pool;
	struct up_conn *up = cl->up;
	bool clean = cl->state == FE_ACTIVE && relay_clean(cl);
	const char *sql = NULL;

	/* a session left inside a transaction: closing is the whole reset */
	if (!cl->rewrite && cl->txn != 'I')
		clean = false;
	up_relay_end(up, clean ? cl->txn : 'E');
	if (clean && cl->rewrite && cl->txn != 'I')
		sql = SQL_ROLLBACK;
	else if (clean && !cl->rewrite) {
		sql = SQL_DISCARD_ALL; /* drops every prepared statement too */
		up_set_user_data(up, NULL, NULL);
	}
	if (!clean)
		up_close(up, UP_CLOSE_BY_OWNER,
		         "front-door client left mid-statement");
	else if (sql != NULL && up_exec(up, sql, NULL, reset_done, pool))
		return;
	pool_release(pool, up);
}

void fe_relay_detach(struct fe_client *cl)
{
	if (cl->waiter != NULL) {
		pool_cancel(cl->db->pool, cl->waiter);
		cl->waiter = NULL;
	}
	if (cl->up == NULL || cl->exec_running)
		return;
	if (cl->state == FE_ACTIVE || cl->state == FE_CLOSING)
		give_back(cl);
	else
		pool_release(cl->db->pool, cl->up);
	cl->up = NULL;
}

/* At ReadyForQuery: is the transaction over, and the connection free? */
static void after_ready(struct fe_client *cl)
{
	struct frontend *fe = cl->fe;

	if (cl->syncs_done < cl->syncs_sent || cl->unsynced > 0 ||
	    cl->cl_skip > 0)
		return;
	if (cl->txn != 'I') {
		if (fe->cfg.idle_transaction_timeout_s > 0)
			timer_add_ms(cl->timer,
			             fe->cfg.idle_transaction_timeout_s *
			                 1000u);
		return;
	}
	if (!cl->rewrite) {
		if (fe->draining)
			fe_fail(cl, "57P01", "the proxy is shutting down");
		return;
	}
	fe->stats.transactions++;
	up_relay_end(cl->up, 'I');
	pool_release(cl->db->pool, cl->up);
	cl->up = NULL;
	fe_set_state(cl, FE_IDLE);
	if (fe->draining) {
		fe_fail(cl, "57P01", "the proxy is shutting down");
		return;
	}
	fe_update_reading(cl);
	event_active(cl->kick, 0, 0);
}

/* ---- server to client ---- */

enum verdict { V_FORWARD, V_SWALLOW, V_BAD };

/* The messages the proxy reads on their way: the rest just streams. */
static bool is_watched_server(const struct fe_client *cl, uint8_t type)
{
	return type == '1' || type == '3' || type == PGW_MSG_READY ||
	       type == PGW_MSG_PARAMETER_STATUS ||
	       (type == PGW_MSG_COPY_IN && cl->sv_swallow_copyin);
}

static enum verdict server_message(struct fe_client *cl,
                                   const struct pgw_frame *f)
{
	struct pgw_param_status ps;
	struct fe_expect e;
	int k;

	switch (f->type) {
	case PGW_MSG_COPY_IN: /* of a COPY handed over: the client had one */
		cl->sv_swallow_copyin = false;
		return V_SWALLOW;
	case '1':
	case '3':
		if (!cl->rewrite)
			return V_FORWARD;
		if (cl->nexpect == 0 || cl->expect[0].type != (char)f->type)
			return V_BAD;
		e = cl->expect[0];
		expect_shift(cl);
		return e.swallow ? V_SWALLOW : V_FORWARD;
	case PGW_MSG_PARAMETER_STATUS:
		if (pgw_parse_param_status(f, &ps) != PGW_OK)
			return V_BAD;
		up_store_param(cl->up, ps.name, ps.value);
		if ((k = fe_var_find(ps.name)) >= 0) {
			free(cl->vars[k]);
			cl->vars[k] = strdup(ps.value);
		}
		return V_FORWARD;
	case PGW_MSG_READY:
		if (pgw_parse_ready(f, &cl->txn) != PGW_OK)
			return V_BAD;
		cl->sv_swallow_copyin = false; /* its COPY failed at once */
		cl->syncs_done++;
		if (cl->rewrite)
			expect_drop_stale(cl);
		return V_FORWARD;
	}
	return V_FORWARD;
}

/* Moves up to *left bytes from in to out; STEP_STOP when none were there. */
static enum step pass_bytes(struct evbuffer *in, struct evbuffer *out,
                            size_t *left, uint64_t *counter)
{
	size_t n = evbuffer_get_length(in);

	if (n > *left)
		n = *left;
	if (n == 0)
		return STEP_STOP;
	evbuffer_remove_buffer(in, out, n);
	*left -= n;
	*counter += n;
	return STEP_ON;
}

static enum step server_bad(struct fe_client *cl, const char *why)
{
	/* the relay's close callback tells the client (08006) */
	up_close(cl->up, UP_CLOSE_PROTOCOL, why);
	return STEP_STOP;
}

static enum step server_step(struct fe_client *cl)
{
	struct evbuffer *in = up_relay_input(cl->up), *out = fe_out(cl);
	struct pgw_frame f;
	uint8_t type;
	size_t body;
	enum verdict v;

	if (evbuffer_get_length(out) >= FE_QUEUE_HIGH) {
		up_relay_read(cl->up, false); /* write_cb resumes it */
		cl->server_paused = true;
		return STEP_STOP;
	}
	if (cl->sv_skip > 0)
		return pass_bytes(in, out, &cl->sv_skip,
		                  &cl->fe->stats.bytes_out);
	if (!peek_header(in, &type, &body))
		return STEP_STOP;
	if (body > (size_t)INT32_MAX)
		return server_bad(cl,
		                  "malformed message length from the server");
	if (log_get_level() <= LOG_DEBUG)
		fe_log(LOG_DEBUG, cl, "event=server_msg type=%c len=%zu", type,
		       body);
	if (!is_watched_server(cl, type)) {
		cl->sv_skip = PGW_HEADER_LEN + body;
		return STEP_ON;
	}
	if (pgw_frame_next(in, FE_MAX_SERVER_INSPECT, &f) != PGW_OK)
		return body > FE_MAX_SERVER_INSPECT
		           ? server_bad(cl, "oversized message from the server")
		           : STEP_STOP;
	v = server_message(cl, &f);
	if (v == V_BAD)
		return server_bad(cl, "unexpected or malformed message from "
		                      "the server while relaying");
	if (v == V_SWALLOW) {
		pgw_frame_consume(in, &f);
		return STEP_ON;
	}
	evbuffer_remove_buffer(in, out, PGW_HEADER_LEN + f.len);
	cl->fe->stats.bytes_out += PGW_HEADER_LEN + f.len;
	if (type == PGW_MSG_READY)
		after_ready(cl);
	return STEP_ON;
}

void fe_relay_server_input(struct fe_client *cl)
{
	while (cl->up != NULL && cl->state == FE_ACTIVE &&
	       server_step(cl) == STEP_ON)
		;
}

void fe_relay_client_drained(struct fe_client *cl)
{
	if (cl->up == NULL || !cl->server_paused)
		return;
	cl->server_paused = false;
	up_relay_read(cl->up, true);
	fe_relay_server_input(cl);
}

/* ---- prepared statements (transaction mode) ---- */

/* Close(S, name) of ours, its CloseComplete swallowed. */
static bool put_close_ours(struct fe_client *cl, const char *name)
{
	struct pgw_piece p[] = {{"S", 1}, {name, strlen(name) + 1}};

	return pgw_put_pieces(up_relay_output(cl->up), PGW_FE_CLOSE, p, 2) &&
	       expect_push(cl, '3', true, NULL, false);
}

/* Parse(server name, the client's query and types). */
static bool put_parse(struct fe_client *cl, const struct fps_stmt *st,
                      bool swallow)
{
	struct pgw_piece p[] = {{st->server_name, strlen(st->server_name) + 1},
	                        {st->parse_rest, st->parse_rest_len}};

	return pgw_put_pieces(up_relay_output(cl->up), PGW_FE_PARSE, p, 2) &&
	       expect_push(cl, '1', swallow, st->server_name, true);
}

/* Marks st as held by the connection, closing what that pushes out. */
static bool hold_on_server(struct fe_client *cl, const struct fps_stmt *st)
{
	struct fps_server *srv = up_get_user_data(cl->up);
	char evicted[FPS_NAME_LEN];

	if (srv == NULL ||
	    !fps_server_add(srv, st->server_name,
	                    cl->fe->cfg.max_prepared_statements, evicted))
		return false;
	return evicted[0] == '\0' || put_close_ours(cl, evicted);
}

/* Before a Bind or Describe uses st here: prepare it if it is not. */
static bool ensure_prepared(struct fe_client *cl, const struct fps_stmt *st)
{
	struct fps_server *srv = up_get_user_data(cl->up);

	if (srv != NULL && fps_server_has(srv, st->server_name))
		return true;
	return hold_on_server(cl, st) && put_parse(cl, st, true);
}

static bool forward_as_is(struct fe_client *cl, const struct pgw_frame *f)
{
	struct pgw_piece p = {f->body, f->len};

	return pgw_put_pieces(up_relay_output(cl->up), f->type, &p, 1);
}

/*
 * A Bind or Describe of the unnamed statement on a connection that has not
 * had the client's Parse of it (coalesced, or in an earlier transaction on
 * another connection): the server gets that Parse first.
 */
static bool unnamed_to_server(struct fe_client *cl)
{
	struct pgw_piece p[] = {{"", 1}, {cl->co_unnamed, cl->co_unnamed_len}};

	if (cl->co_unnamed_len == 0 || cl->unnamed_on_server)
		return true;
	cl->unnamed_on_server = true;
	return pgw_put_pieces(up_relay_output(cl->up), PGW_FE_PARSE, p, 2) &&
	       expect_push(cl, '1', true, NULL, false);
}

static bool client_parse(struct fe_client *cl, const struct pgw_frame *f)
{
	struct pgw_parse_msg m;
	const struct fps_stmt *st;

	if (pgw_parse_parse(f, &m) != PGW_OK)
		return false;
	if (m.name[0] == '\0') {
		cl->unnamed_on_server = true;
		return fco_keep_unnamed(cl, m.rest, m.rest_len) &&
		       forward_as_is(cl, f) &&
		       expect_push(cl, '1', false, NULL, false);
	}
	if (cl->fe->cfg.max_prepared_statements == 0) {
		fe_fail(cl, "0A000",
		        "named prepared statements are off in transaction "
		        "mode ([frontend] max_prepared_statements = 0)");
		return false;
	}
	st = fps_client_parse(cl->stmts, m.name, m.rest, m.rest_len);
	if (st == NULL) {
		fe_fail(cl, "54000",
		        "too many prepared statements (at most "
		        "%d per client)",
		        FE_MAX_CLIENT_STMTS);
		return false;
	}
	return hold_on_server(cl, st) && put_parse(cl, st, false);
}

static bool client_bind(struct fe_client *cl, const struct pgw_frame *f)
{
	struct pgw_bind_msg m;
	const struct fps_stmt *st;

	if (pgw_parse_bind(f, &m) != PGW_OK)
		return false;
	st = m.statement[0] ? fps_client_find(cl->stmts, m.statement) : NULL;
	if (m.statement[0] == '\0')
		return unnamed_to_server(cl) && forward_as_is(cl, f);
	if (st == NULL) /* unknown: the server says so */
		return forward_as_is(cl, f);
	struct pgw_piece p[] = {{m.portal, strlen(m.portal) + 1},
	                        {st->server_name, strlen(st->server_name) + 1},
	                        {m.rest, m.rest_len}};
	return ensure_prepared(cl, st) &&
	       pgw_put_pieces(up_relay_output(cl->up), PGW_FE_BIND, p, 3);
}

/* Describe and Close of a statement use its server name. */
static bool client_target(struct fe_client *cl, const struct pgw_frame *f)
{
	const struct fps_stmt *st = NULL;
	const char *name;
	char kind;
	bool ok;

	if (pgw_parse_target(f, &kind, &name) != PGW_OK)
		return false;
	if (kind == 'S' && name[0] != '\0')
		st = fps_client_find(cl->stmts, name);
	if (kind == 'S' && name[0] == '\0' && f->type == PGW_FE_DESCRIBE &&
	    !unnamed_to_server(cl))
		return false;
	if (kind == 'S' && name[0] == '\0' && f->type == PGW_FE_CLOSE) {
		cl->co_unnamed_len = 0; /* closed: there is none */
		cl->unnamed_on_server = false;
	}
	if (st == NULL)
		ok = forward_as_is(cl, f);
	else if (f->type == PGW_FE_DESCRIBE)
		ok = ensure_prepared(cl, st) &&
		     pgw_put_pieces(
		         up_relay_output(cl->up), f->type,
		         (struct pgw_piece[]){
		             {"S", 1},
		             {st->server_name, strlen(st->server_name) + 1}},
		         2);
	else
		/* closed on the server when it is evicted; here it only
		 * leaves the client's names. CloseComplete is the client's. */
		ok = forward_as_is(cl, f);
	if (f->type == PGW_FE_CLOSE) {
		if (st != NULL)
			fps_client_close(cl->stmts, name);
		ok = ok && expect_push(cl, '3', false, NULL, false);
	}
	return ok;
}

/* Parse, Bind, Describe, Close in transaction mode. false: cl failed. */
static bool rewrite_message(struct fe_client *cl, const struct pgw_frame *f)
{
	bool ok;

	switch (f->type) {
	case PGW_FE_PARSE:
		ok = client_parse(cl, f);
		break;
	case PGW_FE_BIND:
		ok = client_bind(cl, f);
		break;
	default:
		ok = client_target(cl, f);
	}
	if (!ok && cl->state != FE_CLOSING)
		fe_fail(cl, "08P01", "malformed '%c' message, or out of memory",
		        f->type);
	return ok;
}

/* ---- client to server ---- */

static bool is_rewritten(const struct fe_client *cl, uint8_t type)
{
	return cl->rewrite && (type == PGW_FE_PARSE || type == PGW_FE_BIND ||
	                       type == PGW_FE_DESCRIBE || type == PGW_FE_CLOSE);
}

/* Counts what the message makes the server owe. */
static void count_message(struct fe_client *cl, uint8_t type)
{
	switch (type) {
	case PGW_FE_QUERY:
	case PGW_FE_SYNC:
	case PGW_FE_FUNCTION_CALL:
		cl->syncs_sent++;
		cl->unsynced = 0;
		cl->fe->stats.queries++;
		break;
	case PGW_FE_PARSE:
	case PGW_FE_BIND:
	case PGW_FE_DESCRIBE:
	case PGW_FE_EXECUTE:
	case PGW_FE_CLOSE:
		cl->unsynced++;
		break;
	default:
		/* COPY data and the like; a Flush asks for what is owed and
		 * owes nothing itself (psycopg sends one after each Sync of a
		 * pipeline: it must not keep the connection) */
		break;
	}
}

/* A message the proxy must hold whole: wait for it, within limits. */
static enum step take_whole(struct fe_client *cl, size_t body,
                            struct pgw_frame *f)
{
	if (body > FE_MAX_INSPECT) {
		fe_fail(cl, "54000", "message of %zu bytes is too large", body);
		return STEP_GONE;
	}
	if (pgw_frame_next(cl_in(cl), FE_MAX_INSPECT, f) == PGW_OK)
		return STEP_ON;
	/* let the read buffer hold all of it */
	bufferevent_setwatermark(cl->bev, EV_READ, 0,
	                         PGW_HEADER_LEN + body + FE_QUEUE_HIGH);
	return STEP_STOP;
}

static enum step client_step(struct fe_client *cl)
{
	struct evbuffer *in = cl_in(cl), *out = up_relay_output(cl->up);
	struct pgw_frame f;
	uint8_t type;
	size_t body;
	enum step st;

	if (evbuffer_get_length(out) >= FE_QUEUE_HIGH) {
		fe_update_reading(cl); /* the server's drain resumes it */
		return STEP_STOP;
	}
	if (cl->cl_skip > 0)
		return pass_bytes(in, out, &cl->cl_skip,
		                  &cl->fe->stats.bytes_in);
	if (!peek_header(in, &type, &body))
		return STEP_STOP;
	if (body > (size_t)INT32_MAX) {
		fe_fail(cl, "08P01", "invalid message length");
		return STEP_GONE;
	}
	evtimer_del(cl->timer); /* not idle in its transaction any more */
	if (log_get_level() <= LOG_DEBUG)
		fe_log(LOG_DEBUG, cl, "event=client_msg type=%c len=%zu", type,
		       body);
	if (type == PGW_FE_TERMINATE) {
		fe_close(cl);
		return STEP_GONE;
	}
	if (!is_rewritten(cl, type)) {
		count_message(cl, type);
		cl->cl_skip = PGW_HEADER_LEN + body;
		return STEP_ON;
	}
	if ((st = take_whole(cl, body, &f)) != STEP_ON)
		return st;
	count_message(cl, type);
	if (!rewrite_message(cl, &f))
		return STEP_GONE;
	pgw_frame_consume(in, &f);
	cl->fe->stats.bytes_in += PGW_HEADER_LEN + f.len;
	bufferevent_setwatermark(cl->bev, EV_READ, 0, FE_QUEUE_HIGH);
	return STEP_ON;
}

/*
 * A message while the client holds no connection. After a lost server,
 * what belonged to the dead transaction is dropped and its next statement
 * (or Sync) answered with the error; otherwise a connection is needed.
 */
static enum step idle_step(struct fe_client *cl)
{
	struct evbuffer *in = cl_in(cl);
	uint8_t type;
	size_t body;

	if (cl->cl_drop > 0) {
		size_t n = evbuffer_get_length(in);

		n = n < cl->cl_drop ? n : cl->cl_drop;
		evbuffer_drain(in, n);
		cl->cl_drop -= n;
		return n > 0 ? STEP_ON : STEP_STOP;
	}
	if (!peek_header(in, &type, &body))
		return STEP_STOP;
	if (body > (size_t)INT32_MAX) {
		fe_fail(cl, "08P01", "invalid message length");
		return STEP_GONE;
	}
	if (type == PGW_FE_TERMINATE) {
		fe_close(cl);
		return STEP_GONE;
	}
	evtimer_del(cl->timer); /* idle in a coalesced transaction no more */
	if (cl->owed_sqlstate[0] != '\0' || type == PGW_FE_COPY_DATA ||
	    type == PGW_FE_COPY_DONE || type == PGW_FE_COPY_FAIL) {
		cl->cl_drop = PGW_HEADER_LEN + body;
		if (cl->owed_sqlstate[0] != '\0' &&
		    (type == PGW_FE_QUERY || type == PGW_FE_SYNC)) {
			if (cl->owed_error.sqlstate != NULL)
				pgw_put_notice(fe_out(cl), PGW_MSG_ERROR,
				               &cl->owed_error);
			else
				pgw_put_error(fe_out(cl), "ERROR",
				              cl->owed_sqlstate,
				              "server connection lost; the "
				              "transaction is gone");
			pgw_put_ready(fe_out(cl), 'I');
			cl->owed_sqlstate[0] = '\0';
			pgw_notice_free(&cl->owed_error);
		}
		return STEP_ON;
	}
	switch (fco_try(cl)) {
	case FCO_MORE:
		return STEP_STOP;
	case FCO_TAKEN:
		return cl->state == FE_IDLE ? STEP_ON : STEP_STOP;
	case FCO_FORWARD:
		break;
	}
	fe_relay_to_server(cl);
	return STEP_STOP;
}

void fe_relay_to_server(struct fe_client *cl)
{
	fe_set_state(cl, FE_WAITING);
	fe_update_reading(cl);
	fe_relay_acquire(cl);
}

void fe_relay_client_input(struct fe_client *cl)
{
	enum step st = STEP_ON;

	while (st == STEP_ON) {
		if (cl->state == FE_IDLE)
			st = idle_step(cl);
		else if (cl->state == FE_ACTIVE && cl->up != NULL)
			st = client_step(cl);
		else
			st = STEP_STOP;
	}
}
