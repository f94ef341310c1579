/* config.h: the proxy's settings: INI file (inih), then environment overrides.
 */
#ifndef LBP_CONFIG_H
#define LBP_CONFIG_H

/*
 * Every key lives in one table in config.c (section, key, type, bounds,
 * secret or not), so the INI parser, the environment overrides
 * (LAKEBASE_PROXY_<SECTION>_<KEY>, upper case) and --check-config output
 * all agree. Unknown sections and keys, and bad values, are errors that
 * name the file, line and key (or the environment variable).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"

enum sslmode {
	SSLMODE_DISABLE = 0,
	SSLMODE_REQUIRE,
	SSLMODE_VERIFY_CA,
	SSLMODE_VERIFY_FULL
};
const char *sslmode_name(enum sslmode mode);
bool sslmode_parse(const char *s, enum sslmode *out);

struct cfg_upstream {
	char *host;
	uint16_t port; /* 5432 */
	char *dbname;  /* "databricks_postgres" */
	char *user;
	char *password;            /* secret: never logged */
	enum sslmode sslmode;      /* verify-full */
	char *sslrootcert;         /* file path, or "system"; NULL = system */
	char *application_name;    /* "lakebase-proxy" */
	unsigned keepalive_idle_s; /* 30 */
	unsigned keepalive_interval_s; /* 10: between unanswered probes */
	unsigned keepalive_count;      /* 3 unanswered probes end it */
	unsigned tcp_user_timeout_ms;  /* 15000 unacknowledged; 0 = OS's */
};

struct cfg_pool {
	unsigned min_size;           /* 2 */
	unsigned max_size;           /* 8 */
	unsigned max_lifetime_s;     /* 3600 */
	unsigned connect_timeout_ms; /* 5000: TCP connect */
	unsigned login_timeout_ms;   /* 10000: TLS + startup + auth */
	unsigned query_timeout_ms;   /* 30000: one query or COPY */
	unsigned health_check_s;    /* 30: idle connections older get a check */
	unsigned reconnect_base_ms; /* 100: first backoff after a failure */
	unsigned reconnect_max_ms;  /* 30000: backoff ceiling */
	unsigned stall_timeout_ms;  /* 10000: /readyz fails past it; 0 = off */
};

struct cfg_ingest {
	char *listen;                  /* "127.0.0.1:5480" or "unix:/path" */
	char *auth_token;              /* secret; required off loopback */
	unsigned max_clients;          /* 1024 */
	uint64_t max_frame_bytes;      /* 1 MiB */
	uint64_t max_flush_bytes;      /* 8 MiB: largest flush unit */
	uint64_t client_buffer_bytes;  /* 16 MiB flushed, unacked, per client */
	uint64_t global_buffer_bytes;  /* 256 MiB over all clients */
	unsigned idle_timeout_s;       /* 600 since the last whole message */
	unsigned handshake_timeout_ms; /* 10000 from accept to Open */
};

struct cfg_batch {
	uint64_t max_rows;     /* 50000 */
	uint64_t max_bytes;    /* 8 MiB */
	unsigned max_delay_ms; /* 0: linger before a batch that is not full */
	unsigned max_inflight; /* 4 batches in flight per insert target */
	unsigned max_retries;  /* 3, then unit by unit */
	unsigned acquire_timeout_ms; /* 30000: wait for a server connection */
	unsigned catalog_ttl_s;      /* 300: table metadata cache */
	bool dead_letter;            /* off: rejected rows fail their flush */
	unsigned
	    failure_backoff_ms; /* 100: after repeated identical failures */
	unsigned failure_backoff_max_ms; /* 5000: its ceiling */
};

struct cfg_admin {
	char *listen;     /* "127.0.0.1:9187"; empty = no admin endpoint */
	char *auth_token; /* secret; for /metrics; required off loopback */
	unsigned max_connections;    /* 16 open at once; more are refused */
	unsigned request_timeout_ms; /* 10000: a whole request and its reply */
};

/*
 * The Databricks control plane (docs/control-plane.md). Off while
 * workspace_host is NULL; then [upstream] host and password give the server.
 */
struct cfg_lakebase {
	char *workspace_host; /* "https://adb-1.azuredatabricks.net"; NULL = off
	                       */
	char *instance_name;  /* a provisioned instance, or ... */
	char *endpoint;       /* projects/<p>/branches/<b>/endpoints/<e> */
	char *client_id;      /* OAuth M2M (with client_secret), or ... */
	char *client_secret;  /* secret */
	char *token;          /* secret: a personal access token */
	char *ca_file;        /* PEM CAs for the API; NULL = system store */
	unsigned connect_timeout_ms; /* 5000 */
	unsigned request_timeout_ms; /* 30000: one whole API call */
	unsigned retry_base_ms;      /* 1000: first backoff after a failure */
	unsigned retry_max_ms;       /* 60000: backoff ceiling */
	unsigned refresh_percent;    /* 75: refresh at this share of a life */
	unsigned
	    reresolve_failures; /* 3 failed connects ask for the host; 0 off */
};

struct cfg_log {
	enum log_level level;    /* info */
	unsigned stats_period_s; /* 60; 0 = no periodic pool line */
	char *file;              /* append lines here; NULL = stderr */
};

/* [frontend]: the PostgreSQL front door (docs/frontend.md). */
enum fe_auth_mode { FE_AUTH_SCRAM = 0, FE_AUTH_PASSTHROUGH };
enum fe_pool_mode { FE_POOL_TRANSACTION = 0, FE_POOL_SESSION };
enum fe_tls_mode { FE_TLS_OFF = 0, FE_TLS_ALLOW, FE_TLS_REQUIRE };
const char *fe_auth_mode_name(enum fe_auth_mode m);
const char *fe_pool_mode_name(enum fe_pool_mode m);
const char *fe_tls_mode_name(enum fe_tls_mode m);

struct cfg_frontend {
	char
	    *listen; /* NULL = no front door; host:port, [v6]:port, unix:/dir */
	char *auth_file;        /* PgBouncer userlist; needed by auth = scram */
	enum fe_auth_mode auth; /* scram */
	enum fe_pool_mode pool_mode; /* transaction */
	char *tls_cert_file;         /* PEM; with tls_key_file */
	char *tls_key_file;
	enum fe_tls_mode tls;                /* require */
	unsigned max_client_conn;            /* 1000 */
	char *databases;                     /* "*" or a comma list */
	unsigned max_prepared_statements;    /* 200 per server connection */
	unsigned idle_transaction_timeout_s; /* 0 = none */
	bool coalesce; /* on: autocommit INSERTs go to the coalescer */
	bool coalesce_transactions;     /* off: explicit ones are relayed */
	char *coalesce_tables;          /* "*" or a list of [schema.]table */
	uint64_t coalesce_buffer_bytes; /* 64 MiB held for coalescing */
};

/* Does [frontend] coalesce_tables list schema.table? */
bool cfg_frontend_coalesce_table(const struct cfg_frontend *fe,
                                 const char *schema, const char *table);

struct cfg_server {
	unsigned
	    shutdown_timeout_s; /* 30: SIGTERM drain before exiting anyway */
};

struct config {
	struct cfg_server server;
	struct cfg_upstream upstream;
	struct cfg_pool pool;
	struct cfg_ingest ingest;
	struct cfg_frontend frontend;
	struct cfg_batch batch;
	struct cfg_admin admin;
	struct cfg_lakebase lakebase;
	struct cfg_log log;
};

/* Is database one that [frontend] databases lets clients ask for? */
bool cfg_frontend_database_allowed(const struct cfg_frontend *fe,
                                   const char *database);

/*
 * Fills defaults (strings heap-allocated). false only on OOM. A string
 * setting that is not set (host, user, password, sslrootcert) is NULL.
 */
bool cfg_init(struct config *cfg);
void cfg_free(struct config *cfg);

/*
 * Loads path (NULL: no file) over the defaults in cfg, then the
 * environment (envp: NULL-terminated "KEY=VALUE" list, usually environ),
 * then checks the whole (min_size <= max_size, host given unless
 * [lakebase] finds it, ...).
 * On false, err holds one line naming file:line and key, or the variable
 * (never a secret's value), and cfg is left as it was. An environment
 * variable LAKEBASE_PROXY_* that names no key is an error too.
 */
bool cfg_load(struct config *cfg, const char *path, char *const *envp,
              char *err, size_t errlen);

/* Writes the effective settings as INI, secrets shown as "********". */
void cfg_print(const struct config *cfg, FILE *out);

/*
 * Calls cb(section, key) for every setting whose value differs between a
 * and b, in the order of the settings table, and returns how many did.
 * Secrets are compared too; only the key's name is passed, never a value.
 */
typedef void (*cfg_diff_cb)(const char *section, const char *key, void *arg);
/* How many settings there are (the most cfg_diff can report). */
size_t cfg_key_count(void);
unsigned cfg_diff(const struct config *a, const struct config *b,
                  cfg_diff_cb cb, void *arg);

/*
 * Sets [section] key in dst to its value in src (strings copied). false on
 * OOM or when there is no such key; dst is unchanged then.
 */
bool cfg_copy_key(struct config *dst, const struct config *src,
                  const char *section, const char *key);

#endif
