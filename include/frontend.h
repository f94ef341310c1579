/* frontend.h: the PostgreSQL front door: any PostgreSQL client through the
 * proxy, with TLS, SCRAM and transaction or session pooling. */
#ifndef LBP_FRONTEND_H
#define LBP_FRONTEND_H

/*
 * A second listener beside the ingest port. It speaks the server side of
 * the PostgreSQL v3 protocol: SSLRequest (TLS 1.2+), StartupMessage 3.0
 * (3.x negotiated down), SCRAM-SHA-256 against [frontend] auth_file, then
 * the client's messages go to a server connection of a pool per database
 * (transaction mode: one per transaction; session mode: one per session),
 * and the server's answers come back, streamed with bounded buffers.
 * Clients get a BackendKeyData of the proxy's; a CancelRequest with it is
 * sent on to the server backend that runs that client's query.
 *
 * Every client session is in one state (logged on change at debug level):
 *
 *   STARTUP   -> TLS -> STARTUP (SSLRequest), AUTH (SCRAM exchange)
 *   AUTH      -> LOGIN (waiting for a server's ParameterStatus values) or
 *                IDLE
 *   IDLE      (no server connection) -> WAITING (a message wants one)
 *   WAITING   (queued at the pool, or setting the client's parameters on
 *              the connection) -> ACTIVE
 *   ACTIVE    (relaying both ways) -> IDLE (transaction over, transaction
 *              mode) or stays (session mode)
 *   any       -> CLOSING (last message queued) -> freed
 *
 * Where the INSERT coalescer (issue 11) plugs in: every client message that
 * arrives while the client holds no server connection passes idle_step()
 * in fe_relay.c, which today asks the pool for a connection. That is the
 * place to take a recognised statement aside (whole messages up to the
 * Sync are in the client's input buffer there) and answer it when its
 * batch commits; the client's later messages must then wait behind it, so
 * that its answers keep their order (a state between IDLE and WAITING).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "config.h"

struct event_base;
struct evdns_base;
struct frontend;

enum fe_state {
	FE_STARTUP,
	FE_TLS,
	FE_AUTH,
	FE_LOGIN,
	FE_IDLE,
	FE_WAITING,
	FE_ACTIVE,
	FE_COALESCING,
	FE_CLOSING,
	FE_NSTATES
};
const char *fe_state_name(enum fe_state s);

struct fe_stats {
	unsigned clients[FE_NSTATES]; /* connected clients by state */
	unsigned pools;
	unsigned server_lent; /* server connections relaying or being set up */
	uint64_t accepted;
	uint64_t refused;       /* too many clients, unknown database */
	uint64_t auth_failures; /* wrong password, unknown user, no TLS */
	uint64_t transactions;  /* server connections given back */
	uint64_t queries;       /* Query and Sync messages forwarded */
	uint64_t bytes_in;      /* client to server */
	uint64_t bytes_out;     /* server to client */
	uint64_t waits;         /* times a client waited for a connection */
	uint64_t wait_us_sum;
	uint64_t cancels;
	uint64_t server_lost; /* server connections lost under a client */
	/* coalescing: message sequences (a Query, or messages up to a Sync)
	 * taken aside, their rows, those that failed, those forwarded after
	 * a look (not coalescible), and the bytes held for them now */
	uint64_t co_sequences, co_rows, co_failed, co_forwarded;
	uint64_t co_held_bytes;
};

/*
 * Starts listening on cfg->frontend.listen (which must be set). upstream:
 * the server connections' settings (copied, TLS context referenced); host
 * NULL waits for fe_set_credential ([lakebase]). NULL + err.
 */
struct up_params;
struct frontend *fe_new(struct event_base *base, struct evdns_base *dns,
                        const struct config *cfg,
                        const struct up_params *upstream, char *err,
                        size_t errlen);
/* Closes every client (57P01) and every pool. NULL is fine. */
void fe_free(struct frontend *fe);

/*
 * SIGHUP: [frontend] but listen (auth_file read again, TLS files loaded
 * again). Checked first: on false (err says why) nothing changed.
 */
bool fe_reconfigure(struct frontend *fe, const struct config *cfg, char *err,
                    size_t errlen);
/* [pool] sizes for every pool of the front door. */
void fe_set_pool_config(struct frontend *fe, const struct cfg_pool *pc);
/* [batch] limits for the front door's coalescers (dead_letter aside:
 * a front-door statement's rows never leave it). */
void fe_set_batch_config(struct frontend *fe, const struct cfg_batch *b);
/*
 * New [upstream] settings (a reload): as pool_set_endpoint for every pool
 * of the front door (host NULL keeps the current one; the password stays).
 */
bool fe_set_endpoint(struct frontend *fe, const struct up_params *params);
/* A new upstream credential (host NULL: unchanged). false on OOM. */
bool fe_set_credential(struct frontend *fe, const char *host,
                       const char *password);

/* SIGTERM: no new clients; each is closed (57P01) once its transaction is
 * over. */
void fe_drain(struct frontend *fe);
bool fe_is_idle(const struct frontend *fe);
void fe_get_stats(const struct frontend *fe, struct fe_stats *s);
/* Sets the front door's metrics from its stats (at scrape time). */
void fe_update_metrics(const struct frontend *fe);

#endif
