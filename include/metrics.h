/* metrics.h: the process's counters and histograms, and their Prometheus text.
 */
#ifndef LBP_METRICS_H
#define LBP_METRICS_H

/*
 * One registry per process, like the log level: the daemon has one event
 * loop thread, and the counters are bumped from the few places that see an
 * event happen (a row arriving, a unit committing, an ErrorResponse), so
 * they need no object passed through every layer. Nothing here allocates
 * on the counting paths except the first time a table or SQLSTATE is seen.
 *
 * Counters live for the whole process: a table's series outlive the
 * target that fed them, so a scrape never sees a counter go down. Tables
 * and SQLSTATEs are capped (MT_MAX_SERIES, MT_MAX_SQLSTATES); past the cap
 * they count under table="_other" / sqlstate="other".
 *
 * Gauges (clients, connections by state, buffered bytes, ...) are not kept
 * here: the admin server reads the owning modules' stats when scraped and
 * passes them to mt_render in struct mt_gauges.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coalesce.h"
#include "ingest.h"
#include "pool.h"

struct evbuffer;

#define MT_MAX_SERIES    256
#define MT_MAX_SQLSTATES 128

/* Counters of one table written one way (insert, upsert). */
struct mt_series {
	char *table; /* schema.table, unquoted */
	char mode;   /* 'i' insert, 'u' upsert */
	uint64_t rows_received, bytes_received;
	uint64_t rows_committed, bytes_committed;
	uint64_t rows_rejected; /* rows of flush units answered with an error */
	uint64_t rows_dead_lettered;
	uint64_t flushes_committed, flushes_failed;
	uint64_t batches;
};

/*
 * The series for table ("schema.table") in mode, created on first use;
 * never freed before mt_reset. Never NULL: on OOM or past the cap it is the
 * shared "_other" series.
 */
struct mt_series *mt_series_get(const char *table, char mode);

/* A batch went out with rows rows (the batch-size histogram). */
void mt_batch(struct mt_series *s, uint64_t rows);
/* From a client's Flush to its answer being queued for the client. */
void mt_flush_latency_us(uint64_t us);
/* An ErrorResponse from the server, in a statement or as FATAL. */
void mt_upstream_error(const char *sqlstate);

/*
 * Values read at scrape time from their owners. Any field may stay 0;
 * credential_expires_ms < 0 means no credential has an expiry (static
 * password): the expiry gauge is then left out.
 */
struct mt_gauges {
	struct ing_stats ing;
	struct co_stats co;
	struct pool_stats pool;
	int64_t credential_expires_ms;
	bool ready;
	bool draining;
	double start_time_s;
	double cpu_s;
	uint64_t rss_bytes;
};

/* Appends the whole exposition (text format 0.0.4). false on OOM. */
bool mt_render(struct evbuffer *out, const struct mt_gauges *g);

/*
 * Writes v as a Prometheus label value (backslash, quote and newline
 * escaped) into buf. Returns buf; truncates (never mid-escape).
 */
const char *mt_label_escape(char *buf, size_t size, const char *v);

/* The flush latency histogram's quantile q (0..1) in seconds, by the
 * bucket's upper bound; 0 when empty. For the stats log line. */
double mt_flush_latency_quantile(double q);

/* Frees every series and zeroes every counter (tests, process exit). */
void mt_reset(void);

#endif
