/* control.h: the Databricks control plane: the instance's host and OAuth
 * database credentials. */
#ifndef LBP_CONTROL_H
#define LBP_CONTROL_H

/*
 * A ctl lives on the proxy's libevent loop and never blocks it: HTTP goes
 * through libcurl's multi interface, whose sockets and timers are libevent
 * events. One API call is in flight at a time, in this order, each step
 * only when needed:
 *
 *   WS_TOKEN   (OAuth M2M only: POST /oidc/v1/token, refreshed at
 *               refresh_percent of its life)
 *   HOST       (GET database/instances/{name} or postgres/{endpoint})
 *   CREDENTIAL (POST database/credentials or postgres/credentials)
 *
 * After each credential, on_credential gets the host and the token, and the
 * next refresh is due at refresh_percent of the credential's life. A failed
 * call is logged (one line: step, HTTP status, the API's error or curl's,
 * never a token or secret) and retried with backoff and jitter (a 429's
 * Retry-After is honoured); the current credential stays in use meanwhile.
 * See docs/control-plane.md.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct event_base;
struct ctl;

struct ctl_events {
	/*
	 * A new credential. host and token live until the callback returns;
	 * expires_ms is wall-clock milliseconds since the epoch.
	 */
	void (*on_credential)(const char *host, const char *token,
	                      int64_t expires_ms, void *arg);
	/* once mode only: the first failure ends the ctl; error is its text */
	void (*on_failure)(const char *error, void *arg);
	void *arg;
};

/*
 * Starts at once (the first call is made from the loop). cfg is copied.
 * once: stop after the first credential or the first failure
 * (--check-config), instead of refreshing forever. NULL + err on failure.
 */
struct ctl *ctl_new(struct event_base *base, const struct cfg_lakebase *cfg,
                    bool once, const struct ctl_events *events, char *err,
                    size_t errlen);
/* Cancels a call in flight; no callback runs after this. */
void ctl_free(struct ctl *c);

/*
 * Connecting fails: look the host up again and fetch a new credential now
 * (or after the retry already waiting).
 */
void ctl_reresolve(struct ctl *c);

/*
 * --check-config: the lookups once on a private loop. On true, host holds
 * the host and *expires_ms the credential's expiry (the token is dropped).
 */
bool ctl_check(const struct cfg_lakebase *cfg, char *host, size_t hostlen,
               int64_t *expires_ms, char *err, size_t errlen);

#endif
