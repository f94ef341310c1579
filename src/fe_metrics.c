/* fe_metrics.c: the front door's metrics: clients by state, waits for a
 * server connection, server connections per pool, traffic and failures. */
#include "frontend_int.h"

#include "metrics.h"

static const double wait_le[] = {0.0005, 0.001, 0.005, 0.01, 0.05, 0.1,
                                 0.5,    1,     5,     10,   30};

static const struct mt_desc clients_d = {
    .name = "lbp_frontend_clients",
    .help = "Front-door clients connected, by state (waiting: queued for a "
            "server connection).",
    .type = MT_GAUGE,
    .nlabels = 1,
    .labels = {"state"},
};
static const struct mt_desc wait_d = {
    .name = "lbp_frontend_wait_seconds",
    .help = "How long front-door clients waited for a server connection.",
    .type = MT_HISTOGRAM,
    .buckets = wait_le,
    .nbuckets = sizeof(wait_le) / sizeof(wait_le[0]),
};
static const struct mt_desc servers_d = {
    .name = "lbp_frontend_server_connections",
    .help = "Server connections of the front door's pools, by database, "
            "user (passthrough) and state.",
    .type = MT_GAUGE,
    .nlabels = 3,
    .labels = {"database", "user", "state"},
    .overflow = {"_other", "_other", "_other"},
};
static const struct mt_desc counters_d = {
    .name = "lbp_frontend_events_total",
    .help = "Front-door events: accepted, refused, auth_failures, "
            "transactions, queries, cancels, server_lost; coalescing: "
            "coalesced (message sequences written by the coalescer), "
            "coalesced_rows, coalesce_failed (of those, answered with an "
            "error), coalesce_forwarded (looked at, then relayed).",
    .type = MT_COUNTER,
    .nlabels = 1,
    .labels = {"event"},
};
static const struct mt_desc bytes_d = {
    .name = "lbp_frontend_bytes_total",
    .help = "Bytes relayed: to_server (from clients) and to_client.",
    .type = MT_COUNTER,
    .nlabels = 1,
    .labels = {"direction"},
};

void fe_register_metrics(struct frontend *fe)
{
	struct mt_family *f = mt_family(&clients_d);

	for (int s = 0; s < FE_NSTATES; s++) {
		const char *name = fe_state_name((enum fe_state)s);

		fe->m_clients[s] = mt_child(f, &name);
	}
	fe->m_wait = mt_metric_of(&wait_d);
	mt_family(&servers_d);
	mt_family(&counters_d);
	mt_family(&bytes_d);
}

static void set_event(const char *event, uint64_t v)
{
	mt_set(mt_child(mt_family(&counters_d), &event), (double)v);
}

static void set_pool(const struct fe_db *db)
{
	static const char *const states[] = {"opening", "idle", "checking",
	                                     "lent"};
	struct mt_family *f = mt_family(&servers_d);
	struct pool_stats ps;

	pool_get_stats(db->pool, &ps);
	const unsigned n[] = {ps.opening, ps.idle, ps.checking, ps.lent};
	for (size_t i = 0; i < 4; i++) {
		const char *labels[3] = {db->name, db->user ? db->user : "",
		                         states[i]};

		mt_set(mt_child(f, labels), n[i]);
	}
}

void fe_update_metrics(const struct frontend *fe)
{
	const struct fe_stats *st = &fe->stats;
	const char *to_server = "to_server", *to_client = "to_client";
	const struct fe_db *db;

	set_event("accepted", st->accepted);
	set_event("refused", st->refused);
	set_event("auth_failures", st->auth_failures);
	set_event("transactions", st->transactions);
	set_event("queries", st->queries);
	set_event("cancels", st->cancels);
	set_event("server_lost", st->server_lost);
	set_event("coalesced", st->co_sequences);
	set_event("coalesced_rows", st->co_rows);
	set_event("coalesce_failed", st->co_failed);
	set_event("coalesce_forwarded", st->co_forwarded);
	mt_set(mt_child(mt_family(&bytes_d), &to_server), (double)st->bytes_in);
	mt_set(mt_child(mt_family(&bytes_d), &to_client),
	       (double)st->bytes_out);
	TAILQ_FOREACH(db, &fe->dbs, link)
	set_pool(db);
}
