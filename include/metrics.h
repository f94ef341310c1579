/* metrics.h: a registry of counters, gauges and histograms, and their
 * Prometheus text. */
#ifndef LBP_METRICS_H
#define LBP_METRICS_H

/*
 * One registry per process, like the log level: the daemon has one event
 * loop thread, and metrics are bumped from the few places that see an
 * event happen (a row arriving, a unit committing, an ErrorResponse), so
 * they need no object passed through every layer.
 *
 * This is the bottom of the house: it knows no module. A module describes
 * its families (struct mt_desc, static storage), gets a family once and
 * keeps the children it updates (mt_child), then counts through mt_add,
 * mt_set and mt_observe. Values that a module already keeps in its own
 * stats (connections by state, clients) are not mirrored by hand: the one
 * collector (mt_set_collector, the server's) sets them at scrape time.
 *
 * Families render in the order they were first asked for, children in the
 * order they were created. Children live until mt_reset, so a scrape never
 * sees a counter go down even when the table that fed it is gone. Each
 * family caps its children (max_children); past the cap, or when memory
 * runs out, new label sets count in one overflow child whose label values
 * are the family's overflow values (table="_other").
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define MT_MAX_LABELS       3
#define MT_DEFAULT_CHILDREN 256

enum mt_type { MT_COUNTER, MT_GAUGE, MT_HISTOGRAM };

struct mt_desc {
	const char *name;
	const char *help;
	enum mt_type type;
	size_t nlabels;
	const char *labels[MT_MAX_LABELS];
	const char *overflow[MT_MAX_LABELS]; /* label values past the cap */
	size_t max_children;                 /* 0: MT_DEFAULT_CHILDREN */
	const double *buckets;               /* histograms: ascending bounds */
	size_t nbuckets;                     /* an implicit +Inf follows */
};

struct mt_family;
struct mt_metric;

/*
 * The family d describes, registered on first use (d is kept by pointer:
 * give static storage). The same d gives the same family until mt_reset.
 * NULL only on OOM; every function below takes NULL and does nothing.
 */
struct mt_family *mt_family(const struct mt_desc *d);
/*
 * The child with these label values (as many as the family has labels;
 * NULL for none), created on first use. The overflow child past the cap
 * or on OOM; NULL only if even that cannot be made.
 */
struct mt_metric *mt_child(struct mt_family *f, const char *const *values);
/* mt_child(mt_family(d), NULL): the one series of a family without labels. */
struct mt_metric *mt_metric_of(const struct mt_desc *d);

void mt_add(struct mt_metric *m, uint64_t n);   /* counters */
void mt_set(struct mt_metric *m, double v);     /* gauges; counters whose
                                                   owner keeps the total */
void mt_observe(struct mt_metric *m, double v); /* histograms */

/* A counter's or gauge's value; a histogram's count. 0 for NULL. */
double mt_value(const struct mt_metric *m);
/* A histogram's quantile q (0..1): the upper bound of the bucket that holds
 * it (the last finite bound when it is in +Inf); 0 when empty. */
double mt_quantile(const struct mt_metric *m, double q);

/* Runs at the start of every mt_render, to set gauges from their owners. */
typedef void (*mt_collect_cb)(void *arg);
void mt_set_collector(mt_collect_cb cb, void *arg);

/* Appends the whole exposition (text format 0.0.4). false on OOM. */
bool mt_render(struct evbuffer *out);

/*
 * Writes v as a Prometheus label value (backslash, quote and newline
 * escaped) into buf. Returns buf; truncates (never mid-escape).
 */
const char *mt_label_escape(char *buf, size_t size, const char *v);

/* Frees every family and child and forgets the collector (tests, exit). */
void mt_reset(void);

#endif
