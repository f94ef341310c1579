/* metrics.c: process-wide counters and the Prometheus text exposition. */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

/* Upper bounds; an implicit +Inf bucket follows. */
static const double batch_rows_le[] = {1,     10,     100,    1000,
                                       10000, 100000, 1000000};
static const double flush_s_le[] = {0.0005, 0.001, 0.002, 0.005, 0.01,
                                    0.02,   0.05,  0.1,   0.2,   0.5,
                                    1,      2,     5,     10,    30};

#define N_BATCH_LE (sizeof(batch_rows_le) / sizeof(batch_rows_le[0]))
#define N_FLUSH_LE (sizeof(flush_s_le) / sizeof(flush_s_le[0]))
#define MAX_LE     N_FLUSH_LE /* the longer of the two */
_Static_assert(N_BATCH_LE <= MAX_LE, "MAX_LE must fit every histogram");

struct hist {
	const double *le;
	size_t nle;
	uint64_t counts[MAX_LE + 1]; /* nle + 1 used, not cumulative */
	uint64_t count;
	double sum;
};

struct sqlstate_count {
	char code[6];
	uint64_t n;
};

static struct {
	struct mt_series *series[MT_MAX_SERIES];
	size_t nseries;
	struct mt_series other; /* past the cap, or out of memory */
	struct sqlstate_count states[MT_MAX_SQLSTATES];
	size_t nstates;
	uint64_t states_other;
	struct hist batch_rows, flush_s;
} M = {
    .other = {.table = "_other", .mode = '?'},
    .batch_rows = {.le = batch_rows_le, .nle = N_BATCH_LE},
    .flush_s = {.le = flush_s_le, .nle = N_FLUSH_LE},
};

static void hist_reset(struct hist *h)
{
	memset(h->counts, 0, sizeof(h->counts));
	h->count = 0;
	h->sum = 0;
}

static void hist_observe(struct hist *h, double v)
{
	size_t i = 0;

	while (i < h->nle && v > h->le[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += v;
}

struct mt_series *mt_series_get(const char *table, char mode)
{
	struct mt_series *s;

	for (size_t i = 0; i < M.nseries; i++) {
		s = M.series[i];
		if (s->mode == mode && strcmp(s->table, table) == 0)
			return s;
	}
	if (M.nseries == MT_MAX_SERIES)
		return &M.other;
	s = calloc(1, sizeof(*s));
	if (s != NULL)
		s->table = strdup(table);
	if (s == NULL || s->table == NULL) {
		free(s);
		return &M.other;
	}
	s->mode = mode;
	M.series[M.nseries++] = s;
	return s;
}

void mt_batch(struct mt_series *s, uint64_t rows)
{
	s->batches++;
	hist_observe(&M.batch_rows, (double)rows);
}

void mt_flush_latency_us(uint64_t us)
{
	hist_observe(&M.flush_s, (double)us / 1e6);
}

void mt_upstream_error(const char *sqlstate)
{
	char code[6] = "?????";

	if (sqlstate != NULL && strlen(sqlstate) == 5)
		memcpy(code, sqlstate, 5);
	for (size_t i = 0; i < M.nstates; i++) {
		if (memcmp(M.states[i].code, code, 5) == 0) {
			M.states[i].n++;
			return;
		}
	}
	if (M.nstates == MT_MAX_SQLSTATES) {
		M.states_other++;
		return;
	}
	memcpy(M.states[M.nstates].code, code, 6);
	M.states[M.nstates++].n = 1;
}

double mt_flush_latency_quantile(double q)
{
	const struct hist *h = &M.flush_s;
	uint64_t want, seen = 0;

	if (h->count == 0)
		return 0;
	want = (uint64_t)(q * (double)h->count + 0.999999);
	for (size_t i = 0; i < h->nle; i++) {
		seen += h->counts[i];
		if (seen >= want)
			return h->le[i];
	}
	return h->le[h->nle - 1]; /* in +Inf: say at least the last bound */
}

void mt_reset(void)
{
	for (size_t i = 0; i < M.nseries; i++) {
		free(M.series[i]->table);
		free(M.series[i]);
	}
	M.nseries = 0;
	memset(&M.other, 0, sizeof(M.other));
	M.other.table = "_other";
	M.other.mode = '?';
	M.nstates = 0;
	M.states_other = 0;
	hist_reset(&M.batch_rows);
	hist_reset(&M.flush_s);
}

/* ---- the text format ---- */

const char *mt_label_escape(char *buf, size_t size, const char *v)
{
	size_t o = 0;

	if (size == 0)
		return buf;
	for (; *v; v++) {
		const char *esc = NULL;
		char one[2] = {*v, '\0'};
		size_t n;

		if (*v == '\\')
			esc = "\\\\";
		else if (*v == '"')
			esc = "\\\"";
		else if (*v == '\n')
			esc = "\\n";
		else
			esc = one;
		n = strlen(esc);
		if (o + n >= size)
			break;
		memcpy(buf + o, esc, n);
		o += n;
	}
	buf[o] = '\0';
	return buf;
}

static const char *mode_name(char mode)
{
	switch (mode) {
	case 'i':
		return "insert";
	case 'u':
		return "upsert";
	default:
		return "other";
	}
}

/* Collects every evbuffer_add_printf result so one check covers a render. */
struct out {
	struct evbuffer *b;
	bool failed;
};

static __attribute__((format(printf, 2, 3))) void put(struct out *o,
                                                      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (evbuffer_add_vprintf(o->b, fmt, ap) < 0)
		o->failed = true;
	va_end(ap);
}

static void family(struct out *o, const char *name, const char *type,
                   const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(struct out *o, const char *name, const char *help, double v)
{
	family(o, name, "gauge", help);
	put(o, "%s %.17g\n", name, v);
}

static void counter(struct out *o, const char *name, const char *help,
                    uint64_t v)
{
	family(o, name, "counter", help);
	put(o, "%s %" PRIu64 "\n", name, v);
}

static void put_hist(struct out *o, const char *name, const char *help,
                     const struct hist *h)
{
	uint64_t cum = 0;

	family(o, name, "histogram", help);
	for (size_t i = 0; i < h->nle; i++) {
		cum += h->counts[i];
		put(o, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, h->le[i],
		    cum);
	}
	put(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, h->count);
	put(o, "%s_sum %.17g\n%s_count %" PRIu64 "\n", name, h->sum, name,
	    h->count);
}

/* The per-table counter family at offset off in struct mt_series. */
static void series_family(struct out *o, const char *name, const char *help,
                          size_t off)
{
	char label[512];

	family(o, name, "counter", help);
	for (size_t i = 0; i <= M.nseries; i++) {
		const struct mt_series *s =
		    i < M.nseries ? M.series[i] : &M.other;
		uint64_t v = *(const uint64_t *)((const char *)s + off);

		if (s == &M.other && s->batches == 0 && s->rows_received == 0 &&
		    s->flushes_failed == 0)
			continue; /* "_other" only once something used it */
		put(o, "%s{table=\"%s\",mode=\"%s\"} %" PRIu64 "\n", name,
		    mt_label_escape(label, sizeof(label), s->table),
		    mode_name(s->mode), v);
	}
}

#define SERIES(o, name, field, help)                                           \
	series_family(o, name, help, offsetof(struct mt_series, field))

static void render_series(struct out *o)
{
	SERIES(o, "lbp_rows_received_total", rows_received,
	       "Rows received from clients (checked), per table and mode.");
	SERIES(o, "lbp_bytes_received_total", bytes_received,
	       "Row bytes received from clients, per table and mode.");
	SERIES(o, "lbp_rows_committed_total", rows_committed,
	       "Rows committed to the server and acknowledged.");
	SERIES(o, "lbp_bytes_committed_total", bytes_committed,
	       "Row bytes committed to the server and acknowledged.");
	SERIES(o, "lbp_rows_rejected_total", rows_rejected,
	       "Rows of flush units answered with an error.");
	SERIES(o, "lbp_rows_dead_lettered_total", rows_dead_lettered,
	       "Rows moved to the table's dead-letter table.");
	SERIES(o, "lbp_flushes_committed_total", flushes_committed,
	       "Flush units committed and acknowledged.");
	SERIES(o, "lbp_flushes_failed_total", flushes_failed,
	       "Flush units answered with an error.");
	SERIES(o, "lbp_batches_total", batches,
	       "Transactions (batches) sent to the server.");
}

static void render_states(struct out *o)
{
	family(o, "lbp_upstream_errors_total", "counter",
	       "ErrorResponses from the server, by SQLSTATE.");
	for (size_t i = 0; i < M.nstates; i++)
		put(o,
		    "lbp_upstream_errors_total{sqlstate=\"%s\"} %" PRIu64 "\n",
		    M.states[i].code, M.states[i].n);
	if (M.states_other > 0)
		put(o,
		    "lbp_upstream_errors_total{sqlstate=\"other\"} %" PRIu64
		    "\n",
		    M.states_other);
}

static void render_pool(struct out *o, const struct mt_gauges *g)
{
	family(o, "lbp_upstream_connections", "gauge",
	       "Server connections, by state.");
	put(o,
	    "lbp_upstream_connections{state=\"opening\"} %u\n"
	    "lbp_upstream_connections{state=\"idle\"} %u\n"
	    "lbp_upstream_connections{state=\"checking\"} %u\n"
	    "lbp_upstream_connections{state=\"lent\"} %u\n",
	    g->pool.opening, g->pool.idle, g->pool.checking, g->pool.lent);
	gauge(o, "lbp_upstream_waiters", "Batches waiting for a connection.",
	      g->pool.waiters);
	gauge(o, "lbp_upstream_consecutive_failures",
	      "Connect or login failures since the last success (0: healthy).",
	      g->pool.failures);
	counter(o, "lbp_upstream_logins_total",
	        "Server connections that logged in.", g->pool.opened);
	counter(o, "lbp_upstream_closed_total", "Server connections closed.",
	        g->pool.closed);
	counter(o, "lbp_upstream_connect_failures_total",
	        "Connects or logins that failed.", g->pool.failed);
}

bool mt_render(struct evbuffer *out, const struct mt_gauges *g)
{
	struct out o = {.b = out};

	family(&o, "lbp_build_info", "gauge", "The proxy's version.");
	put(&o, "lbp_build_info{version=\"%s\"} 1\n", LBP_VERSION);
	gauge(&o, "lbp_ready", "1 when /readyz answers 200.", g->ready);
	gauge(&o, "lbp_draining", "1 after SIGTERM, while draining.",
	      g->draining);
	gauge(&o, "lbp_clients", "Client sessions connected.", g->ing.clients);
	gauge(&o, "lbp_clients_paused",
	      "Sessions not being read (backpressure).", g->ing.paused);
	counter(&o, "lbp_clients_accepted_total",
	        "Client connections accepted.", g->ing.accepted);
	counter(&o, "lbp_clients_refused_total",
	        "Client connections refused (max_clients, bad token).",
	        g->ing.refused);
	counter(&o, "lbp_client_protocol_errors_total",
	        "Sessions ended by a protocol error.", g->ing.protocol_errors);
	gauge(&o, "lbp_buffered_bytes",
	      "Bytes flushed by clients and not yet answered.",
	      (double)g->ing.buffered_bytes);
	gauge(&o, "lbp_queued_units", "Flush units waiting for a batch.",
	      (double)g->co.queued_units);
	gauge(&o, "lbp_queued_bytes",
	      "Bytes of flush units waiting for a batch.",
	      (double)g->co.queued_bytes);
	gauge(&o, "lbp_batches_inflight",
	      "Batches waiting for a connection or running.", g->co.inflight);
	render_series(&o);
	counter(&o, "lbp_batch_retries_total",
	        "Batches run again (deadlock, lost connection, rejected row).",
	        g->co.batch_retries);
	counter(&o, "lbp_batches_split_total",
	        "Batches that went unit by unit to isolate an error.",
	        g->co.batches_split);
	put_hist(&o, "lbp_batch_rows", "Rows per batch.", &M.batch_rows);
	put_hist(&o, "lbp_flush_ack_seconds",
	         "From a client's Flush to its answer.", &M.flush_s);
	render_pool(&o, g);
	render_states(&o);
	if (g->credential_expires_ms >= 0) {
		/* Exact milliseconds: a double would print ...0.1229999. */
		family(&o, "lbp_credential_expiry_timestamp_seconds", "gauge",
		       "When the newest database credential expires (Unix "
		       "time).");
		put(&o,
		    "lbp_credential_expiry_timestamp_seconds %" PRId64
		    ".%03d\n",
		    g->credential_expires_ms / 1000,
		    (int)(g->credential_expires_ms % 1000));
	}
	gauge(&o, "process_start_time_seconds",
	      "Start time of the process since the Unix epoch.",
	      g->start_time_s);
	family(&o, "process_cpu_seconds_total", "counter",
	       "User and system CPU time spent, in seconds.");
	put(&o, "process_cpu_seconds_total %.17g\n", g->cpu_s);
	gauge(&o, "process_resident_memory_bytes", "Resident memory size.",
	      (double)g->rss_bytes);
	return !o.failed;
}
