/* gauges.c: module stats and process figures as metrics, at scrape time. */
#include "gauges.h"

#include "metrics.h"
#include "upstream.h"

#define PLAIN(var, metric, kind, text)                                         \
	static const struct mt_desc var = {                                    \
	    .name = metric, .help = text, .type = kind}

static const struct mt_desc build_info_d = {
    .name = "lbp_build_info",
    .help = "The proxy's version.",
    .type = MT_GAUGE,
    .nlabels = 1,
    .labels = {"version"},
};
PLAIN(ready_d, "lbp_ready", MT_GAUGE, "1 when /readyz answers 200.");
PLAIN(draining_d, "lbp_draining", MT_GAUGE, "1 after SIGTERM, while draining.");
PLAIN(clients_d, "lbp_clients", MT_GAUGE, "Client sessions connected.");
PLAIN(paused_d, "lbp_clients_paused", MT_GAUGE,
      "Sessions not being read (backpressure).");
PLAIN(accepted_d, "lbp_clients_accepted_total", MT_COUNTER,
      "Client connections accepted.");
PLAIN(refused_d, "lbp_clients_refused_total", MT_COUNTER,
      "Client connections refused (max_clients, bad token).");
PLAIN(proto_errors_d, "lbp_client_protocol_errors_total", MT_COUNTER,
      "Sessions ended by a protocol error.");
PLAIN(buffered_d, "lbp_buffered_bytes", MT_GAUGE,
      "Bytes flushed by clients and not yet answered.");
PLAIN(queued_units_d, "lbp_queued_units", MT_GAUGE,
      "Flush units waiting for a batch.");
PLAIN(queued_bytes_d, "lbp_queued_bytes", MT_GAUGE,
      "Bytes of flush units waiting for a batch.");
PLAIN(inflight_d, "lbp_batches_inflight", MT_GAUGE,
      "Batches waiting for a connection or running.");
PLAIN(retries_d, "lbp_batch_retries_total", MT_COUNTER,
      "Batches run again (deadlock, lost connection, rejected row).");
PLAIN(splits_d, "lbp_batches_split_total", MT_COUNTER,
      "Batches that went unit by unit to isolate an error.");
static const struct mt_desc conns_d = {
    .name = "lbp_upstream_connections",
    .help = "Server connections, by state.",
    .type = MT_GAUGE,
    .nlabels = 1,
    .labels = {"state"},
};
PLAIN(waiters_d, "lbp_upstream_waiters", MT_GAUGE,
      "Batches waiting for a connection.");
PLAIN(failures_d, "lbp_upstream_consecutive_failures", MT_GAUGE,
      "Connect or login failures since the last success (0: healthy).");
PLAIN(logins_d, "lbp_upstream_logins_total", MT_COUNTER,
      "Server connections that logged in.");
PLAIN(closed_d, "lbp_upstream_closed_total", MT_COUNTER,
      "Server connections closed.");
PLAIN(connect_failed_d, "lbp_upstream_connect_failures_total", MT_COUNTER,
      "Connects or logins that failed.");
PLAIN(expiry_d, "lbp_credential_expiry_timestamp_seconds", MT_GAUGE,
      "When the newest database credential expires (Unix time).");
PLAIN(start_d, "process_start_time_seconds", MT_GAUGE,
      "Start time of the process since the Unix epoch.");
PLAIN(cpu_d, "process_cpu_seconds_total", MT_COUNTER,
      "User and system CPU time spent, in seconds.");
PLAIN(rss_d, "process_resident_memory_bytes", MT_GAUGE,
      "Resident memory size.");

void gg_register(void)
{
	static const struct mt_desc *const head[] = {
	    &build_info_d, &ready_d,        &draining_d,     &clients_d,
	    &paused_d,     &accepted_d,     &refused_d,      &proto_errors_d,
	    &buffered_d,   &queued_units_d, &queued_bytes_d, &inflight_d};
	static const struct mt_desc *const tail[] = {
	    &retries_d,  &splits_d, &conns_d,  &waiters_d,
	    &failures_d, &logins_d, &closed_d, &connect_failed_d,
	    &start_d,    &cpu_d,    &rss_d};
	const char *version[1] = {LBP_VERSION};

	for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
		mt_family(head[i]);
	mt_set(mt_child(mt_family(&build_info_d), version), 1);
	co_register_metrics();
	ing_register_metrics();
	for (size_t i = 0; i < sizeof(tail) / sizeof(tail[0]); i++)
		mt_family(tail[i]);
	up_register_metrics();
}

static void set(const struct mt_desc *d, double v)
{
	mt_set(mt_metric_of(d), v);
}

static void collect_pool(const struct pool_stats *p)
{
	static const char *const states[] = {"opening", "idle", "checking",
	                                     "lent"};
	const unsigned n[] = {p->opening, p->idle, p->checking, p->lent};
	struct mt_family *f = mt_family(&conns_d);

	for (size_t i = 0; i < 4; i++)
		mt_set(mt_child(f, &states[i]), n[i]);
	set(&waiters_d, p->waiters);
	set(&failures_d, p->failures);
	set(&logins_d, (double)p->opened);
	set(&closed_d, (double)p->closed);
	set(&connect_failed_d, (double)p->failed);
}

void gg_collect(const struct gg_values *v)
{
	set(&ready_d, v->ready);
	set(&draining_d, v->draining);
	set(&clients_d, v->ing.clients);
	set(&paused_d, v->ing.paused);
	set(&accepted_d, (double)v->ing.accepted);
	set(&refused_d, (double)v->ing.refused);
	set(&proto_errors_d, (double)v->ing.protocol_errors);
	set(&buffered_d, (double)v->ing.buffered_bytes);
	set(&queued_units_d, (double)v->co.queued_units);
	set(&queued_bytes_d, (double)v->co.queued_bytes);
	set(&inflight_d, v->co.inflight);
	set(&retries_d, (double)v->co.batch_retries);
	set(&splits_d, (double)v->co.batches_split);
	collect_pool(&v->pool);
	/* Exact milliseconds: 1700000000.123 prints as such (metrics.c). */
	if (v->credential_expires_ms >= 0)
		set(&expiry_d, (double)v->credential_expires_ms / 1000.0);
	set(&start_d, v->start_time_s);
	set(&cpu_d, v->cpu_s);
	set(&rss_d, (double)v->rss_bytes);
}
