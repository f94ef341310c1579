/* coalesce.h: merges clients' flush units into batches and commits them. */
#ifndef LBP_COALESCE_H
#define LBP_COALESCE_H

/*
 * A target is one table written one way (mode, columns, keys, upsert
 * options); every session that opens the same target shares its queue. A
 * flush unit (a client's rows up to its Flush) is the atom: it is never
 * split between batches, so it commits whole or not at all.
 *
 * When a batch goes out: only while the target has fewer than max_inflight
 * batches in flight (one for upsert targets, to keep arrival order) and
 * none waiting for a connection; then at once if the queue holds max_rows
 * or max_bytes or its oldest unit has waited max_delay_ms (the linger; 0,
 * the default, sends at once). At low load that gives the lowest latency;
 * at high load the batches in flight are busy, so units pile up and the
 * next batches are big (group commit). A linger trades latency for fewer,
 * larger transactions at moderate load. The units are taken from the queue
 * only when the connection is in hand, so everything that arrived meanwhile
 * rides along.
 *
 * Back-off: when units of a target keep failing with the same SQLSTATE
 * (server errors, not a lost connection), its next batch waits
 * co_backoff_ms(streak) after the last failure; units queue meanwhile and
 * go out together. A unit of the target committing ends the streak. Other
 * targets never wait for it, and co_drain does not wait either. A target
 * with a streak outlives its sessions by failure_backoff_max_ms after the
 * last failure, so a client that reconnects to retry still finds it.
 *
 * How a failure is mapped back to clients (all in coalesce.c):
 *  - a server error naming a COPY line fails the unit holding that line
 *    (with its row number) and the batch is retried without it;
 *  - an error naming no line, or too many retries, runs the units one per
 *    transaction, so the error reaches only its own unit;
 *  - with dead_letter on, a rejected row leaves its unit for the target's
 *    dead-letter table (written in the same transaction) and the unit
 *    goes again without it;
 *  - 40P01 / 40001 retry the batch as it is;
 *  - a connection lost before CopyDone: retried on another connection;
 *    lost after it (COMMIT may have run): upsert retried (idempotent),
 *    insert failed with 08007 "outcome unknown". A retry that gets no
 *    connection within acquire_timeout_ms fails its units with 08001.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sqlgen.h"

struct event_base;
struct evbuffer;
struct pool;
struct catalog;
struct coalescer;
struct co_target;
struct mt_metric;
struct pgw_notice;
struct cfg_batch;

struct co_config {
	uint64_t max_rows;
	uint64_t max_bytes;
	unsigned max_delay_ms;
	unsigned max_inflight;       /* batches in flight per insert target */
	unsigned max_retries;        /* before going unit by unit */
	unsigned acquire_timeout_ms; /* wait for a server connection */
	/*
	 * Rows the server rejects (errors that name a row) go to the table
	 * "<table>_dead_letter" next to the target, in the same transaction
	 * as the rest of their unit, which then commits instead of failing.
	 */
	bool dead_letter;
	/* Back-off after repeated identical failures; base 0 = off. */
	unsigned failure_backoff_ms;
	unsigned failure_backoff_max_ms;
};

/*
 * The wait before a target's next batch after `streak` consecutive units
 * failed with the same SQLSTATE: none for fewer than 2, then base_ms,
 * doubling with each further failure, at most max_ms. 0 when base_ms is 0.
 */
unsigned co_backoff_ms(unsigned streak, unsigned base_ms, unsigned max_ms);

/*
 * The outcome of one unit, given once. sqlstate NULL: committed, rows is
 * its row count. Otherwise nothing of it committed; row is the 1-based row
 * in the unit that the server rejected, or 0.
 */
struct co_outcome {
	uint64_t rows;
	const char *sqlstate;
	const char *message;
	const char *detail;
	uint64_t row;
	/* the server's whole ErrorResponse when the failure is the server's
	 * (the fields above are copied from it), else NULL */
	const struct pgw_notice *error;
	/* committed, first_wins targets: which of the unit's rows (0-based,
	 * ascending) were inserted; the others met a stored or earlier row */
	const uint64_t *inserted;
	size_t ninserted;
};
typedef void (*co_done_cb)(const struct co_outcome *o, void *arg);

struct co_stats {
	uint64_t units_committed, rows_committed, units_failed;
	uint64_t batches, batch_retries, batches_split;
	uint64_t queued_units, queued_bytes;
	unsigned inflight;
};

/*
 * The metrics of one table written one way (metrics.h children labelled
 * table and mode), shared by every target of that table and mode. The
 * coalescer counts commits, rejections, dead letters and batches; the
 * client side counts what arrives (rows_received, bytes_received) and the
 * flushes its own checks refuse.
 */
struct co_table_metrics {
	struct mt_metric *rows_received, *bytes_received;
	struct mt_metric *rows_committed, *bytes_committed;
	struct mt_metric *rows_rejected, *rows_dead_lettered;
	struct mt_metric *flushes_committed, *flushes_failed;
	struct mt_metric *batches;
};

/* Registers the coalescer's metric families (they render from then on). */
void co_register_metrics(void);

/* The limits [batch] gives (dead_letter included). */
void co_config_from(const struct cfg_batch *b, struct co_config *out);

struct coalescer *co_new(struct event_base *base, struct pool *pool,
                         struct catalog *cat, const struct co_config *cfg);
/*
 * Fails every unit, queued or in a batch, with 57P01 (their clients retry).
 * A statement already sent ends with its connection when the pool, freed
 * after us, closes it: committed or rolled back whole, so a retried unit
 * may be there twice (insert: at-least-once, as a second SIGTERM says).
 */
void co_free(struct coalescer *co);
/*
 * New limits (a reload) for batches formed from now on; batches in flight
 * keep theirs. Turning dead_letter on covers the targets already open.
 */
void co_set_config(struct coalescer *co, const struct co_config *cfg);

/*
 * The shared target for def (copied), created on first use. Reference
 * counted: every co_target_get needs a co_target_put.
 */
struct co_target *co_target_get(struct coalescer *co,
                                const struct sql_target *def);
void co_target_put(struct co_target *t);

/*
 * Queues a flush unit: nrows whole, checked rows moved out of rows (left
 * empty). done is called exactly once, from the event loop, after the
 * unit's transaction committed or when it definitely failed. false on OOM
 * (done will not be called).
 */
bool co_submit(struct co_target *t, struct evbuffer *rows, uint64_t nrows,
               co_done_cb done, void *arg);

/* What t writes (valid while the caller holds its reference). */
const struct sql_target *co_target_def(const struct co_target *t);
/*
 * co_submit with an exactly-once progress row (copied; sql_progress_valid),
 * written in the same transaction as the unit's rows and only with them:
 * whatever batch, retry or split the unit goes through, its progress row
 * goes too, and a unit that fails writes none. nrows may be 0 (a unit
 * that only advances, or completes, its progress). false on OOM or an
 * invalid progress row (done will not be called).
 */
bool co_submit_progress(struct co_target *t, struct evbuffer *rows,
                        uint64_t nrows, const struct sql_progress *progress,
                        co_done_cb done, void *arg);

/*
 * Reads a progress row (rows_committed and complete of key are ignored)
 * on a pooled connection, creating its table if missing. done is called
 * once from the event loop: o->sqlstate NULL and the row's values (0 and
 * false when there is none), or the error. Shutting down (co_free) calls
 * it with 57P01. false on OOM or an invalid key (done will not be called).
 */
typedef void (*co_progress_cb)(const struct co_outcome *o,
                               int64_t rows_committed, bool complete,
                               void *arg);
bool co_progress_read(struct coalescer *co, const struct sql_progress *key,
                      co_progress_cb done, void *arg);

/* The target's table metrics; they outlive the target. */
const struct co_table_metrics *co_target_metrics(const struct co_target *t);
void co_get_stats(const struct coalescer *co, struct co_stats *s);

/* Shutting down: send every queued unit now, without waiting for limits. */
void co_drain(struct coalescer *co);
/* Nothing queued and nothing in flight. */
bool co_is_idle(const struct coalescer *co);

#endif
