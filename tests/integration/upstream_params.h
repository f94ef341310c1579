/* upstream_params.h: upstream connection parameters for the harness server in C
 * tests. */
#ifndef LBP_UPSTREAM_PARAMS_H
#define LBP_UPSTREAM_PARAMS_H

#include "harness_env.h"
#include "upstream.h"

/* The test role over TLS (verify-full) with generous timeouts. */
static inline struct up_params harness_up_params(const struct harness_env *e,
                                                 SSL_CTX *ctx)
{
	struct up_params p = {
	    .host = e->host,
	    .port = (uint16_t)e->port,
	    .dbname = e->dbname,
	    .user = e->user,
	    .password = e->password,
	    .application_name = "lakebase-proxy",
	    .sslmode = SSLMODE_VERIFY_FULL,
	    .ssl_ctx = ctx,
	    .connect_timeout_ms = 5000,
	    .login_timeout_ms = 10000,
	    .query_timeout_ms = 60000,
	    .keepalive_idle_s = 30,
	};
	return p;
}

/* Pool settings for the tests: quick timeouts and reconnects. */
static inline struct cfg_pool harness_pool_cfg(unsigned min, unsigned max)
{
	struct cfg_pool c = {
	    .min_size = min,
	    .max_size = max,
	    .max_lifetime_s = 3600,
	    .connect_timeout_ms = 2000,
	    .login_timeout_ms = 5000,
	    .query_timeout_ms = 10000,
	    .health_check_s = 30,
	    .reconnect_base_ms = 50,
	    .reconnect_max_ms = 500,
	};
	return c;
}

#endif
