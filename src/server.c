/* server.c: owns the event loop, signals, TLS context and pool of the daemon.
 */
#include "server.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "admin.h"
#include "catalog.h"
#include "clock.h"
#include "coalesce.h"
#include "gauges.h"
#include "control.h"
#include "frontend.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "reload.h"
#include "tls.h"
#include "upstream.h"

struct server {
	const struct config *cfg; /* the running settings */
	/*
	 * SIGHUP reads path and envp again. The newest reloaded config is
	 * ours (NULL before the first reload, while cfg is the caller's);
	 * every part copies what it keeps of a reloaded one.
	 */
	const char *cfg_path;
	char *const *envp;
	struct config *reloaded;
	bool retire_on_credential; /* [lakebase] names another instance now */
	struct event_base *base;
	struct evdns_base *dns;
	SSL_CTX *ssl_ctx;
	struct pool *pool;
	struct ctl *ctl; /* NULL without [lakebase] */
	struct catalog *cat;
	struct coalescer *co;
	struct ingest *ing;
	struct frontend *fe; /* NULL with [frontend] listen empty */
	struct admin *admin; /* NULL with [admin] listen empty */
	struct event *sigterm_ev;
	struct event *sigint_ev;
	struct event *sighup_ev;
	struct event *stats_ev;
	struct event *drain_ev; /* set once a stop signal came */
	unsigned drain_ticks;
	int exit_code;
	int64_t cred_expires_ms; /* the control plane's; -1: none yet */
	double start_time_s; /* wall clock, for process_start_time_seconds */
};

void server_up_params(const struct config *cfg, struct up_params *out)
{
	const struct cfg_upstream *u = &cfg->upstream;
	const struct cfg_pool *p = &cfg->pool;

	*out = (struct up_params){
	    .host = u->host,
	    .port = u->port,
	    .dbname = u->dbname,
	    .user = u->user,
	    .password = u->password,
	    .application_name = u->application_name,
	    .sslmode = u->sslmode,
	    .ssl_ctx = NULL,
	    .connect_timeout_ms = p->connect_timeout_ms,
	    .login_timeout_ms = p->login_timeout_ms,
	    .query_timeout_ms = p->query_timeout_ms,
	    .keepalive_idle_s = u->keepalive_idle_s,
	    .keepalive_interval_s = u->keepalive_interval_s,
	    .keepalive_count = u->keepalive_count,
	    .tcp_user_timeout_ms = u->tcp_user_timeout_ms,
	};
}

/* Draining: done once every session is answered and gone and no batch runs. */
static void drain_check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	uint64_t waited_ms = (uint64_t)(++s->drain_ticks) * 100u;

	if (ing_is_idle(s->ing) && co_is_idle(s->co) &&
	    (s->fe == NULL || fe_is_idle(s->fe))) {
		log_info("event=drained after_ms=%" PRIu64, waited_ms);
		event_base_loopexit(s->base, NULL);
		return;
	}
	if (waited_ms >= (uint64_t)s->cfg->server.shutdown_timeout_s * 1000u) {
		/* Some client was not answered: not a clean stop. */
		log_warn("event=drain_timeout after_s=%u action=exit",
		         s->cfg->server.shutdown_timeout_s);
		s->exit_code = 1;
		event_base_loopexit(s->base, NULL);
	}
}

/*
 * First SIGTERM/SIGINT: stop accepting and reading, commit what clients
 * flushed, answer them, then exit. A second signal: exit at once (clients
 * not yet answered get 57P01 and retry).
 */
static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct server *s = arg;
	const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
	struct timeval tick = {0, 100000};

	if (s->drain_ev != NULL) {
		log_info("event=signal signal=%s action=exit_now", name);
		if (!ing_is_idle(s->ing) || !co_is_idle(s->co))
			s->exit_code = 1; /* clients left unanswered */
		event_base_loopexit(s->base, NULL);
		return;
	}
	log_info("event=signal signal=%s action=drain timeout_s=%u", name,
	         s->cfg->server.shutdown_timeout_s);
	ing_drain(s->ing);
	if (s->fe != NULL)
		fe_drain(s->fe);
	co_drain(s->co);
	s->drain_ev = event_new(s->base, -1, EV_PERSIST, drain_check_cb, s);
	if (s->drain_ev == NULL || event_add(s->drain_ev, &tick) != 0)
		event_base_loopexit(s->base, NULL);
}

static void server_reload(struct server *s);

static void hup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct server *s = arg;

	if (s->drain_ev != NULL) {
		/* Shutting down: new settings would only disturb the drain. */
		log_info("event=signal signal=SIGHUP action=ignored "
		         "reason=draining");
		return;
	}
	log_info("event=signal signal=SIGHUP action=reload");
	server_reload(s);
}

static void log_frontend_stats(const struct frontend *fe)
{
	struct fe_stats st;

	fe_get_stats(fe, &st);
	log_info("event=frontend_stats idle=%u waiting=%u active=%u "
	         "login=%u pools=%u server_lent=%u transactions=%" PRIu64
	         " queries=%" PRIu64 " auth_failures=%" PRIu64
	         " refused=%" PRIu64 " server_lost=%" PRIu64,
	         st.clients[FE_IDLE], st.clients[FE_WAITING],
	         st.clients[FE_ACTIVE],
	         st.clients[FE_STARTUP] + st.clients[FE_TLS] +
	             st.clients[FE_AUTH] + st.clients[FE_LOGIN],
	         st.pools, st.server_lent, st.transactions, st.queries,
	         st.auth_failures, st.refused, st.server_lost);
}

static void log_stats(struct server *s)
{
	struct ing_stats is;
	struct co_stats cs;
	char p99[32];

	pool_log_stats(s->pool);
	if (s->fe != NULL)
		log_frontend_stats(s->fe);
	snprintf(p99, sizeof(p99), "%g",
	         ing_flush_latency_quantile(s->ing, 0.99));
	ing_get_stats(s->ing, &is);
	co_get_stats(s->co, &cs);
	log_info(
	    "event=ingest_stats clients=%u paused=%u rows_received=%" PRIu64
	    " buffered_bytes=%" PRIu64 " rows_committed=%" PRIu64
	    " units_committed=%" PRIu64 " units_failed=%" PRIu64
	    " batches=%" PRIu64 " batch_retries=%" PRIu64
	    " batches_split=%" PRIu64 " inflight=%u queued_units=%" PRIu64
	    " flush_p99_le_s=%s",
	    is.clients, is.paused, is.rows_received, is.buffered_bytes,
	    cs.rows_committed, cs.units_committed, cs.units_failed, cs.batches,
	    cs.batch_retries, cs.batches_split, cs.inflight, cs.queued_units,
	    p99);
}

static void stats_cb(evutil_socket_t fd, short what, void *arg)
{
	log_stats(arg);
}

static bool add_signal(struct server *s, struct event **ev, int sig,
                       event_callback_fn cb)
{
	*ev = evsignal_new(s->base, sig, cb, s);
	return *ev != NULL && event_add(*ev, NULL) == 0;
}

/* At start and on reload: every period_s, or never when 0. */
static bool set_stats_period(struct server *s, unsigned period_s)
{
	struct timeval tv = {.tv_sec = period_s};

	if (period_s == 0) {
		if (s->stats_ev != NULL)
			event_del(s->stats_ev);
		return true;
	}
	if (s->stats_ev == NULL)
		s->stats_ev = event_new(s->base, -1, EV_PERSIST, stats_cb, s);
	return s->stats_ev != NULL && event_add(s->stats_ev, &tv) == 0;
}

static bool start_stats(struct server *s)
{
	return set_stats_period(s, s->cfg->log.stats_period_s);
}

/*
 * The control plane's newest credential: the password of every connection
 * opened from now on. The password goes first, so that the first host
 * (which starts the pool) never meets a pool without one.
 */
static void on_credential(const char *host, const char *token,
                          int64_t expires_ms, void *arg)
{
	struct server *s = arg;

	s->cred_expires_ms = expires_ms;
	if (!pool_set_password(s->pool, token) ||
	    !pool_set_host(s->pool, host) ||
	    (s->fe != NULL && !fe_set_credential(s->fe, host, token))) {
		log_error("event=lakebase_error step=apply error=\"out of "
		          "memory\"");
		return;
	}
	/* A reload named another instance: its first credential is here. */
	if (s->retire_on_credential) {
		s->retire_on_credential = false;
		pool_retire(s->pool);
	}
}

/* Failover can move an instance: failing connects ask for the host again. */
static void on_pool_failing(unsigned failures, void *arg)
{
	struct server *s = arg;

	log_info("event=lakebase_reresolve failures=%u", failures);
	ctl_reresolve(s->ctl);
}

static bool start_control(struct server *s, char *err, size_t errlen)
{
	const struct config *cfg = s->cfg;
	struct ctl_events ev = {.on_credential = on_credential, .arg = s};

	if (cfg->lakebase.workspace_host == NULL)
		return true;
	if (cfg->upstream.host != NULL || cfg->upstream.password != NULL)
		log_warn("event=config_warning reason=\"[upstream] host and "
		         "password are ignored: [lakebase] provides them\"");
	s->ctl = ctl_new(s->base, &cfg->lakebase, false, &ev, err, errlen);
	if (s->ctl == NULL)
		return false;
	pool_on_failing(s->pool, cfg->lakebase.reresolve_failures,
	                on_pool_failing, s);
	return true;
}

static void co_config_from(const struct config *cfg, struct co_config *out)
{
	*out = (struct co_config){
	    .max_rows = cfg->batch.max_rows,
	    .max_bytes = cfg->batch.max_bytes,
	    .max_delay_ms = cfg->batch.max_delay_ms,
	    .max_inflight = cfg->batch.max_inflight,
	    .max_retries = cfg->batch.max_retries,
	    .acquire_timeout_ms = cfg->batch.acquire_timeout_ms,
	    .dead_letter = cfg->batch.dead_letter,
	    .failure_backoff_ms = cfg->batch.failure_backoff_ms,
	    .failure_backoff_max_ms = cfg->batch.failure_backoff_max_ms,
	};
}

static bool start_ingest(struct server *s, char *err, size_t errlen)
{
	struct co_config cc;

	co_config_from(s->cfg, &cc);
	s->cat = cat_new(s->base, s->pool, s->cfg->batch.catalog_ttl_s);
	s->co = s->cat ? co_new(s->base, s->pool, s->cat, &cc) : NULL;
	if (s->co == NULL) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	s->ing = ing_new(s->base, s->cat, s->co, &s->cfg->ingest, err, errlen);
	return s->ing != NULL;
}

static bool start_frontend(struct server *s, char *err, size_t errlen)
{
	struct up_params params;

	if (s->cfg->frontend.listen == NULL)
		return true;
	server_up_params(s->cfg, &params);
	params.ssl_ctx = s->ssl_ctx;
	if (s->cfg->lakebase.workspace_host != NULL)
		params.host = params.password = NULL; /* on_credential */
	s->fe = fe_new(s->base, s->dns, s->cfg, &params, err, errlen);
	if (s->fe == NULL)
		return false;
	/* A PostgreSQL client at the ingest port is told where to go. */
	if (!ing_set_postgres_door(s->ing, s->cfg->frontend.listen)) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	return true;
}

/* /readyz: a logged-in server connection and a live credential. */
static bool server_ready(char *why, size_t whylen, void *arg)
{
	struct server *s = arg;
	struct pool_stats ps;
	unsigned open;

	if (s->drain_ev != NULL) {
		snprintf(why, whylen, "draining (stop signal received)");
		return false;
	}
	if (s->ctl != NULL) {
		if (s->cred_expires_ms < 0) {
			snprintf(why, whylen, "no database credential yet");
			return false;
		}
		if (clock_wall_ms() >= s->cred_expires_ms) {
			snprintf(why, whylen,
			         "the database credential expired");
			return false;
		}
	}
	pool_get_stats(s->pool, &ps);
	if (ps.failures > 0) {
		snprintf(why, whylen,
		         "upstream failing (%u connects failed in a row)",
		         ps.failures);
		return false;
	}
	if (s->cfg->pool.stall_timeout_ms > 0 &&
	    ps.stalled_ms >= s->cfg->pool.stall_timeout_ms) {
		snprintf(why, whylen,
		         "no upstream connection made progress for %" PRIu64
		         " ms",
		         ps.stalled_ms);
		return false;
	}
	/* min_size 0 keeps no connection: then not failing is all we know. */
	open = ps.idle + ps.checking + ps.lent;
	if (open == 0 && s->cfg->pool.min_size > 0) {
		snprintf(why, whylen, "no upstream connection");
		return false;
	}
	return true;
}

/* CPU seconds and resident bytes of this process, for /metrics. */
static void process_usage(double *cpu_s, uint64_t *rss_bytes)
{
	struct rusage ru;
	FILE *f;
	unsigned long size, resident;

	if (getrusage(RUSAGE_SELF, &ru) == 0)
		*cpu_s = (double)ru.ru_utime.tv_sec +
		         (double)ru.ru_stime.tv_sec +
		         ((double)ru.ru_utime.tv_usec +
		          (double)ru.ru_stime.tv_usec) /
		             1e6;
	f = fopen("/proc/self/statm", "r");
	if (f == NULL)
		return;
	if (fscanf(f, "%lu %lu", &size, &resident) == 2)
		*rss_bytes =
		    (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
	fclose(f);
}

/* The registry's collector: module stats become metrics at scrape time. */
static void server_collect(void *arg)
{
	struct server *s = arg;
	struct gg_values v = {0};
	char why[8];

	pool_get_stats(s->pool, &v.pool);
	ing_get_stats(s->ing, &v.ing);
	co_get_stats(s->co, &v.co);
	v.credential_expires_ms = s->ctl ? s->cred_expires_ms : -1;
	v.ready = server_ready(why, sizeof(why), s);
	v.draining = s->drain_ev != NULL;
	v.start_time_s = s->start_time_s;
	process_usage(&v.cpu_s, &v.rss_bytes);
	gg_collect(&v);
	if (s->fe != NULL)
		fe_update_metrics(s->fe);
}

static bool start_admin(struct server *s, char *err, size_t errlen)
{
	struct admin_probe probe = {.ready = server_ready, .arg = s};

	if (s->cfg->admin.listen == NULL)
		return true;
	mt_set_collector(server_collect, s);
	s->admin = admin_new(s->base, &s->cfg->admin, &probe, err, errlen);
	return s->admin != NULL;
}

struct server *server_new(const struct config *cfg, const char *path,
                          char *const *envp, char *err, size_t errlen)
{
	struct server *s = calloc(1, sizeof(*s));
	struct up_params params;

	if (s == NULL)
		return NULL;
	s->cfg = cfg;
	s->cred_expires_ms = -1;
	s->start_time_s = (double)clock_wall_ms() / 1000.0;
	s->cfg_path = path;
	s->envp = envp;
	gg_register(); /* the exposition's families, in order, before traffic */
	s->base = event_base_new();
	if (s->base == NULL) {
		snprintf(err, errlen, "cannot create the event loop");
		goto fail;
	}
	s->dns = evdns_base_new(s->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (s->dns == NULL) {
		snprintf(err, errlen, "cannot set up name resolution");
		goto fail;
	}
	if (cfg->upstream.sslmode != SSLMODE_DISABLE) {
		s->ssl_ctx =
		    tls_client_ctx_new(cfg->upstream.sslmode,
		                       cfg->upstream.sslrootcert, err, errlen);
		if (s->ssl_ctx == NULL)
			goto fail;
	}
	if (!add_signal(s, &s->sigterm_ev, SIGTERM, stop_cb) ||
	    !add_signal(s, &s->sigint_ev, SIGINT, stop_cb) ||
	    !add_signal(s, &s->sighup_ev, SIGHUP, hup_cb) || !start_stats(s)) {
		snprintf(err, errlen, "cannot install signal handlers");
		goto fail;
	}
	server_up_params(cfg, &params);
	params.ssl_ctx = s->ssl_ctx;
	/* With [lakebase], the pool waits for the control plane's first
	 * credential (docs/control-plane.md). */
	if (cfg->lakebase.workspace_host != NULL)
		params.host = params.password = NULL;
	s->pool = pool_new(s->base, s->dns, &params, &cfg->pool);
	if (s->pool == NULL) {
		snprintf(err, errlen, "cannot create the pool");
		goto fail;
	}
	if (!start_control(s, err, errlen) || !start_ingest(s, err, errlen) ||
	    !start_frontend(s, err, errlen) || !start_admin(s, err, errlen))
		goto fail;
	return s;
fail:
	server_free(s);
	return NULL;
}

int server_run(struct server *s)
{
	log_info("event=start version=%s", LBP_VERSION);
	if (event_base_dispatch(s->base) != 0) {
		log_error("event=loop_failed");
		s->exit_code = 1;
	}
	log_stats(s);
	log_info("event=stop");
	return s->exit_code;
}

void server_free(struct server *s)
{
	if (s == NULL)
		return;
	/* Users before what they use: sessions, batches, lookups, the pool. */
	admin_free(s->admin);
	fe_free(s->fe);
	ing_free(s->ing);
	co_free(s->co);
	cat_free(s->cat);
	ctl_free(s->ctl);
	pool_free(s->pool);
	if (s->stats_ev)
		event_free(s->stats_ev);
	if (s->drain_ev)
		event_free(s->drain_ev);
	if (s->sigterm_ev)
		event_free(s->sigterm_ev);
	if (s->sigint_ev)
		event_free(s->sigint_ev);
	if (s->sighup_ev)
		event_free(s->sighup_ev);
	if (s->dns)
		evdns_base_free(s->dns, 0);
	if (s->ssl_ctx)
		SSL_CTX_free(s->ssl_ctx);
	if (s->base)
		event_base_free(s->base);
	if (s->reloaded != NULL) {
		cfg_free(s->reloaded);
		free(s->reloaded);
	}
	free(s);
	mt_reset();
}

/* ---- reload (SIGHUP) ---- */

/*
 * Everything a reload builds before it changes anything, so that it can
 * still refuse with the running settings untouched.
 */
struct reload {
	struct config *cfg; /* the new settings, ignored ones undone */
	struct rl_plan plan;
	SSL_CTX *ssl_ctx; /* RL_TLS: for the new sslmode (NULL: disable) */
	struct ctl *ctl;  /* RL_CONTROL: for the new [lakebase] */
	bool log_file_failed;
};

static void reload_discard(struct reload *r)
{
	if (r->ssl_ctx != NULL)
		SSL_CTX_free(r->ssl_ctx);
	ctl_free(r->ctl);
	if (r->cfg != NULL) {
		cfg_free(r->cfg);
		free(r->cfg);
	}
}

/* The file and the environment again, as at start, over the defaults. */
static struct config *reload_load(const struct server *s, char *err,
                                  size_t errlen)
{
	struct config *cfg = malloc(sizeof(*cfg));

	if (cfg == NULL || !cfg_init(cfg)) {
		free(cfg);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!cfg_load(cfg, s->cfg_path, s->envp, err, errlen)) {
		cfg_free(cfg);
		free(cfg);
		return NULL;
	}
	return cfg;
}

/* What cannot change now keeps its running value in the new config. */
static bool reload_undo_ignored(const struct server *s, struct reload *r,
                                char *err, size_t errlen)
{
	for (size_t i = 0; i < r->plan.nchanges; i++) {
		const struct rl_change *c = &r->plan.changes[i];

		if (c->ignored != NULL &&
		    !cfg_copy_key(r->cfg, s->cfg, c->section, c->key)) {
			snprintf(err, errlen, "out of memory");
			return false;
		}
	}
	return true;
}

static bool reload_prepare(struct server *s, struct reload *r, char *err,
                           size_t errlen)
{
	struct ctl_events ev = {.on_credential = on_credential, .arg = s};
	const struct config *cfg;

	r->cfg = reload_load(s, err, errlen);
	if (r->cfg == NULL)
		return false;
	cfg = r->cfg;
	rl_plan(s->cfg, r->cfg, &r->plan);
	if (!reload_undo_ignored(s, r, err, errlen))
		return false;
	/* A CA file that does not load refuses the reload, as at start. */
	if ((r->plan.actions & RL_TLS) &&
	    cfg->upstream.sslmode != SSLMODE_DISABLE) {
		r->ssl_ctx =
		    tls_client_ctx_new(cfg->upstream.sslmode,
		                       cfg->upstream.sslrootcert, err, errlen);
		if (r->ssl_ctx == NULL)
			return false;
	}
	if (r->plan.actions & RL_CONTROL) {
		r->ctl =
		    ctl_new(s->base, &cfg->lakebase, false, &ev, err, errlen);
		if (r->ctl == NULL)
			return false;
	}
	/*
	 * Last, since it cannot be undone: every reload opens the file anew,
	 * which is logrotate's contract (move the file, then SIGHUP).
	 */
	if (!log_set_file(cfg->log.file, err, errlen)) {
		r->log_file_failed = true;
		return false;
	}
	if (cfg->log.file != NULL)
		log_info("event=log_reopened file=%s",
		         log_quote((char[300]){0}, 300, cfg->log.file));
	return true;
}

/* New connection settings: the pool replaces its connections. */
static void reload_endpoint(struct server *s, struct reload *r)
{
	struct up_params params;

	if (r->plan.actions & RL_TLS) {
		if (s->ssl_ctx != NULL)
			SSL_CTX_free(s->ssl_ctx); /* the pool has its own */
		s->ssl_ctx = r->ssl_ctx;
		r->ssl_ctx = NULL;
	}
	server_up_params(r->cfg, &params);
	params.ssl_ctx = s->ssl_ctx;
	if (r->cfg->lakebase.workspace_host != NULL)
		params.host = NULL; /* the control plane's stays */
	if (!pool_set_endpoint(s->pool, &params) ||
	    (s->fe != NULL && !fe_set_endpoint(s->fe, &params)))
		log_error("event=reload_error step=upstream "
		          "error=\"out of memory\"");
}

/* A new control-plane client; the old one's credential stays meanwhile. */
static void reload_control(struct server *s, struct reload *r)
{
	ctl_free(s->ctl);
	s->ctl = r->ctl;
	r->ctl = NULL;
	pool_on_failing(s->pool, r->cfg->lakebase.reresolve_failures,
	                on_pool_failing, s);
	if (r->plan.actions & RL_CONTROL_MOVED)
		s->retire_on_credential = true;
}

/*
 * The front door reads its auth_file (and TLS files) on every SIGHUP, as
 * the file may have changed without the config; if one does not load,
 * the front door keeps the running ones.
 */
static void reload_frontend(struct server *s, const struct config *cfg,
                            unsigned todo)
{
	char err[600];

	if (!fe_reconfigure(s->fe, cfg, err, sizeof(err)))
		log_error("event=reload_error step=frontend error=%s",
		          log_quote((char[700]){0}, 700, err));
	if ((todo & RL_PASSWORD) && cfg->lakebase.workspace_host == NULL &&
	    !fe_set_credential(s->fe, NULL, cfg->upstream.password))
		log_error("event=reload_error step=frontend_password "
		          "error=\"out of memory\"");
}

static void reload_apply(struct server *s, struct reload *r)
{
	const struct config *cfg = r->cfg;
	unsigned todo = r->plan.actions;
	struct co_config cc;

	if (todo & RL_LOG_LEVEL)
		log_set_level(cfg->log.level);
	if ((todo & RL_STATS) && !set_stats_period(s, cfg->log.stats_period_s))
		log_error("event=reload_error step=stats_period_s");
	if (todo & RL_POOL) {
		pool_reconfigure(s->pool, &cfg->pool);
		if (s->fe != NULL)
			fe_set_pool_config(s->fe, &cfg->pool);
	}
	if (todo & RL_BATCH) {
		co_config_from(cfg, &cc);
		co_set_config(s->co, &cc);
		cat_set_ttl(s->cat, cfg->batch.catalog_ttl_s);
	}
	/* before the endpoint, so the connections it opens use it */
	if ((todo & RL_PASSWORD) &&
	    !pool_set_password(s->pool, cfg->upstream.password))
		log_error("event=reload_error step=password "
		          "error=\"out of memory\"");
	if (todo & RL_ENDPOINT)
		reload_endpoint(s, r);
	if (todo & RL_CONTROL)
		reload_control(s, r);
	if ((todo & RL_INGEST_TOKEN) &&
	    !ing_set_token(s->ing, cfg->ingest.auth_token))
		log_error("event=reload_error step=ingest_token "
		          "error=\"out of memory\"");
	if (s->fe != NULL)
		reload_frontend(s, cfg, todo);
	/* No admin endpoint: a token for it changes nothing. */
	if ((todo & RL_ADMIN_TOKEN) && s->admin != NULL &&
	    !admin_set_token(s->admin, cfg->admin.auth_token))
		log_error("event=reload_error step=admin_token "
		          "error=\"out of memory\"");
}

static void log_reload(const struct rl_plan *plan)
{
	char list[2048], quoted[2100];

	for (size_t i = 0; i < plan->nchanges; i++) {
		const struct rl_change *c = &plan->changes[i];

		if (c->ignored != NULL)
			log_warn("event=reload_ignored key=%s.%s reason=%s",
			         c->section, c->key,
			         log_quote(quoted, sizeof(quoted), c->ignored));
	}
	log_info("event=reload changed=%s",
	         log_quote(quoted, sizeof(quoted),
	                   rl_applied(plan, list, sizeof(list))));
}

static void reopen_log(const char *path)
{
	char err[400];

	if (path == NULL)
		return;
	if (log_set_file(path, err, sizeof(err)))
		log_info("event=log_reopened file=%s",
		         log_quote((char[300]){0}, 300, path));
	else
		log_error("event=log_reopen_failed error=%s",
		          log_quote((char[450]){0}, 450, err));
}

/*
 * Loads the file and environment again. Refused as a whole (one error line,
 * the running settings untouched) if anything fails before the first
 * change; after that nothing can fail but memory.
 */
static void server_reload(struct server *s)
{
	struct reload r = {0};
	char err[1024], quoted[1100];

	if (!reload_prepare(s, &r, err, sizeof(err))) {
		reload_discard(&r);
		/* logrotate moved the file whatever the new config says */
		if (!r.log_file_failed)
			reopen_log(s->cfg->log.file);
		log_error("event=reload_failed error=%s",
		          log_quote(quoted, sizeof(quoted), err));
		return;
	}
	reload_apply(s, &r);
	log_reload(&r.plan);
	if (s->reloaded != NULL) {
		cfg_free(s->reloaded);
		free(s->reloaded);
	}
	s->reloaded = r.cfg;
	s->cfg = r.cfg;
	r.cfg = NULL;
	reload_discard(&r);
}
