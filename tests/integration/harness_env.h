/* The C tests' view of the PostgreSQL that tests/harness/pgharness.py runs. */
#ifndef LBP_HARNESS_ENV_H
#define LBP_HARNESS_ENV_H

#include <stdbool.h>
#include <stddef.h>

/* What $LBP_TEST_PGDIR/harness.env says about the test server. The test role
 * (user/password) may only log in over TCP to host:port with SCRAM-SHA-256 (and
 * TLS unless !ssl); the superuser "postgres" only through the Unix socket in
 * sockdir (see harness_sql). */
struct harness_env {
	char host[256]; /* "127.0.0.1" */
	unsigned port;
	char dbname[64]; /* "lbp_test" */
	char user[64];   /* "lbp_test" */
	char password[128];
	/* CA that signed the server cert (DNS:localhost, IP:127.0.0.1) */
	char ca_file[1024];
	char untrusted_ca[1024]; /* a CA that did not sign it */
	char sockdir[1024];
	char dir[1024]; /* $LBP_TEST_PGDIR */
	bool ssl;
	bool ipv6;        /* the server also listens on ::1 (not in the cert) */
	char pgbin[1024]; /* PostgreSQL binaries; empty: psql from PATH */
};

/* Fills *e from $LBP_TEST_PGDIR/harness.env; false (with a message on stderr)
 * if it cannot. */
bool harness_env_load(struct harness_env *e);

/* Runs SQL as the superuser over the Unix socket (psql, no shell, so SQL needs
 * no quoting). Captures stdout, trimmed; rows end in '\n', fields are separated
 * by '|'. False if psql fails or the output does not fit in outlen. */
bool harness_sql(const struct harness_env *e, const char *sql, char *out,
                 size_t outlen);

/* Runs `python3 $LBP_TEST_HARNESS <verb> <dir>`, e.g. verb "restart" (same
 * port). */
bool harness_ctl(const struct harness_env *e, const char *verb);

#endif
