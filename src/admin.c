/* admin.c: /metrics, /healthz and /readyz over libevent's evhttp. */
#include "admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "secret.h"

/* A scrape or probe is small; anything bigger or slower is not ours. */
#define ADMIN_TIMEOUT_S   10
#define ADMIN_MAX_HEADERS 8192
#define ADMIN_MAX_BODY    0

struct admin {
	struct evhttp *http;
	char *token; /* owned copy; NULL = /metrics is open */
	struct admin_probe probe;
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

/* A wrong guess tells nothing, not even how long the token is. */
static bool admin_token_ok(const struct admin *a, struct evhttp_request *req)
{
	const char *auth;

	if (a->token == NULL)
		return true;
	auth = evhttp_find_header(evhttp_request_get_input_headers(req),
	                          "Authorization");
	if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0)
		return false;
	return secret_equal(a->token, auth + 7);
}

static void serve_metrics(struct admin *a, struct evhttp_request *req)
{
	struct evbuffer *body;

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

static void handle(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;

	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

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
	a->probe = *probe;
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
	evhttp_set_timeout(a->http, ADMIN_TIMEOUT_S);
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
	if (a == NULL)
		return;
	if (a->http)
		evhttp_free(a->http);
	secret_free(a->token);
	free(a);
}
