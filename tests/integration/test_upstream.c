/* test_upstream.c: the upstream client against a real PostgreSQL (TLS, SCRAM).
 */
#include <check.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/evp.h>

#include "harness_env.h"
#include "testloop.h"
#include "upstream_params.h"
#include "tls.h"
#include "upstream.h"

static struct harness_env env;
static struct event_base *base;
static struct evdns_base *dns;

/* What a connection told us. */
struct watch {
	bool ready;
	bool closed;
	bool result_in;
	struct up_result res; /* copied scalars only */
	char sqlstate[6];
	char message[512];
	char detail[256];
	char hint[256];
	char where[512];
	char cell0[512];
	size_t nrows;
};

static void on_ready(struct up_conn *c, void *arg)
{
	((struct watch *)arg)->ready = true;
}

static void on_closed(struct up_conn *c, void *arg)
{
	((struct watch *)arg)->closed = true;
}

static void copy_field(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

static void on_result(struct up_conn *c, const struct up_result *r, void *arg)
{
	struct watch *w = arg;

	w->result_in = true;
	w->res = *r;
	w->res.cells = NULL;
	memset(&w->res.error, 0, sizeof(w->res.error));
	copy_field(w->sqlstate, sizeof(w->sqlstate), r->error.sqlstate);
	copy_field(w->message, sizeof(w->message), r->error.message);
	copy_field(w->detail, sizeof(w->detail), r->error.detail);
	copy_field(w->hint, sizeof(w->hint), r->error.hint);
	copy_field(w->where, sizeof(w->where), r->error.where);
	copy_field(w->cell0, sizeof(w->cell0), up_result_cell(r, 0, 0));
	w->nrows = r->nrows;
}

static bool closed_or_ready(void *arg)
{
	struct watch *w = arg;

	return w->ready || w->closed;
}

static bool result_in(void *arg)
{
	return ((struct watch *)arg)->result_in;
}

static void setup(void)
{
	ck_assert(harness_env_load(&env));
	base = event_base_new();
	dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	ck_assert_ptr_nonnull(dns);
}

static void teardown(void)
{
	evdns_base_free(dns, 0);
	event_base_free(base);
}

static SSL_CTX *make_ctx(enum sslmode mode, const char *ca)
{
	char err[256];
	SSL_CTX *ctx = tls_client_ctx_new(mode, ca, err, sizeof(err));

	ck_assert_msg(ctx != NULL, "%s", err);
	return ctx;
}

static struct up_params default_params(SSL_CTX *ctx)
{
	return harness_up_params(&env, ctx);
}

/* Connects and waits for the login to end either way. */
static struct up_conn *connect_wait(const struct up_params *p, struct watch *w)
{
	struct up_events ev = {on_ready, on_closed, w};
	struct up_conn *c;

	memset(w, 0, sizeof(*w));
	c = up_connect(base, dns, p, 1, &ev);
	ck_assert_ptr_nonnull(c);
	ck_assert(testloop_until(base, closed_or_ready, w, 20));
	return c;
}

static void exec_wait(struct up_conn *c, const char *sql, struct evbuffer *data,
                      struct watch *w)
{
	w->result_in = false;
	ck_assert_msg(up_exec(c, sql, data, on_result, w), "up_exec refused");
	ck_assert(testloop_until(base, result_in, w, 120));
}

static struct up_conn *connect_ok(SSL_CTX *ctx, struct watch *w)
{
	struct up_params p = default_params(ctx);
	struct up_conn *c = connect_wait(&p, w);

	ck_assert_msg(w->ready, "login failed: %s", up_last_error(c));
	return c;
}

START_TEST(login_uses_tls_and_scram)
{
	SSL_CTX *ctx = make_ctx(SSLMODE_VERIFY_FULL, env.ca_file);
	struct watch w;
	struct up_conn *c = connect_ok(ctx, &w);
	char out[256];

	exec_wait(c,
	          "SELECT s.ssl::text || ' ' || a.application_name || ' ' || "
	          "a.usename FROM pg_stat_ssl s JOIN pg_stat_activity a "
	          "USING (pid) WHERE pid = pg_backend_pid()",
	          NULL, &w);
	ck_assert(w.res.ok);
	ck_assert_str_eq(w.cell0, "true lakebase-proxy lbp_test");
	ck_assert_ptr_nonnull(up_server_param(c, "server_version"));
	/* The server's own view, from another session. */
	char sql[200];
	snprintf(sql, sizeof(sql),
	         "SELECT ssl FROM pg_stat_ssl WHERE pid = %" PRIu32,
	         up_backend_pid(c));
	ck_assert(harness_sql(&env, sql, out, sizeof(out)));
	ck_assert_str_eq(out, "t");
	up_free(c);
	SSL_CTX_free(ctx);
}
END_TEST

START_TEST(login_by_name_over_dns_path)
{
	SSL_CTX *ctx = make_ctx(SSLMODE_VERIFY_FULL, env.ca_file);
	struct up_params p = default_params(ctx);
	struct watch w;
	struct up_conn *c;

	/* "localhost" goes through the resolver and is checked as a DNS SAN. */
	p.host = "localhost";
	c = connect_wait(&p, &w);
	ck_assert_msg(w.ready, "login failed: %s", up_last_error(c));
	up_free(c);
	SSL_CTX_free(ctx);
}
END_TEST

START_TEST(server_error_is_reported_and_conn_survives)
{
	SSL_CTX *ctx = make_ctx(SSLMODE_VERIFY_FULL, env.ca_file);
	struct watch w;
	struct up_conn *c = connect_ok(ctx, &w);

	exec_wait(c, "SELECT * FROM no_such_table_xyz", NULL, &w);
	ck_assert(!w.res.ok && !w.res.conn_lost);
	ck_assert_str_eq(w.sqlstate, "42P01");
	ck_assert_ptr_nonnull(strstr(w.message, "no_such_table_xyz"));
	ck_assert_int_eq(w.res.txn_status, 'I');

	exec_wait(c,
	          "DO $$BEGIN RAISE EXCEPTION 'boom' USING DETAIL = 'd1', "
	          "HINT = 'h1', ERRCODE = '22023'; END$$",
	          NULL, &w);
	ck_assert_str_eq(w.sqlstate, "22023");
	ck_assert_str_eq(w.message, "boom");
	ck_assert_str_eq(w.detail, "d1");
	ck_assert_str_eq(w.hint, "h1");
	ck_assert_ptr_nonnull(strstr(w.where, "PL/pgSQL"));

	exec_wait(c, "SELECT 40 + 2", NULL, &w);
	ck_assert(w.res.ok);
	ck_assert_str_eq(w.cell0, "42");
	ck_assert_str_eq(w.res.tag, "SELECT 1");
	up_free(c);
	SSL_CTX_free(ctx);
}
END_TEST

/* The source rows and the MD5 of their text, which the server recomputes. */
static struct evbuffer *million_rows(char md5hex[33], uint64_t *sum)
{
	struct evbuffer *b = evbuffer_new();
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char digest[16];
	char line[96];

	*sum = 0;
	EVP_DigestInit_ex(md, EVP_md5(), NULL);
	for (int64_t i = 1; i <= 1000000; i++) {
		int n = snprintf(line, sizeof(line),
		                 "%" PRId64 "\tname-%" PRId64 "\t%" PRId64 "\n",
		                 i, i * 7919 % 100003, i % 1000 - 500);
		evbuffer_add(b, line, (size_t)n);
		EVP_DigestUpdate(md, line, (size_t)n);
		*sum += (uint64_t)i;
	}
	EVP_DigestFinal_ex(md, digest, NULL);
	EVP_MD_CTX_free(md);
	for (int i = 0; i < 16; i++)
		snprintf(md5hex + 2 * i, 3, "%02x", digest[i]);
	return b;
}

START_TEST(copy_million_rows_lands_exactly)
{
	SSL_CTX *ctx = make_ctx(SSLMODE_VERIFY_FULL, env.ca_file);
	struct watch w;
	struct up_conn *c = connect_ok(ctx, &w);
	char md5hex[33], expect[128];
	uint64_t sum;
	struct evbuffer *data = million_rows(md5hex, &sum);

	exec_wait(c,
	          "DROP TABLE IF EXISTS copy_m; CREATE TABLE copy_m "
	          "(id bigint, name text, n int)",
	          NULL, &w);
	ck_assert(w.res.ok);
	exec_wait(c, "COPY copy_m (id, name, n) FROM STDIN", data, &w);
	ck_assert_msg(w.res.ok, "%s", w.message);
	ck_assert_uint_eq(w.res.rows, 1000000);
	ck_assert_uint_eq(evbuffer_get_length(data), 0);

	exec_wait(c,
	          "SELECT count(*) || ' ' || sum(id) || ' ' || "
	          "md5(string_agg(id || E'\\t' || name || E'\\t' || n || "
	          "E'\\n', '' ORDER BY id)) FROM copy_m",
	          NULL, &w);
	snprintf(expect, sizeof(expect), "1000000 %" PRIu64 " %s", sum, md5hex);
	ck_assert_str_eq(w.cell0, expect);
	exec_wait(c, "DROP TABLE copy_m", NULL, &w);
	evbuffer_free(data);
	up_free(c);
	SSL_CTX_free(ctx);
}
END_TEST

START_TEST(copy_error_names_the_line_and_keeps_conn)
{
	SSL_CTX *ctx = make_ctx(SSLMODE_VERIFY_FULL, env.ca_file);
	struct watch w;
	struct up_conn *c = connect_ok(ctx, &w);
	struct evbuffer *data = evbuffer_new();

	evbuffer_add_printf(data, "1\n2\nthree\n4\n");
	exec_wait(c, "DROP TABLE IF EXISTS copy_e; CREATE TABLE copy_e (n int)",
	          NULL, &w);
	exec_wait(c, "BEGIN; COPY copy_e FROM STDIN; COMMIT", data, &w);
	ck_assert(!w.res.ok && !w.res.conn_lost);
	ck_assert_str_eq(w.sqlstate, "22P02");
	ck_assert_ptr_nonnull(strstr(w.where, "line 3"));
	ck_assert_int_eq(w.res.txn_status, 'E');
	exec_wait(c, "ROLLBACK", NULL, &w);
	ck_assert_int_eq(w.res.txn_status, 'I');

	/* One round trip for a whole transaction with COPY in the middle. */
	evbuffer_add_printf(data, "5\n6\n");
	exec_wait(c, "BEGIN; COPY copy_e FROM STDIN; COMMIT", data, &w);
	ck_assert(w.res.ok);
	ck_assert_uint_eq(w.res.rows, 2);
	ck_assert_str_eq(w.res.tag, "COMMIT");
	exec_wait(c, "SELECT string_agg(n::text, ',' ORDER BY n) FROM copy_e",
	          NULL, &w);
	ck_assert_str_eq(w.cell0, "5,6");

	/* COPY without data is refused cleanly, not hung. */
	exec_wait(c, "COPY copy_e FROM STDIN", NULL, &w);
	ck_assert(!w.res.ok && !w.res.conn_lost);
	ck_assert_str_eq(w.sqlstate, "57014");
	evbuffer_free(data);
	up_free(c);
	SSL_CTX_free(ctx);
}
END_TEST

/* Hands out "k\n" lines in three pieces, then says there is no more. */
static bool three_pieces(struct evbuffer *buf, void *arg)
{
	int *piece = arg;

	if (*piece == 3)
		return false;
	for (int k = 0; k < 1000; k++)
		evbuffer_add_printf(buf, "%d\n", *piece * 1000 + k);
	(*piece)++;
	return true;
}

START_TEST(copy_data_refilled_while_streaming)
{
	SSL_CTX *ctx = make_ctx(SSLMODE_VERIFY_FULL, env.ca_file);
	struct watch w;
	struct up_conn *c = connect_ok(ctx, &w);
	struct evbuffer *data = evbuffer_new();
	int piece = 0;

	exec_wait(c, "DROP TABLE IF EXISTS copy_r; CREATE TABLE copy_r (n int)",
	          NULL, &w);
	up_set_copy_refill(c, three_pieces, &piece);
	exec_wait(c, "COPY copy_r FROM STDIN", data, &w);
	ck_assert_msg(w.res.ok, "%s", w.message);
	ck_assert_uint_eq(w.res.rows, 3000);
	ck_assert_int_eq(piece, 3);
	exec_wait(c, "SELECT count(DISTINCT n) || ' ' || max(n) FROM copy_r",
	          NULL, &w);
	ck_assert_str_eq(w.cell0, "3000 2999");
	/* The refill belonged to that statement only. */
	evbuffer_add_printf(data, "7\n");
	exec_wait(c, "COPY copy_r FROM STDIN", data, &w);
	ck_assert_uint_eq(w.res.rows, 1);
	evbuffer_free(data);
	up_free(c);
	SSL_CTX_free(ctx);
}
END_TEST

START_TEST(wrong_password_is_28P01)
{
	SSL_CTX *ctx = make_ctx(SSLMODE_VERIFY_FULL, env.ca_file);
	struct up_params p = default_params(ctx);
	struct watch w;
	struct up_conn *c;

	p.password = "not-the-password";
	c = connect_wait(&p, &w);
	ck_assert(w.closed && !w.ready);
	ck_assert_int_eq(up_close_reason(c), UP_CLOSE_AUTH);
	ck_assert_str_eq(up_login_sqlstate(c), "28P01");
	ck_assert_ptr_nonnull(strstr(up_last_error(c), "password"));
	ck_assert_ptr_null(strstr(up_last_error(c), "not-the-password"));
	up_free(c);
	SSL_CTX_free(ctx);
}
END_TEST

START_TEST(untrusted_certificate_is_refused)
{
	SSL_CTX *ctx = make_ctx(SSLMODE_VERIFY_FULL, env.untrusted_ca);
	struct up_params p = default_params(ctx);
	struct watch w;
	struct up_conn *c = connect_wait(&p, &w);

	ck_assert(w.closed && !w.ready);
	ck_assert_int_eq(up_close_reason(c), UP_CLOSE_TLS);
	ck_assert_msg(strstr(up_last_error(c), "certificate") != NULL, "%s",
	              up_last_error(c));
	up_free(c);
	SSL_CTX_free(ctx);
}
END_TEST

START_TEST(host_name_mismatch_under_verify_full)
{
	SSL_CTX *full = make_ctx(SSLMODE_VERIFY_FULL, env.ca_file);
	SSL_CTX *ca = make_ctx(SSLMODE_VERIFY_CA, env.ca_file);
	struct up_params p = default_params(full);
	struct watch w;
	struct up_conn *c;

	if (!env.ipv6) {
		SSL_CTX_free(full);
		SSL_CTX_free(ca);
		return; /* the mismatch is provoked through ::1 */
	}
	/* The certificate names localhost and 127.0.0.1, not ::1. */
	p.host = "::1";
	c = connect_wait(&p, &w);
	ck_assert(w.closed && !w.ready);
	ck_assert_int_eq(up_close_reason(c), UP_CLOSE_TLS);
	ck_assert_msg(strstr(up_last_error(c), "mismatch") != NULL, "%s",
	              up_last_error(c));
	up_free(c);

	/* Same address under verify-ca: the chain is fine, so it logs in. */
	p.sslmode = SSLMODE_VERIFY_CA;
	p.ssl_ctx = ca;
	c = connect_wait(&p, &w);
	ck_assert_msg(w.ready, "%s", up_last_error(c));
	up_free(c);
	SSL_CTX_free(full);
	SSL_CTX_free(ca);
}
END_TEST

static unsigned free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	ck_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	close(fd);
	return ntohs(a.sin_port);
}

START_TEST(server_not_listening)
{
	SSL_CTX *ctx = make_ctx(SSLMODE_VERIFY_FULL, env.ca_file);
	struct up_params p = default_params(ctx);
	struct watch w;
	struct up_conn *c;

	p.port = (uint16_t)free_port();
	c = connect_wait(&p, &w);
	ck_assert(w.closed && !w.ready);
	ck_assert_int_eq(up_close_reason(c), UP_CLOSE_CONNECT);
	ck_assert_msg(strstr(up_last_error(c), "refused") != NULL, "%s",
	              up_last_error(c));
	up_free(c);
	SSL_CTX_free(ctx);
}
END_TEST

START_TEST(query_timeout_closes_conn)
{
	SSL_CTX *ctx = make_ctx(SSLMODE_VERIFY_FULL, env.ca_file);
	struct up_params p = default_params(ctx);
	struct watch w;
	struct up_conn *c;

	p.query_timeout_ms = 300;
	c = connect_wait(&p, &w);
	ck_assert(w.ready);
	exec_wait(c, "SELECT pg_sleep(5)", NULL, &w);
	ck_assert(!w.res.ok && w.res.conn_lost && w.res.timed_out);
	ck_assert_int_eq(up_get_state(c), UP_CLOSED);
	up_free(c);
	SSL_CTX_free(ctx);
}
END_TEST

START_TEST(terminated_backend_is_noticed_while_idle)
{
	SSL_CTX *ctx = make_ctx(SSLMODE_VERIFY_FULL, env.ca_file);
	struct watch w;
	struct up_conn *c = connect_ok(ctx, &w);
	char sql[128], out[64];

	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%" PRIu32 ")",
	         up_backend_pid(c));
	ck_assert(harness_sql(&env, sql, out, sizeof(out)));
	ck_assert(testloop_until(base, testloop_flag, &w.closed, 10));
	ck_assert_int_eq(up_close_reason(c), UP_CLOSE_SERVER);
	ck_assert_msg(strstr(up_last_error(c), "57P01") != NULL, "%s",
	              up_last_error(c));
	up_free(c);
	SSL_CTX_free(ctx);
}
END_TEST

/* A second harness server without TLS, for sslmode=require against it. */
START_TEST(require_against_server_without_tls)
{
	char dir[1200], cmd[2600], envfile[1300], line[256];
	struct up_params p;
	struct watch w;
	struct up_conn *c;
	unsigned port = 0;
	char password[256] = "";
	FILE *f;

	snprintf(dir, sizeof(dir), "%s-nossl", env.dir);
	snprintf(cmd, sizeof(cmd), "python3 %s start %s --no-ssl >/dev/null",
	         getenv("LBP_TEST_HARNESS"), dir);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(envfile, sizeof(envfile), "%s/harness.env", dir);
	f = fopen(envfile, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "PGPORT=", 7) == 0)
			port = (unsigned)atoi(line + 7);
		if (strncmp(line, "PGPASSWORD=", 11) == 0)
			snprintf(password, sizeof(password), "%s", line + 11);
	}
	fclose(f);

	SSL_CTX *ctx = make_ctx(SSLMODE_REQUIRE, NULL);
	p = default_params(ctx);
	p.sslmode = SSLMODE_REQUIRE;
	p.port = (uint16_t)port;
	p.password = password;
	c = connect_wait(&p, &w);
	ck_assert(w.closed && !w.ready);
	ck_assert_int_eq(up_close_reason(c), UP_CLOSE_TLS);
	ck_assert_ptr_nonnull(strstr(up_last_error(c), "does not support TLS"));
	up_free(c);

	/* sslmode=disable logs in with SCRAM over plain TCP. */
	p.sslmode = SSLMODE_DISABLE;
	p.ssl_ctx = NULL;
	c = connect_wait(&p, &w);
	ck_assert_msg(w.ready, "%s", up_last_error(c));
	up_free(c);
	SSL_CTX_free(ctx);
	snprintf(cmd, sizeof(cmd), "python3 %s stop %s >/dev/null",
	         getenv("LBP_TEST_HARNESS"), dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *upstream_suite(void)
{
	Suite *s = suite_create("upstream");
	TCase *tc = tcase_create("real_postgres");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, login_uses_tls_and_scram);
	tcase_add_test(tc, login_by_name_over_dns_path);
	tcase_add_test(tc, server_error_is_reported_and_conn_survives);
	tcase_add_test(tc, copy_million_rows_lands_exactly);
	tcase_add_test(tc, copy_error_names_the_line_and_keeps_conn);
	tcase_add_test(tc, copy_data_refilled_while_streaming);
	tcase_add_test(tc, wrong_password_is_28P01);
	tcase_add_test(tc, untrusted_certificate_is_refused);
	tcase_add_test(tc, host_name_mismatch_under_verify_full);
	tcase_add_test(tc, server_not_listening);
	tcase_add_test(tc, query_timeout_closes_conn);
	tcase_add_test(tc, terminated_backend_is_noticed_while_idle);
	tcase_add_test(tc, require_against_server_without_tls);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(upstream_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
