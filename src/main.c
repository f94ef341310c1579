/* main.c: command line of lakebase-proxy: options, config, then the server. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "control.h"
#include "control_parse.h"
#include "log.h"
#include "server.h"
#include "scram_server.h"
#include "tls.h"
#include "userlist.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

extern char **environ;

static void usage(FILE *out)
{
	fputs(
	    "Usage: lakebase-proxy [--config FILE] [--check-config]\n"
	    "       lakebase-proxy --userlist-line USER < password\n"
	    "       lakebase-proxy --version | --help\n"
	    "\n"
	    "Streams many small writes into PostgreSQL / Databricks Lakebase\n"
	    "through a warm pool of TLS connections.\n"
	    "\n"
	    "  -c, --config FILE   INI configuration (see "
	    "etc/lakebase-proxy.ini);\n"
	    "                      without it, settings come from the\n"
	    "                      environment only "
	    "(LAKEBASE_PROXY_<SECTION>_<KEY>)\n"
	    "      --check-config  load and check the configuration, print "
	    "the\n"
	    "                      effective settings (secrets masked); with\n"
	    "                      [lakebase], also look up the host and a\n"
	    "                      credential once and print the host and\n"
	    "                      the credential's expiry; exit\n"
	    "      --userlist-line USER\n"
	    "                      read a password from the first line of\n"
	    "                      stdin and print a [frontend] auth_file "
	    "line\n"
	    "                      for USER with its SCRAM-SHA-256 verifier\n"
	    "  -V, --version       print the version and exit\n"
	    "  -h, --help          print this help and exit\n",
	    out);
}

/* Loads the TLS trust store once, so --check-config catches a bad CA file. */
static bool check_tls(const struct config *cfg, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if (cfg->upstream.sslmode == SSLMODE_DISABLE)
		return true;
	ctx = tls_client_ctx_new(cfg->upstream.sslmode,
	                         cfg->upstream.sslrootcert, err, errlen);
	if (ctx == NULL)
		return false;
	SSL_CTX_free(ctx);
	return true;
}

/*
 * [log] file: opened now, so a path that cannot be written stops the start
 * (or fails --check-config, whose own lines stay on stderr).
 */
static bool open_log(const struct config *cfg, bool check_only, char *err,
                     size_t errlen)
{
	if (cfg->log.file == NULL)
		return true;
	if (check_only)
		return log_check_file(cfg->log.file, err, errlen);
	return log_set_file(cfg->log.file, err, errlen);
}

/* The control plane's lookups once, as the daemon would do them at start. */
static bool main_check_lakebase(const struct config *cfg)
{
	char host[512], err[1024], when[40];
	int64_t expires_ms;

	if (cfg->lakebase.workspace_host == NULL)
		return true;
	if (!ctl_check(&cfg->lakebase, host, sizeof(host), &expires_ms, err,
	               sizeof(err))) {
		log_error("event=check_failed error=%s",
		          log_quote((char[1100]){0}, 1100, err));
		return false;
	}
	ctl_format_time(expires_ms, when, sizeof(when));
	printf("\n; [lakebase] lookup: host = %s\n"
	       "; [lakebase] lookup: credential expires = %s\n",
	       host, when);
	return true;
}

static int run(const char *path, bool check_only)
{
	struct config cfg;
	struct server *srv;
	char err[1024];
	int rc = 1;

	if (!cfg_init(&cfg)) {
		fputs("lakebase-proxy: out of memory\n", stderr);
		return 1;
	}
	if (!cfg_load(&cfg, path, environ, err, sizeof(err)) ||
	    !check_tls(&cfg, err, sizeof(err)) ||
	    !open_log(&cfg, check_only, err, sizeof(err))) {
		log_error("event=config_error error=%s",
		          log_quote((char[1100]){0}, 1100, err));
		goto out;
	}
	log_set_level(cfg.log.level);
	if (check_only) {
		cfg_print(&cfg, stdout);
		fflush(stdout);
		rc = main_check_lakebase(&cfg) ? 0 : 1;
		goto out;
	}
	srv = server_new(&cfg, path, environ, err, sizeof(err));
	if (srv == NULL) {
		log_error("event=start_failed error=%s",
		          log_quote((char[1100]){0}, 1100, err));
		goto out;
	}
	rc = server_run(srv);
	server_free(srv);
out:
	cfg_free(&cfg);
	log_set_file(NULL, err, sizeof(err));
	return rc;
}

/*
 * "user" "SCRAM-SHA-256$4096:..." for the auth_file, from a password on
 * stdin (never the command line: ps would show it). Random salt.
 */
static int userlist_line(const char *user)
{
	char pw[1024], *text = NULL, *line = NULL;
	uint8_t salt[SCRAM_DEFAULT_SALT_LEN];
	struct scram_secret s;
	size_t n;

	if (fgets(pw, sizeof(pw), stdin) == NULL) {
		fputs("lakebase-proxy: no password on stdin\n", stderr);
		return 1;
	}
	n = strcspn(pw, "\r\n");
	pw[n] = '\0';
	if (n == 0 || RAND_bytes(salt, sizeof(salt)) != 1 ||
	    !scram_secret_make(pw, salt, sizeof(salt), SCRAM_DEFAULT_ITERATIONS,
	                       &s) ||
	    (text = scram_secret_format(&s)) == NULL ||
	    (line = ul_format_line(user, text)) == NULL) {
		fputs("lakebase-proxy: empty password or no memory\n", stderr);
		OPENSSL_cleanse(pw, sizeof(pw));
		free(text);
		return 1;
	}
	OPENSSL_cleanse(pw, sizeof(pw));
	fputs(line, stdout);
	free(text);
	free(line);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", no_argument, NULL, 'k'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {"userlist-line", required_argument, NULL, 'u'},
	    {NULL, 0, NULL, 0}};
	const char *path = NULL;
	bool check_only = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'k':
			check_only = true;
			break;
		case 'u':
			return userlist_line(optarg);
		case 'V':
			printf("lakebase-proxy %s\n", LBP_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "lakebase-proxy: unexpected argument: %s\n",
		        argv[optind]);
		usage(stderr);
		return 2;
	}
	/* A peer that hangs up must not kill the daemon mid-write. */
	signal(SIGPIPE, SIG_IGN);
	return run(path, check_only);
}
