/* pool.c: keeps upstream connections warm, lends them out, replaces the broken.
 */
#include "pool.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "rng.h"
#include "secret.h"
#include "sqlgen.h"
#include "strutil.h"
#include "timer.h"

/* Maintenance runs at least this often: checks, lifetimes, refills. */
#define MAINTAIN_EVERY_MS 1000u
/* Lifetimes are spread by up to this share so connections do not all
 * recycle in the same second. */
#define LIFETIME_JITTER_PCT 10u

enum pool_conn_state { PC_OPENING, PC_IDLE, PC_CHECKING, PC_LENT };

static const char *const pc_state_names[] = {"opening", "idle", "checking",
                                             "lent"};

struct pool_conn {
	TAILQ_ENTRY(pool_conn) link;
	struct pool *pool;
	struct up_conn *up;
	enum pool_conn_state state;
	uint64_t opened_ms;     /* when the connect started */
	uint64_t expires_ms;    /* recycle after this (0 = never) */
	uint64_t idle_since_ms; /* last time it became idle or was checked */
	uint64_t gen;           /* the pool's settings generation it began in */
	bool dead;              /* closed while lent: freed on release */
	bool suspect; /* idle while a peer died of its server or network */
	/* Its own copies: the pool's may change while it is open. */
	struct up_params params;
};
TAILQ_HEAD(pool_conn_list, pool_conn);

struct pool_waiter {
	TAILQ_ENTRY(pool_waiter) link;
	pool_acquire_cb cb;
	void *arg;
};
TAILQ_HEAD(pool_waiter_list, pool_waiter);

struct pool {
	struct event_base *base;
	struct evdns_base *dns;
	/*
	 * For new connections, with our own copies of every string (host NULL:
	 * waiting for pool_set_host; password: the newest credential).
	 */
	struct up_params params;
	struct cfg_pool cfg;
	uint64_t gen; /* bumped by pool_retire */
	unsigned failing_every;
	pool_failing_cb failing_cb;
	void *failing_arg;

	struct pool_conn_list opening;
	struct pool_conn_list idle;
	struct pool_conn_list checking;
	struct pool_conn_list lent;
	struct pool_waiter_list waiters;
	unsigned n[4]; /* connections per enum pool_conn_state */
	unsigned nwaiters;

	struct event *maint_ev;
	uint64_t next_id;
	unsigned failures;        /* consecutive failed connects */
	uint64_t next_attempt_ms; /* no connect before this while failing */
	uint64_t opened, closed, failed;
	uint64_t rng;
};

static struct pool_conn_list *pool_list_of(struct pool *p,
                                           enum pool_conn_state s)
{
	switch (s) {
	case PC_OPENING:
		return &p->opening;
	case PC_IDLE:
		return &p->idle;
	case PC_CHECKING:
		return &p->checking;
	default:
		return &p->lent;
	}
}

static unsigned total_conns(const struct pool *p)
{
	return p->n[PC_OPENING] + p->n[PC_IDLE] + p->n[PC_CHECKING] +
	       p->n[PC_LENT];
}

static void move_conn(struct pool_conn *pc, enum pool_conn_state to)
{
	struct pool *p = pc->pool;

	log_debug("conn=%" PRIu64 " event=pool_state from=%s to=%s",
	          up_get_id(pc->up), pc_state_names[pc->state],
	          pc_state_names[to]);
	TAILQ_REMOVE(pool_list_of(p, pc->state), pc, link);
	p->n[pc->state]--;
	pc->state = to;
	TAILQ_INSERT_TAIL(pool_list_of(p, to), pc, link);
	p->n[to]++;
	if (to == PC_IDLE)
		pc->idle_since_ms = clock_now_ms();
}

static void kick(struct pool *p)
{
	event_active(p->maint_ev, 0, 0);
}

static void free_conn(struct pool_conn *pc)
{
	up_params_clear(&pc->params);
	free(pc);
}

/* Unlinks and frees pc and its connection. */
static void drop_conn(struct pool_conn *pc)
{
	struct pool *p = pc->pool;

	TAILQ_REMOVE(pool_list_of(p, pc->state), pc, link);
	p->n[pc->state]--;
	p->closed++;
	up_free(pc->up);
	free_conn(pc);
}

/* Opened under settings that have changed since (pool_retire). */
static bool is_stale(const struct pool_conn *pc)
{
	return pc->gen != pc->pool->gen;
}

/* A healthy connection the pool no longer wants: closed with a line. */
static void retire_conn(struct pool_conn *pc, const char *why)
{
	log_info("conn=%" PRIu64 " event=retire state=%s reason=%s",
	         up_get_id(pc->up), pc_state_names[pc->state], why);
	drop_conn(pc);
}

static unsigned backoff_ms(struct pool *p)
{
	unsigned shift = p->failures > 16 ? 16 : p->failures - 1;
	uint64_t d = (uint64_t)p->cfg.reconnect_base_ms << shift;

	if (d > p->cfg.reconnect_max_ms)
		d = p->cfg.reconnect_max_ms;
	/* Equal jitter: half fixed, half random, so retries stay spread. */
	return (unsigned)(d / 2 + rng_next(&p->rng) % (d / 2 + 1));
}

/* ---- connection events ---- */

/* Recycle max_lifetime_s after from, less some jitter. */
static void set_expiry(struct pool_conn *pc, uint64_t from)
{
	struct pool *p = pc->pool;
	uint64_t life = (uint64_t)p->cfg.max_lifetime_s * 1000u;
	uint64_t spread = life * LIFETIME_JITTER_PCT / 100u;

	pc->expires_ms = 0;
	if (life > 0)
		pc->expires_ms = from + life - rng_next(&p->rng) % (spread + 1);
}

static void conn_ready(struct up_conn *up, void *arg)
{
	struct pool_conn *pc = arg;
	struct pool *p = pc->pool;

	if (p->failures > 0)
		log_info("event=pool_recovered failures=%u", p->failures);
	p->failures = 0;
	p->opened++;
	set_expiry(pc, clock_now_ms());
	move_conn(pc, PC_IDLE);
	kick(p);
}

/*
 * A connection died of the server or the network (not of a login refused
 * or our own close): the idle ones may be dead too, silently (a blackhole
 * tells nothing until something is sent). Each is checked before it is
 * lent, so no caller's work waits on a dead one.
 */
static void pool_suspect_idle(struct pool *p, const struct up_conn *up)
{
	enum up_close_reason why = up_close_reason(up);
	struct pool_conn *pc;

	if (why != UP_CLOSE_SERVER && why != UP_CLOSE_TIMEOUT)
		return;
	TAILQ_FOREACH(pc, &p->idle, link)
	{
		pc->suspect = true;
	}
}

static void conn_closed(struct up_conn *up, void *arg)
{
	struct pool_conn *pc = arg;
	struct pool *p = pc->pool;

	if (pc->state != PC_OPENING)
		pool_suspect_idle(p, up);

	if (pc->state == PC_OPENING) {
		unsigned delay;

		p->failures++;
		p->failed++;
		delay = backoff_ms(p);
		p->next_attempt_ms = clock_now_ms() + delay;
		log_warn("conn=%" PRIu64 " event=connect_failed reason=%s "
		         "failures=%u retry_in_ms=%u",
		         up_get_id(up),
		         up_close_reason_name(up_close_reason(up)), p->failures,
		         delay);
		if (p->failing_cb && p->failing_every > 0 &&
		    p->failures % p->failing_every == 0)
			p->failing_cb(p->failures, p->failing_arg);
	} else if (pc->state == PC_LENT) {
		/* The borrower learns from its own result and releases it. */
		pc->dead = true;
		return;
	} else {
		log_info("conn=%" PRIu64 " event=pool_lost state=%s reason=%s",
		         up_get_id(up), pc_state_names[pc->state],
		         up_close_reason_name(up_close_reason(up)));
	}
	drop_conn(pc);
	kick(p);
}

static void open_conn(struct pool *p)
{
	struct pool_conn *pc = calloc(1, sizeof(*pc));
	struct up_events ev = {conn_ready, conn_closed, pc};

	if (pc == NULL)
		return;
	pc->pool = p;
	pc->state = PC_OPENING;
	pc->opened_ms = clock_now_ms();
	pc->gen = p->gen;
	if (!up_params_copy(&pc->params, &p->params)) {
		free(pc);
		return;
	}
	pc->up = up_connect(p->base, p->dns, &pc->params, ++p->next_id, &ev);
	if (pc->up == NULL) {
		free_conn(pc);
		return;
	}
	TAILQ_INSERT_TAIL(&p->opening, pc, link);
	p->n[PC_OPENING]++;
}

/* ---- maintenance ---- */

static void pool_check_done(struct up_conn *up, const struct up_result *r,
                            void *arg)
{
	struct pool_conn *pc = arg;

	if (r->ok && r->txn_status == 'I') {
		pc->suspect = false;
		move_conn(pc, PC_IDLE);
		kick(pc->pool);
		return;
	}
	/* A lost connection is dropped by conn_closed; close the rest. */
	if (!r->conn_lost) {
		log_warn("conn=%" PRIu64 " event=check_failed", up_get_id(up));
		up_close(up, UP_CLOSE_PROTOCOL, "health check failed");
	}
}

static void pool_start_check(struct pool_conn *pc)
{
	/* An empty query is the cheapest round trip the server knows. */
	move_conn(pc, PC_CHECKING);
	if (!up_exec(pc->up, SQL_PING, NULL, pool_check_done, pc))
		up_close(pc->up, UP_CLOSE_INTERNAL, "cannot run check");
}

static void check_idle(struct pool *p, uint64_t now)
{
	uint64_t quiet = (uint64_t)p->cfg.health_check_s * 1000u;
	struct pool_conn *pc, *next;

	for (pc = TAILQ_FIRST(&p->idle); pc; pc = next) {
		next = TAILQ_NEXT(pc, link);
		if (is_stale(pc)) {
			retire_conn(pc, "settings_changed");
			continue;
		}
		if (pc->expires_ms && now >= pc->expires_ms) {
			log_info(
			    "conn=%" PRIu64 " event=recycle age_s=%" PRIu64,
			    up_get_id(pc->up), (now - pc->opened_ms) / 1000u);
			drop_conn(pc);
			continue;
		}
		if (!pc->suspect &&
		    (quiet == 0 || now - pc->idle_since_ms < quiet))
			continue;
		pool_start_check(pc);
	}
}

static unsigned wanted_conns(const struct pool *p)
{
	unsigned want = p->cfg.min_size;
	unsigned busy = p->n[PC_LENT] + p->n[PC_CHECKING];

	/* Waiters get new connections up to max_size. */
	if (busy + p->nwaiters > want)
		want = busy + p->nwaiters;
	if (want > p->cfg.max_size)
		want = p->cfg.max_size;
	return want;
}

static void refill(struct pool *p, uint64_t now)
{
	if (p->params.host == NULL)
		return; /* waiting for the control plane */
	while (total_conns(p) < wanted_conns(p)) {
		if (p->failures > 0) {
			/* Failing: one probe at a time, after the backoff. */
			if (p->n[PC_OPENING] > 0 || now < p->next_attempt_ms)
				return;
		}
		open_conn(p);
		if (p->failures > 0)
			return;
	}
}

static void serve_waiters(struct pool *p)
{
	while (!TAILQ_EMPTY(&p->waiters) && !TAILQ_EMPTY(&p->idle)) {
		struct pool_waiter *w = TAILQ_FIRST(&p->waiters);
		struct pool_conn *pc = TAILQ_FIRST(&p->idle);

		if (pc->suspect) {
			pool_start_check(pc); /* lent once it answers */
			continue;
		}
		TAILQ_REMOVE(&p->waiters, w, link);
		p->nwaiters--;
		move_conn(pc, PC_LENT);
		w->cb(pc->up, w->arg);
		free(w);
	}
}

static void maintain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pool *p = arg;
	uint64_t now = clock_now_ms();
	uint64_t wait = MAINTAIN_EVERY_MS;

	check_idle(p, now);
	serve_waiters(p);
	refill(p, now);
	if (p->failures > 0 && p->n[PC_OPENING] == 0 &&
	    p->next_attempt_ms > now && p->next_attempt_ms - now < wait)
		wait = p->next_attempt_ms - now;
	timer_add_ms(p->maint_ev, wait);
}

/* ---- public ---- */

static void log_pool_start(const struct pool *p)
{
	char host[300];

	log_info("event=pool_start host=%s port=%u min_size=%u max_size=%u",
	         log_quote(host, sizeof(host), p->params.host),
	         (unsigned)p->params.port, p->cfg.min_size, p->cfg.max_size);
}

bool pool_set_password(struct pool *p, const char *password)
{
	bool ok = true;
	char *copy = dup_or_null(password, &ok);

	if (!ok)
		return false;
	secret_free((char *)p->params.password);
	p->params.password = copy;
	return true;
}

bool pool_set_host(struct pool *p, const char *host)
{
	bool first = p->params.host == NULL;
	char *copy;

	if (p->params.host != NULL && strcmp(p->params.host, host) == 0)
		return true;
	copy = strdup(host);
	if (copy == NULL)
		return false;
	free((char *)p->params.host);
	p->params.host = copy;
	/* A new address deserves a fresh try, not the old one's backoff. */
	p->failures = 0;
	p->next_attempt_ms = 0;
	if (p->maint_ev == NULL)
		return true;
	if (first) {
		log_pool_start(p);
		kick(p);
		return true;
	}
	log_info("event=pool_host host=%s",
	         log_quote((char[300]){0}, 300, host));
	/*
	 * The instance moved (failover): connections to the old host may
	 * reach a demoted server that refuses writes. Replace them all.
	 */
	pool_retire(p);
	return true;
}

void pool_on_failing(struct pool *p, unsigned every, pool_failing_cb cb,
                     void *arg)
{
	p->failing_every = every;
	p->failing_cb = cb;
	p->failing_arg = arg;
}

void pool_retire(struct pool *p)
{
	unsigned closed = p->n[PC_OPENING] + p->n[PC_IDLE];
	struct pool_conn *pc;

	p->gen++;
	/* A login under way would end on the old settings: start over. */
	while ((pc = TAILQ_FIRST(&p->opening)) != NULL)
		retire_conn(pc, "settings_changed");
	while ((pc = TAILQ_FIRST(&p->idle)) != NULL)
		retire_conn(pc, "settings_changed");
	/* New settings deserve a fresh try, not the old ones' backoff. */
	p->failures = 0;
	p->next_attempt_ms = 0;
	log_info("event=pool_retire closed=%u later=%u", closed,
	         p->n[PC_CHECKING] + p->n[PC_LENT]);
	kick(p);
}

bool pool_set_endpoint(struct pool *p, const struct up_params *params)
{
	struct up_params want = *params, next;
	char host[300], db[300], user[300];

	if (want.host == NULL)
		want.host = p->params.host;
	want.password = p->params.password;
	if (!up_params_copy(&next, &want))
		return false;
	up_params_clear(&p->params);
	p->params = next;
	log_info("event=pool_endpoint host=%s port=%u dbname=%s user=%s "
	         "sslmode=%s",
	         log_quote(host, sizeof(host), next.host), (unsigned)next.port,
	         log_quote(db, sizeof(db), next.dbname),
	         log_quote(user, sizeof(user), next.user),
	         sslmode_name(next.sslmode));
	pool_retire(p);
	return true;
}

/* Idle connections beyond what the pool now wants (a smaller size). */
static void shrink(struct pool *p)
{
	struct pool_conn *pc;

	while (total_conns(p) > wanted_conns(p) &&
	       (pc = TAILQ_FIRST(&p->idle)) != NULL)
		retire_conn(pc, "pool_shrunk");
}

void pool_reconfigure(struct pool *p, const struct cfg_pool *pc)
{
	static const enum pool_conn_state open_states[] = {PC_IDLE, PC_CHECKING,
	                                                   PC_LENT};
	struct pool_conn *c;

	p->cfg = *pc;
	p->params.connect_timeout_ms = pc->connect_timeout_ms;
	p->params.login_timeout_ms = pc->login_timeout_ms;
	p->params.query_timeout_ms = pc->query_timeout_ms;
	/* A shorter lifetime should not wait for the old, longer one. */
	for (size_t i = 0; i < sizeof(open_states) / sizeof(open_states[0]);
	     i++) {
		TAILQ_FOREACH(c, pool_list_of(p, open_states[i]), link)
		set_expiry(c, c->opened_ms);
	}
	log_info("event=pool_config min_size=%u max_size=%u "
	         "max_lifetime_s=%u health_check_s=%u",
	         pc->min_size, pc->max_size, pc->max_lifetime_s,
	         pc->health_check_s);
	shrink(p);
	/* Growing, or more room for waiters: maintenance opens them. */
	kick(p);
}

struct pool *pool_new(struct event_base *base, struct evdns_base *dns,
                      const struct up_params *params, const struct cfg_pool *pc)
{
	struct pool *p = calloc(1, sizeof(*p));
	struct up_params rest = *params;

	if (p == NULL)
		return NULL;
	p->base = base;
	p->dns = dns;
	p->cfg = *pc;
	p->rng = rng_seed();
	TAILQ_INIT(&p->opening);
	TAILQ_INIT(&p->idle);
	TAILQ_INIT(&p->checking);
	TAILQ_INIT(&p->lent);
	TAILQ_INIT(&p->waiters);
	/* host and password go through their setters below */
	rest.host = rest.password = NULL;
	if (!up_params_copy(&p->params, &rest)) {
		free(p);
		return NULL;
	}
	if ((params->host && !pool_set_host(p, params->host)) ||
	    (params->password && !pool_set_password(p, params->password)) ||
	    (p->maint_ev = evtimer_new(base, maintain_cb, p)) == NULL) {
		pool_free(p);
		return NULL;
	}
	if (p->params.host != NULL)
		log_pool_start(p);
	else
		log_info("event=pool_waiting reason=\"no host or credential "
		         "yet\" min_size=%u max_size=%u",
		         pc->min_size, pc->max_size);
	kick(p);
	return p;
}

void pool_free(struct pool *p)
{
	struct pool_waiter *w;
	struct pool_conn *pc;

	if (p == NULL)
		return;
	while ((w = TAILQ_FIRST(&p->waiters)) != NULL) {
		TAILQ_REMOVE(&p->waiters, w, link);
		w->cb(NULL, w->arg);
		free(w);
	}
	for (int s = PC_OPENING; s <= PC_LENT; s++) {
		while ((pc = TAILQ_FIRST(pool_list_of(p, s))) != NULL)
			drop_conn(pc);
	}
	if (p->maint_ev)
		event_free(p->maint_ev);
	up_params_clear(&p->params);
	free(p);
}

struct pool_waiter *pool_acquire(struct pool *p, pool_acquire_cb cb, void *arg)
{
	struct pool_waiter *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->cb = cb;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&p->waiters, w, link);
	p->nwaiters++;
	kick(p);
	return w;
}

void pool_cancel(struct pool *p, struct pool_waiter *w)
{
	TAILQ_REMOVE(&p->waiters, w, link);
	p->nwaiters--;
	free(w);
}

void pool_release(struct pool *p, struct up_conn *c)
{
	struct pool_conn *pc;

	TAILQ_FOREACH(pc, &p->lent, link)
	{
		if (pc->up == c)
			break;
	}
	if (pc == NULL) {
		log_error("conn=%" PRIu64 " event=release_unknown",
		          up_get_id(c));
		return;
	}
	if (pc->dead || up_get_state(c) != UP_IDLE || up_txn_status(c) != 'I') {
		/* Never lend out a connection with half a transaction on it. */
		log_info("conn=%" PRIu64 " event=discard state=%s txn=%c",
		         up_get_id(c), up_state_name(up_get_state(c)),
		         up_txn_status(c) ? up_txn_status(c) : '-');
		drop_conn(pc);
	} else if (is_stale(pc)) {
		retire_conn(pc, "settings_changed");
	} else if (total_conns(p) > p->cfg.max_size) {
		retire_conn(pc, "pool_shrunk");
	} else {
		move_conn(pc, PC_IDLE);
	}
	kick(p);
}

/*
 * How long connections have waited on the server without any of them
 * hearing from it: 0 while none waits. Idle ones count as heard from
 * when they last were.
 */
static uint64_t stalled_ms(const struct pool *p, uint64_t now)
{
	const struct pool_conn_list *lists[] = {&p->opening, &p->idle,
	                                        &p->checking, &p->lent};
	uint64_t newest = 0;
	bool waiting = false;
	const struct pool_conn *pc;

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		TAILQ_FOREACH(pc, lists[i], link)
		{
			uint64_t t = up_last_progress_ms(pc->up);

			waiting = waiting || up_waits_on_server(pc->up);
			if (t > newest)
				newest = t;
		}
	}
	return waiting && now > newest ? now - newest : 0;
}

void pool_get_stats(const struct pool *p, struct pool_stats *s)
{
	s->stalled_ms = stalled_ms(p, clock_now_ms());
	s->opening = p->n[PC_OPENING];
	s->idle = p->n[PC_IDLE];
	s->checking = p->n[PC_CHECKING];
	s->lent = p->n[PC_LENT];
	s->waiters = p->nwaiters;
	s->opened = p->opened;
	s->closed = p->closed;
	s->failed = p->failed;
	s->failures = p->failures;
}

void pool_log_stats(const struct pool *p)
{
	struct pool_stats s;

	pool_get_stats(p, &s);
	log_info("event=pool_stats opening=%u idle=%u checking=%u lent=%u "
	         "waiters=%u opened=%" PRIu64 " closed=%" PRIu64
	         " failed=%" PRIu64 " failures=%u",
	         s.opening, s.idle, s.checking, s.lent, s.waiters, s.opened,
	         s.closed, s.failed, s.failures);
}
