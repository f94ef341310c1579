/* reload.c: which settings a reload applies live, and what each one needs. */
#include "reload.h"

#include <stdio.h>
#include <string.h>

struct rl_rule {
	const char *section;
	const char *key; /* NULL: the rest of the section */
	unsigned actions;
};

/*
 * The settings that apply while the proxy runs; first match wins. What is
 * not here (the rest of [ingest] and [admin]: listening sockets,
 * per-session limits handed out in each session's hello) needs a restart.
 */
static const struct rl_rule rules[] = {
    /* read when a drain starts */
    {"server", "shutdown_timeout_s", 0},
    /* open connections keep the credential they logged in with */
    {"upstream", "password", RL_PASSWORD},
    {"upstream", "sslmode", RL_ENDPOINT | RL_TLS},
    {"upstream", "sslrootcert", RL_ENDPOINT | RL_TLS},
    {"upstream", NULL, RL_ENDPOINT},
    {"pool", NULL, RL_POOL},
    {"batch", NULL, RL_BATCH},
    {"lakebase", "workspace_host", RL_CONTROL | RL_CONTROL_MOVED},
    {"lakebase", "instance_name", RL_CONTROL | RL_CONTROL_MOVED},
    {"lakebase", "endpoint", RL_CONTROL | RL_CONTROL_MOVED},
    {"lakebase", NULL, RL_CONTROL},
    {"log", "level", RL_LOG_LEVEL},
    {"log", "stats_period_s", RL_STATS},
    {"log", "file", RL_LOG_FILE},
    /* secrets rotate without a restart; sessions already in keep going */
    {"ingest", "auth_token", RL_INGEST_TOKEN},
    {"admin", "auth_token", RL_ADMIN_TOKEN},
    /* [frontend] but listen (the socket stays): new logins and the next
     * transaction use them */
    {"frontend", "auth_file", RL_FRONTEND},
    {"frontend", "auth", RL_FRONTEND},
    {"frontend", "pool_mode", RL_FRONTEND},
    {"frontend", "tls_cert_file", RL_FRONTEND},
    {"frontend", "tls_key_file", RL_FRONTEND},
    {"frontend", "tls", RL_FRONTEND},
    {"frontend", "max_client_conn", RL_FRONTEND},
    {"frontend", "databases", RL_FRONTEND},
    {"frontend", "max_prepared_statements", RL_FRONTEND},
    {"frontend", "idle_transaction_timeout_s", RL_FRONTEND},
};

static const struct rl_rule *find_rule(const char *section, const char *key)
{
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		if (strcmp(rules[i].section, section) == 0 &&
		    (rules[i].key == NULL || strcmp(rules[i].key, key) == 0))
			return &rules[i];
	}
	return NULL;
}

struct plan_ctx {
	struct rl_plan *plan;
	bool lakebase_on;     /* running with the control plane */
	bool lakebase_switch; /* next turns it on or off */
};

/* Why this change cannot apply now, or NULL. */
static const char *why_ignored(const struct plan_ctx *ctx, const char *section,
                               const char *key)
{
	if (find_rule(section, key) == NULL)
		return RL_NEEDS_RESTART;
	/* the pool waits for, or already has, the control plane's host */
	if (strcmp(section, "lakebase") == 0 && ctx->lakebase_switch)
		return RL_NEEDS_RESTART;
	if (strcmp(section, "upstream") == 0 && ctx->lakebase_on &&
	    (strcmp(key, "host") == 0 || strcmp(key, "password") == 0))
		return RL_LAKEBASE_OWNS;
	return NULL;
}

static void add_change(const char *section, const char *key, void *arg)
{
	struct plan_ctx *ctx = arg;
	struct rl_plan *plan = ctx->plan;
	struct rl_change *c;

	if (plan->nchanges == RL_MAX_CHANGES)
		return; /* cannot happen: the table is smaller */
	c = &plan->changes[plan->nchanges++];
	c->section = section;
	c->key = key;
	c->ignored = why_ignored(ctx, section, key);
	if (c->ignored == NULL)
		plan->actions |= find_rule(section, key)->actions;
}

void rl_plan(const struct config *cur, const struct config *next,
             struct rl_plan *plan)
{
	struct plan_ctx ctx = {
	    .plan = plan,
	    .lakebase_on = cur->lakebase.workspace_host != NULL,
	    .lakebase_switch = (cur->lakebase.workspace_host == NULL) !=
	                       (next->lakebase.workspace_host == NULL),
	};

	plan->actions = 0;
	plan->nchanges = 0;
	cfg_diff(cur, next, add_change, &ctx);
}

const char *rl_applied(const struct rl_plan *plan, char *buf, size_t size)
{
	size_t n = 0;

	if (size == 0)
		return buf;
	buf[0] = '\0';
	for (size_t i = 0; i < plan->nchanges; i++) {
		const struct rl_change *c = &plan->changes[i];
		int w;

		if (c->ignored != NULL)
			continue;
		w = snprintf(buf + n, size - n, "%s%s.%s", n > 0 ? "," : "",
		             c->section, c->key);
		if (w < 0 || (size_t)w >= size - n) {
			buf[n] = '\0'; /* whole names only */
			break;
		}
		n += (size_t)w;
	}
	if (n == 0)
		snprintf(buf, size, "none");
	return buf;
}
