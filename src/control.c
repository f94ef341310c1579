/* control.c: Databricks host lookup and OAuth database credentials over libcurl
 * multi on libevent. */
#include "control.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "clock.h"
#include "control_parse.h"
#include "log.h"
#include "rng.h"
#include "secret.h"
#include "strutil.h"
#include "timer.h"

/* Answers are small JSON objects; anything bigger is not one of them. */
#define MAX_BODY_BYTES (1024u * 1024u)

enum ctl_step { STEP_NONE, STEP_WS_TOKEN, STEP_HOST, STEP_CREDENTIAL };

static const char *const step_names[] = {"none", "workspace_token", "host",
                                         "credential"};

/* The one API call in flight. */
struct ctl_req {
	enum ctl_step step;
	CURL *easy;
	struct curl_slist *headers;
	struct evbuffer *body;
	bool too_big;
	bool has_retry_after;
	unsigned retry_after_s;
	char curl_err[CURL_ERROR_SIZE];
};

struct ctl {
	struct event_base *base;
	const struct cfg_lakebase *cfg; /* &own */
	struct cfg_lakebase own;        /* strings copied: a reload frees its */
	struct ctl_events ev;
	bool once;
	bool stopped; /* once mode: finished, no more calls */
	CURLM *multi;
	struct event *curl_timer; /* curl's own timeouts */
	struct event *step_timer; /* the next call: a retry or a refresh */
	struct ctl_req *req;
	char *api; /* workspace_host without trailing '/' */

	char *ws_token;         /* OAuth workspace token (M2M) */
	uint64_t ws_refresh_ms; /* monotonic: fetch a new one after */
	char *host;
	char *cred;
	int64_t cred_expires_ms;  /* wall clock */
	uint64_t cred_refresh_ms; /* monotonic */
	bool want_host;           /* re-resolution asked for */
	bool want_cred;
	bool expired_logged;
	unsigned failures; /* consecutive failed calls */
	uint64_t rng;
};

static bool is_m2m(const struct ctl *c)
{
	return c->cfg->client_id != NULL;
}

static void run_next(struct ctl *c);
static void finish_request(struct ctl *c, CURLcode rc);

/* ---- libcurl on libevent ---- */

static void ctl_check_done(struct ctl *c)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
		if (msg->msg == CURLMSG_DONE && c->req != NULL &&
		    msg->easy_handle == c->req->easy) {
			CURLcode rc = msg->data.result;

			curl_multi_remove_handle(c->multi, c->req->easy);
			finish_request(c, rc);
		}
	}
}

static void socket_ready(evutil_socket_t fd, short what, void *arg)
{
	struct ctl *c = arg;
	int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) |
	            (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
	int running;

	curl_multi_socket_action(c->multi, fd, flags, &running);
	ctl_check_done(c);
}

static void curl_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct ctl *c = arg;
	int running;

	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	ctl_check_done(c);
}

/* curl says which socket to watch for what; one persistent event each. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp,
                     void *socketp)
{
	struct ctl *c = userp;
	struct event *ev = socketp;
	short kind = EV_PERSIST;

	if (ev != NULL)
		event_free(ev);
	if (what == CURL_POLL_REMOVE) {
		curl_multi_assign(c->multi, s, NULL);
		return 0;
	}
	kind |= (what & CURL_POLL_IN ? EV_READ : 0) |
	        (what & CURL_POLL_OUT ? EV_WRITE : 0);
	ev = event_new(c->base, s, kind, socket_ready, c);
	if (ev == NULL || event_add(ev, NULL) != 0) {
		if (ev)
			event_free(ev);
		curl_multi_assign(c->multi, s, NULL);
		return -1;
	}
	curl_multi_assign(c->multi, s, ev);
	return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct ctl *c = userp;

	if (timeout_ms < 0)
		evtimer_del(c->curl_timer);
	else
		timer_add_ms(c->curl_timer, (uint64_t)timeout_ms);
	return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct ctl_req *r = arg;
	size_t len = size * n;

	if (evbuffer_get_length(r->body) + len > MAX_BODY_BYTES) {
		r->too_big = true;
		return 0; /* curl fails the transfer */
	}
	return evbuffer_add(r->body, data, len) == 0 ? len : 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	static const char name[] = "retry-after:";
	struct ctl_req *r = arg;
	size_t len = size * n, vlen;
	char value[64];
	const char *v;

	if (len <= sizeof(name) - 1 ||
	    strncasecmp(data, name, sizeof(name) - 1) != 0)
		return len;
	v = data + sizeof(name) - 1;
	vlen = len - (sizeof(name) - 1);
	while (vlen > 0 && (*v == ' ' || *v == '\t'))
		v++, vlen--;
	while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
	                    v[vlen - 1] == ' '))
		vlen--;
	if (vlen >= sizeof(value))
		return len;
	memcpy(value, v, vlen);
	value[vlen] = '\0';
	r->has_retry_after = ctl_parse_retry_after(
	    value, clock_wall_ms() / 1000, &r->retry_after_s);
	return len;
}

/* ---- building a call ---- */

static void ctl_free_req(struct ctl_req *r)
{
	if (r == NULL)
		return;
	if (r->easy)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	if (r->body)
		evbuffer_free(r->body);
	free(r);
}

static bool add_header(struct ctl_req *r, const char *h)
{
	struct curl_slist *l = curl_slist_append(r->headers, h);

	if (l == NULL)
		return false;
	r->headers = l;
	return true;
}

static bool add_bearer(struct ctl_req *r, const char *token)
{
	size_t n = strlen(token) + 32;
	char *h = malloc(n);
	bool ok;

	if (h == NULL)
		return false;
	snprintf(h, n, "Authorization: Bearer %s", token);
	ok = add_header(r, h);
	secret_free(h);
	return ok;
}

/* The options every call shares: TLS checked, https only, time-limited. */
static bool set_common(struct ctl *c, struct ctl_req *r, const char *url)
{
	CURL *e = r->easy;

	return curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK &&
	       curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https") ==
	           CURLE_OK &&
	       curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
	       curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
	       (c->cfg->ca_file == NULL ||
	        curl_easy_setopt(e, CURLOPT_CAINFO, c->cfg->ca_file) ==
	            CURLE_OK) &&
	       curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
	       curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	                        (long)c->cfg->connect_timeout_ms) == CURLE_OK &&
	       curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
	                        (long)c->cfg->request_timeout_ms) == CURLE_OK &&
	       curl_easy_setopt(e, CURLOPT_USERAGENT,
	                        "lakebase-proxy/" LBP_VERSION) == CURLE_OK &&
	       curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) ==
	           CURLE_OK &&
	       curl_easy_setopt(e, CURLOPT_WRITEDATA, r) == CURLE_OK &&
	       curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) ==
	           CURLE_OK &&
	       curl_easy_setopt(e, CURLOPT_HEADERDATA, r) == CURLE_OK &&
	       curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curl_err) ==
	           CURLE_OK &&
	       add_header(r, "Accept: application/json");
}

static bool setup_ws_token(struct ctl *c, struct ctl_req *r, char *url,
                           size_t urllen)
{
	CURL *e = r->easy;

	snprintf(url, urllen, "%s/oidc/v1/token", c->api);
	return set_common(c, r, url) &&
	       curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) ==
	           CURLE_OK &&
	       curl_easy_setopt(e, CURLOPT_USERNAME, c->cfg->client_id) ==
	           CURLE_OK &&
	       curl_easy_setopt(e, CURLOPT_PASSWORD, c->cfg->client_secret) ==
	           CURLE_OK &&
	       curl_easy_setopt(
	           e, CURLOPT_COPYPOSTFIELDS,
	           "grant_type=client_credentials&scope=all-apis") == CURLE_OK;
}

static const char *workspace_token(const struct ctl *c)
{
	return is_m2m(c) ? c->ws_token : c->cfg->token;
}

static bool setup_host(struct ctl *c, struct ctl_req *r, char *url,
                       size_t urllen)
{
	/* config allows only path-safe names, so no escaping is needed */
	if (c->cfg->instance_name != NULL)
		snprintf(url, urllen, "%s/api/2.0/database/instances/%s",
		         c->api, c->cfg->instance_name);
	else
		snprintf(url, urllen, "%s/api/2.0/postgres/%s", c->api,
		         c->cfg->endpoint);
	return set_common(c, r, url) && add_bearer(r, workspace_token(c)) &&
	       curl_easy_setopt(r->easy, CURLOPT_HTTPGET, 1L) == CURLE_OK;
}

/* The JSON body of a credential request; NULL on OOM. */
static char *credential_body(const struct ctl *c)
{
	char uuid[37];
	json_t *obj;
	char *text;

	if (c->cfg->endpoint != NULL) {
		obj = json_pack("{s:s}", "endpoint", c->cfg->endpoint);
	} else {
		if (!ctl_uuid4(uuid))
			return NULL;
		obj = json_pack("{s:s, s:[s]}", "request_id", uuid,
		                "instance_names", c->cfg->instance_name);
	}
	text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	json_decref(obj);
	return text;
}

static bool setup_credential(struct ctl *c, struct ctl_req *r, char *url,
                             size_t urllen)
{
	char *body = credential_body(c);
	bool ok;

	snprintf(url, urllen, "%s/api/2.0/%s/credentials", c->api,
	         c->cfg->endpoint != NULL ? "postgres" : "database");
	ok =
	    body != NULL && set_common(c, r, url) &&
	    add_bearer(r, workspace_token(c)) &&
	    add_header(r, "Content-Type: application/json") &&
	    curl_easy_setopt(r->easy, CURLOPT_COPYPOSTFIELDS, body) == CURLE_OK;
	free(body);
	return ok;
}

static bool start_request(struct ctl *c, enum ctl_step step)
{
	struct ctl_req *r = calloc(1, sizeof(*r));
	char url[1024];
	bool ok;

	if (r == NULL)
		return false;
	r->step = step;
	r->easy = curl_easy_init();
	r->body = evbuffer_new();
	ok = r->easy != NULL && r->body != NULL;
	if (ok && step == STEP_WS_TOKEN)
		ok = setup_ws_token(c, r, url, sizeof(url));
	else if (ok && step == STEP_HOST)
		ok = setup_host(c, r, url, sizeof(url));
	else if (ok)
		ok = setup_credential(c, r, url, sizeof(url));
	ok = ok &&
	     curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers) ==
	         CURLE_OK &&
	     curl_multi_add_handle(c->multi, r->easy) == CURLM_OK;
	if (!ok) {
		ctl_free_req(r);
		return false;
	}
	log_debug("event=lakebase_call step=%s", step_names[step]);
	c->req = r;
	return true;
}

/* ---- results ---- */

/* Takes the body out of r as a NUL-terminated string. */
static char *take_body(struct ctl_req *r, size_t *len)
{
	char *s;

	*len = evbuffer_get_length(r->body);
	s = malloc(*len + 1);
	if (s == NULL)
		return NULL;
	evbuffer_remove(r->body, s, *len);
	s[*len] = '\0';
	return s;
}

/* The error text of a call that did not answer 2xx, or "" if it did. */
static void transfer_error(struct ctl_req *r, CURLcode rc, long status,
                           const char *body, size_t len, char *err,
                           size_t errlen)
{
	char api[400];

	err[0] = '\0';
	if (r->too_big) {
		snprintf(err, errlen, "answer larger than %u bytes",
		         MAX_BODY_BYTES);
	} else if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s",
		         r->curl_err[0] ? r->curl_err : curl_easy_strerror(rc));
	} else if (status < 200 || status > 299) {
		ctl_parse_api_error(body, len, api, sizeof(api));
		snprintf(err, errlen, "HTTP %ld%s%s", status, api[0] ? " " : "",
		         api);
	}
}

static uint64_t refresh_delay_ms(const struct ctl *c, int64_t life_ms)
{
	if (life_ms <= 0)
		return 0;
	return (uint64_t)life_ms * c->cfg->refresh_percent / 100u;
}

static void log_target(const struct ctl *c, char *buf, size_t size)
{
	char quoted[300];

	snprintf(buf, size, "%s=%s",
	         c->cfg->instance_name ? "instance" : "endpoint",
	         log_quote(quoted, sizeof(quoted),
	                   c->cfg->instance_name ? c->cfg->instance_name
	                                         : c->cfg->endpoint));
}

static bool apply_ws_token(struct ctl *c, const char *body, size_t len,
                           char *err, size_t errlen)
{
	int64_t now = clock_wall_ms(), expires;
	char *token;

	if (!ctl_parse_oauth(body, len, now, &token, &expires, err, errlen))
		return false;
	secret_free(c->ws_token);
	c->ws_token = token;
	c->ws_refresh_ms = clock_now_ms() + refresh_delay_ms(c, expires - now);
	log_info("event=workspace_token_ok expires_in_s=%" PRId64,
	         (expires - now) / 1000);
	return true;
}

static bool apply_host(struct ctl *c, const char *body, size_t len, char *err,
                       size_t errlen)
{
	char target[320], quoted[300];
	char *host;
	bool ok = c->cfg->instance_name != NULL
	              ? ctl_parse_instance(body, len, c->cfg->instance_name,
	                                   &host, err, errlen)
	              : ctl_parse_endpoint(body, len, &host, err, errlen);

	if (!ok)
		return false;
	log_target(c, target, sizeof(target));
	if (c->host == NULL || strcmp(c->host, host) != 0)
		log_info("event=lakebase_host %s host=%s", target,
		         log_quote(quoted, sizeof(quoted), host));
	free(c->host);
	c->host = host;
	c->want_host = false;
	return true;
}

static bool apply_credential(struct ctl *c, const char *body, size_t len,
                             char *err, size_t errlen)
{
	const char *key =
	    c->cfg->instance_name ? "expiration_time" : "expire_time";
	int64_t now = clock_wall_ms(), expires;
	uint64_t delay;
	char when[40];
	char *token;

	if (!ctl_parse_credential(body, len, key, &token, &expires, err,
	                          errlen))
		return false;
	if (expires <= now) {
		snprintf(err, errlen, "the credential expired on arrival");
		secret_free(token);
		return false;
	}
	secret_free(c->cred);
	c->cred = token;
	c->cred_expires_ms = expires;
	delay = refresh_delay_ms(c, expires - now);
	c->cred_refresh_ms = clock_now_ms() + delay;
	c->want_cred = false;
	c->expired_logged = false;
	ctl_format_time(expires, when, sizeof(when));
	log_info("event=lakebase_credential expires=%s expires_in_s=%" PRId64
	         " refresh_in_s=%" PRIu64,
	         when, (expires - now) / 1000, delay / 1000);
	return true;
}

static bool apply_answer(struct ctl *c, enum ctl_step step, const char *body,
                         size_t len, char *err, size_t errlen)
{
	switch (step) {
	case STEP_WS_TOKEN:
		return apply_ws_token(c, body, len, err, errlen);
	case STEP_HOST:
		return apply_host(c, body, len, err, errlen);
	case STEP_CREDENTIAL:
		return apply_credential(c, body, len, err, errlen);
	default:
		return true;
	}
}

static void stop_once(struct ctl *c)
{
	c->stopped = true;
	evtimer_del(c->step_timer);
}

/* Logs one line for a failed call and schedules its retry. */
static void call_failed(struct ctl *c, const struct ctl_req *r, long status,
                        const char *error)
{
	char quoted[600], target[320];
	uint64_t delay;

	c->failures++;
	/* a revoked workspace token answers 401/403: fetch a new one */
	if ((status == 401 || status == 403) && r->step != STEP_WS_TOKEN &&
	    is_m2m(c)) {
		secret_free(c->ws_token);
		c->ws_token = NULL;
	}
	delay = ctl_backoff_ms(c->failures, c->cfg->retry_base_ms,
	                       c->cfg->retry_max_ms, rng_next(&c->rng));
	if (r->has_retry_after && (uint64_t)r->retry_after_s * 1000u > delay)
		delay = (uint64_t)r->retry_after_s * 1000u;
	log_target(c, target, sizeof(target));
	log_quote(quoted, sizeof(quoted), error);
	if (c->once) {
		log_error("event=lakebase_error step=%s %s error=%s",
		          step_names[r->step], target, quoted);
		stop_once(c);
		if (c->ev.on_failure)
			c->ev.on_failure(error, c->ev.arg);
		return;
	}
	log_warn("event=lakebase_error step=%s %s error=%s failures=%u "
	         "retry_in_ms=%" PRIu64,
	         step_names[r->step], target, quoted, c->failures, delay);
	if (c->cred != NULL && !c->expired_logged &&
	    clock_wall_ms() >= c->cred_expires_ms) {
		c->expired_logged = true;
		log_error("event=lakebase_credential_expired reason=\"no new "
		          "credential yet; new connections will fail\"");
	}
	timer_add_ms(c->step_timer, delay);
}

static void call_succeeded(struct ctl *c, enum ctl_step step)
{
	c->failures = 0;
	if (step == STEP_CREDENTIAL && c->ev.on_credential)
		c->ev.on_credential(c->host, c->cred, c->cred_expires_ms,
		                    c->ev.arg);
	if (c->once && step == STEP_CREDENTIAL) {
		stop_once(c);
		return;
	}
	run_next(c);
}

static void finish_request(struct ctl *c, CURLcode rc)
{
	struct ctl_req *r = c->req;
	char err[512];
	long status = 0;
	size_t len = 0;
	char *body;

	c->req = NULL;
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	body = take_body(r, &len);
	if (body == NULL)
		snprintf(err, sizeof(err), "out of memory");
	else
		transfer_error(r, rc, status, body, len, err, sizeof(err));
	if (err[0] == '\0')
		apply_answer(c, r->step, body, len, err, sizeof(err));
	if (body != NULL)
		explicit_bzero(body, len);
	free(body);
	if (err[0] != '\0')
		call_failed(c, r, status, err);
	else
		call_succeeded(c, r->step);
	ctl_free_req(r);
}

/* ---- what to do next ---- */

static enum ctl_step next_step(const struct ctl *c, uint64_t now)
{
	bool need_host = c->host == NULL || c->want_host;
	bool need_cred =
	    c->cred == NULL || c->want_cred || now >= c->cred_refresh_ms;

	if (!need_host && !need_cred)
		return STEP_NONE;
	if (is_m2m(c) && (c->ws_token == NULL || now >= c->ws_refresh_ms))
		return STEP_WS_TOKEN;
	return need_host ? STEP_HOST : STEP_CREDENTIAL;
}

static void run_next(struct ctl *c)
{
	uint64_t now = clock_now_ms();
	enum ctl_step step;

	if (c->stopped || c->req != NULL)
		return;
	step = next_step(c, now);
	if (step == STEP_NONE) {
		timer_add_ms(c->step_timer, c->cred_refresh_ms - now);
		return;
	}
	if (!start_request(c, step)) {
		c->failures++;
		log_error("event=lakebase_error step=%s error=\"cannot start "
		          "the call (out of memory?)\"",
		          step_names[step]);
		timer_add_ms(c->step_timer,
		             ctl_backoff_ms(c->failures, c->cfg->retry_base_ms,
		                            c->cfg->retry_max_ms,
		                            rng_next(&c->rng)));
	}
}

static void step_due(evutil_socket_t fd, short what, void *arg)
{
	run_next(arg);
}

/* ---- public ---- */

static bool init_curl(char *err, size_t errlen)
{
	static bool done;

	/* once per process; what it sets up lives until exit */
	if (!done && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "cannot initialise libcurl");
		return false;
	}
	done = true;
	return true;
}

static bool setup_multi(struct ctl *c)
{
	c->multi = curl_multi_init();
	return c->multi != NULL &&
	       curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION,
	                         on_socket) == CURLM_OK &&
	       curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) ==
	           CURLM_OK &&
	       curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION,
	                         on_curl_timer) == CURLM_OK &&
	       curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) == CURLM_OK;
}

static bool copy_cfg(struct ctl *c, const struct cfg_lakebase *cfg)
{
	bool ok = true;

	c->own = *cfg;
	c->own.workspace_host = dup_or_null(cfg->workspace_host, &ok);
	c->own.instance_name = dup_or_null(cfg->instance_name, &ok);
	c->own.endpoint = dup_or_null(cfg->endpoint, &ok);
	c->own.client_id = dup_or_null(cfg->client_id, &ok);
	c->own.client_secret = dup_or_null(cfg->client_secret, &ok);
	c->own.token = dup_or_null(cfg->token, &ok);
	c->own.ca_file = dup_or_null(cfg->ca_file, &ok);
	c->cfg = &c->own;
	return ok;
}

static void free_cfg(struct cfg_lakebase *cfg)
{
	free(cfg->workspace_host);
	free(cfg->instance_name);
	free(cfg->endpoint);
	free(cfg->client_id);
	secret_free(cfg->client_secret);
	secret_free(cfg->token);
	free(cfg->ca_file);
}

struct ctl *ctl_new(struct event_base *base, const struct cfg_lakebase *cfg,
                    bool once, const struct ctl_events *events, char *err,
                    size_t errlen)
{
	struct ctl *c;
	size_t n;

	if (!init_curl(err, errlen))
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto oom;
	c->base = base;
	c->ev = *events;
	if (!copy_cfg(c, cfg))
		goto oom;
	c->once = once;
	c->rng = rng_seed();
	c->api = strdup(cfg->workspace_host);
	if (c->api == NULL)
		goto oom;
	for (n = strlen(c->api); n > 8 && c->api[n - 1] == '/'; n--)
		c->api[n - 1] = '\0';
	c->curl_timer = evtimer_new(base, curl_timeout, c);
	c->step_timer = evtimer_new(base, step_due, c);
	if (c->curl_timer == NULL || c->step_timer == NULL || !setup_multi(c))
		goto oom;
	timer_add_ms(c->step_timer, 0);
	return c;
oom:
	snprintf(err, errlen, "out of memory");
	ctl_free(c);
	return NULL;
}

void ctl_free(struct ctl *c)
{
	if (c == NULL)
		return;
	if (c->req != NULL) {
		curl_multi_remove_handle(c->multi, c->req->easy);
		ctl_free_req(c->req);
	}
	if (c->multi)
		curl_multi_cleanup(c->multi);
	if (c->curl_timer)
		event_free(c->curl_timer);
	if (c->step_timer)
		event_free(c->step_timer);
	free(c->api);
	secret_free(c->ws_token);
	free(c->host);
	secret_free(c->cred);
	free_cfg(&c->own);
	free(c);
}

void ctl_reresolve(struct ctl *c)
{
	c->want_host = true;
	c->want_cred = true;
	/* a retry already waiting keeps its backoff */
	if (c->req == NULL && c->failures == 0) {
		evtimer_del(c->step_timer);
		run_next(c);
	}
}

/* ---- --check-config ---- */

struct check_result {
	struct event_base *base;
	bool done, ok;
	char *host;
	size_t hostlen;
	int64_t expires_ms;
	char *err;
	size_t errlen;
};

static void check_credential(const char *host, const char *token,
                             int64_t expires_ms, void *arg)
{
	struct check_result *r = arg;

	snprintf(r->host, r->hostlen, "%s", host);
	r->expires_ms = expires_ms;
	r->done = r->ok = true;
	event_base_loopbreak(r->base);
}

static void check_failure(const char *error, void *arg)
{
	struct check_result *r = arg;

	snprintf(r->err, r->errlen, "%s", error);
	r->done = true;
	event_base_loopbreak(r->base);
}

bool ctl_check(const struct cfg_lakebase *cfg, char *host, size_t hostlen,
               int64_t *expires_ms, char *err, size_t errlen)
{
	struct check_result r = {
	    .host = host, .hostlen = hostlen, .err = err, .errlen = errlen};
	struct ctl_events ev = {check_credential, check_failure, &r};
	struct ctl *c = NULL;

	r.base = event_base_new();
	if (r.base == NULL) {
		snprintf(err, errlen, "cannot create an event loop");
		return false;
	}
	c = ctl_new(r.base, cfg, true, &ev, err, errlen);
	while (c != NULL && !r.done) {
		/* 1: no events left, which a running call always has */
		if (event_base_dispatch(r.base) != 0) {
			snprintf(err, errlen, "the control plane stalled");
			break;
		}
	}
	ctl_free(c);
	event_base_free(r.base);
	*expires_ms = r.expires_ms;
	return r.ok;
}
