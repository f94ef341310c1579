/* gauges.h: the metrics whose values other modules keep in their own stats,
 * set from those stats each time /metrics is scraped. */
#ifndef LBP_GAUGES_H
#define LBP_GAUGES_H

/*
 * This sits beside the server, above every module it reads: the modules
 * keep counting in their own stats (as their log lines do) and know
 * nothing of this; metrics.c knows nothing of them. The server registers
 * these families first (so they lead the exposition), then sets the
 * collector that fills struct gg_values and calls gg_collect.
 */

#include <stdbool.h>
#include <stdint.h>

#include "coalesce.h"
#include "ingest.h"
#include "pool.h"

struct gg_values {
	struct ing_stats ing;
	struct co_stats co;
	struct pool_stats pool;
	int64_t credential_expires_ms; /* < 0: no credential with an expiry */
	bool ready;
	bool draining;
	double start_time_s;
	double cpu_s;
	uint64_t rss_bytes;
};

/* Registers the families below, in exposition order, and the others'. */
void gg_register(void);
/* Sets every family from v. */
void gg_collect(const struct gg_values *v);

#endif
