/* ingest.c: accepts Spark tasks' connections and runs each session's protocol.
 */
#include "ingest.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "bytes.h"
#include "catalog.h"
#include "clock.h"
#include "coalesce.h"
#include "copytext.h"
#include "ingest_proto.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "pgwire.h"
#include "secret.h"
#include "strutil.h"
#include "timer.h"

/* Stop reading a client whose unread answers pile up past this (about
 * 3000 Acks): a client that does not read them costs little. */
#define OUTPUT_HIGH (64u * 1024)
#define OUTPUT_LOW  (16u * 1024)
/*
 * What a flush unit costs beyond its rows (the unit, its answer record,
 * their buffers), counted against the memory limits so that a client
 * flushing every row cannot hide megabytes of bookkeeping behind bytes.
 */
#define UNIT_OVERHEAD 512u
/* How long a session that must go may take to send its last words. */
#define DRAIN_TIMEOUT_S 5
/* How long it then reads and drops what the client still sends. */
#define LINGER_MS 2000u

enum sess_state {
	S_HELLO,    /* waiting for Hello */
	S_OPEN,     /* waiting for Open */
	S_OPENING,  /* catalog lookup in flight; input waits in the buffer */
	S_STREAM,   /* rows and flushes */
	S_CLOSING,  /* Close received; answering what is outstanding */
	S_FAILING,  /* fatal error; answering flushes in flight, then Error */
	S_DRAINING, /* last message queued; lingers once it is written */
	S_LINGERING /* all written and our side shut: the client's input is
	               read and dropped until it closes (or the drain timer) */
};

static const char *const state_names[] = {"hello",    "open",     "opening",
                                          "stream",   "closing",  "failing",
                                          "draining", "lingering"};

/*
 * One flushed unit, answered in Flush order: on its session's list. If the
 * client goes while the unit is in flight, it moves to the ingest's orphans
 * (session NULL) until the coalescer is done with it: its bytes count
 * against global_buffer_bytes until then, whoever owns them. Once the
 * ingest itself is freed, ing is NULL too.
 */
struct pending {
	TAILQ_ENTRY(pending) link;
	struct session *s;
	struct ingest *ing;
	uint64_t flush_id;
	bool done;
	uint64_t rows;
	uint64_t row;
	char sqlstate[6];
	char *message;
	char *detail;
	size_t bytes;        /* counted in the buffers until the outcome */
	uint64_t flushed_us; /* when its Flush arrived (latency metric) */
	/*
	 * A ProgressQuery (1.1), answered Progress or FlushError in turn. It
	 * reads once every earlier answer of the session is out (their units
	 * committed or failed): until then key holds what to read.
	 */
	bool is_query;
	bool query_started;
	struct sql_progress *key;
	int64_t progress_rows;
	bool progress_complete;
};
TAILQ_HEAD(pending_list, pending);

/* Open's fields, owned, kept while the catalog is asked. */
struct open_req {
	char *schema, *table, *version_col;
	char mode;
	size_t ncols, nkeys, ncoalesce;
	char **cols, **keys, **coalesce;
};

struct session {
	TAILQ_ENTRY(session) link;
	struct ingest *ing;
	uint64_t id;
	enum sess_state state;
	struct bufferevent *bev;
	char peer[64];
	char name[IGP_MAX_CLIENT_NAME + 1];
	struct event *drain_ev;
	/* Until Open: the handshake deadline; then the idle timeout, re-armed
	 * by every whole message (not every byte: a slow drip is idle). */
	struct event *idle_ev;

	struct open_req req;
	struct cat_lookup *lookup;
	struct co_target *target;
	unsigned ncols;
	bool *key_mask; /* upsert: which columns are keys (never NULL) */

	/* the flush unit being received */
	struct evbuffer *unit;
	uint64_t unit_rows;
	size_t unit_bytes;
	char unit_sqlstate[6]; /* set: the unit already failed */
	char unit_message[160];
	uint64_t unit_row;

	struct pending_list pendings;
	size_t pending_bytes;
	bool reading;

	/* S_FAILING: the Error sent once every flush in flight is answered */
	char fatal_state[6];
	char fatal_msg[400];
};
TAILQ_HEAD(session_list, session);

struct ingest {
	struct event_base *base;
	struct catalog *cat;
	struct coalescer *co;
	struct cfg_ingest cfg;
	char *token;   /* owned copy; NULL = none */
	char *pg_door; /* where PostgreSQL clients go; NULL: no front door */
	struct evconnlistener *listener;
	char unix_path[108];
	struct session_list sessions;
	struct pending_list orphans; /* in flight, their clients gone */
	struct event *resume_ev;
	struct event *relisten_ev;
	bool draining; /* shutting down: answer what is flushed, then close */
	uint64_t next_id;
	struct ing_stats stats;
	struct mt_metric *flush_latency; /* seconds, Flush to answer */
};

static const double flush_latency_le[] = {0.0005, 0.001, 0.002, 0.005, 0.01,
                                          0.02,   0.05,  0.1,   0.2,   0.5,
                                          1,      2,     5,     10,    30};
static const struct mt_desc flush_latency_d = {
    .name = "lbp_flush_ack_seconds",
    .help = "From a client's Flush to its answer.",
    .type = MT_HISTOGRAM,
    .buckets = flush_latency_le,
    .nbuckets = sizeof(flush_latency_le) / sizeof(flush_latency_le[0]),
};

void ing_register_metrics(void)
{
	mt_family(&flush_latency_d);
}

double ing_flush_latency_quantile(const struct ingest *ing, double q)
{
	return mt_quantile(ing->flush_latency, q);
}

#define sess_log(level, s, fmt, ...)                                           \
	log_msg(level, "client=%" PRIu64 " " fmt, (s)->id, ##__VA_ARGS__)

static void process_input(struct session *s);
static void update_reading(struct session *s);
static void destroy_session(struct session *s);

/* ---- small helpers ---- */

static void set_state(struct session *s, enum sess_state to)
{
	log_debug("client=%" PRIu64 " event=state from=%s to=%s", s->id,
	          state_names[s->state], state_names[to]);
	s->state = to;
}

/* The coalescer's mode for Open's mode byte (checked by igp_check_open). */
static enum sql_mode sql_mode_of(char wire)
{
	switch (wire) {
	case IGP_MODE_UPSERT:
		return SQL_UPSERT;
	case IGP_MODE_BULK:
		return SQL_BULK_INSERT;
	default:
		return SQL_INSERT;
	}
}

static void free_req(struct open_req *r)
{
	for (size_t i = 0; i < r->ncols; i++)
		free(r->cols[i]);
	for (size_t i = 0; i < r->nkeys; i++)
		free(r->keys[i]);
	for (size_t i = 0; i < r->ncoalesce; i++)
		free(r->coalesce[i]);
	free(r->cols);
	free(r->keys);
	free(r->coalesce);
	free(r->schema);
	free(r->table);
	free(r->version_col);
	memset(r, 0, sizeof(*r));
}

static char **copy_names(const char **v, size_t n, bool *ok)
{
	char **out = calloc(n ? n : 1, sizeof(*out));

	if (out == NULL) {
		*ok = false;
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		if ((out[i] = strdup(v[i])) == NULL)
			*ok = false;
	return out;
}

static bool copy_req(struct open_req *r, const struct igp_open *o)
{
	bool ok = true;

	r->mode = o->mode;
	r->schema = strdup(o->schema);
	r->table = strdup(o->table);
	r->version_col = strdup(o->version_col);
	r->ncols = o->ncols;
	r->cols = copy_names(o->cols, o->ncols, &ok);
	r->nkeys = o->nkeys;
	r->keys = copy_names(o->keys, o->nkeys, &ok);
	r->ncoalesce = o->ncoalesce;
	r->coalesce = copy_names(o->coalesce, o->ncoalesce, &ok);
	return ok && r->schema && r->table && r->version_col;
}

/* Sends Error now and lets the session go once it is written. */
static void send_fatal(struct session *s, const char *sqlstate, const char *msg)
{
	struct timeval tv = {DRAIN_TIMEOUT_S, 0};

	igp_put_error(bufferevent_get_output(s->bev), sqlstate, msg);
	set_state(s, S_DRAINING);
	update_reading(s);
	evtimer_add(s->drain_ev, &tv);
}

static bool in_flight(const struct session *s)
{
	const struct pending *p;

	TAILQ_FOREACH(p, &s->pendings, link)
	{
		if (!p->done)
			return true;
	}
	return false;
}

/*
 * A fatal error. Flushes already handed to the coalescer will commit or
 * fail whatever happens now, so each is answered before the Error (spec
 * 3.2: what committed was acknowledged before it); nothing after them is
 * read, and the unit being received is dropped.
 */
static void fatal(struct session *s, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fatal(struct session *s, const char *sqlstate, const char *fmt, ...)
{
	char msg[400], q[500];
	va_list ap;

	if (s->state == S_DRAINING || s->state == S_FAILING ||
	    s->state == S_LINGERING)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sess_log(LOG_WARN, s, "event=session_error sqlstate=%s error=%s",
	         sqlstate, log_quote(q, sizeof(q), msg));
	if (strcmp(sqlstate, "08P01") == 0)
		s->ing->stats.protocol_errors++;
	if (!in_flight(s)) {
		send_fatal(s, sqlstate, msg);
		return;
	}
	snprintf(s->fatal_state, sizeof(s->fatal_state), "%s", sqlstate);
	snprintf(s->fatal_msg, sizeof(s->fatal_msg), "%s", msg);
	set_state(s, S_FAILING);
	update_reading(s);
}

/* ---- answers ---- */

static void free_pending(struct pending *p)
{
	free(p->key);
	free(p->message);
	free(p->detail);
	free(p);
}

/*
 * An answer that cannot be encoded (out of memory) must not vanish while
 * later ones go out: the client would wait for it forever, or pair the
 * next Ack with the wrong Flush. The session is closed instead (from the
 * loop, as its callers still use it); a closed connection tells the
 * client that every unanswered flush may or may not have committed.
 */
static void answer_lost(struct session *s, struct pending *p)
{
	struct timeval now = {0, 0};

	sess_log(LOG_ERROR, s,
	         "event=answer_lost flush_id=%" PRIu64 " reason=out_of_memory "
	         "action=close",
	         p->flush_id);
	free_pending(p);
	set_state(s, S_DRAINING);
	update_reading(s);
	evtimer_add(s->drain_ev, &now);
}

static void start_query(struct session *s, struct pending *p);

static void send_answers(struct session *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	struct pending *p;

	while ((p = TAILQ_FIRST(&s->pendings)) != NULL) {
		bool ok;

		if (p->is_query && !p->query_started)
			start_query(s, p);
		if (!p->done)
			break;

		TAILQ_REMOVE(&s->pendings, p, link);
		mt_observe(s->ing->flush_latency,
		           (double)(clock_now_us() - p->flushed_us) / 1e6);
		if (p->sqlstate[0] == '\0' && p->is_query)
			ok = igp_put_progress(out, p->flush_id,
			                      (uint64_t)p->progress_rows,
			                      p->progress_complete);
		else if (p->sqlstate[0] == '\0')
			ok = igp_put_ack(out, p->flush_id, p->rows);
		else
			ok = igp_put_flush_error(out, p->flush_id, p->sqlstate,
			                         p->message ? p->message : "",
			                         p->detail ? p->detail : "",
			                         p->row);
		if (!ok) {
			answer_lost(s, p);
			return;
		}
		free_pending(p);
	}
	if (s->state == S_FAILING && TAILQ_EMPTY(&s->pendings)) {
		send_fatal(s, s->fatal_state, s->fatal_msg);
		return;
	}
	if (s->ing->draining && s->state != S_CLOSING &&
	    TAILQ_EMPTY(&s->pendings)) {
		fatal(s, "57P01",
		      "the proxy is shutting down; every flush "
		      "before this was answered");
		return;
	}
	if (s->state == S_CLOSING && TAILQ_EMPTY(&s->pendings)) {
		struct timeval tv = {DRAIN_TIMEOUT_S, 0};

		igp_put_close_ok(out);
		set_state(s, S_DRAINING);
		evtimer_add(s->drain_ev, &tv);
	}
}

static void set_outcome(struct pending *p, const char *sqlstate,
                        const char *message, const char *detail, uint64_t row)
{
	p->done = true;
	if (sqlstate == NULL)
		return;
	snprintf(p->sqlstate, sizeof(p->sqlstate), "%s", sqlstate);
	p->message = strdup(message ? message : "");
	p->detail = strdup(detail ? detail : "");
	p->row = row;
}

/* Every failed flush gets a line, whether the server or our checks refused it.
 */
static void log_flush_failed(struct session *s, const struct pending *p)
{
	char q[300];

	sess_log(LOG_INFO, s,
	         "event=flush_failed flush_id=%" PRIu64 " sqlstate=%s "
	         "row=%" PRIu64 " error=%s",
	         p->flush_id, p->sqlstate, p->row,
	         log_quote(q, sizeof(q), p->message ? p->message : ""));
}

/* The client left; the unit (or read) still had to end. true: p is gone. */
static bool orphan_done(struct pending *p)
{
	if (p->s != NULL)
		return false;
	/* Its bytes were held until now. */
	if (p->ing != NULL) {
		TAILQ_REMOVE(&p->ing->orphans, p, link);
		p->ing->stats.buffered_bytes -= p->bytes;
		event_active(p->ing->resume_ev, 0, 0);
	}
	free_pending(p);
	return true;
}

static void unit_done(const struct co_outcome *o, void *arg)
{
	struct pending *p = arg;
	struct session *s = p->s;
	struct ingest *ing;

	if (orphan_done(p))
		return;
	ing = s->ing;
	ing->stats.buffered_bytes -= p->bytes;
	s->pending_bytes -= p->bytes;
	p->rows = o->rows;
	set_outcome(p, o->sqlstate, o->message, o->detail, o->row);
	if (o->sqlstate)
		log_flush_failed(s, p);
	send_answers(s);
	/* Reading resumes from the loop, not inside the coalescer's call. */
	event_active(ing->resume_ev, 0, 0);
}

/* A ProgressQuery's read ended (ProgressQuery, docs section 3). */
static void progress_read_done(const struct co_outcome *o, int64_t rows,
                               bool complete, void *arg)
{
	struct pending *p = arg;
	struct session *s = p->s;

	if (orphan_done(p))
		return;
	p->progress_rows = rows;
	p->progress_complete = complete;
	set_outcome(p, o->sqlstate, o->message, o->detail, 0);
	if (o->sqlstate)
		log_flush_failed(s, p);
	send_answers(s);
	event_active(s->ing->resume_ev, 0, 0);
}

/* ---- backpressure ---- */

static bool wants_input(const struct session *s)
{
	const struct ingest *ing = s->ing;

	if (s->state == S_LINGERING)
		return true; /* only to drop it */
	if (s->state == S_OPENING || s->state == S_DRAINING ||
	    s->state == S_CLOSING || s->state == S_FAILING || ing->draining)
		return false;
	return s->pending_bytes < ing->cfg.client_buffer_bytes &&
	       ing->stats.buffered_bytes < ing->cfg.global_buffer_bytes &&
	       evbuffer_get_length(bufferevent_get_output(s->bev)) <
	           OUTPUT_HIGH;
}

static void update_reading(struct session *s)
{
	bool want = wants_input(s);

	if (want == s->reading)
		return;
	s->reading = want;
	if (want) {
		s->ing->stats.paused--;
		bufferevent_enable(s->bev, EV_READ);
	} else {
		/* The kernel's buffers fill and the client blocks in send(). */
		s->ing->stats.paused++;
		bufferevent_disable(s->bev, EV_READ);
	}
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ingest *ing = arg;
	struct session *s, *next;

	for (s = TAILQ_FIRST(&ing->sessions); s; s = next) {
		next = TAILQ_NEXT(s, link);
		if (s->reading || !wants_input(s))
			continue;
		update_reading(s);
		/* Frames may already wait in the buffer: no read event for
		 * them. */
		process_input(s);
	}
}

/* ---- handshake and open ---- */

static bool token_ok(const struct ingest *ing, const char *given)
{
	return ing->token == NULL || secret_equal(ing->token, given);
}

static void handle_hello(struct session *s, const struct pgw_frame *f)
{
	struct ingest *ing = s->ing;
	struct igp_hello h;
	char server_name[64];

	if (f->type != IGP_MSG_HELLO || igp_parse_hello(f, &h) != PGW_OK) {
		fatal(s, "08P01", "expected Hello as the first message");
		return;
	}
	if (h.major != IGP_VERSION_MAJOR) {
		fatal(s, "08P01",
		      "protocol version %u.%u is not supported; this proxy "
		      "speaks %u.%u",
		      h.major, h.minor, IGP_VERSION_MAJOR, IGP_VERSION_MINOR);
		return;
	}
	snprintf(s->name, sizeof(s->name), "%s", h.client_name);
	if (!token_ok(ing, h.token)) {
		ing->stats.refused++;
		fatal(s, "28000", "wrong or missing token");
		return;
	}
	snprintf(server_name, sizeof(server_name), "lakebase-proxy %s",
	         LBP_VERSION);
	igp_put_hello_ok(bufferevent_get_output(s->bev),
	                 (uint32_t)ing->cfg.max_frame_bytes,
	                 ing->cfg.max_flush_bytes, server_name);
	set_state(s, S_OPEN);
}

/* "a, b, c": the table's columns (those equal to like ignoring case). */
static const char *column_names(const struct cat_table *t, const char *like,
                                char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < t->ncols && used + 1 < size; i++) {
		int n;

		if (like != NULL && !cat_same_folded(t->cols[i].name, like))
			continue;
		n = snprintf(buf + used, size - used, "%s\"%s\"",
		             used ? ", " : "", t->cols[i].name);
		if (n < 0)
			break;
		used += (size_t)n < size - used ? (size_t)n : size - used - 1;
	}
	return buf;
}

/*
 * *name replaced by the catalog's spelling of the column it means (the
 * names rule: exact, else the only one equal ignoring ASCII case); types[]
 * gets its type when given. false after telling the client.
 */
static bool resolve_column(struct session *s, const struct cat_table *t,
                           char **name, const char **type)
{
	bool ambiguous;
	const struct cat_column *c = cat_find_column(t, *name, &ambiguous);
	char *copy;

	if (c == NULL) {
		char names[300];

		fatal(s, ambiguous ? "42702" : "42703",
		      "column \"%s\" of table \"%s\" %s (%s)", *name,
		      t->rel_name,
		      ambiguous ? "matches several columns when case is "
		                  "ignored; write the exact name"
		                : "does not exist",
		      column_names(t, ambiguous ? *name : NULL, names,
		                   sizeof(names)));
		return false;
	}
	if (type != NULL)
		*type = c->type;
	if (strcmp(c->name, *name) == 0)
		return true;
	if ((copy = strdup(c->name)) == NULL) {
		fatal(s, "53200", "out of memory");
		return false;
	}
	free(*name);
	*name = copy;
	return true;
}

static bool resolve_list(struct session *s, const struct cat_table *t,
                         char **names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!resolve_column(s, t, &names[i], NULL))
			return false;
	}
	return true;
}

/* Two asked names that mean one column (userId, userid) are refused. */
static bool distinct_columns(struct session *s)
{
	const struct open_req *r = &s->req;

	for (size_t i = 0; i < r->ncols; i++) {
		for (size_t j = i + 1; j < r->ncols; j++) {
			if (strcmp(r->cols[i], r->cols[j]) == 0) {
				fatal(s, "42701",
				      "two columns of the stream both mean "
				      "column \"%s\"",
				      r->cols[i]);
				return false;
			}
		}
	}
	return true;
}

/*
 * The request in the catalog's names: the table and every column. A schema
 * stays empty when the client relied on the search_path (the table's name,
 * unique there ignoring case, finds the same table; metrics keep the form
 * the client used).
 */
static bool resolve_names(struct session *s, const struct cat_table *t,
                          const char **types)
{
	struct open_req *r = &s->req;
	char *schema = strdup(r->schema[0] ? t->rel_schema : "");
	char *table = strdup(t->rel_name);

	if (schema == NULL || table == NULL) {
		free(schema);
		free(table);
		fatal(s, "53200", "out of memory");
		return false;
	}
	free(r->schema);
	free(r->table);
	r->schema = schema;
	r->table = table;
	for (size_t i = 0; i < r->ncols; i++) {
		if (!resolve_column(s, t, &r->cols[i], &types[i]))
			return false;
	}
	return distinct_columns(s) && resolve_list(s, t, r->keys, r->nkeys) &&
	       resolve_list(s, t, r->coalesce, r->ncoalesce) &&
	       (r->version_col[0] == '\0' ||
	        resolve_column(s, t, &r->version_col, NULL));
}

/* The table as it is: every asked column exists, upsert keys are unique. */
static bool check_against_table(struct session *s, const struct cat_table *t,
                                const char **types)
{
	const struct open_req *r = &s->req;

	if (!resolve_names(s, t, types))
		return false;
	if (r->mode == IGP_MODE_UPSERT &&
	    !cat_has_unique(t, (const char *const *)r->keys, r->nkeys)) {
		fatal(s, "42P10",
		      "upsert keys of table \"%s\" are not exactly "
		      "the columns of a unique index or primary key",
		      r->table);
		return false;
	}
	return true;
}

static void send_open_ok(struct session *s, const char *const *types)
{
	igp_put_open_ok(bufferevent_get_output(s->bev), (uint16_t)s->req.ncols,
	                (const char *const *)s->req.cols, types);
}

/* Upsert: a NULL key is refused on arrival, so the client learns its row
 * (the server would only say the batch's statement failed). */
static bool make_key_mask(struct session *s)
{
	const struct open_req *r = &s->req;

	if (r->mode != IGP_MODE_UPSERT)
		return true;
	s->key_mask = calloc(r->ncols, sizeof(*s->key_mask));
	if (s->key_mask == NULL)
		return false;
	for (size_t i = 0; i < r->ncols; i++)
		for (size_t k = 0; k < r->nkeys; k++)
			if (strcmp(r->cols[i], r->keys[k]) == 0)
				s->key_mask[i] = true;
	return true;
}

static void opened(const struct cat_table *t, const char *sqlstate,
                   const char *message, void *arg)
{
	struct session *s = arg;
	struct open_req *r = &s->req;
	const char **types;
	char q[200];

	s->lookup = NULL;
	if (t == NULL) {
		fatal(s, sqlstate, "table \"%s\": %s", r->table, message);
		return;
	}
	types = calloc(r->ncols, sizeof(*types));
	if (types == NULL) {
		fatal(s, "53200", "out of memory");
		return;
	}
	if (check_against_table(s, t, types)) {
		struct sql_target def = {
		    .schema = r->schema,
		    .table = r->table,
		    .mode = sql_mode_of(r->mode),
		    .ncols = r->ncols,
		    .cols = (const char *const *)r->cols,
		    .types = types,
		    .nkeys = r->nkeys,
		    .keys = (const char *const *)r->keys,
		    .version_col = r->version_col,
		    .ncoalesce = r->ncoalesce,
		    .coalesce = (const char *const *)r->coalesce,
		};
		s->target = co_target_get(s->ing->co, &def);
		if (s->target == NULL || !make_key_mask(s)) {
			fatal(s, "53200", "out of memory");
		} else {
			s->ncols = (unsigned)r->ncols;
			send_open_ok(s, types);
			sess_log(LOG_INFO, s,
			         "event=open peer=%s name=%s table=%s mode=%s "
			         "columns=%zu",
			         s->peer, log_quote(q, sizeof(q), s->name),
			         log_quote((char[200]){0}, 200, r->table),
			         sql_mode_name(sql_mode_of(r->mode)), r->ncols);
			set_state(s, S_STREAM);
			update_reading(s);
			process_input(s); /* rows pipelined after Open */
		}
	}
	free(types);
}

static void handle_open(struct session *s, const struct pgw_frame *f)
{
	struct igp_open o;
	char sqlstate[6], msg[300];

	if (f->type != IGP_MSG_OPEN) {
		fatal(s, "08P01", "expected Open after HelloOk, got '%c'",
		      f->type >= 0x20 && f->type < 0x7f ? f->type : '?');
		return;
	}
	if (igp_parse_open(f, &o) != PGW_OK) {
		fatal(s, "08P01", "malformed Open message");
		return;
	}
	if (!igp_open_check(&o, sqlstate, msg, sizeof(msg))) {
		igp_open_free(&o);
		fatal(s, sqlstate, "%s", msg);
		return;
	}
	bool ok = copy_req(&s->req, &o);
	igp_open_free(&o);
	if (!ok) {
		fatal(s, "53200", "out of memory");
		return;
	}
	set_state(s, S_OPENING);
	update_reading(s);
	s->lookup =
	    cat_lookup(s->ing->cat, s->req.schema, s->req.table, opened, s);
	if (s->lookup == NULL)
		fatal(s, "53200", "out of memory");
}

/* ---- rows and flushes ---- */

static void fail_unit(struct session *s, const char *sqlstate, uint64_t row,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail_unit(struct session *s, const char *sqlstate, uint64_t row,
                      const char *fmt, ...)
{
	va_list ap;

	snprintf(s->unit_sqlstate, sizeof(s->unit_sqlstate), "%s", sqlstate);
	va_start(ap, fmt);
	vsnprintf(s->unit_message, sizeof(s->unit_message), fmt, ap);
	va_end(ap);
	s->unit_row = row;
	/* The unit will never commit: keep none of it. */
	evbuffer_drain(s->unit, evbuffer_get_length(s->unit));
}

static void handle_rows(struct session *s, const struct pgw_frame *f)
{
	struct ingest *ing = s->ing;
	struct ct_error err;
	const struct co_table_metrics *tm;
	uint64_t rows = 0, row;
	unsigned field;

	s->unit_bytes += f->len;
	if (s->unit_sqlstate[0])
		return; /* the unit failed already: discard until its Flush */
	if (s->unit_bytes > ing->cfg.max_flush_bytes) {
		fail_unit(s, "54000", 0,
		          "flush unit larger than max_flush_bytes (%" PRIu64
		          " bytes): flush more often",
		          ing->cfg.max_flush_bytes);
		return;
	}
	if (ct_check_rows(f->body, f->len, s->ncols, &rows, &err) != CT_OK) {
		fail_unit(s, ct_rc_sqlstate(err.rc), s->unit_rows + err.row,
		          "row %" PRIu64 " of the flush: %s (byte %zu of its "
		          "message)",
		          s->unit_rows + err.row, ct_rc_text(err.rc),
		          err.offset);
		return;
	}
	if (s->key_mask != NULL &&
	    (row = ct_find_null(f->body, f->len, s->key_mask, s->ncols,
	                        &field)) > 0) {
		fail_unit(s, "23502", s->unit_rows + row,
		          "row %" PRIu64 " of the flush: null value in key "
		          "column \"%s\" (upsert keys cannot be NULL)",
		          s->unit_rows + row, s->req.cols[field]);
		return;
	}
	ing->stats.rows_received += rows;
	s->unit_rows += rows;
	tm = co_target_metrics(s->target);
	mt_add(tm->rows_received, rows);
	mt_add(tm->bytes_received, f->len);
	if (evbuffer_add(s->unit, f->body, f->len) != 0)
		fail_unit(s, "53200", 0, "out of memory");
}

static void reset_unit(struct session *s)
{
	evbuffer_drain(s->unit, evbuffer_get_length(s->unit));
	s->unit_rows = 0;
	s->unit_bytes = 0;
	s->unit_sqlstate[0] = '\0';
	s->unit_message[0] = '\0';
	s->unit_row = 0;
}

/* A new answer record at the end of the session's list. */
static struct pending *new_pending(struct session *s, uint64_t id)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (p == NULL) {
		fatal(s, "53200", "out of memory");
		return NULL;
	}
	p->s = s;
	p->ing = s->ing;
	p->flush_id = id;
	p->flushed_us = clock_now_us();
	TAILQ_INSERT_TAIL(&s->pendings, p, link);
	return p;
}

static void submit_unit(struct session *s, struct pending *p,
                        const struct sql_progress *progress)
{
	struct ingest *ing = s->ing;
	size_t bytes = evbuffer_get_length(s->unit) + UNIT_OVERHEAD;

	p->bytes = bytes;
	s->pending_bytes += bytes;
	ing->stats.buffered_bytes += bytes;
	if (!co_submit_progress(s->target, s->unit, s->unit_rows, progress,
	                        unit_done, p)) {
		s->pending_bytes -= bytes;
		ing->stats.buffered_bytes -= bytes;
		p->bytes = 0;
		set_outcome(p, "53200", "out of memory", "", 0);
		log_flush_failed(s, p);
	}
}

/* Ends the unit being received (Flush, or FlushProgress with progress). */
static void end_unit(struct session *s, uint64_t id,
                     const struct sql_progress *progress)
{
	struct pending *p = new_pending(s, id);

	if (p == NULL)
		return;
	if (s->unit_sqlstate[0]) {
		const struct co_table_metrics *tm =
		    co_target_metrics(s->target);

		mt_add(tm->flushes_failed, 1);
		mt_add(tm->rows_rejected, s->unit_rows);
		set_outcome(p, s->unit_sqlstate, s->unit_message, "",
		            s->unit_row);
		log_flush_failed(s, p);
	} else if (s->unit_rows == 0 && progress == NULL) {
		set_outcome(p, NULL, NULL, NULL, 0);
	} else {
		submit_unit(s, p, progress);
	}
	reset_unit(s);
	send_answers(s);
}

static void handle_flush(struct session *s, const struct pgw_frame *f)
{
	uint64_t id;

	if (igp_parse_flush(f, &id) != PGW_OK) {
		fatal(s, "08P01", "malformed Flush message");
		return;
	}
	end_unit(s, id, NULL);
}

static void sql_progress_of(const struct igp_progress *w,
                            struct sql_progress *p)
{
	p->schema = w->schema;
	p->table = w->table;
	p->query_id = w->query_id;
	p->partition_id = (int64_t)w->partition_id;
	p->epoch_id = (int64_t)w->epoch_id;
	p->rows_committed = (int64_t)w->rows_committed;
	p->complete = w->complete != 0;
}

/* A progress row with bad values fails its unit; the stream goes on. */
static void handle_flush_progress(struct session *s, const struct pgw_frame *f)
{
	struct igp_progress w;
	struct sql_progress p;
	char state[6], msg[160];
	uint64_t id;

	if (igp_parse_flush_progress(f, &id, &w) != PGW_OK) {
		fatal(s, "08P01", "malformed FlushProgress message");
		return;
	}
	if (!igp_progress_check(&w, true, state, msg, sizeof(msg)) &&
	    !s->unit_sqlstate[0])
		fail_unit(s, state, 0, "%s", msg);
	sql_progress_of(&w, &p);
	end_unit(s, id, &p);
}

/* The query's turn has come: everything flushed before it has its outcome. */
static void start_query(struct session *s, struct pending *p)
{
	p->query_started = true;
	if (!co_progress_read(s->ing->co, p->key, progress_read_done, p)) {
		set_outcome(p, "53200", "out of memory", "", 0);
		log_flush_failed(s, p);
	}
}

static void handle_progress_query(struct session *s, const struct pgw_frame *f)
{
	struct igp_progress w;
	struct sql_progress key;
	struct pending *p;
	char state[6], msg[160];
	uint64_t id;

	if (igp_parse_progress_query(f, &id, &w) != PGW_OK) {
		fatal(s, "08P01", "malformed ProgressQuery message");
		return;
	}
	if ((p = new_pending(s, id)) == NULL)
		return;
	p->is_query = true;
	sql_progress_of(&w, &key);
	if (!igp_progress_check(&w, false, state, msg, sizeof(msg)))
		set_outcome(p, state, msg, "", 0);
	else if ((p->key = sql_progress_copy(&key)) == NULL)
		set_outcome(p, "53200", "out of memory", "", 0);
	if (p->done) {
		p->query_started = true;
		log_flush_failed(s, p);
	}
	send_answers(s);
}

static void handle_stream(struct session *s, const struct pgw_frame *f)
{
	switch (f->type) {
	case IGP_MSG_ROWS:
		handle_rows(s, f);
		break;
	case IGP_MSG_FLUSH:
		handle_flush(s, f);
		break;
	case IGP_MSG_FLUSH_PROGRESS:
		handle_flush_progress(s, f);
		break;
	case IGP_MSG_PROGRESS_QUERY:
		handle_progress_query(s, f);
		break;
	case IGP_MSG_CLOSE:
		if (igp_parse_close(f) != PGW_OK) {
			fatal(s, "08P01",
			      "malformed Close message (it has no "
			      "body)");
			break;
		}
		/* Rows after the last Flush are discarded, as documented. */
		reset_unit(s);
		set_state(s, S_CLOSING);
		update_reading(s);
		send_answers(s);
		break;
	default:
		fatal(s, "08P01", "unexpected message '%c' in a stream",
		      f->type >= 0x20 && f->type < 0x7f ? f->type : '?');
	}
}

/*
 * A PostgreSQL client (psql, a JDBC URL with the wrong port) would wait for
 * a Hello answer it cannot read until the idle timeout; it gets a
 * PostgreSQL error it can show instead. true: it was one (or may still
 * be: fewer than 8 bytes came), stop reading frames.
 */
static bool refuse_postgres(struct session *s, struct evbuffer *in)
{
	uint8_t head[8];
	ev_ssize_t n = evbuffer_copyout(in, head, sizeof(head));
	enum pgw_rc rc = igp_detect_postgres(head, n > 0 ? (size_t)n : 0);
	struct timeval tv = {DRAIN_TIMEOUT_S, 0};
	char msg[400];

	if (rc != PGW_OK)
		return rc == PGW_AGAIN && n > 0;
	/* Encryption asked first: "no", so that the StartupMessage that
	 * follows in the clear gets the error (libpq shows no error sent in
	 * answer to SSLRequest). */
	if (get_be32(head + 4) != PGW_PROTOCOL_V3 &&
	    get_be32(head + 4) != PGW_SSL_REQUEST_CODE - 1) {
		evbuffer_drain(in, sizeof(head));
		bufferevent_write(s->bev, "N", 1);
		return false;
	}
	sess_log(LOG_WARN, s,
	         "event=session_error sqlstate=08P01 "
	         "error=\"a PostgreSQL client at the ingest port\"");
	s->ing->stats.protocol_errors++;
	snprintf(msg, sizeof(msg),
	         "this is the lakebase-proxy ingest port, which speaks its own "
	         "protocol (docs/ingest-protocol.md), not PostgreSQL's; %s%s",
	         s->ing->pg_door
	             ? "PostgreSQL clients connect to its front door "
	               "at "
	             : "its PostgreSQL front door is off ([frontend] "
	               "listen)",
	         s->ing->pg_door ? s->ing->pg_door : "");
	igp_put_pg_fatal(bufferevent_get_output(s->bev), "08P01", msg);
	set_state(s, S_DRAINING);
	update_reading(s);
	evtimer_add(s->drain_ev, &tv);
	return true;
}

/* Frames until the buffer is empty or the session must wait. */
static void process_input(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct pgw_frame f;
	size_t max;

	if (s->state == S_LINGERING) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	for (;;) {
		if (!s->reading || (s->state != S_HELLO && s->state != S_OPEN &&
		                    s->state != S_STREAM))
			return;
		/* Before the handshake, frames are small: no memory for
		 * strangers. The limit counts the length field too. */
		max = s->state == S_HELLO ? IGP_PREAUTH_MAX_FRAME
		                          : s->ing->cfg.max_frame_bytes;
		if (s->state == S_HELLO && refuse_postgres(s, in))
			return;
		switch (pgw_frame_next(in, igp_max_body(max), &f)) {
		case PGW_AGAIN:
			return;
		case PGW_ERROR:
			fatal(s, "08P01", "bad frame: length outside 4..%zu",
			      max);
			return;
		case PGW_OK:
			break;
		}
		if (s->state == S_HELLO)
			handle_hello(s, &f);
		else if (s->state == S_OPEN)
			handle_open(s, &f);
		else
			handle_stream(s, &f);
		pgw_frame_consume(in, &f);
		if (s->state == S_OPENING || s->state == S_STREAM)
			timer_add_ms(s->idle_ev,
			             (uint64_t)s->ing->cfg.idle_timeout_s *
			                 1000u);
		update_reading(s);
	}
}

/* ---- connection events ---- */

static void destroy_session(struct session *s)
{
	struct ingest *ing = s->ing;
	struct pending *p;

	while ((p = TAILQ_FIRST(&s->pendings)) != NULL) {
		TAILQ_REMOVE(&s->pendings, p, link);
		/* A query not yet started never will be: nothing waits for it.
		 */
		if (p->done || (p->is_query && !p->query_started)) {
			free_pending(p);
			continue;
		}
		/* In flight: it still commits; its answer has nowhere to go,
		 * and its bytes stay counted until it is done (unit_done). */
		p->s = NULL;
		TAILQ_INSERT_TAIL(&ing->orphans, p, link);
	}
	if (s->lookup)
		cat_cancel(ing->cat, s->lookup);
	co_target_put(s->target);
	if (!s->reading)
		ing->stats.paused--;
	TAILQ_REMOVE(&ing->sessions, s, link);
	if (s->state != S_LINGERING) /* a lingering one left the count */
		ing->stats.clients--;
	sess_log(LOG_DEBUG, s, "event=session_end state=%s",
	         state_names[s->state]);
	free_req(&s->req);
	free(s->key_mask);
	evbuffer_free(s->unit);
	event_free(s->drain_ev);
	event_free(s->idle_ev);
	bufferevent_free(s->bev);
	free(s);
	event_active(ing->resume_ev, 0, 0); /* global memory may be free now */
}

static void drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	destroy_session(arg);
}

/*
 * Closing a socket whose input holds unread bytes makes the kernel answer
 * with a reset, which can destroy our last words (an Error) before the
 * client reads them, or fail its send. So a session that has said them
 * shuts its side for writing, then reads and drops whatever the client
 * still sends until the client closes; the drain timer bounds the wait.
 */
static void linger_session(struct session *s)
{
	evutil_socket_t fd = bufferevent_getfd(s->bev);

	if (fd < 0 || shutdown(fd, SHUT_WR) != 0) {
		destroy_session(s);
		return;
	}
	set_state(s, S_LINGERING);
	/* It holds no slot of max_clients, and waits briefly: the client has
	 * our last words; this only lets its send end without a reset. */
	s->ing->stats.clients--;
	timer_add_ms(s->drain_ev, LINGER_MS);
	update_reading(s);
	process_input(s); /* what is already buffered */
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	/* Everything is written: a draining session lingers, then goes. */
	if (s->state == S_DRAINING &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		linger_session(s);
		return;
	}
	if (!s->reading && wants_input(s)) {
		update_reading(s);
		process_input(s);
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	process_input(arg);
}

static void idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	const struct cfg_ingest *cfg = &s->ing->cfg;

	if (s->state == S_HELLO || s->state == S_OPEN) {
		fatal(s, "08006", "no Hello and Open within %u ms",
		      cfg->handshake_timeout_ms);
		return;
	}
	if (s->state != S_STREAM && s->state != S_OPENING)
		return; /* closing or failing: the drain timer decides */
	/* Waiting for its answers, or held back by us, is not being idle. */
	if (!TAILQ_EMPTY(&s->pendings) || s->state == S_OPENING ||
	    !s->reading) {
		timer_add_ms(s->idle_ev, (uint64_t)cfg->idle_timeout_s * 1000u);
		return;
	}
	fatal(s, "08006", "no whole message for %u s", cfg->idle_timeout_s);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (!TAILQ_EMPTY(&s->pendings) || s->state == S_STREAM)
			sess_log(
			    LOG_INFO, s,
			    "event=client_gone state=%s unit_rows=%" PRIu64,
			    state_names[s->state], s->unit_rows);
		destroy_session(s);
	}
}

static void peer_text(const struct sockaddr *sa, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, size, "%s:%u", host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, size, "unix");
	}
}

static struct session *new_session(struct ingest *ing, evutil_socket_t fd,
                                   const struct sockaddr *sa)
{
	struct session *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->ing = ing;
	s->id = ++ing->next_id;
	s->state = S_HELLO;
	s->reading = true;
	TAILQ_INIT(&s->pendings);
	peer_text(sa, s->peer, sizeof(s->peer));
	s->bev = bufferevent_socket_new(ing->base, fd, BEV_OPT_CLOSE_ON_FREE);
	s->unit = evbuffer_new();
	s->drain_ev = evtimer_new(ing->base, drain_timeout_cb, s);
	s->idle_ev = evtimer_new(ing->base, idle_cb, s);
	if (s->bev == NULL || s->unit == NULL || s->drain_ev == NULL ||
	    s->idle_ev == NULL) {
		if (s->bev)
			bufferevent_free(s->bev);
		else
			evutil_closesocket(fd);
		if (s->unit)
			evbuffer_free(s->unit);
		if (s->drain_ev)
			event_free(s->drain_ev);
		if (s->idle_ev)
			event_free(s->idle_ev);
		free(s);
		return NULL;
	}
	/* Read at most one frame ahead of what we are willing to process. */
	bufferevent_setwatermark(s->bev, EV_READ, 0,
	                         ing->cfg.max_frame_bytes + 64 * 1024);
	bufferevent_setwatermark(s->bev, EV_WRITE, OUTPUT_LOW, 0);
	timer_add_ms(s->idle_ev, ing->cfg.handshake_timeout_ms);
	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	TAILQ_INSERT_TAIL(&ing->sessions, s, link);
	ing->stats.clients++;
	ing->stats.accepted++;
	return s;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int socklen, void *arg)
{
	struct ingest *ing = arg;
	struct session *s;
	int one = 1;

	if (sa->sa_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s = new_session(ing, fd, sa);
	if (s == NULL)
		return;
	if (ing->stats.clients > ing->cfg.max_clients) {
		ing->stats.refused++;
		fatal(s, "53300", "too many clients (max_clients = %u)",
		      ing->cfg.max_clients);
	}
}

static void relisten_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ingest *ing = arg;

	evconnlistener_enable(ing->listener);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct ingest *ing = arg;
	struct timeval tv = {1, 0};

	/*
	 * EMFILE and the like: the listening socket stays readable, so
	 * pause a second rather than spin on it.
	 */
	log_warn("event=accept_failed error=\"%s\" retry_in_s=1",
	         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	evconnlistener_disable(l);
	event_add(ing->relisten_ev, &tv);
}

/* ---- listening ---- */

static bool start_listening(struct ingest *ing, char *err, size_t errlen)
{
	struct na_listen addr;

	if (!na_parse_listen(ing->cfg.listen, &addr, err, errlen))
		return false;
	ing->listener =
	    na_listener_new(ing->base, &addr, accept_cb, ing, err, errlen);
	if (ing->listener == NULL)
		return false;
	if (addr.is_unix)
		snprintf(ing->unix_path, sizeof(ing->unix_path), "%s",
		         addr.path);
	evconnlistener_set_error_cb(ing->listener, accept_error_cb);
	log_info("event=listening addr=%s auth=%s", ing->cfg.listen,
	         ing->token ? "token" : "none");
	return true;
}

struct ingest *ing_new(struct event_base *base, struct catalog *cat,
                       struct coalescer *co, const struct cfg_ingest *cfg,
                       char *err, size_t errlen)
{
	struct ingest *ing = calloc(1, sizeof(*ing));

	if (ing == NULL)
		return NULL;
	ing->base = base;
	ing->cat = cat;
	ing->co = co;
	ing->cfg = *cfg;
	ing->cfg.listen = NULL; /* cfg's strings are not ours */
	ing->cfg.auth_token = NULL;
	TAILQ_INIT(&ing->sessions);
	TAILQ_INIT(&ing->orphans);
	ing->flush_latency = mt_metric_of(&flush_latency_d);
	ing->resume_ev = event_new(base, -1, 0, resume_cb, ing);
	ing->relisten_ev = evtimer_new(base, relisten_cb, ing);
	if (cfg->auth_token)
		ing->token = strdup(cfg->auth_token);
	ing->cfg.listen = strdup(cfg->listen);
	if (ing->resume_ev == NULL || ing->relisten_ev == NULL ||
	    ing->cfg.listen == NULL || (cfg->auth_token && !ing->token)) {
		snprintf(err, errlen, "out of memory");
		ing_free(ing);
		return NULL;
	}
	if (!start_listening(ing, err, errlen)) {
		ing_free(ing);
		return NULL;
	}
	return ing;
}

void ing_free(struct ingest *ing)
{
	struct session *s;
	struct pending *p;

	if (ing == NULL)
		return;
	if (ing->listener)
		evconnlistener_free(ing->listener);
	if (ing->unix_path[0])
		unlink(ing->unix_path);
	while ((s = TAILQ_FIRST(&ing->sessions)) != NULL) {
		if (s->state != S_DRAINING && s->state != S_LINGERING)
			igp_put_error(bufferevent_get_output(s->bev), "57P01",
			              "the proxy is shutting down");
		/* Best effort: the loop no longer runs to write it later. */
		evbuffer_write(bufferevent_get_output(s->bev),
		               bufferevent_getfd(s->bev));
		destroy_session(s);
	}
	/* The coalescer still calls back for these; they find no ingest. */
	while ((p = TAILQ_FIRST(&ing->orphans)) != NULL) {
		TAILQ_REMOVE(&ing->orphans, p, link);
		p->ing = NULL;
	}
	if (ing->resume_ev)
		event_free(ing->resume_ev);
	if (ing->relisten_ev)
		event_free(ing->relisten_ev);
	secret_free(ing->token);
	free(ing->pg_door);
	free((char *)ing->cfg.listen);
	free(ing);
}

bool ing_set_token(struct ingest *ing, const char *token)
{
	return secret_replace(&ing->token, token);
}

bool ing_set_postgres_door(struct ingest *ing, const char *where)
{
	bool ok = true;
	char *copy = dup_or_null(where, &ok);

	if (!ok)
		return false;
	free(ing->pg_door);
	ing->pg_door = copy;
	return true;
}

void ing_get_stats(const struct ingest *ing, struct ing_stats *s)
{
	*s = ing->stats;
}

void ing_drain(struct ingest *ing)
{
	struct session *s, *next;

	ing->draining = true;
	evconnlistener_disable(ing->listener);
	for (s = TAILQ_FIRST(&ing->sessions); s; s = next) {
		next = TAILQ_NEXT(s, link);
		if (s->state == S_DRAINING || s->state == S_LINGERING)
			continue;
		if (s->lookup) {
			cat_cancel(ing->cat, s->lookup);
			s->lookup = NULL;
		}
		update_reading(s);
		/* Answers what is done; the rest as it commits, then 57P01. */
		send_answers(s);
	}
}

bool ing_is_idle(const struct ingest *ing)
{
	const struct session *s;

	/* A lingering session has said everything: nothing to wait for. */
	TAILQ_FOREACH(s, &ing->sessions, link)
	{
		if (s->state != S_LINGERING)
			return false;
	}
	return true;
}
