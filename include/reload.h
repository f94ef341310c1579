/* reload.h: what a reload (SIGHUP) changes, worked out from two configs. */
#ifndef LBP_RELOAD_H
#define LBP_RELOAD_H

/*
 * Pure: no I/O. The server loads the file again, asks rl_plan what differs
 * and what each difference needs, prepares what can fail (TLS context,
 * control-plane client, log file) and only then applies it all. Which
 * settings apply live is one table in reload.c; a setting it does not name
 * needs a restart, so a key added later is safe until someone makes it
 * live on purpose.
 */

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

enum rl_action {
	RL_POOL = 1u << 0,      /* [pool]: pool_reconfigure */
	RL_BATCH = 1u << 1,     /* [batch]: co_set_config, cat_set_ttl */
	RL_LOG_LEVEL = 1u << 2, /* log_set_level */
	RL_STATS = 1u << 3,     /* [log] stats_period_s: re-arm the timer */
	RL_LOG_FILE = 1u << 4,  /* [log] file: open the new one */
	RL_PASSWORD = 1u << 5,  /* pool_set_password */
	RL_ENDPOINT = 1u << 6,  /* other [upstream] keys: pool_set_endpoint */
	RL_TLS = 1u << 7,       /* sslmode, sslrootcert: a new SSL_CTX first */
	RL_CONTROL = 1u << 8,   /* [lakebase]: a new control-plane client */
	/* ... for another instance: its first credential retires the pool */
	RL_CONTROL_MOVED = 1u << 9,
	RL_INGEST_TOKEN = 1u << 10, /* ing_set_token: new sessions only */
	RL_ADMIN_TOKEN = 1u << 11,  /* admin_set_token: the next request */
	RL_FRONTEND = 1u << 12,     /* [frontend] but listen: fe_reconfigure */
};

/* More than the settings table holds (checked by a unit test). */
#define RL_MAX_CHANGES 128

#define RL_NEEDS_RESTART "needs a restart"
#define RL_LAKEBASE_OWNS "[lakebase] provides it"

struct rl_change {
	const char *section;
	const char *key;
	const char *ignored; /* NULL: applied; else why not (RL_NEEDS_...) */
};

struct rl_plan {
	unsigned actions; /* enum rl_action bits of the applied changes */
	size_t nchanges;
	struct rl_change changes[RL_MAX_CHANGES]; /* in settings-table order */
};

/*
 * What going from cur (running) to next (just loaded) means. The ignored
 * changes must be undone in next (cfg_copy_key from cur), so that next
 * stays the truth about what runs and the next reload reports them again.
 */
void rl_plan(const struct config *cur, const struct config *next,
             struct rl_plan *plan);

/* The applied keys as "section.key,section.key", or "none". Returns buf. */
const char *rl_applied(const struct rl_plan *plan, char *buf, size_t size);

#endif
