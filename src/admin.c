/* admin.c: /metrics, /healthz and /readyz over libevent's evhttp. */
#include "admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "secret.h"
#include "timer.h"

/* A scrape or probe is small; anything bigger is not ours. */
#define ADMIN_MAX_HEADERS 8192
#define ADMIN_MAX_BODY    0
/* File descriptors the admin port leaves to the ingest listener (and the
 * sessions it accepts) when the process nears RLIMIT_NOFILE. */
#define ADMIN_FD_RESERVE 32

/*
 * One accepted connection. evhttp owns it; we make its bufferevent
 * (admin_bev_cb) and hold a reference to it, so that it stays readable
 * until we learn, at admission, which evhttp connection uses it; from then
 * on that connection's close callback (conn_gone) tells us it is gone:
 *
 *   ADMITTING  until the loop next turns (evhttp has set it up by then)
 *   OPEN       counted against max_connections; a deadline per request
 *   REFUSED    over the cap or the fd reserve: its request, if it comes
 *              within REFUSE_LINGER_MS, is answered 503 and the
 *              connection closed; else it is cut
 *   CLOSING    cut (socket shut down); evhttp is about to free it
 */
enum admin_conn_state { AC_ADMITTING, AC_OPEN, AC_REFUSED, AC_CLOSING };

/* A refused client's request is read and answered, so that it learns why
 * (closing with its bytes unread would reset the connection), but it gets
 * this long at most. */
#define REFUSE_LINGER_MS 1000u

struct admin_conn {
	TAILQ_ENTRY(admin_conn) link;
	struct admin *admin;     /* NULL once the admin is freed */
	struct bufferevent *bev; /* evhttp's, owns the socket; one ref ours */
	struct event *deadline;  /* admission, then the request deadline */
	enum admin_conn_state state;
};
TAILQ_HEAD(admin_conn_list, admin_conn);

struct admin {
	struct event_base *base;
	struct evhttp *http;
	char *token; /* owned copy; NULL = /metrics is open */
	struct admin_probe probe;
	struct admin_conn_list conns; /* every connection not yet gone */
	unsigned nconns;              /* of them, OPEN */
	unsigned max_conns;
	unsigned request_timeout_ms;
	long fd_limit; /* refuse a connection whose fd is at or above */
	uint64_t refused;
};

static void reply_text(struct evhttp_request *req, int code, const char *reason,
                       const char *text)
{
	struct evbuffer *body = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (body == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	evbuffer_add(body, text, strlen(text));
	evhttp_send_reply(req, code, reason, body);
	evbuffer_free(body);
}

/* How many headers named name the request has (names are case-blind). */
static unsigned count_headers(struct evhttp_request *req, const char *name)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	struct evkeyval *kv;
	unsigned n = 0;

	TAILQ_FOREACH(kv, h, next)
	{
		if (strcasecmp(kv->key, name) == 0)
			n++;
	}
	return n;
}

/*
 * "Bearer <token>", the scheme in any case (RFC 7235), one or more spaces.
 * A wrong guess tells nothing, not even how long the token is.
 */
static bool admin_token_ok(const struct admin *a, struct evhttp_request *req)
{
	const char *auth;

	if (a->token == NULL)
		return true;
	auth = evhttp_find_header(evhttp_request_get_input_headers(req),
	                          "Authorization");
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
		return false;
	auth += 7;
	while (*auth == ' ')
		auth++;
	return secret_equal(a->token, auth);
}

static void serve_metrics(struct admin *a, struct evhttp_request *req)
{
	struct evbuffer *body;

	/* Which one would count is anyone's guess: refuse to guess. */
	if (count_headers(req, "Authorization") > 1) {
		reply_text(req, HTTP_BADREQUEST, "Bad Request",
		           "more than one Authorization header\n");
		return;
	}
	if (!admin_token_ok(a, req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		                  "WWW-Authenticate", "Bearer");
		reply_text(req, 401, "Unauthorized",
		           "missing or wrong bearer token\n");
		return;
	}
	body = evbuffer_new();
	if (body == NULL || !mt_render(body)) {
		if (body)
			evbuffer_free(body);
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req),
	                  "Content-Type",
	                  "text/plain; version=0.0.4; "
	                  "charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, "OK", body);
	evbuffer_free(body);
}

static void serve_ready(struct admin *a, struct evhttp_request *req)
{
	char why[256] = "", text[300];

	if (a->probe.ready(why, sizeof(why), a->probe.arg)) {
		reply_text(req, HTTP_OK, "OK", "ready\n");
		return;
	}
	snprintf(text, sizeof(text), "not ready: %s\n", why);
	reply_text(req, 503, "Service Unavailable", text);
}

/* ---- connections: a cap, a whole-request deadline, a reserve of fds ---- */

static const char *const ac_state_names[] = {"admitting", "open", "refused",
                                             "closing"};

static void set_conn_state(struct admin_conn *ac, enum admin_conn_state to)
{
	log_debug("event=admin_conn_state from=%s to=%s",
	          ac_state_names[ac->state], ac_state_names[to]);
	if (ac->admin != NULL && ac->state == AC_OPEN)
		ac->admin->nconns--;
	if (ac->admin != NULL && to == AC_OPEN)
		ac->admin->nconns++;
	ac->state = to;
}

static void arm(struct admin_conn *ac, unsigned ms)
{
	timer_add_ms(ac->deadline, ms);
}

/*
 * Ends a connection whatever evhttp is doing with it: its socket reads EOF
 * and fails writes from now on, so evhttp frees it (and conn_gone runs).
 */
static void cut(struct admin_conn *ac)
{
	evutil_socket_t fd = bufferevent_getfd(ac->bev);

	set_conn_state(ac, AC_CLOSING);
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

static void refuse(struct admin_conn *ac, const char *why)
{
	struct admin *a = ac->admin;

	set_conn_state(ac, AC_REFUSED);
	/* One line per hundred: a flood must not flood the log too. */
	if (a->refused++ % 100 == 0)
		log_warn(
		    "event=admin_refused reason=%s open=%u refused=%" PRIu64,
		    why, a->nconns, a->refused);
	arm(ac, REFUSE_LINGER_MS);
}

/* Unlinks and frees ac, dropping our reference to its bufferevent. */
static void forget(struct admin_conn *ac)
{
	if (ac->admin != NULL) {
		set_conn_state(ac, AC_CLOSING);
		TAILQ_REMOVE(&ac->admin->conns, ac, link);
	}
	bufferevent_decref(ac->bev);
	event_free(ac->deadline);
	free(ac);
}

/* evhttp is freeing the connection (its bufferevent goes with it). */
static void conn_gone(struct evhttp_connection *evcon, void *arg)
{
	forget(arg);
}

static void admit(struct admin_conn *ac)
{
	struct admin *a = ac->admin;
	evutil_socket_t fd = bufferevent_getfd(ac->bev);
	bufferevent_event_cb event_cb;
	void *evcon;

	/* evhttp passes its connection to the bufferevent's callbacks; none
	 * means it freed the connection already. */
	bufferevent_getcb(ac->bev, NULL, NULL, &event_cb, &evcon);
	if (event_cb == NULL || evcon == NULL) {
		forget(ac);
		return;
	}
	evhttp_connection_set_closecb(evcon, conn_gone, ac);
	if (a->nconns >= a->max_conns) {
		refuse(ac, "max_connections");
	} else if (a->fd_limit > 0 && fd >= a->fd_limit) {
		refuse(ac, "fd_reserve");
	} else {
		set_conn_state(ac, AC_OPEN);
		arm(ac, a->request_timeout_ms);
	}
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct admin_conn *ac = arg;

	if (ac->state == AC_ADMITTING) {
		admit(ac);
	} else if (ac->state == AC_OPEN) {
		log_info("event=admin_timeout timeout_ms=%u",
		         ac->admin->request_timeout_ms);
		cut(ac);
	} else if (ac->state == AC_REFUSED) {
		cut(ac);
	}
}

/*
 * evhttp asks for each accepted connection's bufferevent before it attaches
 * the socket; admission waits for the next turn of the loop (arm 0).
 * NULL (out of memory) lets evhttp make its own, uncounted.
 */
static struct bufferevent *admin_bev_cb(struct event_base *base, void *arg)
{
	struct admin *a = arg;
	struct admin_conn *ac = calloc(1, sizeof(*ac));

	if (ac == NULL)
		return NULL;
	ac->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	ac->deadline = evtimer_new(base, deadline_cb, ac);
	if (ac->bev == NULL || ac->deadline == NULL) {
		if (ac->bev != NULL)
			bufferevent_free(ac->bev);
		if (ac->deadline != NULL)
			event_free(ac->deadline);
		free(ac);
		return NULL;
	}
	bufferevent_incref(ac->bev);
	ac->admin = a;
	ac->state = AC_ADMITTING;
	TAILQ_INSERT_TAIL(&a->conns, ac, link);
	arm(ac, 0);
	return ac->bev;
}

static struct admin_conn *conn_of(struct admin *a, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev;
	struct admin_conn *ac;

	if (evcon == NULL)
		return NULL;
	bev = evhttp_connection_get_bufferevent(evcon);
	TAILQ_FOREACH(ac, &a->conns, link)
	{
		if (ac->bev == bev)
			return ac;
	}
	return NULL;
}

/*
 * A request came whole. On an open connection its reply and the next
 * request get a new deadline (true); on a refused one it is answered 503,
 * and evhttp closes the connection once that is written (false).
 */
static bool conn_took_request(struct admin *a, struct evhttp_request *req)
{
	struct admin_conn *ac = conn_of(a, req);

	/* The whole request may come before the admission timer. */
	if (ac != NULL && ac->state == AC_ADMITTING)
		admit(ac);
	if (ac == NULL || ac->state == AC_OPEN) {
		if (ac != NULL)
			arm(ac, a->request_timeout_ms);
		return true;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Connection",
	                  "close");
	reply_text(req, 503, "Service Unavailable",
	           "too many admin connections\n");
	return false;
}

/* Admission stops this far below RLIMIT_NOFILE; 0 = no limit known. */
static long fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 ||
	    rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)INT_MAX)
		return 0;
	if (rl.rlim_cur > 2 * ADMIN_FD_RESERVE)
		return (long)rl.rlim_cur - ADMIN_FD_RESERVE;
	return (long)rl.rlim_cur / 2;
}

static void handle(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (!conn_took_request(a, req))
		return;
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		                  "Allow", "GET, HEAD");
		reply_text(req, 405, "Method Not Allowed",
		           "GET or HEAD only\n");
		return;
	}
	if (path == NULL) {
		reply_text(req, HTTP_BADREQUEST, "Bad Request", "bad URI\n");
		return;
	}
	if (strcmp(path, "/healthz") == 0)
		reply_text(req, HTTP_OK, "OK", "ok\n");
	else if (strcmp(path, "/readyz") == 0)
		serve_ready(a, req);
	else if (strcmp(path, "/metrics") == 0)
		serve_metrics(a, req);
	else
		reply_text(req, HTTP_NOTFOUND, "Not Found",
		           "not found: try /metrics, /healthz or /readyz\n");
}

/* The address really bound (the port may have been 0), for the log. */
static void log_bound(struct evhttp_bound_socket *bs, const char *listen,
                      bool token)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	int fd = (int)evhttp_bound_socket_get_fd(bs);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
			port = ntohs(in->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &in6->sin6_addr, host,
			          sizeof(host));
			port = ntohs(in6->sin6_port);
		}
	}
	log_info("event=admin_listening listen=%s addr=%s%s%s:%u auth=%s",
	         listen, ss.ss_family == AF_INET6 ? "[" : "", host,
	         ss.ss_family == AF_INET6 ? "]" : "", port,
	         token ? "token" : "none");
}

struct admin *admin_new(struct event_base *base, const struct cfg_admin *cfg,
                        const struct admin_probe *probe, char *err,
                        size_t errlen)
{
	struct admin *a;
	struct na_listen addr;
	struct evhttp_bound_socket *bs;
	struct timeval idle = {
	    .tv_sec = (time_t)(cfg->request_timeout_ms / 1000u),
	    .tv_usec = (suseconds_t)(cfg->request_timeout_ms % 1000u) * 1000};
	char why[300];

	if (errlen > 0)
		err[0] = '\0';
	if (cfg->listen == NULL)
		return NULL;
	if (!na_parse_listen(cfg->listen, &addr, why, sizeof(why)) ||
	    addr.is_unix) {
		snprintf(err, errlen, "[admin] listen %s: %s", cfg->listen,
		         addr.is_unix ? "must be host:port" : why);
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->base = base;
	a->probe = *probe;
	TAILQ_INIT(&a->conns);
	a->max_conns = cfg->max_connections;
	a->request_timeout_ms = cfg->request_timeout_ms;
	a->fd_limit = fd_limit();
	if (!secret_replace(&a->token, cfg->auth_token))
		goto oom;
	a->http = evhttp_new(base);
	if (a->http == NULL)
		goto oom;
	/* Methods evhttp knows reach handle(), which answers 405 for all
	 * but GET and HEAD; evhttp itself would say 501. */
	evhttp_set_allowed_methods(
	    a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
	                 EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                 EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	/* Idle between bytes; the whole request has its deadline (arm). */
	evhttp_set_timeout_tv(a->http, &idle);
	evhttp_set_bevcb(a->http, admin_bev_cb, a);
	evhttp_set_max_headers_size(a->http, ADMIN_MAX_HEADERS);
	evhttp_set_max_body_size(a->http, ADMIN_MAX_BODY);
	evhttp_set_gencb(a->http, handle, a);
	bs = evhttp_bind_socket_with_handle(a->http, addr.host, addr.port);
	if (bs == NULL) {
		snprintf(err, errlen, "cannot listen on [admin] listen %s: %s",
		         cfg->listen, strerror(errno));
		admin_free(a);
		return NULL;
	}
	log_bound(bs, cfg->listen, a->token != NULL);
	return a;
oom:
	snprintf(err, errlen, "out of memory");
	admin_free(a);
	return NULL;
}

bool admin_set_token(struct admin *a, const char *token)
{
	return secret_replace(&a->token, token);
}

void admin_free(struct admin *a)
{
	struct admin_conn *ac;

	if (a == NULL)
		return;
	/* Connections past admission go through conn_gone here ... */
	if (a->http)
		evhttp_free(a->http);
	/* ... and those still admitting are ours alone now. */
	while ((ac = TAILQ_FIRST(&a->conns)) != NULL)
		forget(ac);
	secret_free(a->token);
	free(a);
}
