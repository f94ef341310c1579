/* ingest.h: the ingest port: listener, client sessions, backpressure. */
#ifndef LBP_INGEST_H
#define LBP_INGEST_H

/*
 * Speaks docs/ingest-protocol.md. A session's life:
 *
 *   HELLO -> OPEN -> OPENING (catalog lookup) -> STREAM -> CLOSING -> gone
 *   any state -> DRAINING (Error or CloseOk sent, waiting to flush) -> gone
 *
 * Rows are checked (copytext) as they arrive and collected into the open
 * flush unit; Flush hands the unit to the coalescer. Answers go out in
 * Flush order whatever order units commit in. A session stops being read
 * (TCP backpressure) while its flushed-but-unanswered bytes exceed
 * client_buffer_bytes, while all sessions' together exceed
 * global_buffer_bytes, or while the client does not read its answers.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct event_base;
struct catalog;
struct coalescer;
struct ingest;

struct ing_stats {
	unsigned clients;
	unsigned paused; /* sessions not being read for backpressure */
	uint64_t accepted;
	uint64_t refused; /* over max_clients or bad token */
	uint64_t rows_received;
	uint64_t buffered_bytes; /* flushed, not yet answered */
	uint64_t protocol_errors;
};

/* Binds and listens now (so a bad address fails the start). NULL + err. */
struct ingest *ing_new(struct event_base *base, struct catalog *cat,
                       struct coalescer *co, const struct cfg_ingest *cfg,
                       char *err, size_t errlen);
/* Sends Error 57P01 to every session and closes everything. */
void ing_free(struct ingest *ing);
void ing_get_stats(const struct ingest *ing, struct ing_stats *s);
/* Registers the flush-to-answer latency histogram (metrics.h). */
void ing_register_metrics(void);
/* Its quantile q (0..1) in seconds, by bucket upper bound; 0 when empty. */
double ing_flush_latency_quantile(const struct ingest *ing, double q);
/* A new token (NULL: none) for sessions from now on; false on OOM (the old
 * one stays). Sessions already past their hello are not asked again. */
bool ing_set_token(struct ingest *ing, const char *token);
/*
 * Where PostgreSQL clients should connect instead (the front door's listen
 * address; NULL: it is off), for the error a PostgreSQL client that reached
 * the ingest port gets. Copied; false on OOM (the old one stays).
 */
bool ing_set_postgres_door(struct ingest *ing, const char *where);

/*
 * Shutting down: stop accepting and reading; every session is answered
 * for the units it flushed, then gets Error 57P01 and is closed. Rows it
 * sent after its last Flush are discarded (never acknowledged).
 */
void ing_drain(struct ingest *ing);
/* No session has anything left to say (lingering closes may remain). */
bool ing_is_idle(const struct ingest *ing);

#endif
