/* Loads harness.env; runs psql and pgharness.py as children (no shell). */
#include "harness_env.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define HARNESS_SUPERUSER "postgres"

static bool copy_value(char *dst, size_t dstlen, const char *key,
                       const char *value)
{
	size_t len = strlen(value);

	if (len >= dstlen) {
		fprintf(stderr,
		        "harness_env: value of %s too long (%zu bytes)\n", key,
		        len);
		return false;
	}
	memcpy(dst, value, len + 1);
	return true;
}

static bool parse_port(const char *value, unsigned *port)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || v == 0 || v > 65535)
		return false;
	*port = (unsigned)v;
	return true;
}

/* One KEY=VALUE line; unknown keys are ignored so the harness can grow. */
static bool apply_line(struct harness_env *e, const char *key,
                       const char *value)
{
	if (strcmp(key, "PGHOST") == 0)
		return copy_value(e->host, sizeof(e->host), key, value);
	if (strcmp(key, "PGPORT") == 0)
		return parse_port(value, &e->port);
	if (strcmp(key, "PGDATABASE") == 0)
		return copy_value(e->dbname, sizeof(e->dbname), key, value);
	if (strcmp(key, "PGUSER") == 0)
		return copy_value(e->user, sizeof(e->user), key, value);
	if (strcmp(key, "PGPASSWORD") == 0)
		return copy_value(e->password, sizeof(e->password), key, value);
	if (strcmp(key, "PGSSLROOTCERT") == 0)
		return copy_value(e->ca_file, sizeof(e->ca_file), key, value);
	if (strcmp(key, "LBP_TEST_UNTRUSTED_CA") == 0)
		return copy_value(e->untrusted_ca, sizeof(e->untrusted_ca), key,
		                  value);
	if (strcmp(key, "LBP_TEST_SOCKDIR") == 0)
		return copy_value(e->sockdir, sizeof(e->sockdir), key, value);
	if (strcmp(key, "LBP_TEST_PGBIN") == 0)
		return copy_value(e->pgbin, sizeof(e->pgbin), key, value);
	if (strcmp(key, "LBP_TEST_SSL") == 0)
		e->ssl = strcmp(value, "on") == 0;
	else if (strcmp(key, "LBP_TEST_IPV6") == 0)
		e->ipv6 = strcmp(value, "on") == 0;
	return true;
}

static bool parse_env_file(struct harness_env *e, FILE *f, const char *path)
{
	char line[2048];

	while (fgets(line, sizeof(line), f) != NULL) {
		char *eq = strchr(line, '=');

		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (eq == NULL) {
			fprintf(stderr, "harness_env: %s: bad line '%s'\n",
			        path, line);
			return false;
		}
		*eq = '\0';
		if (!apply_line(e, line, eq + 1)) {
			fprintf(stderr, "harness_env: %s: bad value for %s\n",
			        path, line);
			return false;
		}
	}
	return true;
}

bool harness_env_load(struct harness_env *e)
{
	const char *dir = getenv("LBP_TEST_PGDIR");
	char path[1200];
	FILE *f;
	bool ok;

	memset(e, 0, sizeof(*e));
	if (dir == NULL || dir[0] == '\0') {
		fprintf(stderr, "harness_env: LBP_TEST_PGDIR is not set (run "
		                "the tests through ctest)\n");
		return false;
	}
	if (!copy_value(e->dir, sizeof(e->dir), "LBP_TEST_PGDIR", dir))
		return false;
	snprintf(path, sizeof(path), "%s/harness.env", dir);
	f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr, "harness_env: cannot open %s: %s\n", path,
		        strerror(errno));
		return false;
	}
	ok = parse_env_file(e, f, path);
	fclose(f);
	if (ok &&
	    (e->port == 0 || e->host[0] == '\0' || e->sockdir[0] == '\0' ||
	     e->user[0] == '\0' || e->dbname[0] == '\0')) {
		fprintf(stderr,
		        "harness_env: %s lacks PGHOST, PGPORT, PGUSER, "
		        "PGDATABASE or "
		        "LBP_TEST_SOCKDIR\n",
		        path);
		ok = false;
	}
	return ok;
}

/* Reads the child's stdout into out (NUL-terminated); drains past the end so it
 * cannot block. */
static bool read_all(int fd, char *out, size_t outlen)
{
	size_t used = 0;
	bool fits = true;
	char sink[4096];

	for (;;) {
		char *dst = used + 1 < outlen ? out + used : sink;
		size_t room =
		    used + 1 < outlen ? outlen - 1 - used : sizeof(sink);
		ssize_t n = read(fd, dst, room);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (dst == sink)
			fits = false;
		else
			used += (size_t)n;
	}
	if (outlen > 0)
		out[used] = '\0';
	return fits && outlen > 0;
}

static void trim(char *s)
{
	size_t len = strlen(s);
	size_t start = 0;

	while (len > 0 && isspace((unsigned char)s[len - 1]))
		s[--len] = '\0';
	while (start < len && isspace((unsigned char)s[start]))
		start++;
	memmove(s, s + start, len - start + 1);
}

static bool wait_child(pid_t pid, const char *what)
{
	int status;

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "harness: waitpid(%s): %s\n", what,
			        strerror(errno));
			return false;
		}
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	fprintf(stderr, "harness: %s failed (status %d)\n", what, status);
	return false;
}

/* fork/exec argv (searched in PATH when it has no '/'); stdout into out when
 * out != NULL. */
static bool run_child(char *const argv[], char *out, size_t outlen)
{
	int fds[2] = {-1, -1};
	pid_t pid;
	bool read_ok = true;

	if (out != NULL && pipe(fds) != 0) {
		fprintf(stderr, "harness: pipe: %s\n", strerror(errno));
		return false;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "harness: fork: %s\n", strerror(errno));
		if (out != NULL) {
			close(fds[0]);
			close(fds[1]);
		}
		return false;
	}
	if (pid == 0) {
		if (out != NULL) {
			dup2(fds[1], STDOUT_FILENO);
			close(fds[0]);
			close(fds[1]);
		}
		execvp(argv[0], argv);
		fprintf(stderr, "harness: exec %s: %s\n", argv[0],
		        strerror(errno));
		_exit(127);
	}
	if (out != NULL) {
		close(fds[1]);
		read_ok = read_all(fds[0], out, outlen);
		close(fds[0]);
		if (!read_ok)
			fprintf(
			    stderr,
			    "harness: output of %s does not fit in %zu bytes\n",
			    argv[0], outlen);
	}
	return wait_child(pid, argv[0]) && read_ok;
}

/* A conninfo value in single quotes, so socket paths with spaces survive. */
static bool quote_conninfo(char *dst, size_t dstlen, const char *value)
{
	size_t used = 0;

	if (dstlen < 3)
		return false;
	dst[used++] = '\'';
	for (const char *p = value; *p != '\0'; p++) {
		if (used + 4 > dstlen)
			return false;
		if (*p == '\'' || *p == '\\')
			dst[used++] = '\\';
		dst[used++] = *p;
	}
	dst[used++] = '\'';
	dst[used] = '\0';
	return true;
}

bool harness_sql(const struct harness_env *e, const char *sql, char *out,
                 size_t outlen)
{
	char psql[1100];
	char host[2100];
	char conninfo[2400];
	int n;

	if (outlen == 0 || !quote_conninfo(host, sizeof(host), e->sockdir))
		return false;
	out[0] = '\0';
	n = snprintf(psql, sizeof(psql), "%s%spsql", e->pgbin,
	             e->pgbin[0] != '\0' ? "/" : "");
	if (n < 0 || (size_t)n >= sizeof(psql))
		return false;
	/* Explicit conninfo so PG* variables a test sets for the test role
	 * cannot redirect us. */
	n = snprintf(conninfo, sizeof(conninfo),
	             "host=%s port=%u user=" HARNESS_SUPERUSER
	             " dbname=%s sslmode=disable",
	             host, e->port, e->dbname);
	if (n < 0 || (size_t)n >= sizeof(conninfo))
		return false;

	char *const argv[] = {
	    psql, "-X",     "-A", "-t",        "-q", "-v", "ON_ERROR_STOP=1",
	    "-d", conninfo, "-c", (char *)sql, NULL};
	bool ok = run_child(argv, out, outlen);

	trim(out);
	return ok;
}

bool harness_ctl(const struct harness_env *e, const char *verb)
{
	const char *script = getenv("LBP_TEST_HARNESS");

	if (script == NULL || script[0] == '\0') {
		fprintf(stderr, "harness_ctl: LBP_TEST_HARNESS is not set\n");
		return false;
	}
	char *const argv[] = {"python3", (char *)script, (char *)verb,
	                      (char *)e->dir, NULL};

	return run_child(argv, NULL, 0);
}
