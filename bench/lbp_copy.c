/* lbp_copy.c: copies a COPY-text file into a table through the proxy's upstream
 * client. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "server.h"
#include "tls.h"
#include "upstream.h"

extern char **environ;

struct job {
	struct event_base *base;
	int fd;
	const char *sql;
	struct evbuffer *data;
	struct timespec t0;
	int rc;
};

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) +
	       (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void copied(struct up_conn *c, const struct up_result *r, void *arg)
{
	struct job *j = arg;
	double s = seconds_since(&j->t0);

	if (r->ok) {
		printf("rows=%" PRIu64 " seconds=%.3f rows_per_s=%.0f\n",
		       r->rows, s, (double)r->rows / s);
		j->rc = 0;
	} else {
		fprintf(stderr, "lbp-copy: %s %s\n",
		        r->error.sqlstate ? r->error.sqlstate : "",
		        r->conn_lost ? r->conn_error : r->error.message);
	}
	event_base_loopexit(j->base, NULL);
}

/* Streams the file while it is sent, as psql does: 1 MiB at a time. */
static bool refill(struct evbuffer *buf, void *arg)
{
	int *fd = arg;

	return evbuffer_read(buf, *fd, 1 << 20) > 0;
}

static void ready(struct up_conn *c, void *arg)
{
	struct job *j = arg;

	up_set_copy_refill(c, refill, &j->fd);
	if (!up_exec(c, j->sql, j->data, copied, j))
		event_base_loopexit(j->base, NULL);
}

static void closed(struct up_conn *c, void *arg)
{
	struct job *j = arg;

	fprintf(stderr, "lbp-copy: %s\n", up_last_error(c));
	event_base_loopexit(j->base, NULL);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"copy", required_argument, NULL, 's'},
	    {"file", required_argument, NULL, 'f'},
	    {NULL, 0, NULL, 0}};
	const char *path = NULL, *file = NULL;
	struct job j = {.rc = 1};
	struct config cfg;
	struct up_params p;
	char err[1024];
	int opt;

	while ((opt = getopt_long(argc, argv, "c:s:f:", opts, NULL)) != -1) {
		if (opt == 'c')
			path = optarg;
		else if (opt == 's')
			j.sql = optarg;
		else if (opt == 'f')
			file = optarg;
		else
			return 2;
	}
	if (j.sql == NULL || file == NULL) {
		fputs(
		    "usage: lbp-copy --config FILE --copy 'COPY t FROM STDIN' "
		    "--file DATA\n",
		    stderr);
		return 2;
	}
	if (!cfg_init(&cfg) ||
	    !cfg_load(&cfg, path, environ, err, sizeof(err))) {
		fprintf(stderr, "lbp-copy: %s\n", err);
		return 1;
	}
	log_set_level(LOG_WARN);
	j.base = event_base_new();
	j.data = evbuffer_new();
	struct evdns_base *dns = evdns_base_new(j.base, 1);
	server_up_params(&cfg, &p);
	if (p.sslmode != SSLMODE_DISABLE) {
		p.ssl_ctx = tls_client_ctx_new(
		    p.sslmode, cfg.upstream.sslrootcert, err, sizeof(err));
		if (p.ssl_ctx == NULL) {
			fprintf(stderr, "lbp-copy: %s\n", err);
			return 1;
		}
	}
	/* The clock starts before the file is opened, as psql's does. */
	clock_gettime(CLOCK_MONOTONIC, &j.t0);
	j.fd = open(file, O_RDONLY);
	if (j.fd < 0) {
		fprintf(stderr, "lbp-copy: %s: %s\n", file, strerror(errno));
		return 1;
	}
	struct up_events ev = {ready, closed, &j};
	struct up_conn *c = up_connect(j.base, dns, &p, 1, &ev);
	event_base_dispatch(j.base);
	up_free(c);
	close(j.fd);
	evbuffer_free(j.data);
	if (p.ssl_ctx)
		SSL_CTX_free(p.ssl_ctx);
	evdns_base_free(dns, 0);
	event_base_free(j.base);
	cfg_free(&cfg);
	return j.rc;
}
