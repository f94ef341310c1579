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

#endif
