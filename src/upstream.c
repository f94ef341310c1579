/* upstream.c: one PostgreSQL server connection on the event loop. */
#include "upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "scram.h"
#include "secret.h"
#include "strutil.h"
#include "timer.h"
#include "tls.h"

/* CopyData messages are cut at this size; the server does not care. */
#define COPY_CHUNK (64u * 1024)
/* Keep this much queued for the socket while streaming COPY data. */
#define COPY_QUEUE_HIGH (1024u * 1024)
#define COPY_QUEUE_LOW  (256u * 1024)
/* libevent's default of 16 KiB per read or write costs a loop turn each. */
#define MAX_SINGLE_IO     (256 * 1024)
#define MAX_SERVER_PARAMS 32

struct server_param {
	char *name;
	char *value;
};

struct up_conn {
	uint64_t id;
	enum up_state state;
	struct event_base *base;
	struct evdns_base *dns;
	struct up_params p;
	struct up_events ev;

	struct evdns_getaddrinfo_request *dns_req;
	struct evutil_addrinfo *addrs;
	struct evutil_addrinfo *next_addr;
	evutil_socket_t fd;      /* before the bufferevent takes it over */
	struct event *io_ev;     /* connect and SSLRequest answer */
	struct event *timer;     /* the timeout of the current phase */
	struct event *closed_ev; /* tells the owner of the close, later */
	struct bufferevent *bev;

	struct scram_client *scram;
	bool scram_verified;
	uint32_t backend_pid;
	uint32_t backend_secret;
	bool cancel_only; /* up_cancel: send the CancelRequest, then wait */
	uint32_t cancel_pid, cancel_secret;
	void (*cancel_done)(struct up_conn *c, void *arg);
	void *cancel_arg;
	struct up_relay relay; /* state RELAY */
	void *user_data;
	void (*user_free)(void *);
	char txn_status;
	struct server_param params[MAX_SERVER_PARAMS];

	uint64_t progress_ms; /* last bytes from the server, or the start */

	enum up_close_reason close_reason;
	char last_error[512];
	char login_sqlstate[6];

	/* The statement in flight (state BUSY). */
	up_result_cb cb;
	void *cb_arg;
	struct evbuffer *copy_src;
	bool copy_streaming;
	up_refill_cb refill; /* more COPY data on demand, until it says no */
	void *refill_arg;
	struct up_result res;
	size_t res_cap;   /* cells allocated */
	size_t res_bytes; /* bytes held by cells */

	/* Reentrancy guard: up_free from inside our own callback is deferred.
	 */
	int depth;
	bool free_pending;
};

#define conn_log(level, c, fmt, ...)                                           \
	log_msg(level, "conn=%" PRIu64 " " fmt, (c)->id, ##__VA_ARGS__)
#define conn_debug(c, fmt, ...)                                                \
	do {                                                                   \
		if (log_get_level() <= LOG_DEBUG)                              \
			conn_log(LOG_DEBUG, c, fmt, ##__VA_ARGS__);            \
	} while (0)

/* ErrorResponses by SQLSTATE; a code that is not 5 characters is "?????". */
static const struct mt_desc errors_d = {
    .name = "lbp_upstream_errors_total",
    .help = "ErrorResponses from the server, by SQLSTATE.",
    .type = MT_COUNTER,
    .nlabels = 1,
    .labels = {"sqlstate"},
    .overflow = {"other"},
    .max_children = 128,
};

void up_register_metrics(void)
{
	mt_family(&errors_d);
}

static void up_count_error(const char *sqlstate)
{
	char code[6] = "?????";
	const char *v[1] = {code};

	if (sqlstate != NULL && strlen(sqlstate) == 5)
		memcpy(code, sqlstate, 5);
	mt_add(mt_child(mt_family(&errors_d), v), 1);
}

static const char *const state_names[] = {
    "resolving", "connecting", "ssl_request", "tls_handshake", "login",
    "idle",      "busy",       "relay",       "closed"};

const char *up_state_name(enum up_state s)
{
	if ((unsigned)s > UP_CLOSED)
		return "unknown";
	return state_names[s];
}

static const char *const reason_names[] = {
    "none", "by_owner", "resolve",  "connect", "tls",
    "auth", "server",   "protocol", "timeout", "internal"};

const char *up_close_reason_name(enum up_close_reason r)
{
	if ((unsigned)r > UP_CLOSE_INTERNAL)
		return "unknown";
	return reason_names[r];
}

static void up_set_state(struct up_conn *c, enum up_state s)
{
	conn_debug(c, "event=state from=%s to=%s", up_state_name(c->state),
	           up_state_name(s));
	c->state = s;
}

static void arm_timer(struct up_conn *c, unsigned ms)
{
	if (ms == 0) {
		evtimer_del(c->timer);
		return;
	}
	timer_add_ms(c->timer, ms);
}

/* ---- parameters ---- */

void up_params_clear(struct up_params *p)
{
	free((char *)p->host);
	secret_free((char *)p->password);
	free((char *)p->dbname);
	free((char *)p->user);
	free((char *)p->application_name);
	if (p->ssl_ctx != NULL)
		SSL_CTX_free(p->ssl_ctx);
	memset(p, 0, sizeof(*p));
}

bool up_params_copy(struct up_params *dst, const struct up_params *src)
{
	bool ok = true;

	*dst = *src;
	dst->ssl_ctx = NULL;
	dst->host = dup_or_null(src->host, &ok);
	dst->password = dup_or_null(src->password, &ok);
	dst->dbname = dup_or_null(src->dbname, &ok);
	dst->user = dup_or_null(src->user, &ok);
	dst->application_name = dup_or_null(src->application_name, &ok);
	if (ok && src->ssl_ctx != NULL) {
		if (SSL_CTX_up_ref(src->ssl_ctx) == 1)
			dst->ssl_ctx = src->ssl_ctx;
		else
			ok = false;
	}
	if (!ok)
		up_params_clear(dst);
	return ok;
}

/* ---- results ---- */

const char *up_result_cell(const struct up_result *r, size_t row, size_t col)
{
	if (row >= r->nrows || col >= r->ncols)
		return NULL;
	return r->cells[row * r->ncols + col];
}

static void result_clear_rows(struct up_conn *c)
{
	size_t n = c->res.nrows * c->res.ncols;

	for (size_t i = 0; i < n; i++)
		free(c->res.cells[i]);
	free(c->res.cells);
	c->res.cells = NULL;
	c->res.nrows = 0;
	c->res.ncols = 0;
	c->res_cap = 0;
	c->res_bytes = 0;
}

static void result_reset(struct up_conn *c)
{
	result_clear_rows(c);
	pgw_notice_free(&c->res.error);
	memset(&c->res, 0, sizeof(c->res));
}

/* ---- closing ---- */

static void teardown_io(struct up_conn *c)
{
	if (c->dns_req) {
		/* The callback sees EVUTIL_EAI_CANCEL and touches nothing. */
		evdns_getaddrinfo_cancel(c->dns_req);
		c->dns_req = NULL;
	}
	if (c->io_ev) {
		event_free(c->io_ev);
		c->io_ev = NULL;
	}
	if (c->bev) {
		bufferevent_free(c->bev); /* closes the socket and the SSL */
		c->bev = NULL;
		c->fd = -1;
	}
	if (c->fd >= 0) {
		evutil_closesocket(c->fd);
		c->fd = -1;
	}
	if (c->timer)
		evtimer_del(c->timer);
	scram_client_free(c->scram);
	c->scram = NULL;
}

/*
 * Encodes one small fixed message with its pgwire encoder into out, for
 * the moments we write to the socket ourselves (before the bufferevent
 * exists, or while tearing it down). Its length, or 0.
 */
static size_t encode_fixed(bool (*put)(struct evbuffer *), unsigned char *out,
                           size_t cap)
{
	struct evbuffer *b = evbuffer_new();
	size_t n = 0;

	if (b != NULL && put(b) && evbuffer_get_length(b) <= cap)
		n = (size_t)evbuffer_remove(b, out, cap);
	if (b != NULL)
		evbuffer_free(b);
	return n;
}

/*
 * Best effort Terminate (and TLS close_notify) on an idle connection, so
 * the server logs a clean exit instead of "unexpected EOF". Never blocks:
 * the socket is non-blocking and a short write is simply abandoned.
 */
static void say_goodbye(struct up_conn *c)
{
	unsigned char terminate[8];
	size_t n;
	SSL *ssl;

	if (c->bev == NULL || c->state != UP_IDLE ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) != 0)
		return;
	if ((n = encode_fixed(pgw_put_terminate, terminate,
	                      sizeof(terminate))) == 0)
		return;
	ssl = bufferevent_openssl_get_ssl(c->bev);
	if (ssl) {
		if (SSL_write(ssl, terminate, (int)n) > 0)
			SSL_shutdown(ssl);
		ERR_clear_error();
		return;
	}
	(void)!send(bufferevent_getfd(c->bev), terminate, n,
	            MSG_NOSIGNAL | MSG_DONTWAIT);
}

void up_close(struct up_conn *c, enum up_close_reason why, const char *detail)
{
	char q[600];

	if (c->state == UP_CLOSED)
		return;
	c->close_reason = why;
	snprintf(c->last_error, sizeof(c->last_error), "%s",
	         detail ? detail : "");
	conn_log(why == UP_CLOSE_BY_OWNER ? LOG_INFO : LOG_WARN, c,
	         "event=closed state=%s reason=%s error=%s",
	         up_state_name(c->state), up_close_reason_name(why),
	         log_quote(q, sizeof(q), c->last_error));
	if (why == UP_CLOSE_BY_OWNER)
		say_goodbye(c);
	up_set_state(c, UP_CLOSED);
	teardown_io(c);
	/* The owner hears of it from the loop, never from inside its own call.
	 */
	event_active(c->closed_ev, 0, 0);
}

static void close_fmt(struct up_conn *c, enum up_close_reason why,
                      const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void close_fmt(struct up_conn *c, enum up_close_reason why,
                      const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	up_close(c, why, buf);
}

static void destroy(struct up_conn *c)
{
	teardown_io(c);
	result_reset(c);
	if (c->addrs)
		evutil_freeaddrinfo(c->addrs);
	if (c->timer)
		event_free(c->timer);
	if (c->closed_ev)
		event_free(c->closed_ev);
	for (size_t i = 0; i < MAX_SERVER_PARAMS; i++) {
		free(c->params[i].name);
		free(c->params[i].value);
	}
	if (c->user_free != NULL)
		c->user_free(c->user_data);
	free(c);
}

void up_free(struct up_conn *c)
{
	if (c == NULL)
		return;
	if (c->state != UP_CLOSED) {
		c->ev.on_closed = NULL; /* the owner asked: no news for it */
		c->cb = NULL;
		up_close(c, UP_CLOSE_BY_OWNER, "closed by owner");
	}
	if (c->depth > 0) {
		c->free_pending = true;
		return;
	}
	destroy(c);
}

/* Returns false when the owner freed c during the callback. */
static bool leave_callback(struct up_conn *c)
{
	c->depth--;
	if (c->depth == 0 && c->free_pending) {
		destroy(c);
		return false;
	}
	return !c->free_pending;
}

static void finish_exec(struct up_conn *c)
{
	up_result_cb cb = c->cb;
	void *arg = c->cb_arg;

	c->cb = NULL;
	c->copy_src = NULL;
	c->copy_streaming = false;
	c->refill = NULL;
	if (cb == NULL)
		return;
	cb(c, &c->res, arg);
	result_reset(c);
}

static void closed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct up_conn *c = arg;

	c->depth++;
	if (c->relay.on_closed != NULL) {
		void (*relay_closed)(struct up_conn *, void *) =
		    c->relay.on_closed;

		c->relay.on_closed = NULL;
		relay_closed(c, c->relay.arg);
	}
	if (c->cb) {
		if (c->copy_src)
			evbuffer_drain(c->copy_src,
			               evbuffer_get_length(c->copy_src));
		c->res.ok = false;
		c->res.conn_lost = true;
		c->res.timed_out = c->close_reason == UP_CLOSE_TIMEOUT;
		c->res.conn_error = c->last_error;
		finish_exec(c);
	}
	if (!c->free_pending && c->ev.on_closed)
		c->ev.on_closed(c, c->ev.arg);
	leave_callback(c);
}

/* ---- accessors ---- */

enum up_state up_get_state(const struct up_conn *c)
{
	return c->state;
}

uint64_t up_get_id(const struct up_conn *c)
{
	return c->id;
}

uint32_t up_backend_pid(const struct up_conn *c)
{
	return c->backend_pid;
}

char up_txn_status(const struct up_conn *c)
{
	return c->txn_status;
}

enum up_close_reason up_close_reason(const struct up_conn *c)
{
	return c->close_reason;
}

const char *up_last_error(const struct up_conn *c)
{
	return c->last_error;
}

const char *up_login_sqlstate(const struct up_conn *c)
{
	return c->login_sqlstate;
}

const char *up_server_param(const struct up_conn *c, const char *name)
{
	for (size_t i = 0; i < MAX_SERVER_PARAMS; i++) {
		if (c->params[i].name && strcmp(c->params[i].name, name) == 0)
			return c->params[i].value;
	}
	return NULL;
}

uint64_t up_last_progress_ms(const struct up_conn *c)
{
	return c->progress_ms;
}

bool up_waits_on_server(const struct up_conn *c)
{
	return c->state != UP_IDLE && c->state != UP_CLOSED;
}

uint32_t up_backend_secret(const struct up_conn *c)
{
	return c->backend_secret;
}

bool up_server_param_at(const struct up_conn *c, size_t i, const char **name,
                        const char **value)
{
	for (size_t k = 0; k < MAX_SERVER_PARAMS; k++) {
		if (c->params[k].name == NULL)
			continue;
		if (i-- == 0) {
			*name = c->params[k].name;
			*value = c->params[k].value;
			return true;
		}
	}
	return false;
}

void up_set_user_data(struct up_conn *c, void *data, void (*free_fn)(void *))
{
	if (c->user_free != NULL)
		c->user_free(c->user_data);
	c->user_data = data;
	c->user_free = free_fn;
}

void *up_get_user_data(const struct up_conn *c)
{
	return c->user_data;
}

void up_store_param(struct up_conn *c, const char *name, const char *value)
{
	struct server_param *slot = NULL;

	for (size_t i = 0; i < MAX_SERVER_PARAMS; i++) {
		struct server_param *sp = &c->params[i];

		if (sp->name && strcmp(sp->name, name) == 0) {
			slot = sp;
			break;
		}
		if (sp->name == NULL && slot == NULL)
			slot = sp;
	}
	if (slot == NULL)
		return; /* a server with more than 32 parameters: keep ours */
	char *v = strdup(value);
	if (v == NULL)
		return;
	if (slot->name == NULL && (slot->name = strdup(name)) == NULL) {
		free(v);
		return;
	}
	free(slot->value);
	slot->value = v;
}

/* ---- messages from the server ---- */

static void notice_text(const struct pgw_notice *n, char *buf, size_t size)
{
	snprintf(buf, size, "%s %s: %s%s%s",
	         n->severity ? n->severity : "ERROR",
	         n->sqlstate ? n->sqlstate : "?????",
	         n->message ? n->message : "(no message)",
	         n->detail ? " detail: " : "", n->detail ? n->detail : "");
}

static bool handle_async(struct up_conn *c, const struct pgw_frame *f)
{
	struct pgw_param_status ps;
	struct pgw_notice n;
	char text[512], q[600];

	switch (f->type) {
	case PGW_MSG_PARAMETER_STATUS:
		if (pgw_parse_param_status(f, &ps) != PGW_OK)
			return false;
		up_store_param(c, ps.name, ps.value);
		return true;
	case PGW_MSG_NOTICE:
		if (pgw_parse_notice(f, &n) != PGW_OK)
			return false;
		notice_text(&n, text, sizeof(text));
		conn_log(LOG_INFO, c, "event=server_notice notice=%s",
		         log_quote(q, sizeof(q), text));
		return true;
	case PGW_MSG_NOTIFICATION:
		return true; /* we LISTEN to nothing; ignore */
	default:
		return false;
	}
}

/* An ErrorResponse outside a statement: FATAL before the server hangs up. */
static void handle_fatal(struct up_conn *c, const struct pgw_frame *f,
                         enum up_close_reason why)
{
	struct pgw_notice n;
	char text[512];

	if (pgw_parse_notice(f, &n) != PGW_OK) {
		up_close(c, UP_CLOSE_PROTOCOL, "malformed ErrorResponse");
		return;
	}
	up_count_error(n.sqlstate);
	if (why == UP_CLOSE_AUTH && n.sqlstate &&
	    strncmp(n.sqlstate, "28", 2) != 0)
		why = UP_CLOSE_SERVER; /* e.g. 53300 too many connections */
	if (c->state == UP_LOGIN && n.sqlstate)
		snprintf(c->login_sqlstate, sizeof(c->login_sqlstate), "%s",
		         n.sqlstate);
	notice_text(&n, text, sizeof(text));
	up_close(c, why, text);
}

static bool send_password(struct up_conn *c, const struct pgw_auth *a)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char md5[SCRAM_MD5_LEN];

	if (c->p.password == NULL) {
		up_close(c, UP_CLOSE_AUTH,
		         "the server asks for a password and none is set");
		return false;
	}
	if (a->code == PGW_AUTH_CLEARTEXT)
		return pgw_put_password(out, c->p.password);
	if (a->data_len != 4) {
		up_close(c, UP_CLOSE_PROTOCOL,
		         "MD5 request without 4-byte salt");
		return false;
	}
	if (!scram_md5_response(c->p.user, c->p.password, a->data, md5))
		return false;
	bool ok = pgw_put_password(out, md5);
	memset(md5, 0, sizeof(md5));
	return ok;
}

static bool scram_start(struct up_conn *c, const struct pgw_auth *a)
{
	const char *msg;
	size_t len;

	if (c->p.password == NULL) {
		up_close(c, UP_CLOSE_AUTH,
		         "the server asks for SCRAM and no password is set");
		return false;
	}
	if (!pgw_sasl_offers(a, SCRAM_MECHANISM)) {
		up_close(c, UP_CLOSE_AUTH,
		         "the server offers no SASL mechanism we support");
		return false;
	}
	c->scram = scram_client_new(c->p.password);
	if (c->scram == NULL || !scram_client_first(c->scram, &msg, &len))
		return false;
	return pgw_put_sasl_initial(bufferevent_get_output(c->bev),
	                            SCRAM_MECHANISM, msg, len);
}

static bool scram_step(struct up_conn *c, const struct pgw_auth *a)
{
	char err[256];
	const char *msg;
	size_t len;

	if (c->scram == NULL) {
		up_close(c, UP_CLOSE_PROTOCOL,
		         "SASL message before SASL start");
		return false;
	}
	if (a->code == PGW_AUTH_SASL_CONTINUE) {
		if (!scram_client_final(c->scram, a->data, a->data_len, &msg,
		                        &len, err, sizeof(err))) {
			close_fmt(c, UP_CLOSE_AUTH, "SCRAM: %s", err);
			return false;
		}
		return pgw_put_sasl_response(bufferevent_get_output(c->bev),
		                             msg, len);
	}
	if (!scram_verify_server(c->scram, a->data, a->data_len, err,
	                         sizeof(err))) {
		close_fmt(c, UP_CLOSE_AUTH, "SCRAM: %s", err);
		return false;
	}
	c->scram_verified = true;
	return true;
}

/* Returns false when the connection was closed. */
static bool handle_auth(struct up_conn *c, const struct pgw_frame *f)
{
	struct pgw_auth a;
	bool ok;

	if (pgw_parse_auth(f, &a) != PGW_OK) {
		up_close(c, UP_CLOSE_PROTOCOL,
		         "malformed Authentication message");
		return false;
	}
	switch (a.code) {
	case PGW_AUTH_OK:
		/* A server that skips the SCRAM proof has not proven it knows
		 * us. */
		if (c->scram && !c->scram_verified) {
			up_close(
			    c, UP_CLOSE_AUTH,
			    "AuthenticationOk before the SCRAM server proof");
			return false;
		}
		return true;
	case PGW_AUTH_CLEARTEXT:
	case PGW_AUTH_MD5:
		ok = send_password(c, &a);
		break;
	case PGW_AUTH_SASL:
		ok = scram_start(c, &a);
		break;
	case PGW_AUTH_SASL_CONTINUE:
	case PGW_AUTH_SASL_FINAL:
		ok = scram_step(c, &a);
		break;
	default:
		close_fmt(c, UP_CLOSE_AUTH,
		          "unsupported authentication method %" PRIu32, a.code);
		return false;
	}
	if (!ok && c->state != UP_CLOSED)
		up_close(c, UP_CLOSE_INTERNAL, "out of memory during login");
	return ok;
}

static void login_done(struct up_conn *c)
{
	const char *ver = up_server_param(c, "server_version");
	char q[128];

	arm_timer(c, 0);
	scram_client_free(c->scram);
	c->scram = NULL;
	c->txn_status = 'I';
	up_set_state(c, UP_IDLE);
	conn_log(LOG_INFO, c,
	         "event=ready backend_pid=%" PRIu32 " server_version=%s tls=%s",
	         c->backend_pid, log_quote(q, sizeof(q), ver ? ver : "?"),
	         c->p.sslmode == SSLMODE_DISABLE ? "off" : "on");
	c->depth++;
	if (c->ev.on_ready)
		c->ev.on_ready(c, c->ev.arg);
	leave_callback(c);
}

static void handle_login_frame(struct up_conn *c, const struct pgw_frame *f)
{
	struct pgw_backend_key key;
	uint32_t minor, nunknown;

	switch (f->type) {
	case PGW_MSG_AUTH:
		handle_auth(c, f);
		return;
	case PGW_MSG_BACKEND_KEY:
		if (pgw_parse_backend_key(f, &key) != PGW_OK)
			break;
		c->backend_pid = key.pid;
		c->backend_secret = key.secret;
		return;
	case PGW_MSG_ERROR:
		handle_fatal(c, f, UP_CLOSE_AUTH);
		return;
	case PGW_MSG_NEGOTIATE_VERSION:
		/* We ask for 3.0 with no options: nothing to negotiate down. */
		if (pgw_parse_negotiate_version(f, &minor, &nunknown) != PGW_OK)
			break;
		up_close(c, UP_CLOSE_PROTOCOL,
		         "server does not support protocol 3.0");
		return;
	case PGW_MSG_READY:
		if (c->scram && !c->scram_verified)
			break;
		login_done(c);
		return;
	default:
		if (handle_async(c, f))
			return;
	}
	close_fmt(c, UP_CLOSE_PROTOCOL,
	          "unexpected or malformed message '%c' "
	          "during login",
	          f->type >= 0x20 && f->type < 0x7f ? f->type : '?');
}

/* ---- statements ---- */

static bool start_row_set(struct up_conn *c, const struct pgw_frame *f)
{
	uint16_t n;

	if (pgw_parse_row_description(f, NULL, 0, &n) != PGW_OK)
		return false;
	result_clear_rows(c);
	c->res.ncols = n;
	c->res.truncated = false;
	return true;
}

static bool grow_cells(struct up_conn *c, size_t need)
{
	size_t cap = c->res_cap ? c->res_cap : 64;
	char **cells;

	while (cap < need)
		cap *= 2;
	if (cap == c->res_cap)
		return true;
	cells = realloc(c->res.cells, cap * sizeof(*cells));
	if (cells == NULL)
		return false;
	c->res.cells = cells;
	c->res_cap = cap;
	return true;
}

static bool store_row(struct up_conn *c, const struct pgw_frame *f)
{
	struct pgw_value vals[64];
	uint16_t n;
	size_t base = c->res.nrows * c->res.ncols;

	if (pgw_parse_data_row(f, vals, 64, &n) != PGW_OK || n != c->res.ncols)
		return false;
	if (n > 64 || c->res_bytes + f->len > UP_MAX_RESULT_BYTES) {
		c->res.truncated = true; /* a catalog query never gets here */
		return true;
	}
	if (!grow_cells(c, base + n))
		return false;
	for (uint16_t i = 0; i < n; i++) {
		char *cell = NULL;

		if (vals[i].len >= 0) {
			cell = malloc((size_t)vals[i].len + 1);
			if (cell == NULL)
				return false;
			memcpy(cell, vals[i].data, (size_t)vals[i].len);
			cell[vals[i].len] = '\0';
		}
		c->res.cells[base + i] = cell;
	}
	c->res.nrows++;
	c->res_bytes += f->len;
	return true;
}

static bool store_complete(struct up_conn *c, const struct pgw_frame *f)
{
	const char *tag;
	uint64_t rows;

	if (pgw_parse_command_complete(f, &tag) != PGW_OK)
		return false;
	snprintf(c->res.tag, sizeof(c->res.tag), "%s", tag);
	if (pgw_tag_rows(tag, &rows))
		c->res.rows = rows;
	return true;
}

/* Queues CopyData until the socket has enough to chew on; then CopyDone. */
static void pump_copy(struct up_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	while (c->copy_streaming &&
	       evbuffer_get_length(out) < COPY_QUEUE_HIGH) {
		size_t left = evbuffer_get_length(c->copy_src);

		if (left < COPY_CHUNK && c->refill) {
			if (!c->refill(c->copy_src, c->refill_arg))
				c->refill = NULL;
			left = evbuffer_get_length(c->copy_src);
		}
		size_t n = left < COPY_CHUNK ? left : COPY_CHUNK;

		if (n == 0) {
			c->copy_streaming = false;
			c->res.copy_done = true;
			if (!pgw_put_copy_done(out))
				up_close(c, UP_CLOSE_INTERNAL, "out of memory");
			return;
		}
		if (!pgw_put_copy_data_from(out, c->copy_src, n)) {
			up_close(c, UP_CLOSE_INTERNAL, "out of memory");
			return;
		}
	}
}

static bool start_copy(struct up_conn *c, const struct pgw_frame *f)
{
	struct pgw_copy_response r;
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (pgw_parse_copy_response(f, &r) != PGW_OK)
		return false;
	if (c->copy_src == NULL || c->copy_streaming) {
		/* Someone ran a COPY FROM STDIN we have no data for. */
		return pgw_put_copy_fail(out, "lakebase-proxy: no COPY data");
	}
	c->copy_streaming = true;
	pump_copy(c);
	return true;
}

static bool store_error(struct up_conn *c, const struct pgw_frame *f)
{
	struct pgw_notice n;

	if (pgw_parse_notice(f, &n) != PGW_OK)
		return false;
	up_count_error(n.sqlstate);
	if (c->copy_src) {
		/* The server drops whatever COPY data still comes; stop
		 * sending. */
		c->copy_streaming = false;
		evbuffer_drain(c->copy_src, evbuffer_get_length(c->copy_src));
	}
	if (c->res.error.owned != NULL)
		return true; /* keep the first */
	return pgw_notice_dup(&n, &c->res.error);
}

static void finish_statement(struct up_conn *c, const struct pgw_frame *f)
{
	char status;

	if (pgw_parse_ready(f, &status) != PGW_OK) {
		up_close(c, UP_CLOSE_PROTOCOL, "malformed ReadyForQuery");
		return;
	}
	arm_timer(c, 0);
	c->res.ok = c->res.error.owned == NULL && !c->copy_streaming;
	c->res.txn_status = status;
	c->txn_status = status;
	up_set_state(c, UP_IDLE);
	c->depth++;
	finish_exec(c);
	leave_callback(c);
}

static void handle_busy_frame(struct up_conn *c, const struct pgw_frame *f)
{
	bool ok;

	switch (f->type) {
	case PGW_MSG_ROW_DESCRIPTION:
		ok = start_row_set(c, f);
		break;
	case PGW_MSG_DATA_ROW:
		ok = store_row(c, f);
		break;
	case PGW_MSG_COMMAND_COMPLETE:
		ok = store_complete(c, f);
		break;
	case PGW_MSG_EMPTY_QUERY:
		ok = f->len == 0;
		break;
	case PGW_MSG_COPY_IN:
		ok = start_copy(c, f);
		break;
	case PGW_MSG_ERROR:
		ok = store_error(c, f);
		break;
	case PGW_MSG_READY:
		finish_statement(c, f);
		return;
	default:
		/* COPY TO STDOUT and replication are not ours to speak. */
		ok = handle_async(c, f);
	}
	if (!ok && c->state != UP_CLOSED)
		close_fmt(c, UP_CLOSE_PROTOCOL,
		          "unexpected or malformed message '%c' during a query",
		          f->type >= 0x20 && f->type < 0x7f ? f->type : '?');
}

static void handle_idle_frame(struct up_conn *c, const struct pgw_frame *f)
{
	if (f->type == PGW_MSG_ERROR) {
		/* e.g. 57P01 terminating connection due to administrator
		 * command */
		handle_fatal(c, f, UP_CLOSE_SERVER);
		return;
	}
	if (!handle_async(c, f))
		close_fmt(c, UP_CLOSE_PROTOCOL,
		          "unexpected message '%c' while idle",
		          f->type >= 0x20 && f->type < 0x7f ? f->type : '?');
}

void up_set_copy_refill(struct up_conn *c, up_refill_cb refill, void *arg)
{
	c->refill = refill;
	c->refill_arg = arg;
}

bool up_exec(struct up_conn *c, const char *sql, struct evbuffer *copy_data,
             up_result_cb cb, void *arg)
{
	if (c->state != UP_IDLE || c->free_pending)
		return false;
	if (!pgw_put_query(bufferevent_get_output(c->bev), sql))
		return false;
	result_reset(c);
	c->cb = cb;
	c->cb_arg = arg;
	c->copy_src = copy_data;
	c->copy_streaming = false;
	up_set_state(c, UP_BUSY);
	arm_timer(c, c->p.query_timeout_ms);
	return true;
}

/* ---- relaying ---- */

bool up_relay_begin(struct up_conn *c, const struct up_relay *r)
{
	if (c->state != UP_IDLE || c->free_pending)
		return false;
	c->relay = *r;
	arm_timer(c, 0);
	up_set_state(c, UP_RELAY);
	/* The server may have said something while idle: look now. */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
	return true;
}

void up_relay_end(struct up_conn *c, char txn_status)
{
	if (c->state != UP_RELAY)
		return;
	memset(&c->relay, 0, sizeof(c->relay));
	c->txn_status = txn_status;
	bufferevent_enable(c->bev, EV_READ);
	up_set_state(c, UP_IDLE);
}

struct evbuffer *up_relay_input(struct up_conn *c)
{
	return bufferevent_get_input(c->bev);
}

struct evbuffer *up_relay_output(struct up_conn *c)
{
	return bufferevent_get_output(c->bev);
}

void up_relay_read(struct up_conn *c, bool on)
{
	if (c->state != UP_RELAY)
		return;
	if (on)
		bufferevent_enable(c->bev, EV_READ);
	else
		bufferevent_disable(c->bev, EV_READ);
}

/* ---- socket events ---- */

static void up_read_cb(struct bufferevent *bev, void *arg)
{
	struct up_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct pgw_frame f;
	enum pgw_rc rc;

	c->progress_ms = clock_now_ms();
	if (c->state == UP_BUSY)
		arm_timer(c, c->p.query_timeout_ms); /* progress */
	c->depth++;
	while (c->state != UP_CLOSED && !c->free_pending) {
		if (c->state == UP_RELAY) {
			c->relay.on_input(c, c->relay.arg);
			/* still relaying: what is left waits for the owner */
			if (c->state == UP_RELAY ||
			    evbuffer_get_length(in) == 0)
				break;
		}
		rc = pgw_frame_next(in, PGW_MAX_BACKEND_MESSAGE, &f);
		if (rc == PGW_AGAIN)
			break;
		if (rc == PGW_ERROR) {
			up_close(c, UP_CLOSE_PROTOCOL,
			         "malformed message length from the server");
			break;
		}
		if (c->state == UP_LOGIN)
			handle_login_frame(c, &f);
		else if (c->state == UP_BUSY)
			handle_busy_frame(c, &f);
		else
			handle_idle_frame(c, &f);
		/* A handler may have closed c, which freed the bufferevent. */
		if (c->state != UP_CLOSED)
			pgw_frame_consume(in, &f);
	}
	leave_callback(c);
}

static void up_write_cb(struct bufferevent *bev, void *arg)
{
	struct up_conn *c = arg;

	if (c->state == UP_RELAY && c->relay.on_drained != NULL) {
		c->depth++;
		c->relay.on_drained(c, c->relay.arg);
		leave_callback(c);
		return;
	}
	if (c->state != UP_BUSY || !c->copy_streaming)
		return;
	/* The server took what we sent: it is alive, if slow. */
	c->progress_ms = clock_now_ms();
	arm_timer(c, c->p.query_timeout_ms); /* progress */
	pump_copy(c);
}

static void send_startup(struct up_conn *c)
{
	const char *params[] = {
	    "user", c->p.user, "database", c->p.dbname, "application_name",
	    c->p.application_name, "client_encoding", "UTF8", "DateStyle",
	    "ISO",
	    /* "already exists, skipping" per batch is noise */
	    c->p.notices ? NULL : "client_min_messages", "warning", NULL};

	up_set_state(c, UP_LOGIN);
	if (c->cancel_only) {
		/* The server reads it and hangs up: EOF ends the connection. */
		if (!pgw_put_cancel_request(bufferevent_get_output(c->bev),
		                            c->cancel_pid, c->cancel_secret))
			up_close(c, UP_CLOSE_INTERNAL, "out of memory");
		return;
	}
	if (!pgw_put_startup(bufferevent_get_output(c->bev), params))
		up_close(c, UP_CLOSE_INTERNAL, "out of memory");
}

static void bev_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct up_conn *c = arg;
	char err[300];

	if (what & BEV_EVENT_CONNECTED) {
		/* The TLS handshake finished and the certificate checked out.
		 */
		send_startup(c);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		up_close(c, UP_CLOSE_SERVER, "server closed the connection");
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = bufferevent_get_openssl_error(bev);

		if (c->state == UP_TLS_HANDSHAKE || e != 0) {
			SSL *ssl = bufferevent_openssl_get_ssl(bev);

			if (e != 0 && ssl &&
			    SSL_get_verify_result(ssl) == X509_V_OK) {
				char reason[256];

				ERR_error_string_n(e, reason, sizeof(reason));
				snprintf(err, sizeof(err), "TLS error: %s",
				         reason);
			} else {
				tls_error_text(ssl, err, sizeof(err));
			}
			up_close(c, UP_CLOSE_TLS, err);
			return;
		}
		snprintf(err, sizeof(err), "socket error: %s",
		         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		up_close(c, UP_CLOSE_SERVER, err);
	}
}

/* ---- connecting ---- */

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct up_conn *c = arg;

	switch (c->state) {
	case UP_RESOLVING:
	case UP_CONNECTING:
		up_close(c, UP_CLOSE_TIMEOUT, "connect timeout");
		break;
	case UP_SSL_REQUEST:
	case UP_TLS_HANDSHAKE:
	case UP_LOGIN:
		close_fmt(c, UP_CLOSE_TIMEOUT, "login timeout in state %s",
		          up_state_name(c->state));
		break;
	case UP_BUSY:
		/* Closing aborts the server's transaction: no half batch stays.
		 */
		up_close(c, UP_CLOSE_TIMEOUT, "query timeout");
		break;
	default:
		break;
	}
}

static void set_socket_options(struct up_conn *c, evutil_socket_t fd)
{
	int one = 1;
	int idle = (int)c->p.keepalive_idle_s;
	int intvl = (int)c->p.keepalive_interval_s,
	    cnt = (int)c->p.keepalive_count;
	unsigned user_timeout = c->p.tcp_user_timeout_ms;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/*
	 * A server that stops acknowledging what we sent (a blackhole, a dead
	 * host) ends the connection after tcp_user_timeout_ms instead of the
	 * kernel's ~15 minutes of retransmission, whatever the query timeout.
	 */
	if (user_timeout > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout,
		           sizeof(user_timeout));
	if (idle <= 0)
		return;
	/* An idle connection to a dead server is noticed within idle +
	 * interval * count seconds. */
	if (intvl <= 0)
		intvl = 10;
	if (cnt <= 0)
		cnt = 3;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static void use_bufferevent(struct up_conn *c, struct bufferevent *bev)
{
	c->bev = bev;
	c->fd = -1; /* the bufferevent owns it now */
	bufferevent_set_max_single_read(bev, MAX_SINGLE_IO);
	bufferevent_set_max_single_write(bev, MAX_SINGLE_IO);
	bufferevent_setwatermark(bev, EV_WRITE, COPY_QUEUE_LOW, 0);
	bufferevent_setcb(bev, up_read_cb, up_write_cb, bev_event_cb, c);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void start_tls(struct up_conn *c)
{
	char err[300];
	SSL *ssl = tls_client_ssl_new(c->p.ssl_ctx, c->p.sslmode, c->p.host,
	                              err, sizeof(err));
	struct bufferevent *bev;

	if (ssl == NULL) {
		up_close(c, UP_CLOSE_TLS, err);
		return;
	}
	bev = bufferevent_openssl_socket_new(c->base, c->fd, ssl,
	                                     BUFFEREVENT_SSL_CONNECTING,
	                                     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		up_close(c, UP_CLOSE_INTERNAL, "cannot create TLS bufferevent");
		return;
	}
	/* PostgreSQL may close without close_notify; that is just EOF. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	up_set_state(c, UP_TLS_HANDSHAKE);
	use_bufferevent(c, bev);
}

static void ssl_answer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct up_conn *c = arg;
	unsigned char answer, extra;
	ssize_t n = recv(fd, &answer, 1, 0);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	event_free(c->io_ev);
	c->io_ev = NULL;
	if (n <= 0) {
		up_close(c, UP_CLOSE_SERVER, "server closed during SSLRequest");
		return;
	}
	if (answer == 'N') {
		up_close(c, UP_CLOSE_TLS,
		         "server does not support TLS "
		         "(sslmode requires it)");
		return;
	}
	if (answer != 'S') {
		up_close(c, UP_CLOSE_PROTOCOL,
		         "unexpected answer to SSLRequest");
		return;
	}
	/*
	 * Bytes after 'S' would be plaintext injected before the handshake
	 * (CVE-2021-23222 in libpq): refuse rather than read them as TLS.
	 */
	if (recv(fd, &extra, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
		up_close(c, UP_CLOSE_PROTOCOL,
		         "server sent unencrypted data after accepting TLS");
		return;
	}
	start_tls(c);
}

static void tcp_connected(struct up_conn *c)
{
	arm_timer(c, c->p.login_timeout_ms);
	if (c->p.sslmode == SSLMODE_DISABLE) {
		struct bufferevent *bev = bufferevent_socket_new(
		    c->base, c->fd, BEV_OPT_CLOSE_ON_FREE);

		if (bev == NULL) {
			up_close(c, UP_CLOSE_INTERNAL, "out of memory");
			return;
		}
		use_bufferevent(c, bev);
		send_startup(c);
		return;
	}
	unsigned char req[8];
	size_t n = encode_fixed(pgw_put_ssl_request, req, sizeof(req));

	/* A fresh socket takes 8 bytes at once; anything else is a failure. */
	if (n == 0 || send(c->fd, req, n, MSG_NOSIGNAL) != (ssize_t)n) {
		close_fmt(c, UP_CLOSE_CONNECT, "sending SSLRequest: %s",
		          strerror(errno));
		return;
	}
	up_set_state(c, UP_SSL_REQUEST);
	c->io_ev =
	    event_new(c->base, c->fd, EV_READ | EV_PERSIST, ssl_answer_cb, c);
	if (c->io_ev == NULL || event_add(c->io_ev, NULL) != 0)
		up_close(c, UP_CLOSE_INTERNAL, "out of memory");
}

static void try_next_address(struct up_conn *c);

static void connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct up_conn *c = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	event_free(c->io_ev);
	c->io_ev = NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err != 0) {
		snprintf(c->last_error, sizeof(c->last_error), "connect: %s",
		         strerror(err));
		conn_log(LOG_INFO, c, "event=connect_failed error=\"%s\"",
		         strerror(err));
		evutil_closesocket(c->fd);
		c->fd = -1;
		try_next_address(c);
		return;
	}
	tcp_connected(c);
}

static bool open_socket(struct up_conn *c, const struct evutil_addrinfo *ai)
{
	evutil_socket_t fd = socket(ai->ai_family, SOCK_STREAM, IPPROTO_TCP);

	if (fd < 0 || evutil_make_socket_nonblocking(fd) != 0 ||
	    evutil_make_socket_closeonexec(fd) != 0) {
		snprintf(c->last_error, sizeof(c->last_error), "socket: %s",
		         strerror(errno));
		if (fd >= 0)
			evutil_closesocket(fd);
		return false;
	}
	set_socket_options(c, fd);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
	    errno != EINPROGRESS) {
		snprintf(c->last_error, sizeof(c->last_error), "connect: %s",
		         strerror(errno));
		evutil_closesocket(fd);
		return false;
	}
	c->fd = fd;
	return true;
}

static void format_addr(const struct evutil_addrinfo *ai, char *buf,
                        size_t size)
{
	const void *a = NULL;

	if (ai->ai_family == AF_INET)
		a = &((const struct sockaddr_in *)ai->ai_addr)->sin_addr;
	else if (ai->ai_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
	if (a == NULL ||
	    inet_ntop(ai->ai_family, a, buf, (socklen_t)size) == NULL)
		snprintf(buf, size, "?");
}

/* Tries each address of the name in turn, each with its own timeout. */
static void try_next_address(struct up_conn *c)
{
	while (c->next_addr) {
		const struct evutil_addrinfo *ai = c->next_addr;
		char addr[64] = "?";

		c->next_addr = ai->ai_next;
		format_addr(ai, addr, sizeof(addr));
		conn_debug(c, "event=connecting addr=%s", addr);
		if (!open_socket(c, ai))
			continue;
		up_set_state(c, UP_CONNECTING);
		c->io_ev = event_new(c->base, c->fd, EV_WRITE, connect_cb, c);
		if (c->io_ev == NULL || event_add(c->io_ev, NULL) != 0) {
			up_close(c, UP_CLOSE_INTERNAL, "out of memory");
			return;
		}
		arm_timer(c, c->p.connect_timeout_ms);
		return;
	}
	close_fmt(c, UP_CLOSE_CONNECT, "cannot connect to %s port %u: %s",
	          c->p.host, (unsigned)c->p.port,
	          c->last_error[0] ? c->last_error : "no address");
}

static void resolved_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct up_conn *c = arg;

	if (result == EVUTIL_EAI_CANCEL)
		return; /* c may be gone: touch nothing */
	c->dns_req = NULL;
	if (result != 0) {
		close_fmt(c, UP_CLOSE_RESOLVE, "cannot resolve %s: %s",
		          c->p.host, evutil_gai_strerror(result));
		return;
	}
	c->addrs = res;
	c->next_addr = res;
	try_next_address(c);
}

struct up_conn *up_connect(struct event_base *base, struct evdns_base *dns,
                           const struct up_params *params, uint64_t id,
                           const struct up_events *events)
{
	struct up_conn *c = calloc(1, sizeof(*c));
	struct evutil_addrinfo hints = {0};
	char port[8];

	if (c == NULL)
		return NULL;
	c->id = id;
	c->base = base;
	c->dns = dns;
	c->p = *params;
	c->ev = *events;
	c->fd = -1;
	c->state = UP_RESOLVING;
	c->progress_ms = clock_now_ms();
	c->timer = evtimer_new(base, timer_cb, c);
	c->closed_ev = event_new(base, -1, 0, closed_cb, c);
	if (c->timer == NULL || c->closed_ev == NULL) {
		destroy(c);
		return NULL;
	}
	conn_debug(c, "event=state from=none to=resolving host=%s", c->p.host);
	arm_timer(c, c->p.connect_timeout_ms);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	snprintf(port, sizeof(port), "%u", (unsigned)params->port);
	/* May call back at once (an IP literal, /etc/hosts): that is fine. */
	c->depth++;
	c->dns_req =
	    evdns_getaddrinfo(dns, c->p.host, port, &hints, resolved_cb, c);
	leave_callback(c);
	return c;
}

/* The end of a cancel connection: the server hung up, or it failed. */
static void cancel_closed(struct up_conn *c, void *arg)
{
	if (c->cancel_done != NULL)
		c->cancel_done(c, c->cancel_arg);
}

struct up_conn *up_cancel(struct event_base *base, struct evdns_base *dns,
                          const struct up_params *params, uint64_t id,
                          uint32_t pid, uint32_t secret,
                          void (*done)(struct up_conn *c, void *arg), void *arg)
{
	struct up_events ev = {.on_closed = cancel_closed};
	struct up_conn *c = up_connect(base, dns, params, id, &ev);

	if (c == NULL)
		return NULL;
	c->cancel_only = true;
	c->cancel_pid = pid;
	c->cancel_secret = secret;
	c->cancel_done = done;
	c->cancel_arg = arg;
	return c;
}
