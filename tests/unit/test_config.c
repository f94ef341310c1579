/* test_config.c: settings from INI files and the environment, and errors. */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECRET "hunter2-s3cr3t"

/* Lines 1-3 of most test files: the least that passes the whole checks. */
#define MINIMAL "[upstream]\nhost = db.example.com\nuser = writer\n"

static const char full_ini[] = "[server]\n"
                               "shutdown_timeout_s = 9\n"
                               "[upstream]\n"
                               "host = db.example.com\n"
                               "port = 6432\n"
                               "dbname = analytics\n"
                               "user = writer\n"
                               "password = " SECRET "\n"
                               "sslmode = require\n"
                               "sslrootcert = /nonexistent/custom.pem\n"
                               "application_name = spark-sink\n"
                               "keepalive_idle_s = 45\n"
                               "\n"
                               "[pool]\n"
                               "min_size = 3\n"
                               "max_size = 16\n"
                               "max_lifetime_s = 1800\n"
                               "connect_timeout_ms = 2000\n"
                               "login_timeout_ms = 4000\n"
                               "query_timeout_ms = 60000\n"
                               "health_check_s = 15\n"
                               "reconnect_base_ms = 200\n"
                               "reconnect_max_ms = 20000\n"
                               "\n"
                               "[ingest]\n"
                               "listen = 0.0.0.0:6000\n"
                               "auth_token = tok-" SECRET "\n"
                               "max_clients = 10\n"
                               "max_frame_bytes = 131072\n"
                               "max_flush_bytes = 2048\n"
                               "client_buffer_bytes = 4096\n"
                               "global_buffer_bytes = 8192\n"
                               "idle_timeout_s = 9\n"
                               "\n"
                               "[batch]\n"
                               "max_rows = 1000\n"
                               "max_bytes = 1048576\n"
                               "max_delay_ms = 10\n"
                               "max_inflight = 2\n"
                               "max_retries = 1\n"
                               "acquire_timeout_ms = 500\n"
                               "catalog_ttl_s = 7\n"
                               "dead_letter = on\n"
                               "\n"
                               "[admin]\n"
                               "listen = 127.0.0.1:9999\n"
                               "\n"
                               "[lakebase]\n"
                               "workspace_host = https://adb-1.example.net\n"
                               "instance_name = my-instance\n"
                               "client_id = 0000-app-id\n"
                               "client_secret = cs-" SECRET "\n"
                               "ca_file = /nonexistent/api-ca.pem\n"
                               "connect_timeout_ms = 1500\n"
                               "request_timeout_ms = 7000\n"
                               "retry_base_ms = 250\n"
                               "retry_max_ms = 9000\n"
                               "refresh_percent = 60\n"
                               "reresolve_failures = 5\n"
                               "\n"
                               "[log]\n"
                               "level = debug\n"
                               "stats_period_s = 0\n"
                               "file = /var/log/lakebase-proxy.log\n";

/* One variable per key, each different from full_ini. */
static char *const env_all[] = {
    "LAKEBASE_PROXY_SERVER_SHUTDOWN_TIMEOUT_S=7",
    "LAKEBASE_PROXY_UPSTREAM_HOST=env.example.com",
    "LAKEBASE_PROXY_UPSTREAM_PORT=7432", "LAKEBASE_PROXY_UPSTREAM_DBNAME=envdb",
    "LAKEBASE_PROXY_UPSTREAM_USER=envuser",
    "LAKEBASE_PROXY_UPSTREAM_PASSWORD=env-" SECRET,
    "LAKEBASE_PROXY_UPSTREAM_SSLMODE=disable",
    "LAKEBASE_PROXY_UPSTREAM_SSLROOTCERT=system",
    "LAKEBASE_PROXY_UPSTREAM_APPLICATION_NAME=envapp",
    "LAKEBASE_PROXY_UPSTREAM_KEEPALIVE_IDLE_S=60",
    "LAKEBASE_PROXY_UPSTREAM_KEEPALIVE_INTERVAL_S=4",
    "LAKEBASE_PROXY_UPSTREAM_KEEPALIVE_COUNT=5",
    "LAKEBASE_PROXY_UPSTREAM_TCP_USER_TIMEOUT_MS=0",
    "LAKEBASE_PROXY_POOL_MIN_SIZE=4", "LAKEBASE_PROXY_POOL_MAX_SIZE=32",
    "LAKEBASE_PROXY_POOL_MAX_LIFETIME_S=900",
    "LAKEBASE_PROXY_POOL_CONNECT_TIMEOUT_MS=1000",
    "LAKEBASE_PROXY_POOL_LOGIN_TIMEOUT_MS=3000",
    "LAKEBASE_PROXY_POOL_QUERY_TIMEOUT_MS=5000",
    "LAKEBASE_PROXY_POOL_HEALTH_CHECK_S=5",
    "LAKEBASE_PROXY_POOL_RECONNECT_BASE_MS=50",
    "LAKEBASE_PROXY_POOL_RECONNECT_MAX_MS=5000",
    "LAKEBASE_PROXY_POOL_STALL_TIMEOUT_MS=2500",
    "LAKEBASE_PROXY_INGEST_LISTEN=unix:/tmp/lbp.sock",
    "LAKEBASE_PROXY_INGEST_AUTH_TOKEN=envtok-" SECRET,
    "LAKEBASE_PROXY_INGEST_MAX_CLIENTS=11",
    "LAKEBASE_PROXY_INGEST_MAX_FRAME_BYTES=262144",
    "LAKEBASE_PROXY_INGEST_MAX_FLUSH_BYTES=3000",
    "LAKEBASE_PROXY_INGEST_CLIENT_BUFFER_BYTES=5000",
    "LAKEBASE_PROXY_INGEST_GLOBAL_BUFFER_BYTES=9000",
    "LAKEBASE_PROXY_INGEST_HANDSHAKE_TIMEOUT_MS=700",
    "LAKEBASE_PROXY_INGEST_IDLE_TIMEOUT_S=8",
    "LAKEBASE_PROXY_FRONTEND_LISTEN=unix:/tmp/lbp-fe",
    "LAKEBASE_PROXY_FRONTEND_AUTH_FILE=/etc/lbp/userlist.txt",
    "LAKEBASE_PROXY_FRONTEND_AUTH=passthrough",
    "LAKEBASE_PROXY_FRONTEND_POOL_MODE=session",
    "LAKEBASE_PROXY_FRONTEND_TLS_CERT_FILE=/etc/lbp/c.pem",
    "LAKEBASE_PROXY_FRONTEND_TLS_KEY_FILE=/etc/lbp/k.pem",
    "LAKEBASE_PROXY_FRONTEND_TLS=allow",
    "LAKEBASE_PROXY_FRONTEND_MAX_CLIENT_CONN=12",
    "LAKEBASE_PROXY_FRONTEND_DATABASES=a, b",
    "LAKEBASE_PROXY_FRONTEND_MAX_PREPARED_STATEMENTS=0",
    "LAKEBASE_PROXY_FRONTEND_IDLE_TRANSACTION_TIMEOUT_S=9",
    "LAKEBASE_PROXY_FRONTEND_COALESCE=off",
    "LAKEBASE_PROXY_FRONTEND_COALESCE_TABLES=public.ev, ev2",
    "LAKEBASE_PROXY_FRONTEND_COALESCE_TRANSACTIONS=on",
    "LAKEBASE_PROXY_FRONTEND_COALESCE_BUFFER_BYTES=4096",
    "LAKEBASE_PROXY_BATCH_MAX_ROWS=7", "LAKEBASE_PROXY_BATCH_MAX_BYTES=2048",
    "LAKEBASE_PROXY_BATCH_MAX_DELAY_MS=0",
    "LAKEBASE_PROXY_BATCH_MAX_INFLIGHT=3", "LAKEBASE_PROXY_BATCH_MAX_RETRIES=2",
    "LAKEBASE_PROXY_BATCH_ACQUIRE_TIMEOUT_MS=600",
    "LAKEBASE_PROXY_BATCH_CATALOG_TTL_S=8",
    "LAKEBASE_PROXY_BATCH_DEAD_LETTER=off",
    "LAKEBASE_PROXY_BATCH_FAILURE_BACKOFF_MS=0",
    "LAKEBASE_PROXY_BATCH_FAILURE_BACKOFF_MAX_MS=700",
    "LAKEBASE_PROXY_ADMIN_LISTEN=127.0.0.1:1",
    "LAKEBASE_PROXY_ADMIN_AUTH_TOKEN=admintok-" SECRET,
    "LAKEBASE_PROXY_ADMIN_MAX_CONNECTIONS=3",
    "LAKEBASE_PROXY_ADMIN_REQUEST_TIMEOUT_MS=2500",
    "LAKEBASE_PROXY_LAKEBASE_WORKSPACE_HOST=https://env.example.net/",
    /* switches to the other kind of instance and of authentication */
    "LAKEBASE_PROXY_LAKEBASE_INSTANCE_NAME=",
    "LAKEBASE_PROXY_LAKEBASE_ENDPOINT=projects/p/branches/b/endpoints/e",
    "LAKEBASE_PROXY_LAKEBASE_CLIENT_ID=",
    "LAKEBASE_PROXY_LAKEBASE_CLIENT_SECRET=",
    "LAKEBASE_PROXY_LAKEBASE_TOKEN=pat-" SECRET,
    "LAKEBASE_PROXY_LAKEBASE_CA_FILE=/nonexistent/env-ca.pem",
    "LAKEBASE_PROXY_LAKEBASE_CONNECT_TIMEOUT_MS=1600",
    "LAKEBASE_PROXY_LAKEBASE_REQUEST_TIMEOUT_MS=8000",
    "LAKEBASE_PROXY_LAKEBASE_RETRY_BASE_MS=300",
    "LAKEBASE_PROXY_LAKEBASE_RETRY_MAX_MS=10000",
    "LAKEBASE_PROXY_LAKEBASE_REFRESH_PERCENT=80",
    "LAKEBASE_PROXY_LAKEBASE_RERESOLVE_FAILURES=0",
    "LAKEBASE_PROXY_LOG_LEVEL=warning", "LAKEBASE_PROXY_LOG_STATS_PERIOD_S=5",
    "LAKEBASE_PROXY_LOG_FILE=/tmp/env.log", "PATH=/usr/bin:/bin",
    "LAKEBASE_PROXYISH=not ours", NULL};

static char tmpdir[] = "/tmp/lbp-test-config-XXXXXX";
static char ini_path[PATH_MAX];
static unsigned ini_seq;
static struct config cfg;
static char err[1024];

static void setup(void)
{
	ck_assert(cfg_init(&cfg));
	err[0] = '\0';
}

static void teardown(void)
{
	cfg_free(&cfg);
}

/* Writes text to a new file in the test directory; returns its path. */
static const char *write_file(const char *text)
{
	FILE *f;

	snprintf(ini_path, sizeof(ini_path), "%s/t%u.ini", tmpdir, ini_seq++);
	f = fopen(ini_path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	return ini_path;
}

static bool load_text(const char *text, char *const *envp)
{
	return cfg_load(&cfg, write_file(text), envp, err, sizeof(err));
}

/* The load fails with "<path><want>", e.g. want = ":5: [pool] ...". */
static void expect_file_error(const char *text, char *const *envp,
                              const char *want)
{
	char full[PATH_MAX + 512];

	ck_assert_msg(!load_text(text, envp), "loaded: %s", text);
	snprintf(full, sizeof(full), "%s%s", ini_path, want);
	ck_assert_str_eq(err, full);
}

/* The load fails with exactly want (errors not tied to a file line). */
static void expect_error(const char *text, char *const *envp, const char *want)
{
	ck_assert_msg(!load_text(text, envp), "loaded: %s", text);
	ck_assert_str_eq(err, want);
}

static char *print_to_string(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	cfg_print(&cfg, f);
	ck_assert_int_eq(fclose(f), 0);
	return buf;
}

START_TEST(test_defaults)
{
	ck_assert_ptr_null(cfg.upstream.host);
	ck_assert_uint_eq(cfg.upstream.port, 5432);
	ck_assert_str_eq(cfg.upstream.dbname, "databricks_postgres");
	ck_assert_ptr_null(cfg.upstream.user);
	ck_assert_ptr_null(cfg.upstream.password);
	ck_assert_int_eq(cfg.upstream.sslmode, SSLMODE_VERIFY_FULL);
	ck_assert_ptr_null(cfg.upstream.sslrootcert);
	ck_assert_str_eq(cfg.upstream.application_name, "lakebase-proxy");
	ck_assert_uint_eq(cfg.upstream.keepalive_idle_s, 30);
	ck_assert_uint_eq(cfg.upstream.keepalive_interval_s, 10);
	ck_assert_uint_eq(cfg.upstream.keepalive_count, 3);
	ck_assert_uint_eq(cfg.upstream.tcp_user_timeout_ms, 15000);
	ck_assert_uint_eq(cfg.pool.stall_timeout_ms, 10000);
	ck_assert_uint_eq(cfg.pool.min_size, 2);
	ck_assert_uint_eq(cfg.pool.max_size, 8);
	ck_assert_uint_eq(cfg.pool.max_lifetime_s, 3600);
	ck_assert_uint_eq(cfg.pool.connect_timeout_ms, 5000);
	ck_assert_uint_eq(cfg.pool.login_timeout_ms, 10000);
	ck_assert_uint_eq(cfg.pool.query_timeout_ms, 30000);
	ck_assert_uint_eq(cfg.pool.health_check_s, 30);
	ck_assert_uint_eq(cfg.pool.reconnect_base_ms, 100);
	ck_assert_uint_eq(cfg.pool.reconnect_max_ms, 30000);
	ck_assert_str_eq(cfg.ingest.listen, "127.0.0.1:5480");
	ck_assert_uint_eq(cfg.batch.max_rows, 50000);
	ck_assert_uint_eq(cfg.batch.max_bytes, 8 * 1024 * 1024);
	ck_assert_uint_eq(cfg.batch.max_delay_ms, 0);
	ck_assert_uint_eq(cfg.batch.failure_backoff_ms, 100);
	ck_assert_uint_eq(cfg.batch.failure_backoff_max_ms, 5000);
	ck_assert_str_eq(cfg.admin.listen, "127.0.0.1:9187");
	ck_assert_uint_eq(cfg.admin.max_connections, 16);
	ck_assert_uint_eq(cfg.admin.request_timeout_ms, 10000);
	ck_assert_int_eq(cfg.log.level, LOG_INFO);
	ck_assert_uint_eq(cfg.log.stats_period_s, 60);
	ck_assert_ptr_null(cfg.log.file);
}
END_TEST

START_TEST(test_minimal_file_keeps_defaults)
{
	ck_assert_msg(load_text(MINIMAL, NULL), "%s", err);
	ck_assert_str_eq(cfg.upstream.host, "db.example.com");
	ck_assert_str_eq(cfg.upstream.user, "writer");
	ck_assert_uint_eq(cfg.pool.max_size, 8);
	ck_assert_str_eq(cfg.upstream.dbname, "databricks_postgres");
}
END_TEST

START_TEST(test_crlf_bom_and_comments)
{
	ck_assert_msg(load_text("\xef\xbb\xbf[upstream]\r\nhost = h\r\n"
	                        "# comment\r\nuser = u ; inline comment\r\n",
	                        NULL),
	              "%s", err);
	ck_assert_str_eq(cfg.upstream.host, "h");
	ck_assert_str_eq(cfg.upstream.user, "u");
}
END_TEST

START_TEST(test_full_file)
{
	ck_assert_msg(load_text(full_ini, NULL), "%s", err);
	ck_assert_str_eq(cfg.upstream.host, "db.example.com");
	ck_assert_uint_eq(cfg.upstream.port, 6432);
	ck_assert_str_eq(cfg.upstream.dbname, "analytics");
	ck_assert_str_eq(cfg.upstream.user, "writer");
	ck_assert_str_eq(cfg.upstream.password, SECRET);
	ck_assert_int_eq(cfg.upstream.sslmode, SSLMODE_REQUIRE);
	ck_assert_str_eq(cfg.upstream.sslrootcert, "/nonexistent/custom.pem");
	ck_assert_str_eq(cfg.upstream.application_name, "spark-sink");
	ck_assert_uint_eq(cfg.upstream.keepalive_idle_s, 45);
	ck_assert_uint_eq(cfg.pool.min_size, 3);
	ck_assert_uint_eq(cfg.pool.max_size, 16);
	ck_assert_uint_eq(cfg.pool.max_lifetime_s, 1800);
	ck_assert_uint_eq(cfg.pool.connect_timeout_ms, 2000);
	ck_assert_uint_eq(cfg.pool.login_timeout_ms, 4000);
	ck_assert_uint_eq(cfg.pool.query_timeout_ms, 60000);
	ck_assert_uint_eq(cfg.pool.health_check_s, 15);
	ck_assert_uint_eq(cfg.pool.reconnect_base_ms, 200);
	ck_assert_uint_eq(cfg.pool.reconnect_max_ms, 20000);
	ck_assert_str_eq(cfg.ingest.listen, "0.0.0.0:6000");
	ck_assert_str_eq(cfg.ingest.auth_token, "tok-" SECRET);
	ck_assert_uint_eq(cfg.ingest.max_clients, 10);
	ck_assert_uint_eq(cfg.ingest.max_frame_bytes, 131072);
	ck_assert_uint_eq(cfg.ingest.max_flush_bytes, 2048);
	ck_assert_uint_eq(cfg.ingest.client_buffer_bytes, 4096);
	ck_assert_uint_eq(cfg.ingest.global_buffer_bytes, 8192);
	ck_assert_uint_eq(cfg.ingest.idle_timeout_s, 9);
	ck_assert_uint_eq(cfg.batch.max_rows, 1000);
	ck_assert_uint_eq(cfg.batch.max_bytes, 1048576);
	ck_assert_uint_eq(cfg.batch.max_delay_ms, 10);
	ck_assert_uint_eq(cfg.batch.max_inflight, 2);
	ck_assert_uint_eq(cfg.batch.max_retries, 1);
	ck_assert_uint_eq(cfg.batch.acquire_timeout_ms, 500);
	ck_assert_uint_eq(cfg.batch.catalog_ttl_s, 7);
	ck_assert_uint_eq(cfg.server.shutdown_timeout_s, 9);
	ck_assert(cfg.batch.dead_letter);
	ck_assert_str_eq(cfg.admin.listen, "127.0.0.1:9999");
	ck_assert_str_eq(cfg.lakebase.workspace_host,
	                 "https://adb-1.example.net");
	ck_assert_str_eq(cfg.lakebase.instance_name, "my-instance");
	ck_assert_ptr_null(cfg.lakebase.endpoint);
	ck_assert_str_eq(cfg.lakebase.client_id, "0000-app-id");
	ck_assert_str_eq(cfg.lakebase.client_secret, "cs-" SECRET);
	ck_assert_ptr_null(cfg.lakebase.token);
	ck_assert_str_eq(cfg.lakebase.ca_file, "/nonexistent/api-ca.pem");
	ck_assert_uint_eq(cfg.lakebase.connect_timeout_ms, 1500);
	ck_assert_uint_eq(cfg.lakebase.request_timeout_ms, 7000);
	ck_assert_uint_eq(cfg.lakebase.retry_base_ms, 250);
	ck_assert_uint_eq(cfg.lakebase.retry_max_ms, 9000);
	ck_assert_uint_eq(cfg.lakebase.refresh_percent, 60);
	ck_assert_uint_eq(cfg.lakebase.reresolve_failures, 5);
	ck_assert_int_eq(cfg.log.level, LOG_DEBUG);
	ck_assert_uint_eq(cfg.log.stats_period_s, 0);
	ck_assert_str_eq(cfg.log.file, "/var/log/lakebase-proxy.log");
}
END_TEST

START_TEST(test_env_overrides_every_key)
{
	size_t n_env = 0, n_printed = 0;
	char *printed;

	ck_assert_msg(load_text(full_ini, env_all), "%s", err);
	ck_assert_str_eq(cfg.upstream.host, "env.example.com");
	ck_assert_uint_eq(cfg.upstream.port, 7432);
	ck_assert_str_eq(cfg.upstream.dbname, "envdb");
	ck_assert_str_eq(cfg.upstream.user, "envuser");
	ck_assert_str_eq(cfg.upstream.password, "env-" SECRET);
	ck_assert_int_eq(cfg.upstream.sslmode, SSLMODE_DISABLE);
	ck_assert_str_eq(cfg.upstream.sslrootcert, "system");
	ck_assert_str_eq(cfg.upstream.application_name, "envapp");
	ck_assert_uint_eq(cfg.upstream.keepalive_idle_s, 60);
	ck_assert_uint_eq(cfg.upstream.keepalive_interval_s, 4);
	ck_assert_uint_eq(cfg.upstream.keepalive_count, 5);
	ck_assert_uint_eq(cfg.upstream.tcp_user_timeout_ms, 0);
	ck_assert_uint_eq(cfg.pool.stall_timeout_ms, 2500);
	ck_assert_uint_eq(cfg.pool.min_size, 4);
	ck_assert_uint_eq(cfg.pool.max_size, 32);
	ck_assert_uint_eq(cfg.pool.max_lifetime_s, 900);
	ck_assert_uint_eq(cfg.pool.connect_timeout_ms, 1000);
	ck_assert_uint_eq(cfg.pool.login_timeout_ms, 3000);
	ck_assert_uint_eq(cfg.pool.query_timeout_ms, 5000);
	ck_assert_uint_eq(cfg.pool.health_check_s, 5);
	ck_assert_uint_eq(cfg.pool.reconnect_base_ms, 50);
	ck_assert_uint_eq(cfg.pool.reconnect_max_ms, 5000);
	ck_assert_str_eq(cfg.ingest.listen, "unix:/tmp/lbp.sock");
	ck_assert_str_eq(cfg.ingest.auth_token, "envtok-" SECRET);
	ck_assert_uint_eq(cfg.ingest.max_clients, 11);
	ck_assert_uint_eq(cfg.ingest.max_frame_bytes, 262144);
	ck_assert_uint_eq(cfg.ingest.max_flush_bytes, 3000);
	ck_assert_uint_eq(cfg.ingest.client_buffer_bytes, 5000);
	ck_assert_uint_eq(cfg.ingest.global_buffer_bytes, 9000);
	ck_assert_uint_eq(cfg.ingest.idle_timeout_s, 8);
	ck_assert_uint_eq(cfg.ingest.handshake_timeout_ms, 700);
	ck_assert_str_eq(cfg.frontend.listen, "unix:/tmp/lbp-fe");
	ck_assert_str_eq(cfg.frontend.auth_file, "/etc/lbp/userlist.txt");
	ck_assert_int_eq(cfg.frontend.auth, FE_AUTH_PASSTHROUGH);
	ck_assert_int_eq(cfg.frontend.pool_mode, FE_POOL_SESSION);
	ck_assert_str_eq(cfg.frontend.tls_cert_file, "/etc/lbp/c.pem");
	ck_assert_str_eq(cfg.frontend.tls_key_file, "/etc/lbp/k.pem");
	ck_assert_int_eq(cfg.frontend.tls, FE_TLS_ALLOW);
	ck_assert_uint_eq(cfg.frontend.max_client_conn, 12);
	ck_assert_str_eq(cfg.frontend.databases, "a, b");
	ck_assert_uint_eq(cfg.frontend.max_prepared_statements, 0);
	ck_assert_uint_eq(cfg.frontend.idle_transaction_timeout_s, 9);
	ck_assert(cfg_frontend_database_allowed(&cfg.frontend, "b"));
	ck_assert(!cfg_frontend_database_allowed(&cfg.frontend, "c"));
	ck_assert(!cfg_frontend_database_allowed(&cfg.frontend, " a"));
	ck_assert(!cfg.frontend.coalesce);
	ck_assert(cfg.frontend.coalesce_transactions);
	ck_assert_uint_eq(cfg.frontend.coalesce_buffer_bytes, 4096);
	ck_assert(cfg_frontend_coalesce_table(&cfg.frontend, "public", "ev"));
	ck_assert(!cfg_frontend_coalesce_table(&cfg.frontend, "other", "ev"));
	ck_assert(cfg_frontend_coalesce_table(&cfg.frontend, "any", "ev2"));
	ck_assert(!cfg_frontend_coalesce_table(&cfg.frontend, "public", "ev3"));
	ck_assert_uint_eq(cfg.batch.max_rows, 7);
	ck_assert_uint_eq(cfg.batch.max_bytes, 2048);
	ck_assert_uint_eq(cfg.batch.max_delay_ms, 0);
	ck_assert_uint_eq(cfg.batch.max_inflight, 3);
	ck_assert_uint_eq(cfg.batch.max_retries, 2);
	ck_assert_uint_eq(cfg.batch.acquire_timeout_ms, 600);
	ck_assert_uint_eq(cfg.batch.catalog_ttl_s, 8);
	ck_assert_uint_eq(cfg.server.shutdown_timeout_s, 7);
	ck_assert(!cfg.batch.dead_letter);
	ck_assert_uint_eq(cfg.batch.failure_backoff_ms, 0);
	ck_assert_uint_eq(cfg.batch.failure_backoff_max_ms, 700);
	ck_assert_str_eq(cfg.admin.listen, "127.0.0.1:1");
	ck_assert_str_eq(cfg.admin.auth_token, "admintok-" SECRET);
	ck_assert_uint_eq(cfg.admin.max_connections, 3);
	ck_assert_uint_eq(cfg.admin.request_timeout_ms, 2500);
	ck_assert_str_eq(cfg.lakebase.workspace_host,
	                 "https://env.example.net/");
	ck_assert_ptr_null(cfg.lakebase.instance_name);
	ck_assert_str_eq(cfg.lakebase.endpoint,
	                 "projects/p/branches/b/endpoints/e");
	ck_assert_ptr_null(cfg.lakebase.client_id);
	ck_assert_ptr_null(cfg.lakebase.client_secret);
	ck_assert_str_eq(cfg.lakebase.token, "pat-" SECRET);
	ck_assert_str_eq(cfg.lakebase.ca_file, "/nonexistent/env-ca.pem");
	ck_assert_uint_eq(cfg.lakebase.connect_timeout_ms, 1600);
	ck_assert_uint_eq(cfg.lakebase.request_timeout_ms, 8000);
	ck_assert_uint_eq(cfg.lakebase.retry_base_ms, 300);
	ck_assert_uint_eq(cfg.lakebase.retry_max_ms, 10000);
	ck_assert_uint_eq(cfg.lakebase.refresh_percent, 80);
	ck_assert_uint_eq(cfg.lakebase.reresolve_failures, 0);
	ck_assert_int_eq(cfg.log.level, LOG_WARN);
	ck_assert_uint_eq(cfg.log.stats_period_s, 5);
	ck_assert_str_eq(cfg.log.file, "/tmp/env.log");

	/* a key added to the table without an env case here fails this */
	for (size_t i = 0; env_all[i] != NULL; i++)
		n_env += strncmp(env_all[i], "LAKEBASE_PROXY_", 15) == 0;
	printed = print_to_string();
	for (const char *p = printed; (p = strstr(p, " = ")) != NULL; p++)
		n_printed++;
	free(printed);
	ck_assert_uint_eq(n_env, n_printed);
}
END_TEST

START_TEST(test_ingest_off_loopback_needs_token)
{
	static const char base[] = "[upstream]\nhost = h\nuser = u\n"
	                           "[ingest]\nlisten = 0.0.0.0:5480\n";
	char *const with_token[] = {"LAKEBASE_PROXY_INGEST_AUTH_TOKEN=t", NULL};

	ck_assert(!load_text(base, NULL));
	ck_assert_ptr_nonnull(strstr(err, "auth_token"));
	ck_assert_msg(load_text(base, with_token), "%s", err);
	ck_assert(load_text("[upstream]\nhost = h\nuser = u\n[ingest]\n"
	                    "listen = [::1]:5480\n",
	                    NULL));
	ck_assert(load_text("[upstream]\nhost = h\nuser = u\n[ingest]\n"
	                    "listen = unix:/tmp/x.sock\n",
	                    NULL));
	ck_assert(!load_text("[upstream]\nhost = h\nuser = u\n[ingest]\n"
	                     "listen = nonsense\n",
	                     NULL));
	ck_assert_ptr_nonnull(strstr(err, "[ingest] listen"));
	ck_assert(!load_text("[upstream]\nhost = h\nuser = u\n[ingest]\n"
	                     "max_flush_bytes = 99999999\n",
	                     NULL));
	ck_assert_ptr_nonnull(strstr(err, "max_flush_bytes <="));
}
END_TEST

START_TEST(test_frontend_checks)
{
	static const char base[] = "[upstream]\nhost = h\nuser = u\n"
	                           "[frontend]\n";
	static const struct {
		const char *keys;
		const char *err;
	} bad[] = {
	    {"listen = 127.0.0.1:6432\ntls = off\n",
	     "[frontend] auth = scram needs auth_file"},
	    {"listen = 127.0.0.1:6432\nauth_file = /u\n",
	     "[frontend] tls = require needs tls_cert_file"},
	    {"listen = 127.0.0.1:6432\nauth_file = /u\ntls_cert_file = /c\n",
	     "[frontend] tls_cert_file and tls_key_file go together"},
	    {"listen = 0.0.0.0:6432\nauth_file = /u\ntls = allow\n"
	     "tls_cert_file = /c\ntls_key_file = /k\n",
	     "[frontend] listen 0.0.0.0:6432 is not a loopback address: "
	     "tls = require is mandatory there"},
	    {"listen = 127.0.0.1:6432\nauth = passthrough\ntls = off\n",
	     "[frontend] auth = passthrough has clients send"},
	    {"listen = 127.0.0.1:6432\nauth_file = /u\ntls = off\n"
	     "databases = a,,b\n",
	     "[frontend] databases: an empty name"},
	    {"listen = nowhere\n", "[frontend] listen: "},
	};
	char text[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "%s%s", base, bad[i].keys);
		ck_assert_msg(!load_text(text, NULL), "case %zu loaded", i);
		ck_assert_msg(strncmp(err, bad[i].err, strlen(bad[i].err)) == 0,
		              "case %zu: %s", i, err);
	}
	/* off by default; on loopback, plaintext and passthrough over unix */
	ck_assert_msg(load_text(base, NULL), "%s", err);
	ck_assert_ptr_null(cfg.frontend.listen);
	ck_assert_int_eq(cfg.frontend.tls, FE_TLS_REQUIRE);
	snprintf(text, sizeof(text), "%s%s", base,
	         "listen = 127.0.0.1:6432\nauth_file = /u\ntls = off\n");
	ck_assert_msg(load_text(text, NULL), "%s", err);
	snprintf(text, sizeof(text), "%s%s", base,
	         "listen = unix:/tmp\nauth = passthrough\ntls = off\n");
	ck_assert_msg(load_text(text, NULL), "%s", err);
	snprintf(text, sizeof(text), "%s%s", base, "pool_mode = statement\n");
	ck_assert(!load_text(text, NULL));
	ck_assert_ptr_nonnull(strstr(err, "is not one of: transaction, "
	                                  "session"));
}
END_TEST

START_TEST(test_env_only_and_empty_optional)
{
	char *const env[] = {"LAKEBASE_PROXY_UPSTREAM_HOST=h",
	                     "LAKEBASE_PROXY_UPSTREAM_USER=u",
	                     "LAKEBASE_PROXY_UPSTREAM_PASSWORD=", NULL};

	ck_assert_msg(cfg_load(&cfg, NULL, env, err, sizeof(err)), "%s", err);
	ck_assert_str_eq(cfg.upstream.host, "h");
	ck_assert_ptr_null(cfg.upstream.password);
	/* an empty variable unsets what the file set */
	ck_assert_msg(load_text(MINIMAL "password = x\n", env), "%s", err);
	ck_assert_ptr_null(cfg.upstream.password);
}
END_TEST

START_TEST(test_unknown_section)
{
	expect_file_error(MINIMAL "\n[poool]\n", NULL,
	                  ":5: unknown section \"poool\"");
	expect_file_error(MINIMAL "[pool]\n[Upstream]\nhost = x\n", NULL,
	                  ":5: unknown section \"Upstream\"");
	/* after a BOM, inih's handler is what notices */
	expect_file_error("\xef\xbb\xbf[bogus]\nx = 1\n", NULL,
	                  ":2: unknown section \"bogus\"");
	expect_file_error("min_size = 1\n" MINIMAL, NULL,
	                  ":1: key \"min_size\" is outside any section");
}
END_TEST

START_TEST(test_unknown_key)
{
	expect_file_error(MINIMAL "[pool]\nmin_sise = 3\n", NULL,
	                  ":5: [pool] unknown key \"min_sise\"");
	expect_file_error(MINIMAL "listen = x\n", NULL,
	                  ":4: [upstream] unknown key \"listen\"");
}
END_TEST

START_TEST(test_duplicate_key)
{
	expect_file_error(
	    MINIMAL "[pool]\nmin_size = 1\n; again\nmin_size = 2\n", NULL,
	    ":7: [pool] min_size: duplicate key (first set on "
	    "line 5)");
	/* a section may reopen, but a key is still set only once */
	expect_file_error(MINIMAL "[pool]\n[upstream]\nuser = other\n", NULL,
	                  ":6: [upstream] user: duplicate key (first set on "
	                  "line 3)");
}
END_TEST

START_TEST(test_not_a_number)
{
	expect_file_error(MINIMAL "[pool]\nmin_size = abc\n", NULL,
	                  ":5: [pool] min_size: \"abc\" is not a whole number");
	expect_file_error(MINIMAL "[pool]\nmin_size = 12abc\n", NULL,
	                  ":5: [pool] min_size: \"12abc\" is not a whole "
	                  "number");
	expect_file_error(MINIMAL "[pool]\nmin_size = 1.5\n", NULL,
	                  ":5: [pool] min_size: \"1.5\" is not a whole number");
	expect_file_error(MINIMAL "[pool]\nmin_size = +1\n", NULL,
	                  ":5: [pool] min_size: \"+1\" is not a whole number");
	expect_file_error(
	    MINIMAL "[pool]\nmin_size = 0x10\n", NULL,
	    ":5: [pool] min_size: \"0x10\" is not a whole number");
	expect_file_error(MINIMAL "[pool]\nmin_size =\n", NULL,
	                  ":5: [pool] min_size: \"\" is not a whole number");
}
END_TEST

START_TEST(test_negative_and_range)
{
	expect_file_error(MINIMAL "[pool]\nmax_size = -1\n", NULL,
	                  ":5: [pool] max_size: \"-1\" is negative (allowed: 1 "
	                  "to 1000)");
	expect_file_error(MINIMAL "[pool]\nmax_size = 0\n", NULL,
	                  ":5: [pool] max_size: \"0\" is out of range "
	                  "(allowed: 1 to 1000)");
	expect_file_error(MINIMAL "[pool]\nmax_size = 1001\n", NULL,
	                  ":5: [pool] max_size: \"1001\" is out of range "
	                  "(allowed: 1 to 1000)");
	expect_file_error(MINIMAL "port = 0\n", NULL,
	                  ":4: [upstream] port: \"0\" is out of range "
	                  "(allowed: 1 to 65535)");
	expect_file_error(MINIMAL "port = 65536\n", NULL,
	                  ":4: [upstream] port: \"65536\" is out of range "
	                  "(allowed: 1 to 65535)");
	/* would wrap to 0 if stored in an unsigned before the check */
	expect_file_error(MINIMAL "[pool]\nquery_timeout_ms = 4294967296\n",
	                  NULL,
	                  ":5: [pool] query_timeout_ms: \"4294967296\" is out "
	                  "of range (allowed: 1 to 86400000)");
	expect_file_error(MINIMAL "[batch]\nmax_bytes = 1023\n", NULL,
	                  ":5: [batch] max_bytes: \"1023\" is out of range "
	                  "(allowed: 1024 to 1073741824)");
}
END_TEST

START_TEST(test_overflow)
{
	expect_file_error(
	    MINIMAL "[batch]\nmax_rows = 18446744073709551616\n", NULL,
	    ":5: [batch] max_rows: \"18446744073709551616\" is out "
	    "of range (allowed: 1 to 100000000)");
	expect_file_error(
	    MINIMAL "[pool]\nmin_size = 99999999999999999999999\n", NULL,
	    ":5: [pool] min_size: \"99999999999999999999999\" is "
	    "out of range (allowed: 0 to 1000)");
}
END_TEST

START_TEST(test_bad_enum)
{
	expect_file_error(MINIMAL "sslmode = prefer\n", NULL,
	                  ":4: [upstream] sslmode: \"prefer\" is not "
	                  "supported: it can silently fall back to plaintext; "
	                  "use require, verify-ca or verify-full");
	expect_file_error(MINIMAL "sslmode = allow\n", NULL,
	                  ":4: [upstream] sslmode: \"allow\" is not "
	                  "supported: it can silently fall back to plaintext; "
	                  "use require, verify-ca or verify-full");
	expect_file_error(MINIMAL "sslmode = VERIFY-FULL\n", NULL,
	                  ":4: [upstream] sslmode: \"VERIFY-FULL\" is not an "
	                  "sslmode (disable, require, verify-ca, verify-full)");
	expect_file_error(
	    MINIMAL "[log]\nlevel = loud\n", NULL,
	    ":5: [log] level: \"loud\" is not a log level (debug, "
	    "info, warn, error)");
}
END_TEST

START_TEST(test_empty_required)
{
	expect_file_error("[upstream]\nhost = h\nuser =\n", NULL,
	                  ":3: [upstream] user: must not be empty");
	expect_file_error(MINIMAL "[ingest]\nlisten = \n", NULL,
	                  ":5: [ingest] listen: must not be empty");
}
END_TEST

START_TEST(test_syntax_and_file_errors)
{
	char line[400], want[64];

	expect_file_error(MINIMAL "[pool]\nmin_size\n", NULL,
	                  ":5: syntax error: expected [section] or key = "
	                  "value");
	expect_file_error(MINIMAL "[pool\n", NULL,
	                  ":4: syntax error: expected [section] or key = "
	                  "value");

	/* a long line is refused, not split into two lines by inih */
	memset(line, 'a', sizeof(line));
	memcpy(line, "; ", 2);
	memcpy(line + sizeof(line) - 2, "\n", 2);
	char text[sizeof(line) + sizeof(MINIMAL)];
	snprintf(text, sizeof(text), "%s%s", MINIMAL, line);
	snprintf(want, sizeof(want), ":4: line is too long (at most %d bytes)",
	         200 - 3);
	expect_file_error(text, NULL, want);

	char missing[PATH_MAX + 32], expected[PATH_MAX + 96];
	snprintf(missing, sizeof(missing), "%s/missing.ini", tmpdir);
	ck_assert(!cfg_load(&cfg, missing, NULL, err, sizeof(err)));
	snprintf(expected, sizeof(expected),
	         "%s: cannot open: No such file or directory", missing);
	ck_assert_str_eq(err, expected);
}
END_TEST

START_TEST(test_env_errors)
{
	char *const bad_number[] = {"LAKEBASE_PROXY_POOL_MIN_SIZE=abc", NULL};
	char *const bad_enum[] = {"LAKEBASE_PROXY_UPSTREAM_SSLMODE=prefer",
	                          NULL};
	char *const empty[] = {"LAKEBASE_PROXY_UPSTREAM_USER=", NULL};
	char *const no_key[] = {"LAKEBASE_PROXY_=1", NULL};
	char *const ctrl[] = {"LAKEBASE_PROXY_UPSTREAM_HOST=a\nb", NULL};

	expect_error(MINIMAL, bad_number,
	             "environment LAKEBASE_PROXY_POOL_MIN_SIZE: \"abc\" is not "
	             "a whole number");
	expect_error(MINIMAL, bad_enum,
	             "environment LAKEBASE_PROXY_UPSTREAM_SSLMODE: \"prefer\" "
	             "is not supported: it can silently fall back to "
	             "plaintext; use require, verify-ca or verify-full");
	expect_error(MINIMAL, empty,
	             "environment LAKEBASE_PROXY_UPSTREAM_USER: must not be "
	             "empty");
	expect_error(MINIMAL, ctrl,
	             "environment LAKEBASE_PROXY_UPSTREAM_HOST: contains a "
	             "control character");
	expect_error(MINIMAL, no_key,
	             "environment LAKEBASE_PROXY_: no such setting (expected "
	             "LAKEBASE_PROXY_<SECTION>_<KEY>)");
}
END_TEST

START_TEST(test_env_typo_hides_value)
{
	char *const typo[] = {"LAKEBASE_PROXY_UPSTREAM_PASSWORD_X=" SECRET,
	                      NULL};
	char *const lower[] = {"lakebase_proxy_upstream_host=x", NULL};

	expect_error(MINIMAL, typo,
	             "environment LAKEBASE_PROXY_UPSTREAM_PASSWORD_X: no such "
	             "setting (expected LAKEBASE_PROXY_<SECTION>_<KEY>)");
	ck_assert_ptr_null(strstr(err, SECRET));
	/* not our prefix (names are upper case): ignored */
	ck_assert_msg(load_text(MINIMAL, lower), "%s", err);
}
END_TEST

START_TEST(test_secret_never_in_errors)
{
	char *const with_secret[] = {"LAKEBASE_PROXY_UPSTREAM_PASSWORD=" SECRET,
	                             "LAKEBASE_PROXY_POOL_MAX_SIZE=x", NULL};

	expect_file_error(
	    MINIMAL "password = " SECRET "\npassword = " SECRET "2\n", NULL,
	    ":5: [upstream] password: duplicate key (first set "
	    "on line 4)");
	expect_file_error(MINIMAL "passwd = " SECRET "\n", NULL,
	                  ":4: [upstream] unknown key \"passwd\"");
	expect_file_error(MINIMAL "password = " SECRET "\n[pool]\nmax_size = "
	                          "0\n",
	                  NULL,
	                  ":6: [pool] max_size: \"0\" is out of range "
	                  "(allowed: 1 to 1000)");
	expect_error(MINIMAL, with_secret,
	             "environment LAKEBASE_PROXY_POOL_MAX_SIZE: \"x\" is not a "
	             "whole number");
	ck_assert_ptr_null(strstr(err, SECRET));
	/* a line holding a secret but no '=' is a syntax error, not echoed */
	expect_file_error(MINIMAL SECRET "\n", NULL,
	                  ":4: syntax error: expected [section] or key = "
	                  "value");
}
END_TEST

START_TEST(test_whole_config_checks)
{
	expect_error("[upstream]\nuser = u\n", NULL,
	             "[upstream] host is not set (in the file or "
	             "LAKEBASE_PROXY_UPSTREAM_HOST), nor is [lakebase] "
	             "workspace_host to look it up");
	expect_error("[upstream]\nhost = h\n", NULL,
	             "[upstream] user is not set (in the file or "
	             "LAKEBASE_PROXY_UPSTREAM_USER)");
	expect_error(MINIMAL "[pool]\nmin_size = 9\n", NULL,
	             "[pool] min_size 9 is larger than max_size 8");
	expect_error(MINIMAL "[pool]\nreconnect_base_ms = 5000\n"
	                     "reconnect_max_ms = 1000\n",
	             NULL,
	             "[pool] reconnect_base_ms 5000 is larger than "
	             "reconnect_max_ms 1000");
	expect_error(MINIMAL "[batch]\nfailure_backoff_ms = 6000\n", NULL,
	             "[batch] failure_backoff_ms 6000 is larger than "
	             "failure_backoff_max_ms 5000");
	ck_assert(!cfg_load(&cfg, NULL, NULL, err, sizeof(err)));
	ck_assert_str_eq(err,
	                 "[upstream] host is not set (in the file or "
	                 "LAKEBASE_PROXY_UPSTREAM_HOST), nor is [lakebase] "
	                 "workspace_host to look it up");
}
END_TEST

#define LB "[upstream]\nuser = u\n[lakebase]\nworkspace_host = https://w\n"

START_TEST(test_lakebase_checks)
{
	/* no [upstream] host or password needed; user still is */
	ck_assert_msg(load_text(LB "instance_name = i\ntoken = t\n", NULL),
	              "%s", err);
	ck_assert_ptr_null(cfg.upstream.host);
	/* each load goes over the last: start again */
	cfg_free(&cfg);
	ck_assert(cfg_init(&cfg));
	ck_assert_msg(load_text(LB
	                        "endpoint = projects/p/branches/b/endpoints/e"
	                        "\nclient_id = c\nclient_secret = s\n",
	                        NULL),
	              "%s", err);
	cfg_free(&cfg);
	ck_assert(cfg_init(&cfg));
	expect_error("[lakebase]\nworkspace_host = https://w\ninstance_name = "
	             "i\ntoken = t\n",
	             NULL,
	             "[upstream] user is not set (in the file or "
	             "LAKEBASE_PROXY_UPSTREAM_USER)");
	expect_error(LB "token = t\n", NULL,
	             "[lakebase] set exactly one of instance_name "
	             "(provisioned) and endpoint (autoscaling)");
	expect_error(LB "instance_name = i\nendpoint = projects/p\ntoken = t\n",
	             NULL,
	             "[lakebase] set exactly one of instance_name "
	             "(provisioned) and endpoint (autoscaling)");
	expect_error(LB "instance_name = i\n", NULL,
	             "[lakebase] needs client_id + client_secret (OAuth) or "
	             "token (LAKEBASE_PROXY_LAKEBASE_TOKEN)");
	expect_error(LB "instance_name = i\nclient_id = c\n", NULL,
	             "[lakebase] client_id and client_secret go together "
	             "(LAKEBASE_PROXY_LAKEBASE_CLIENT_SECRET for the secret)");
	expect_error(LB
	             "instance_name = i\nclient_id = c\nclient_secret = " SECRET
	             "\ntoken = t\n",
	             NULL,
	             "[lakebase] set either client_id + client_secret "
	             "(OAuth) or token (personal access token), not both");
	expect_error(LB "instance_name = ../x\ntoken = t\n", NULL,
	             "[lakebase] instance_name may hold only letters, digits, "
	             "'-', '_' and '.'");
	expect_error(LB "endpoint = p/b?x\ntoken = t\n", NULL,
	             "[lakebase] endpoint must look like "
	             "projects/<p>/branches/<b>/endpoints/<e>");
	expect_error("[upstream]\nuser = u\n[lakebase]\nworkspace_host = "
	             "http://w\ninstance_name = i\ntoken = t\n",
	             NULL, "[lakebase] workspace_host must be an https:// URL");
	expect_error(MINIMAL "[lakebase]\ninstance_name = i\n", NULL,
	             "[lakebase] instance_name is set but workspace_host is "
	             "not (in the file or "
	             "LAKEBASE_PROXY_LAKEBASE_WORKSPACE_HOST)");
	expect_error(
	    LB "instance_name = i\ntoken = t\nretry_base_ms = 9\n"
	       "retry_max_ms = 8\n",
	    NULL, "[lakebase] retry_base_ms 9 is larger than retry_max_ms 8");
	ck_assert_ptr_null(strstr(err, SECRET));
}
END_TEST

START_TEST(test_sslrootcert)
{
	char text[PATH_MAX + 128], want[PATH_MAX + 128];

	expect_error(MINIMAL "sslrootcert = /nonexistent/ca.pem\n", NULL,
	             "[upstream] sslrootcert \"/nonexistent/ca.pem\": cannot "
	             "read: No such file or directory");
	snprintf(text, sizeof(text), MINIMAL "sslrootcert = %s\n", tmpdir);
	snprintf(want, sizeof(want),
	         "[upstream] sslrootcert \"%s\": not a regular file", tmpdir);
	expect_error(text, NULL, want);

	/* not needed, so not checked, without certificate verification */
	ck_assert_msg(load_text(MINIMAL "sslmode = require\nsslrootcert = "
	                                "/nonexistent/ca.pem\n",
	                        NULL),
	              "%s", err);
	ck_assert_msg(load_text(MINIMAL "sslrootcert = system\n", NULL), "%s",
	              err);

	/* a readable file (any earlier test file will do) */
	write_file("not really PEM\n");
	snprintf(text, sizeof(text),
	         MINIMAL "sslmode = verify-ca\n"
	                 "sslrootcert = %s\n",
	         ini_path);
	ck_assert_msg(load_text(text, NULL), "%s", err);
	ck_assert_int_eq(cfg.upstream.sslmode, SSLMODE_VERIFY_CA);
}
END_TEST

START_TEST(test_failed_load_changes_nothing)
{
	ck_assert_msg(load_text(full_ini, NULL), "%s", err);
	ck_assert(
	    !load_text(MINIMAL "[pool]\nmax_size = 64\nmin_size = x\n", NULL));
	ck_assert_uint_eq(cfg.pool.max_size, 16);
	ck_assert_str_eq(cfg.upstream.dbname, "analytics");
	ck_assert_str_eq(cfg.upstream.password, SECRET);
}
END_TEST

START_TEST(test_load_twice_does_not_leak)
{
	/* LeakSanitizer fails the test at exit if replaced strings leak */
	ck_assert_msg(load_text(full_ini, NULL), "%s", err);
	ck_assert_msg(load_text(full_ini, env_all), "%s", err);
	ck_assert_msg(load_text(MINIMAL, NULL), "%s", err);
	ck_assert_str_eq(cfg.upstream.host, "db.example.com");
	ck_assert_str_eq(cfg.upstream.password, "env-" SECRET);
}
END_TEST

START_TEST(test_print_masks_secret)
{
	char *printed, *again;

	ck_assert_msg(load_text(full_ini, NULL), "%s", err);
	printed = print_to_string();
	ck_assert_ptr_null(strstr(printed, SECRET));
	ck_assert_ptr_nonnull(strstr(printed, "\npassword = ********\n"));
	ck_assert_ptr_nonnull(strstr(printed, "\n[pool]\nmin_size = 3\n"));
	ck_assert_ptr_nonnull(strstr(printed, "\nsslmode = require\n"));
	ck_assert_ptr_nonnull(strstr(printed, "\nlevel = debug\n"));

	/* the output is itself a valid config that prints the same */
	cfg_free(&cfg);
	ck_assert(cfg_init(&cfg));
	ck_assert_msg(load_text(printed, NULL), "%s", err);
	again = print_to_string();
	ck_assert_str_eq(again, printed);
	free(again);
	free(printed);
}
END_TEST

START_TEST(test_print_unset_values)
{
	char *printed = print_to_string();

	ck_assert_ptr_nonnull(strstr(printed, "[upstream]\nhost = \n"));
	ck_assert_ptr_nonnull(strstr(printed, "\npassword = \n"));
	ck_assert_ptr_nonnull(strstr(printed, "\nsslmode = verify-full\n"));
	free(printed);
}
END_TEST

START_TEST(test_sslmode_names)
{
	static const char *const names[] = {"disable", "require", "verify-ca",
	                                    "verify-full"};
	enum sslmode mode;

	for (unsigned i = 0; i < 4; i++) {
		ck_assert(sslmode_parse(names[i], &mode));
		ck_assert_int_eq(mode, (int)i);
		ck_assert_str_eq(sslmode_name(mode), names[i]);
	}
	ck_assert(!sslmode_parse("allow", &mode));
	ck_assert(!sslmode_parse("prefer", &mode));
	ck_assert(!sslmode_parse("", &mode));
	ck_assert(!sslmode_parse("Verify-Full", &mode));
	ck_assert_str_eq(sslmode_name((enum sslmode)42), "unknown");
}
END_TEST

/* The committed sample, two directories up from this file. */
START_TEST(test_sample_file_parses)
{
	char path[PATH_MAX];
	const char *slash = strrchr(__FILE__, '/');
	int dirlen = slash != NULL ? (int)(slash - __FILE__) : 1;

	snprintf(path, sizeof(path), "%.*s/../../etc/lakebase-proxy.ini",
	         dirlen, slash != NULL ? __FILE__ : ".");
	ck_assert_msg(cfg_load(&cfg, path, NULL, err, sizeof(err)), "%s", err);
	ck_assert_int_eq(cfg.upstream.sslmode, SSLMODE_VERIFY_FULL);
	ck_assert_str_eq(cfg.upstream.sslrootcert, "system");
	ck_assert_ptr_null(cfg.upstream.password);
	ck_assert_uint_eq(cfg.pool.min_size, 2);
	ck_assert_uint_eq(cfg.batch.max_bytes, 8388608);
}
END_TEST

/* cfg_diff's callback: appends "section.key " to a string. */
static void collect(const char *section, const char *key, void *arg)
{
	char *out = arg;
	size_t n = strlen(out);

	snprintf(out + n, 1024 - n, "%s.%s ", section, key);
}

START_TEST(test_diff_names_changed_keys)
{
	struct config other;
	char names[1024] = "";

	ck_assert_msg(load_text(full_ini, NULL), "%s", err);
	ck_assert(cfg_init(&other));
	ck_assert_msg(cfg_load(&other, ini_path, NULL, err, sizeof(err)), "%s",
	              err);
	ck_assert_uint_eq(cfg_diff(&cfg, &other, collect, names), 0);
	ck_assert_str_eq(names, "");

	/* a number, a secret, a string set to unset, an enum and a bool */
	{
		char *const env[] = {"LAKEBASE_PROXY_BATCH_MAX_ROWS=1",
		                     "LAKEBASE_PROXY_UPSTREAM_PASSWORD=x",
		                     "LAKEBASE_PROXY_LOG_FILE=",
		                     "LAKEBASE_PROXY_LOG_LEVEL=info",
		                     "LAKEBASE_PROXY_BATCH_DEAD_LETTER=off",
		                     NULL};

		ck_assert_msg(cfg_load(&other, NULL, env, err, sizeof(err)),
		              "%s", err);
	}
	ck_assert_uint_eq(cfg_diff(&cfg, &other, collect, names), 5);
	/* table order, names only: the secret's value is not there */
	ck_assert_str_eq(names, "upstream.password batch.max_rows "
	                        "batch.dead_letter log.level log.file ");
	ck_assert_uint_eq(cfg_diff(&cfg, &other, NULL, NULL), 5);
	cfg_free(&other);
}
END_TEST

START_TEST(test_copy_key)
{
	struct config other;
	unsigned before;

	ck_assert_msg(load_text(full_ini, NULL), "%s", err);
	ck_assert(cfg_init(&other)); /* the defaults */
	before = cfg_diff(&cfg, &other, NULL, NULL);
	ck_assert(cfg_copy_key(&other, &cfg, "ingest", "listen"));
	ck_assert_str_eq(other.ingest.listen, "0.0.0.0:6000");
	ck_assert_ptr_ne(other.ingest.listen, cfg.ingest.listen);
	ck_assert(cfg_copy_key(&other, &cfg, "upstream", "password"));
	ck_assert_str_eq(other.upstream.password, SECRET);
	ck_assert(cfg_copy_key(&other, &cfg, "pool", "max_size"));
	ck_assert_uint_eq(other.pool.max_size, 16);
	ck_assert(cfg_copy_key(&other, &cfg, "upstream", "sslmode"));
	ck_assert_int_eq(other.upstream.sslmode, SSLMODE_REQUIRE);
	ck_assert_uint_eq(cfg_diff(&cfg, &other, NULL, NULL), before - 4);
	/* set to unset */
	ck_assert(cfg_copy_key(&cfg, &other, "log", "file"));
	ck_assert_ptr_null(cfg.log.file);
	ck_assert_uint_eq(cfg_diff(&cfg, &other, NULL, NULL), before - 5);
	ck_assert(!cfg_copy_key(&other, &cfg, "pool", "no_such_key"));
	ck_assert(!cfg_copy_key(&other, &cfg, "nope", "listen"));
	cfg_free(&other);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *load = tcase_create("load");
	TCase *errors = tcase_create("errors");
	TCase *output = tcase_create("output");

	tcase_add_checked_fixture(load, setup, teardown);
	tcase_add_test(load, test_defaults);
	tcase_add_test(load, test_minimal_file_keeps_defaults);
	tcase_add_test(load, test_crlf_bom_and_comments);
	tcase_add_test(load, test_full_file);
	tcase_add_test(load, test_env_overrides_every_key);
	tcase_add_test(load, test_ingest_off_loopback_needs_token);
	tcase_add_test(load, test_frontend_checks);
	tcase_add_test(load, test_env_only_and_empty_optional);
	tcase_add_test(load, test_failed_load_changes_nothing);
	tcase_add_test(load, test_load_twice_does_not_leak);
	tcase_add_test(load, test_sample_file_parses);
	suite_add_tcase(s, load);

	tcase_add_checked_fixture(errors, setup, teardown);
	tcase_add_test(errors, test_unknown_section);
	tcase_add_test(errors, test_unknown_key);
	tcase_add_test(errors, test_duplicate_key);
	tcase_add_test(errors, test_not_a_number);
	tcase_add_test(errors, test_negative_and_range);
	tcase_add_test(errors, test_overflow);
	tcase_add_test(errors, test_bad_enum);
	tcase_add_test(errors, test_empty_required);
	tcase_add_test(errors, test_syntax_and_file_errors);
	tcase_add_test(errors, test_env_errors);
	tcase_add_test(errors, test_env_typo_hides_value);
	tcase_add_test(errors, test_secret_never_in_errors);
	tcase_add_test(errors, test_whole_config_checks);
	tcase_add_test(errors, test_sslrootcert);
	tcase_add_test(errors, test_lakebase_checks);
	suite_add_tcase(s, errors);

	tcase_add_checked_fixture(output, setup, teardown);
	tcase_add_test(output, test_print_masks_secret);
	tcase_add_test(output, test_print_unset_values);
	tcase_add_test(output, test_sslmode_names);
	tcase_add_test(output, test_diff_names_changed_keys);
	tcase_add_test(output, test_copy_key);
	suite_add_tcase(s, output);
	return s;
}

static void remove_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char path[PATH_MAX + 300];

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(tmpdir);
}

int main(void)
{
	SRunner *sr;
	int failed;

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	remove_tmpdir();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
