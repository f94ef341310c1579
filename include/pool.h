/* pool.h: a warm pool of upstream connections with a wait queue. */
#ifndef LBP_POOL_H
#define LBP_POOL_H

/*
 * The pool keeps min_size logged-in connections open at all times and
 * opens up to max_size when callers wait. Every connection is in exactly
 * one pool state, and so on exactly one list:
 *
 *   OPENING  (login in progress)       -> opening list
 *   IDLE     (ready, nobody uses it)   -> idle list
 *   CHECKING (idle, running a check)   -> idle list is left; checking list
 *   LENT     (handed to a caller)      -> lent list
 *
 * When a connection dies of its server or the network, the idle ones are
 * suspect: each runs a check before it is lent (a blackhole kills them all
 * silently).
 *
 * Failed connects back off exponentially with jitter, and while the server
 * is failing only one connect is tried at a time, so a down server sees a
 * trickle, not a storm. Idle connections are checked after health_check_s
 * of quiet, and connections older than max_lifetime_s are replaced when
 * they next become idle. Connections opened before the settings changed
 * (pool_retire) are closed as soon as they are not lent, so every open
 * connection soon runs on the current ones.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "upstream.h"

struct event_base;
struct evdns_base;
struct pool;
struct pool_waiter;

struct pool_stats {
	unsigned opening;
	unsigned idle;
	unsigned checking;
	unsigned lent;
	unsigned waiters;
	uint64_t opened;   /* logins completed, ever */
	uint64_t closed;   /* connections closed, ever */
	uint64_t failed;   /* connects or logins that failed, ever */
	unsigned failures; /* consecutive failures now (0 = healthy) */
	/* Connections wait on the server and none has heard from it for this
	 * long (0: none waits). */
	uint64_t stalled_ms;
};

/*
 * params: host, credentials and timeouts for every connection (the pool
 * copies every string and takes its own reference to ssl_ctx); pc: sizes
 * and intervals. The pool starts opening min_size connections at
 * once, unless params->host is NULL: then it waits for pool_set_host
 * (the control plane's first credential) and acquirers wait with it.
 */
struct pool *pool_new(struct event_base *base, struct evdns_base *dns,
                      const struct up_params *params,
                      const struct cfg_pool *pc);
/* Closes every connection; waiters are called back with NULL first. */
void pool_free(struct pool *p);

/*
 * Called with a logged-in idle connection that is now the caller's, or
 * with NULL when the pool is shutting down. Always called from the event
 * loop, never from inside pool_acquire.
 */
typedef void (*pool_acquire_cb)(struct up_conn *c, void *arg);
/* NULL only on OOM. The waiter handle is valid until its callback runs. */
struct pool_waiter *pool_acquire(struct pool *p, pool_acquire_cb cb, void *arg);
/* Withdraws a waiter whose callback has not run. */
void pool_cancel(struct pool *p, struct pool_waiter *w);

/*
 * Gives a connection back. A connection that is not idle at transaction
 * status 'I' (broken, closed, mid-transaction) is closed and replaced.
 */
void pool_release(struct pool *p, struct up_conn *c);

/*
 * Credentials that change while the pool runs (Lakebase OAuth tokens, a
 * host that failover moved). Both copy the string (password NULL: none).
 * Connections opened from now on use it. A new password leaves open
 * connections as they are; a different host replaces them (pool_retire),
 * since the old host may now be a demoted server. Setting the first host
 * starts connecting at once, with the failure backoff reset. false only on
 * OOM (the old value stays).
 */
bool pool_set_password(struct pool *p, const char *password);
bool pool_set_host(struct pool *p, const char *host);

/*
 * Every connection open now is replaced: logins under way and idle ones are
 * closed at once, busy ones when they come back; new ones are opened at
 * once with the backoff reset. For a server that is no longer the same one.
 */
void pool_retire(struct pool *p);

/*
 * New connection settings (a reload): everything in params but the
 * password (pool_set_password), copied; host NULL keeps the current host.
 * Then pool_retire. false only on OOM (nothing changed).
 */
bool pool_set_endpoint(struct pool *p, const struct up_params *params);

/*
 * New sizes, lifetimes, timeouts and intervals. Growing opens connections
 * (and serves waiters) at once; shrinking closes idle connections beyond
 * the new size now and busy ones when they come back. A new max_lifetime_s
 * counts from each open connection's start.
 */
void pool_reconfigure(struct pool *p, const struct cfg_pool *pc);

/*
 * cb runs (from the event loop) each time every-th consecutive connect
 * failure happens, e.g. to look the host up again. every 0: never.
 */
typedef void (*pool_failing_cb)(unsigned failures, void *arg);
void pool_on_failing(struct pool *p, unsigned every, pool_failing_cb cb,
                     void *arg);

void pool_get_stats(const struct pool *p, struct pool_stats *s);
/* Writes one key=value log line with the counts. */
void pool_log_stats(const struct pool *p);

#endif
