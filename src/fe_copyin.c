/* fe_copyin.c: a client's COPY FROM STDIN taken by the coalescer, line
 * by line, or handed to the server as it came. */
#include "fe_coalesce_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "bytes.h"
#include "copytext.h"

/* ---- COPY FROM STDIN ---- */

/* CopyInResponse: text format, ncols columns. */
static bool put_copy_in(struct evbuffer *out, size_t ncols)
{
	size_t len = 3 + 2 * ncols;
	uint8_t *b = calloc(1, len);
	bool ok;

	if (b == NULL || ncols > UINT16_MAX) {
		free(b);
		return false;
	}
	put_be16(b + 1, (uint16_t)ncols);
	ok = pgw_put_pieces(out, 'G', &(struct pgw_piece){b, len}, 1);
	free(b);
	return ok;
}

/*
 * The table is known: the client gets CopyInResponse, and its data is
 * taken as it comes (fco_copy_input). NULL, or why it must be relayed.
 */
const char *fco_start_copy_in(struct fco_seq *q, const struct fco_target *g)
{
	struct fe_client *cl = q->cl;
	struct evbuffer *in = bufferevent_get_input(cl->bev);
	struct fco_txn *x = cl->co_txn;
	const uint8_t *msg;

	if ((q->target = fco_target_of(q, g)) == NULL ||
	    (q->tail = evbuffer_new()) == NULL ||
	    (q->stmts[0].st->copy.format == SQLR_CSV &&
	     (q->raw = evbuffer_new()) == NULL))
		return "out of memory";
	if (x != NULL && x->target != NULL && x->target != q->target)
		return "a second table in the transaction";
	msg = evbuffer_pullup(in, (ev_ssize_t)q->len);
	q->query_len = q->len - PGW_HEADER_LEN;
	if (msg == NULL || (q->query = malloc(q->query_len)) == NULL ||
	    !put_copy_in(fe_out(cl), g->ncols))
		return "out of memory";
	memcpy(q->query, msg + PGW_HEADER_LEN, q->query_len);
	q->copy_cols = (unsigned)g->ncols;
	evbuffer_drain(in, q->len);
	cl->co_scan = 0;
	q->copy_in = true;
	cl->co_reading = true;
	fe_update_reading(cl);
	event_active(cl->kick, 0, 0); /* data may have come with the Query */
	return NULL;
}

/*
 * The COPY goes to a server as it came: its Query, the data so far and
 * then the rest of the client's stream (fco_relay_started).
 */
static void handover(struct fco_seq *q, const char *why)
{
	struct fe_client *cl = q->cl;

	if (log_get_level() <= LOG_DEBUG)
		fe_log(LOG_DEBUG, cl, "event=coalesce_handover reason=\"%s\"",
		       why);
	cl->co_seq = NULL;
	cl->co_reading = false;
	cl->co_handover = q;
	cl->fe->stats.co_forwarded++;
	co_target_put(q->target);
	q->target = NULL;
	fe_set_state(cl, FE_IDLE);
	bufferevent_setwatermark(cl->bev, EV_READ, 0, FE_QUEUE_HIGH);
	fe_relay_to_server(cl);
}

/* CSV: the whole records of the tail, as text rows, checked. */
static bool csv_data(struct fco_seq *q)
{
	struct evbuffer *text = evbuffer_new();
	const uint8_t *p = evbuffer_pullup(q->tail, -1);
	struct ct_error err;
	uint64_t rows;
	size_t used;
	bool ok;

	ok =
	    text != NULL && p != NULL &&
	    ct_csv_to_text(p, evbuffer_get_length(q->tail), text, &used) ==
	        CT_OK &&
	    (evbuffer_get_length(text) == 0 ||
	     ct_check_rows(evbuffer_pullup(text, -1), evbuffer_get_length(text),
	                   q->copy_cols, &rows, &err) == CT_OK);
	if (ok && evbuffer_get_length(text) > 0) {
		q->nrows += rows;
		evbuffer_drain(q->tail, used);
		ok = evbuffer_add_buffer(q->rows, text) == 0;
	}
	if (text != NULL)
		evbuffer_free(text);
	return ok;
}

/* CopyData: whole lines checked and kept; false: hand the COPY over. */
static bool copy_data(struct fco_seq *q, const struct pgw_frame *f)
{
	struct frontend *fe = q->fe;
	struct evbuffer_ptr nl;
	const uint8_t *p;
	struct ct_error err;
	uint64_t rows;
	size_t whole;

	if (evbuffer_add(q->tail, f->body, f->len) != 0 ||
	    (q->raw != NULL && evbuffer_add(q->raw, f->body, f->len) != 0))
		return false;
	if (fe->stats.co_held_bytes + evbuffer_get_length(q->rows) +
	        evbuffer_get_length(q->tail) +
	        (q->raw ? evbuffer_get_length(q->raw) : 0) >
	    fe->cfg.coalesce_buffer_bytes)
		return false;
	if (q->raw != NULL)
		return csv_data(q);
	/* the tail holds at most a partial line and this message */
	nl = evbuffer_search_eol(q->tail, NULL, NULL, EVBUFFER_EOL_LF);
	if (nl.pos < 0)
		return true;
	p = evbuffer_pullup(q->tail, -1);
	whole = evbuffer_get_length(q->tail);
	while (whole > 0 && p[whole - 1] != '\n')
		whole--;
	if (p == NULL ||
	    ct_check_rows(p, whole, q->copy_cols, &rows, &err) != CT_OK)
		return false; /* the server says what is wrong, as it would */
	q->nrows += rows;
	return evbuffer_remove_buffer(q->tail, q->rows, whole) == (int)whole;
}

/* CopyDone: the rows go to the coalescer or the client's transaction. */
static void copy_done(struct fco_seq *q)
{
	struct fe_client *cl = q->cl;
	struct fco_txn *x = cl->co_txn;
	size_t bytes = evbuffer_get_length(q->rows);
	char tag[40];
	int n = snprintf(tag, sizeof(tag), "COPY %" PRIu64, q->nrows);

	q->copy_in = false;
	cl->co_reading = false;
	q->execs = calloc(1, sizeof(*q->execs));
	if (q->execs == NULL ||
	    !pgw_put_pieces(q->answers, PGW_MSG_COMMAND_COMPLETE,
	                    &(struct pgw_piece){tag, (size_t)n + 1}, 1) ||
	    !pgw_put_ready(q->answers, q->status)) {
		fe_fail(cl, "53200", "out of memory");
		return;
	}
	q->nexecs = 1;
	q->execs[0].rows = q->nrows;
	cl->fe->stats.co_sequences++;
	if (x != NULL || q->nrows == 0) {
		if (x != NULL && q->nrows > 0)
			fco_txn_take(cl, q);
		fco_unit_done(&(struct co_outcome){0}, q);
		return;
	}
	mt_add(co_target_metrics(q->target)->rows_received, q->nrows);
	mt_add(co_target_metrics(q->target)->bytes_received, bytes);
	if (!co_submit(q->target, q->rows, q->nrows, fco_unit_done, q)) {
		fe_fail(cl, "53200", "out of memory");
		return;
	}
	q->held = bytes;
	cl->fe->stats.co_held_bytes += bytes;
	cl->fe->stats.co_rows += q->nrows;
	fe_update_reading(cl);
}

/* CopyFail: PostgreSQL's answer (outside a transaction). */
static void copy_fail(struct fco_seq *q, const struct pgw_frame *f)
{
	struct fe_client *cl = q->cl;
	char msg[300];
	struct pgw_notice e = {.severity = "ERROR",
	                       .severity_nl = "ERROR",
	                       .sqlstate = "57014",
	                       .message = msg};

	snprintf(msg, sizeof(msg), "COPY from stdin failed: %.*s",
	         (int)(f->len > 0 ? f->len - 1 : 0), (const char *)f->body);
	cl->co_seq = NULL;
	cl->co_reading = false;
	pgw_put_notice(fe_out(cl), PGW_MSG_ERROR, &e);
	pgw_put_ready(fe_out(cl), 'I');
	fco_seq_free(q);
	fco_relay_rest(cl);
}

/* The whole next message of a COPY, or false (wait, or handed over). */
static bool next_copy_message(struct fco_seq *q, struct evbuffer *in,
                              struct pgw_frame *f)
{
	uint8_t h[PGW_HEADER_LEN];
	uint32_t len;

	if (evbuffer_copyout(in, h, sizeof(h)) != (ev_ssize_t)sizeof(h))
		return false;
	len = get_be32(h + 1);
	if (len < 4 || len - 4 > FE_MAX_INSPECT) {
		handover(q, "a message of the COPY is too large");
		return false;
	}
	if (pgw_frame_next(in, FE_MAX_INSPECT, f) == PGW_OK)
		return true;
	bufferevent_setwatermark(q->cl->bev, EV_READ, 0,
	                         PGW_HEADER_LEN + len + FE_QUEUE_HIGH);
	return false;
}

void fco_copy_input(struct fe_client *cl)
{
	struct fco_seq *q = cl->co_seq;
	struct evbuffer *in = bufferevent_get_input(cl->bev);
	struct pgw_frame f;

	while (q != NULL && cl->co_seq == q && q->copy_in &&
	       next_copy_message(q, in, &f)) {
		bool keep = f.type == PGW_FE_COPY_DATA;

		if (f.type == PGW_FE_COPY_FAIL && cl->co_txn == NULL) {
			copy_fail(q, &f);
			pgw_frame_consume(in, &f);
			return;
		}
		if (f.type == PGW_FE_FLUSH || f.type == PGW_FE_SYNC) {
			pgw_frame_consume(in, &f); /* ignored during COPY */
			continue;
		}
		if (f.type == PGW_FE_COPY_DONE)
			keep = evbuffer_get_length(q->tail) == 0;
		if (!keep ||
		    (f.type == PGW_FE_COPY_DATA && !copy_data(q, &f))) {
			if (f.type == PGW_FE_COPY_DATA)
				pgw_frame_consume(in, &f); /* in q->tail */
			handover(q, "data the server must judge");
			return;
		}
		pgw_frame_consume(in, &f);
		if (f.type == PGW_FE_COPY_DONE) {
			bufferevent_setwatermark(cl->bev, EV_READ, 0,
			                         FE_QUEUE_HIGH);
			copy_done(q);
			return;
		}
	}
}

/* A CopyData message of each chunk of buf (at most 1 MiB each). */
static bool put_copy_data(struct evbuffer *out, struct evbuffer *buf)
{
	while (evbuffer_get_length(buf) > 0) {
		size_t n = evbuffer_get_length(buf);

		if (!pgw_put_copy_data_from(
		        out, buf, n < FE_QUEUE_HIGH ? n : FE_QUEUE_HIGH))
			return false;
	}
	return true;
}

bool fco_relay_started(struct fe_client *cl, struct evbuffer *out)
{
	struct fco_seq *q = cl->co_handover;
	bool ok;

	if (q == NULL)
		return true;
	cl->co_handover = NULL;
	ok = pgw_put_pieces(out, PGW_FE_QUERY,
	                    &(struct pgw_piece){q->query, q->query_len}, 1) &&
	     (q->raw != NULL
	          ? put_copy_data(out, q->raw)
	          : put_copy_data(out, q->rows) && put_copy_data(out, q->tail));
	fco_seq_free(q);
	return ok;
}
