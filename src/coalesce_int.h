/* coalesce_int.h: what coalesce.c (targets, queues, dispatch) and batch.c (a
 * batch's life) share. No other module includes it. */
#ifndef LBP_COALESCE_INT_H
#define LBP_COALESCE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "coalesce.h"

struct event;
struct evbuffer;
struct mt_metric;
struct pool_waiter;
struct up_conn;

/* A client's flush unit: on its target's queue, then in one batch. */
struct co_unit {
	TAILQ_ENTRY(co_unit) link; /* target queue, or its batch's units */
	struct evbuffer *rows;
	uint64_t nrows;
	size_t bytes;
	uint64_t queued_ms;
	const struct co_table_metrics *metrics; /* its target's */
	co_done_cb done;
	void *arg;
	/* Rows moved to the dead-letter table: VALUES tuples (sqlgen). */
	struct evbuffer *dead;
	uint64_t ndead;
	uint64_t *removed; /* original row numbers taken out, ascending */
	/* exactly-once: its progress row (owned, with its strings), or NULL */
	struct sql_progress *progress;
};
TAILQ_HEAD(unit_list, co_unit);

/*
 * A batch's life, one state at a time (logged on change):
 *
 *   ACQUIRING    waiting for its first connection, holding no units: they
 *                stay queued, so all that arrives meanwhile rides along
 *   RUNNING      its statement runs on conn
 *   ROLLING_BACK an error left the transaction open: ROLLBACK on conn
 *   REACQUIRING  its connection was lost or refused work: waiting for
 *                another, at most acquire_timeout_ms, holding its units
 *
 * It ends (freed) when every unit it took has its outcome. RUNNING and
 * ROLLING_BACK hold conn; the acquiring states hold wait.
 */
enum batch_state {
	BATCH_ACQUIRING,
	BATCH_RUNNING,
	BATCH_ROLLING_BACK,
	BATCH_REACQUIRING
};

/*
 * What one statement of the batch carries: every unit, or, after an error
 * that no COPY line pins on one unit, one unit per transaction so that the
 * error reaches only its own.
 */
enum batch_scope { SCOPE_ALL_UNITS, SCOPE_ONE_UNIT };

struct co_batch {
	TAILQ_ENTRY(co_batch) link; /* the coalescer's batches */
	struct co_target *t;
	enum batch_state state;
	enum batch_scope scope;
	uint64_t id;
	struct unit_list units;
	uint64_t rows;
	size_t bytes;
	struct pool_waiter *wait;
	struct event *reacquire_ev;
	struct up_conn *conn;
	struct evbuffer *data; /* what the statement streams (copied rows) */
	char *sql;             /* the statement when it carries dead letters */
	unsigned attempts;
};
TAILQ_HEAD(batch_list, co_batch);

struct co_target {
	TAILQ_ENTRY(co_target) link;
	struct coalescer *co;
	unsigned refs;
	char *key;
	char *name; /* schema.table, for logs */
	struct co_table_metrics metrics;
	struct sql_target def;
	char **strings; /* owned copies behind def */
	size_t nstrings;
	char *sql;      /* the batch statement */
	char stage[40]; /* upsert: its staging table */
	bool dead_ok;   /* dead_letter on, and the table can have one */
	struct unit_list queue;
	uint64_t queued_rows;
	size_t queued_bytes;
	unsigned inflight; /* batches alive */
	unsigned waiting;  /* of which ACQUIRING */
	struct event *delay_ev;
	struct event *acquire_ev;
	/* Consecutive units failed with fail_state (coalesce.h: Back-off). */
	char fail_state[6];
	unsigned fail_streak;
	unsigned backoff_ms;    /* the delay in effect; 0: none */
	uint64_t backoff_until; /* clock_now_ms: no batch starts before */
	uint64_t last_fail_ms;  /* clock_now_ms of the streak's last failure */
	struct mt_metric *backoffs; /* lbp_target_backoffs_total child */
};
TAILQ_HEAD(target_list, co_target);

struct coalescer {
	struct event_base *base;
	struct pool *pool;
	struct catalog *cat;
	struct co_config cfg;
	struct target_list targets;
	struct batch_list batches;
	uint64_t next_batch_id;
	struct co_stats stats;
	struct mt_metric *batch_rows; /* the rows-per-batch histogram */
	bool draining; /* shutting down: no unit waits for batch limits */
	struct co_read_list
	    *reads; /* progress reads in flight (co_progress.c) */
};

/* ---- coalesce.c, for batch.c ---- */

/* Gives u its outcome (counted in the metrics), calls done, frees u. */
void co_unit_fail(struct coalescer *co, struct co_unit *u, const char *sqlstate,
                  const char *message, const char *detail, uint64_t row);
/* The server rejected u (row: its 1-based row, or 0): e goes to its client. */
void co_unit_fail_server(struct coalescer *co, struct co_unit *u,
                         const struct pgw_notice *e, uint64_t row);
void co_unit_ack(struct coalescer *co, struct co_unit *u);
/* A first_wins unit committed; inserted[0..n): which of its rows went in. */
void co_unit_ack_inserted(struct coalescer *co, struct co_unit *u,
                          const uint64_t *inserted, size_t n);
/* Moves queued units, oldest first, into b up to the limits (at least 1). */
void co_take_units(struct co_batch *b);
/* A batch of t is gone: more may go now, or t may go. */
void co_batch_ended(struct co_target *t);
/* Starts a batch for t if its queue and the limits say so. */
void co_try_dispatch(struct co_target *t);
/* A unit of t failed with this server error: t's streak grows. */
void co_target_failed(struct co_target *t, const char *sqlstate);
/* A unit of t committed: t's streak, and any back-off, ends. */
void co_target_committed(struct co_target *t);

/* ---- co_progress.c, for coalesce.c and batch.c ---- */

/* Shutting down: every read in flight is answered 57P01 and freed. */
void co_progress_abandon(struct coalescer *co);

/* ---- batch.c, for coalesce.c ---- */

/* A new batch for t, ACQUIRING; false on OOM (t's timers try again). */
bool batch_start(struct co_target *t);
/* Shutting down: fails b's units with 57P01 and frees b, leaving its
 * connection to the pool. */
void batch_abandon(struct co_batch *b);

#endif
