/* admin.h: the admin HTTP endpoint: /metrics, /healthz, /readyz. */
#ifndef LBP_ADMIN_H
#define LBP_ADMIN_H

/*
 * A small evhttp server on [admin] listen. GET and HEAD only.
 *   /healthz  200 "ok": the event loop answers (the process is alive).
 *   /readyz   200 "ready", or 503 "not ready: <why>" (probe->ready says).
 *   /metrics  Prometheus text: mt_render (metrics.h), which first runs the
 *             registry's collector (the server sets it) for the gauges.
 * With [admin] auth_token set, /metrics needs "Authorization: Bearer
 * <token>" (401 otherwise); the probes stay open, they tell nothing but
 * up or down. Off loopback the token is required (config.c).
 *
 * Abuse stays local: at most cfg->max_connections are open (more are
 * answered 503 and closed), none is admitted while the process is near
 * its fd limit (those stay for the ingest port), and every request must be
 * whole and answered within cfg->request_timeout_ms.
 */

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct event_base;
struct admin;

struct admin_probe {
	/* true when ready; else why holds a short reason. */
	bool (*ready)(char *why, size_t whylen, void *arg);
	void *arg;
};

/*
 * Binds cfg->listen now, so a bad or busy address fails the start. NULL
 * with err filled. cfg->listen NULL: no endpoint (returns NULL, err "").
 */
struct admin *admin_new(struct event_base *base, const struct cfg_admin *cfg,
                        const struct admin_probe *probe, char *err,
                        size_t errlen);
void admin_free(struct admin *a);
/* A new /metrics token (NULL: none) from the next request on; false on OOM
 * (the old one stays). */
bool admin_set_token(struct admin *a, const char *token);

#endif
