/* config.c: the settings table, read from INI (inih) and the environment. */
#include "config.h"
#include "netaddr.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#define ENV_PREFIX  "LAKEBASE_PROXY_"
#define SECRET_MASK "********"

enum cfg_type {
	CFG_STRING,    /* char *; empty is an error unless optional */
	CFG_SECRET,    /* char *; optional; never printed, never in errors */
	CFG_UINT,      /* unsigned, min..max */
	CFG_UINT64,    /* uint64_t, min..max */
	CFG_PORT,      /* uint16_t, 1..65535 */
	CFG_BOOL,      /* bool: on/off, true/false, yes/no, 1/0 */
	CFG_SSLMODE,   /* enum sslmode */
	CFG_LOG_LEVEL, /* enum log_level */
	CFG_ENUM       /* an enum of the names in cfg_key.names */
};

struct cfg_key {
	const char *section;
	const char *key;
	size_t offset; /* of the field in struct config */
	size_t size;   /* of the field: checked against the type in cfg_init */
	enum cfg_type type;
	uint64_t min, max; /* numbers only */
	const char *def;   /* default, as written in the file; NULL: unset */
	bool optional;     /* strings: an empty value means unset (NULL) */
	const char *const
	    *names; /* CFG_ENUM: value i is names[i]; NULL-ended */
};

#define KEY(sec, name, t)                                                      \
	.section = #sec, .key = #name,                                         \
	.offset = offsetof(struct config, sec.name),                           \
	.size = sizeof(((struct config *)0)->sec.name), .type = (t)

static const char *const fe_auth_names[] = {"scram", "passthrough", NULL};
static const char *const fe_pool_names[] = {"transaction", "session", NULL};
static const char *const fe_tls_names[] = {"off", "allow", "require", NULL};

const char *fe_auth_mode_name(enum fe_auth_mode m)
{
	return (unsigned)m <= FE_AUTH_PASSTHROUGH ? fe_auth_names[m] : "?";
}

const char *fe_pool_mode_name(enum fe_pool_mode m)
{
	return (unsigned)m <= FE_POOL_SESSION ? fe_pool_names[m] : "?";
}

const char *fe_tls_mode_name(enum fe_tls_mode m)
{
	return (unsigned)m <= FE_TLS_REQUIRE ? fe_tls_names[m] : "?";
}

/*
 * Every setting, in the order --check-config prints them. The defaults here
 * are the ones documented in config.h and etc/lakebase-proxy.ini.
 */
static const struct cfg_key keys[] = {
    {KEY(server, shutdown_timeout_s, CFG_UINT), .min = 0, .max = 3600,
     .def = "30"},
    {KEY(upstream, host, CFG_STRING)},
    {KEY(upstream, port, CFG_PORT), .min = 1, .max = 65535, .def = "5432"},
    {KEY(upstream, dbname, CFG_STRING), .def = "databricks_postgres"},
    {KEY(upstream, user, CFG_STRING)},
    {KEY(upstream, password, CFG_SECRET), .optional = true},
    {KEY(upstream, sslmode, CFG_SSLMODE), .def = "verify-full"},
    {KEY(upstream, sslrootcert, CFG_STRING), .optional = true},
    {KEY(upstream, application_name, CFG_STRING), .def = "lakebase-proxy"},
    {KEY(upstream, keepalive_idle_s, CFG_UINT), .min = 1, .max = 86400,
     .def = "30"},
    {KEY(upstream, keepalive_interval_s, CFG_UINT), .min = 1, .max = 3600,
     .def = "10"},
    {KEY(upstream, keepalive_count, CFG_UINT), .min = 1, .max = 100,
     .def = "3"},
    {KEY(upstream, tcp_user_timeout_ms, CFG_UINT), .min = 0, .max = 3600000,
     .def = "15000"},
    {KEY(pool, min_size, CFG_UINT), .min = 0, .max = 1000, .def = "2"},
    {KEY(pool, max_size, CFG_UINT), .min = 1, .max = 1000, .def = "8"},
    {KEY(pool, max_lifetime_s, CFG_UINT), .min = 1, .max = 2592000,
     .def = "3600"},
    {KEY(pool, connect_timeout_ms, CFG_UINT), .min = 1, .max = 600000,
     .def = "5000"},
    {KEY(pool, login_timeout_ms, CFG_UINT), .min = 1, .max = 600000,
     .def = "10000"},
    {KEY(pool, query_timeout_ms, CFG_UINT), .min = 1, .max = 86400000,
     .def = "30000"},
    {KEY(pool, health_check_s, CFG_UINT), .min = 1, .max = 86400, .def = "30"},
    {KEY(pool, reconnect_base_ms, CFG_UINT), .min = 1, .max = 3600000,
     .def = "100"},
    {KEY(pool, reconnect_max_ms, CFG_UINT), .min = 1, .max = 3600000,
     .def = "30000"},
    {KEY(pool, stall_timeout_ms, CFG_UINT), .min = 0, .max = 3600000,
     .def = "10000"},
    {KEY(ingest, listen, CFG_STRING), .def = "127.0.0.1:5480"},
    {KEY(ingest, auth_token, CFG_SECRET), .optional = true},
    {KEY(ingest, max_clients, CFG_UINT), .min = 1, .max = 100000,
     .def = "1024"},
    {KEY(ingest, max_frame_bytes, CFG_UINT64), .min = 65536, .max = 67108864,
     .def = "1048576"},
    {KEY(ingest, max_flush_bytes, CFG_UINT64), .min = 1024, .max = 1073741824,
     .def = "8388608"},
    {KEY(ingest, client_buffer_bytes, CFG_UINT64), .min = 1024,
     .max = 4294967296, .def = "16777216"},
    {KEY(ingest, global_buffer_bytes, CFG_UINT64), .min = 1024,
     .max = 68719476736, .def = "268435456"},
    {KEY(ingest, handshake_timeout_ms, CFG_UINT), .min = 100, .max = 600000,
     .def = "10000"},
    {KEY(ingest, idle_timeout_s, CFG_UINT), .min = 1, .max = 86400,
     .def = "600"},
    {KEY(frontend, listen, CFG_STRING), .optional = true},
    {KEY(frontend, auth_file, CFG_STRING), .optional = true},
    {KEY(frontend, auth, CFG_ENUM), .def = "scram", .names = fe_auth_names},
    {KEY(frontend, pool_mode, CFG_ENUM), .def = "transaction",
     .names = fe_pool_names},
    {KEY(frontend, tls_cert_file, CFG_STRING), .optional = true},
    {KEY(frontend, tls_key_file, CFG_STRING), .optional = true},
    {KEY(frontend, tls, CFG_ENUM), .def = "require", .names = fe_tls_names},
    {KEY(frontend, max_client_conn, CFG_UINT), .min = 1, .max = 100000,
     .def = "1000"},
    {KEY(frontend, databases, CFG_STRING), .def = "*"},
    {KEY(frontend, max_prepared_statements, CFG_UINT), .min = 0, .max = 100000,
     .def = "200"},
    {KEY(frontend, idle_transaction_timeout_s, CFG_UINT), .min = 0,
     .max = 86400, .def = "0"},
    {KEY(frontend, coalesce, CFG_BOOL), .def = "on"},
    {KEY(frontend, coalesce_tables, CFG_STRING), .def = "*"},
    {KEY(frontend, coalesce_transactions, CFG_BOOL), .def = "off"},
    {KEY(frontend, coalesce_buffer_bytes, CFG_UINT64), .min = 1024,
     .max = 68719476736, .def = "67108864"},
    {KEY(batch, max_rows, CFG_UINT64), .min = 1, .max = 100000000,
     .def = "50000"},
    {KEY(batch, max_bytes, CFG_UINT64), .min = 1024, .max = 1073741824,
     .def = "8388608"},
    {KEY(batch, max_delay_ms, CFG_UINT), .min = 0, .max = 60000, .def = "0"},
    {KEY(batch, max_inflight, CFG_UINT), .min = 1, .max = 1000, .def = "4"},
    {KEY(batch, max_retries, CFG_UINT), .min = 0, .max = 100, .def = "3"},
    {KEY(batch, acquire_timeout_ms, CFG_UINT), .min = 1, .max = 3600000,
     .def = "30000"},
    {KEY(batch, catalog_ttl_s, CFG_UINT), .min = 0, .max = 86400, .def = "300"},
    {KEY(batch, dead_letter, CFG_BOOL), .def = "off"},
    {KEY(batch, failure_backoff_ms, CFG_UINT), .min = 0, .max = 3600000,
     .def = "100"},
    {KEY(batch, failure_backoff_max_ms, CFG_UINT), .min = 1, .max = 3600000,
     .def = "5000"},
    {KEY(admin, listen, CFG_STRING), .def = "127.0.0.1:9187", .optional = true},
    {KEY(admin, auth_token, CFG_SECRET), .optional = true},
    {KEY(admin, max_connections, CFG_UINT), .min = 1, .max = 10000,
     .def = "16"},
    {KEY(admin, request_timeout_ms, CFG_UINT), .min = 100, .max = 600000,
     .def = "10000"},
    {KEY(lakebase, workspace_host, CFG_STRING), .optional = true},
    {KEY(lakebase, instance_name, CFG_STRING), .optional = true},
    {KEY(lakebase, endpoint, CFG_STRING), .optional = true},
    {KEY(lakebase, client_id, CFG_STRING), .optional = true},
    {KEY(lakebase, client_secret, CFG_SECRET), .optional = true},
    {KEY(lakebase, token, CFG_SECRET), .optional = true},
    {KEY(lakebase, ca_file, CFG_STRING), .optional = true},
    {KEY(lakebase, connect_timeout_ms, CFG_UINT), .min = 1, .max = 600000,
     .def = "5000"},
    {KEY(lakebase, request_timeout_ms, CFG_UINT), .min = 1, .max = 600000,
     .def = "30000"},
    {KEY(lakebase, retry_base_ms, CFG_UINT), .min = 1, .max = 3600000,
     .def = "1000"},
    {KEY(lakebase, retry_max_ms, CFG_UINT), .min = 1, .max = 3600000,
     .def = "60000"},
    {KEY(lakebase, refresh_percent, CFG_UINT), .min = 10, .max = 95,
     .def = "75"},
    {KEY(lakebase, reresolve_failures, CFG_UINT), .min = 0, .max = 1000,
     .def = "3"},
    {KEY(log, level, CFG_LOG_LEVEL), .def = "info"},
    {KEY(log, stats_period_s, CFG_UINT), .min = 0, .max = 86400, .def = "60"},
    {KEY(log, file, CFG_STRING), .optional = true},
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

/* State of one file being parsed; inih calls back into it line by line. */
struct parse_ctx {
	struct config *cfg;
	const char *path;
	FILE *fp;
	char *line; /* getline() buffer */
	size_t line_cap;
	unsigned lineno;
	unsigned first_line[N_KEYS]; /* where each key was set; 0: not yet */
	bool failed;                 /* err holds the first error */
	char *err;
	size_t errlen;
};

static const char *const sslmode_names[] = {"disable", "require", "verify-ca",
                                            "verify-full"};

const char *sslmode_name(enum sslmode mode)
{
	if ((unsigned)mode > SSLMODE_VERIFY_FULL)
		return "unknown";
	return sslmode_names[mode];
}

bool sslmode_parse(const char *s, enum sslmode *out)
{
	for (unsigned i = 0; i <= SSLMODE_VERIFY_FULL; i++) {
		if (strcmp(s, sslmode_names[i]) == 0) {
			*out = (enum sslmode)i;
			return true;
		}
	}
	return false;
}

static void *field_of(struct config *cfg, const struct cfg_key *k)
{
	return (char *)cfg + k->offset;
}

static const void *cfield_of(const struct config *cfg, const struct cfg_key *k)
{
	return (const char *)cfg + k->offset;
}

static bool is_string(const struct cfg_key *k)
{
	return k->type == CFG_STRING || k->type == CFG_SECRET;
}

static __attribute__((format(printf, 3, 4))) void
put_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* "allowed: 1 to 1000", appended to every bad-number message. */
static void put_range_err(const struct cfg_key *k, const char *quoted,
                          const char *what, char *why, size_t whylen)
{
	put_err(why, whylen, "%s %s (allowed: %" PRIu64 " to %" PRIu64 ")",
	        quoted, what, k->min, k->max);
}

static bool parse_whole(const struct cfg_key *k, const char *s,
                        const char *quoted, uint64_t *out, char *why,
                        size_t whylen)
{
	unsigned long long v;
	char *end;

	if (s[0] == '-' && isdigit((unsigned char)s[1])) {
		put_range_err(k, quoted, "is negative", why, whylen);
		return false;
	}
	/* strtoull alone would accept " 1", "+1" and "-1" */
	if (!isdigit((unsigned char)s[0])) {
		put_err(why, whylen, "%s is not a whole number", quoted);
		return false;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0') {
		put_err(why, whylen, "%s is not a whole number", quoted);
		return false;
	}
	if (errno == ERANGE || v > UINT64_MAX) {
		put_range_err(k, quoted, "is out of range", why, whylen);
		return false;
	}
	*out = v;
	return true;
}

static bool set_number(void *field, const struct cfg_key *k, const char *value,
                       char *why, size_t whylen)
{
	char quoted[80];
	uint64_t v;

	log_quote(quoted, sizeof(quoted), value);
	if (!parse_whole(k, value, quoted, &v, why, whylen))
		return false;
	if (v < k->min || v > k->max) {
		put_range_err(k, quoted, "is out of range", why, whylen);
		return false;
	}
	if (k->type == CFG_PORT)
		*(uint16_t *)field = (uint16_t)v;
	else if (k->type == CFG_UINT)
		*(unsigned *)field = (unsigned)v;
	else
		*(uint64_t *)field = v;
	return true;
}

static bool has_control_char(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return true;
	}
	return false;
}

/* Replaces the old string. A secret's value is never put into why. */
static bool set_string(void *field, const struct cfg_key *k, const char *value,
                       char *why, size_t whylen)
{
	char **slot = field;
	char *copy = NULL;

	if (value[0] == '\0' && !k->optional) {
		put_err(why, whylen, "must not be empty");
		return false;
	}
	if (k->type != CFG_SECRET && has_control_char(value)) {
		put_err(why, whylen, "contains a control character");
		return false;
	}
	if (value[0] != '\0') {
		copy = strdup(value);
		if (copy == NULL) {
			put_err(why, whylen, "out of memory");
			return false;
		}
	}
	free(*slot);
	*slot = copy;
	return true;
}

static bool set_bool(void *field, const char *value, char *why, size_t whylen)
{
	static const char *const yes[] = {"on", "true", "yes", "1"};
	static const char *const no[] = {"off", "false", "no", "0"};
	char quoted[80];

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(value, yes[i]) == 0 || strcmp(value, no[i]) == 0) {
			*(bool *)field = strcmp(value, yes[i]) == 0;
			return true;
		}
	}
	put_err(why, whylen,
	        "%s is not on or off (also true/false, yes/no, 1/0)",
	        log_quote(quoted, sizeof(quoted), value));
	return false;
}

static bool set_sslmode(void *field, const char *value, char *why,
                        size_t whylen)
{
	char quoted[80];

	if (sslmode_parse(value, field))
		return true;
	log_quote(quoted, sizeof(quoted), value);
	if (strcmp(value, "allow") == 0 || strcmp(value, "prefer") == 0)
		put_err(why, whylen,
		        "%s is not supported: it can silently fall back to "
		        "plaintext; use require, verify-ca or verify-full",
		        quoted);
	else
		put_err(why, whylen,
		        "%s is not an sslmode (disable, require, verify-ca, "
		        "verify-full)",
		        quoted);
	return false;
}

static bool set_log_level(void *field, const char *value, char *why,
                          size_t whylen)
{
	char quoted[80];

	if (log_level_parse(value, field))
		return true;
	put_err(why, whylen, "%s is not a log level (debug, info, warn, error)",
	        log_quote(quoted, sizeof(quoted), value));
	return false;
}

static bool set_enum(void *field, const struct cfg_key *k, const char *value,
                     char *why, size_t whylen)
{
	char quoted[80], list[200];
	size_t n = 0;

	for (int i = 0; k->names[i] != NULL; i++) {
		if (strcmp(value, k->names[i]) == 0) {
			*(int *)field = i;
			return true;
		}
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s",
		                      i ? ", " : "", k->names[i]);
		if (n >= sizeof(list))
			n = sizeof(list) - 1;
	}
	put_err(why, whylen, "%s is not one of: %s",
	        log_quote(quoted, sizeof(quoted), value), list);
	return false;
}

/* Parses value into k's field of cfg; on false, why says what is wrong. */
static bool set_value(struct config *cfg, const struct cfg_key *k,
                      const char *value, char *why, size_t whylen)
{
	void *field = field_of(cfg, k);

	switch (k->type) {
	case CFG_STRING:
	case CFG_SECRET:
		return set_string(field, k, value, why, whylen);
	case CFG_UINT:
	case CFG_UINT64:
	case CFG_PORT:
		return set_number(field, k, value, why, whylen);
	case CFG_BOOL:
		return set_bool(field, value, why, whylen);
	case CFG_SSLMODE:
		return set_sslmode(field, value, why, whylen);
	case CFG_LOG_LEVEL:
		return set_log_level(field, value, why, whylen);
	case CFG_ENUM:
		return set_enum(field, k, value, why, whylen);
	}
	put_err(why, whylen, "unknown setting type");
	return false;
}

static size_t type_size(enum cfg_type type)
{
	switch (type) {
	case CFG_STRING:
	case CFG_SECRET:
		return sizeof(char *);
	case CFG_UINT:
		return sizeof(unsigned);
	case CFG_UINT64:
		return sizeof(uint64_t);
	case CFG_PORT:
		return sizeof(uint16_t);
	case CFG_BOOL:
		return sizeof(bool);
	case CFG_SSLMODE:
		return sizeof(enum sslmode);
	case CFG_LOG_LEVEL:
		return sizeof(enum log_level);
	case CFG_ENUM:
		return sizeof(int);
	}
	return 0;
}

void cfg_free(struct config *cfg)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		if (is_string(&keys[i])) {
			char **slot = field_of(cfg, &keys[i]);

			free(*slot);
			*slot = NULL;
		}
	}
}

bool cfg_init(struct config *cfg)
{
	char why[160];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct cfg_key *k = &keys[i];

		/* a type that does not fit its field is a bug: every test
		 * fails here, rather than memory being overwritten */
		if (k->size != type_size(k->type) ||
		    (k->def != NULL &&
		     !set_value(cfg, k, k->def, why, sizeof(why)))) {
			cfg_free(cfg);
			return false;
		}
	}
	return true;
}

/* Deep copy, so that a failed load can leave the caller's config as it was. */
static bool cfg_copy(struct config *dst, const struct config *src)
{
	*dst = *src;
	for (size_t i = 0; i < N_KEYS; i++) {
		if (is_string(&keys[i]))
			*(char **)field_of(dst, &keys[i]) = NULL;
	}
	for (size_t i = 0; i < N_KEYS; i++) {
		const char *s;
		char **slot;

		if (!is_string(&keys[i]))
			continue;
		s = *(char *const *)cfield_of(src, &keys[i]);
		slot = field_of(dst, &keys[i]);
		if (s != NULL && (*slot = strdup(s)) == NULL) {
			cfg_free(dst);
			return false;
		}
	}
	return true;
}

static bool section_known(const char *name, size_t len)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		if (strlen(keys[i].section) == len &&
		    memcmp(keys[i].section, name, len) == 0)
			return true;
	}
	return false;
}

static const struct cfg_key *find_key(const char *section, const char *key)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].key, key) == 0)
			return &keys[i];
	}
	return NULL;
}

/* Records the first error of this file, prefixed with "path:line: ". */
static __attribute__((format(printf, 2, 3))) void fail_at(struct parse_ctx *ctx,
                                                          const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (ctx->failed)
		return;
	ctx->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	put_err(ctx->err, ctx->errlen, "%s:%u: %s", ctx->path, ctx->lineno,
	        msg);
}

/* inih does not report empty sections; catch "[typo]" where it is written. */
static bool check_section_line(struct parse_ctx *ctx, const char *line)
{
	char name[64], quoted[80];
	const char *end;
	size_t len;

	while (*line == ' ' || *line == '\t')
		line++;
	if (*line != '[')
		return true;
	end = strchr(line, ']');
	if (end == NULL)
		return true; /* inih reports the syntax error */
	len = (size_t)(end - line - 1);
	if (section_known(line + 1, len))
		return true;
	if (len >= sizeof(name))
		len = sizeof(name) - 1;
	memcpy(name, line + 1, len);
	name[len] = '\0';
	fail_at(ctx, "unknown section %s",
	        log_quote(quoted, sizeof(quoted), name));
	return false;
}

/*
 * inih's reader: one whole line per call, so our count is the line number
 * (the installed inih's handler gets none). A line too long for inih's
 * buffer is an error instead of being split into two lines.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct parse_ctx *ctx = stream;
	ssize_t n;

	if (ctx->failed)
		return NULL;
	n = getline(&ctx->line, &ctx->line_cap, ctx->fp);
	if (n < 0) {
		if (ferror(ctx->fp)) {
			ctx->failed = true;
			put_err(ctx->err, ctx->errlen, "%s: cannot read: %s",
			        ctx->path, strerror(errno));
		}
		return NULL;
	}
	ctx->lineno++;
	if (num < 4 || (size_t)n >= (size_t)num) {
		fail_at(ctx, "line is too long (at most %d bytes)", num - 3);
		return NULL;
	}
	memcpy(str, ctx->line, (size_t)n + 1);
	if (!check_section_line(ctx, str))
		return NULL;
	return str;
}

static int on_pair(void *user, const char *section, const char *name,
                   const char *value)
{
	struct parse_ctx *ctx = user;
	const struct cfg_key *k;
	char quoted[80], why[256];
	size_t idx;

	if (ctx->failed)
		return 0;
	if (section[0] == '\0') {
		fail_at(ctx, "key %s is outside any section",
		        log_quote(quoted, sizeof(quoted), name));
		return 0;
	}
	/* the reader catches most; this is for a header after a BOM */
	if (!section_known(section, strlen(section))) {
		fail_at(ctx, "unknown section %s",
		        log_quote(quoted, sizeof(quoted), section));
		return 0;
	}
	k = find_key(section, name);
	if (k == NULL) {
		fail_at(ctx, "[%s] unknown key %s", section,
		        log_quote(quoted, sizeof(quoted), name));
		return 0;
	}
	idx = (size_t)(k - keys);
	if (ctx->first_line[idx] != 0) {
		fail_at(ctx, "[%s] %s: duplicate key (first set on line %u)",
		        k->section, k->key, ctx->first_line[idx]);
		return 0;
	}
	ctx->first_line[idx] = ctx->lineno;
	if (!set_value(ctx->cfg, k, value, why, sizeof(why))) {
		fail_at(ctx, "[%s] %s: %s", k->section, k->key, why);
		return 0;
	}
	return 1;
}

static bool load_file(struct config *cfg, const char *path, char *err,
                      size_t errlen)
{
	struct parse_ctx ctx = {
	    .cfg = cfg, .path = path, .err = err, .errlen = errlen};
	int rc;

	if (path == NULL)
		return true;
	ctx.fp = fopen(path, "r");
	if (ctx.fp == NULL) {
		put_err(err, errlen, "%s: cannot open: %s", path,
		        strerror(errno));
		return false;
	}
	rc = ini_parse_stream(read_line, &ctx, on_pair, &ctx);
	fclose(ctx.fp);
	free(ctx.line);
	if (ctx.failed)
		return false;
	if (rc > 0) {
		put_err(
		    err, errlen,
		    "%s:%d: syntax error: expected [section] or key = value",
		    path, rc);
		return false;
	}
	if (rc < 0) {
		put_err(err, errlen, "%s: out of memory", path);
		return false;
	}
	return true;
}

/* LAKEBASE_PROXY_<SECTION>_<KEY>, upper case. */
static void env_name(const struct cfg_key *k, char *buf, size_t size)
{
	snprintf(buf, size, ENV_PREFIX "%s_%s", k->section, k->key);
	for (char *p = buf; *p; p++)
		*p = (char)toupper((unsigned char)*p);
}

static const struct cfg_key *find_env_key(const char *name, size_t len)
{
	char buf[128];

	for (size_t i = 0; i < N_KEYS; i++) {
		env_name(&keys[i], buf, sizeof(buf));
		if (strlen(buf) == len && memcmp(buf, name, len) == 0)
			return &keys[i];
	}
	return NULL;
}

/* One "NAME=VALUE" entry; entries without our prefix are not ours. */
static bool apply_env(struct config *cfg, const char *entry, char *err,
                      size_t errlen)
{
	const char *eq = strchr(entry, '=');
	const char *value = eq != NULL ? eq + 1 : "";
	size_t len = eq != NULL ? (size_t)(eq - entry) : strlen(entry);
	const struct cfg_key *k;
	char why[256];

	if (strncmp(entry, ENV_PREFIX, strlen(ENV_PREFIX)) != 0)
		return true;
	if (len > 200)
		len = 200;
	k = find_env_key(entry, len);
	if (k == NULL) {
		put_err(err, errlen,
		        "environment %.*s: no such setting (expected "
		        "LAKEBASE_PROXY_<SECTION>_<KEY>)",
		        (int)len, entry);
		return false;
	}
	if (!set_value(cfg, k, value, why, sizeof(why))) {
		put_err(err, errlen, "environment %.*s: %s", (int)len, entry,
		        why);
		return false;
	}
	return true;
}

static bool load_env(struct config *cfg, char *const *envp, char *err,
                     size_t errlen)
{
	if (envp == NULL)
		return true;
	for (; *envp != NULL; envp++) {
		if (!apply_env(cfg, *envp, err, errlen))
			return false;
	}
	return true;
}

static bool check_sslrootcert(const struct cfg_upstream *up, char *err,
                              size_t errlen)
{
	struct stat st;
	char quoted[300];
	int fd;

	if (up->sslmode < SSLMODE_VERIFY_CA || up->sslrootcert == NULL ||
	    strcmp(up->sslrootcert, "system") == 0)
		return true;
	log_quote(quoted, sizeof(quoted), up->sslrootcert);
	fd = open(up->sslrootcert, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		put_err(err, errlen,
		        "[upstream] sslrootcert %s: cannot read: %s", quoted,
		        strerror(errno));
		return false;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		put_err(err, errlen,
		        "[upstream] sslrootcert %s: not a regular file",
		        quoted);
		close(fd);
		return false;
	}
	close(fd);
	return true;
}

static bool check_batch(const struct cfg_batch *b, char *err, size_t errlen)
{
	if (b->failure_backoff_ms > b->failure_backoff_max_ms) {
		put_err(err, errlen,
		        "[batch] failure_backoff_ms %u is larger than "
		        "failure_backoff_max_ms %u",
		        b->failure_backoff_ms, b->failure_backoff_max_ms);
		return false;
	}
	return true;
}

static bool check_ingest(const struct cfg_ingest *in, char *err, size_t errlen)
{
	struct na_listen addr;
	char why[300];

	if (!na_parse_listen(in->listen, &addr, why, sizeof(why))) {
		put_err(err, errlen, "[ingest] listen: %s", why);
		return false;
	}
	/* Anyone who can reach the port can write to the database. */
	if (!na_is_loopback(&addr) && in->auth_token == NULL) {
		put_err(
		    err, errlen,
		    "[ingest] listen %s is not a loopback address: set "
		    "[ingest] auth_token (LAKEBASE_PROXY_INGEST_AUTH_TOKEN)",
		    in->listen);
		return false;
	}
	if (in->max_flush_bytes > in->client_buffer_bytes ||
	    in->client_buffer_bytes > in->global_buffer_bytes) {
		put_err(err, errlen,
		        "[ingest] needs max_flush_bytes <= client_buffer_bytes "
		        "<= global_buffer_bytes");
		return false;
	}
	return true;
}

static bool check_admin(const struct cfg_admin *ad, char *err, size_t errlen)
{
	struct na_listen addr;
	char why[300];

	if (ad->listen == NULL)
		return true; /* no admin endpoint */
	if (!na_parse_listen(ad->listen, &addr, why, sizeof(why))) {
		put_err(err, errlen, "[admin] listen: %s", why);
		return false;
	}
	if (addr.is_unix) {
		put_err(err, errlen, "[admin] listen %s: must be host:port",
		        ad->listen);
		return false;
	}
	/* Metrics name tables and hosts: not for everyone on the network. */
	if (!na_is_loopback(&addr) && ad->auth_token == NULL) {
		put_err(err, errlen,
		        "[admin] listen %s is not a loopback address: set "
		        "[admin] auth_token (LAKEBASE_PROXY_ADMIN_AUTH_TOKEN)",
		        ad->listen);
		return false;
	}
	return true;
}

/* Each comma-separated item of s, spaces trimmed, compared with name. */
static bool list_has(const char *s, const char *name, bool *empty_item)
{
	bool found = false;

	*empty_item = false;
	while (*s != '\0') {
		const char *end = strchr(s, ',');
		size_t len;

		if (end == NULL)
			end = s + strlen(s);
		while (*s == ' ')
			s++;
		len = (size_t)(end - s);
		while (len > 0 && s[len - 1] == ' ')
			len--;
		if (len == 0)
			*empty_item = true;
		if (name != NULL && len == strlen(name) &&
		    memcmp(s, name, len) == 0)
			found = true;
		s = *end ? end + 1 : end;
	}
	return found;
}

bool cfg_frontend_database_allowed(const struct cfg_frontend *fe,
                                   const char *database)
{
	bool empty;

	if (fe->databases == NULL)
		return false;
	if (strcmp(fe->databases, "*") == 0)
		return true;
	return list_has(fe->databases, database, &empty);
}

bool cfg_frontend_coalesce_table(const struct cfg_frontend *fe,
                                 const char *schema, const char *table)
{
	char qualified[2 * 64 + 2];
	bool empty;

	if (fe->coalesce_tables == NULL)
		return false;
	if (strcmp(fe->coalesce_tables, "*") == 0)
		return true;
	if (list_has(fe->coalesce_tables, table, &empty))
		return true;
	if (snprintf(qualified, sizeof(qualified), "%s.%s", schema, table) >=
	    (int)sizeof(qualified))
		return false;
	return list_has(fe->coalesce_tables, qualified, &empty);
}

static bool check_frontend_tls(const struct cfg_frontend *fe,
                               const struct na_listen *addr, char *err,
                               size_t errlen)
{
	if ((fe->tls_cert_file == NULL) != (fe->tls_key_file == NULL)) {
		put_err(err, errlen,
		        "[frontend] tls_cert_file and "
		        "tls_key_file go together");
		return false;
	}
	if (fe->tls != FE_TLS_OFF && fe->tls_cert_file == NULL) {
		put_err(err, errlen,
		        "[frontend] tls = %s needs tls_cert_file and "
		        "tls_key_file (or tls = off on loopback)",
		        fe_tls_mode_name(fe->tls));
		return false;
	}
	/* Passwords and data would cross the network in the clear. */
	if (!na_is_loopback(addr) && fe->tls != FE_TLS_REQUIRE) {
		put_err(err, errlen,
		        "[frontend] listen %s is not a loopback address: "
		        "tls = require is mandatory there",
		        fe->listen);
		return false;
	}
	if (fe->auth == FE_AUTH_PASSTHROUGH && !addr->is_unix &&
	    fe->tls == FE_TLS_OFF) {
		put_err(err, errlen,
		        "[frontend] auth = passthrough has clients send their "
		        "password in cleartext: it needs tls = require or "
		        "allow (or a unix: listen address)");
		return false;
	}
	return true;
}

static bool check_frontend(const struct cfg_frontend *fe, char *err,
                           size_t errlen)
{
	struct na_listen addr;
	char why[300];
	bool empty;

	if (fe->listen == NULL)
		return true; /* no front door */
	if (!na_parse_listen(fe->listen, &addr, why, sizeof(why))) {
		put_err(err, errlen, "[frontend] listen: %s", why);
		return false;
	}
	if (fe->auth == FE_AUTH_SCRAM && fe->auth_file == NULL) {
		put_err(err, errlen,
		        "[frontend] auth = scram needs auth_file (a userlist: "
		        "\"user\" \"secret\" per line)");
		return false;
	}
	list_has(fe->databases, NULL, &empty);
	if (empty && strcmp(fe->databases, "*") != 0) {
		put_err(err, errlen,
		        "[frontend] databases: an empty name in "
		        "the list (use * for any)");
		return false;
	}
	list_has(fe->coalesce_tables, NULL, &empty);
	if (empty && strcmp(fe->coalesce_tables, "*") != 0) {
		put_err(err, errlen,
		        "[frontend] coalesce_tables: an empty name in the "
		        "list (use * for every table)");
		return false;
	}
	return check_frontend_tls(fe, &addr, err, errlen);
}

/* Names go into API paths unescaped, so only path-safe characters. */
static bool is_api_name(const char *s, bool slashes)
{
	if (*s == '\0' || *s == '/' || strstr(s, "..") != NULL)
		return false;
	for (const char *p = s; *p; p++) {
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' &&
		    *p != '.' && !(slashes && *p == '/'))
			return false;
	}
	return true;
}

/* [lakebase] keys given while workspace_host is not: a half-done setup. */
static bool check_lakebase_off(const struct cfg_lakebase *lb, char *err,
                               size_t errlen)
{
	const char *set = lb->instance_name   ? "instance_name"
	                  : lb->endpoint      ? "endpoint"
	                  : lb->client_id     ? "client_id"
	                  : lb->client_secret ? "client_secret"
	                  : lb->token         ? "token"
	                                      : NULL;

	if (set == NULL)
		return true;
	put_err(err, errlen,
	        "[lakebase] %s is set but workspace_host is not (in the file "
	        "or LAKEBASE_PROXY_LAKEBASE_WORKSPACE_HOST)",
	        set);
	return false;
}

static bool check_lakebase_auth(const struct cfg_lakebase *lb, char *err,
                                size_t errlen)
{
	bool m2m = lb->client_id != NULL || lb->client_secret != NULL;

	if (m2m && lb->token != NULL) {
		put_err(err, errlen,
		        "[lakebase] set either client_id + client_secret "
		        "(OAuth) or token (personal access token), not both");
		return false;
	}
	if (m2m && (lb->client_id == NULL || lb->client_secret == NULL)) {
		put_err(
		    err, errlen,
		    "[lakebase] client_id and client_secret go together "
		    "(LAKEBASE_PROXY_LAKEBASE_CLIENT_SECRET for the secret)");
		return false;
	}
	if (!m2m && lb->token == NULL) {
		put_err(err, errlen,
		        "[lakebase] needs client_id + client_secret (OAuth) or "
		        "token (LAKEBASE_PROXY_LAKEBASE_TOKEN)");
		return false;
	}
	return true;
}

static bool cfg_check_lakebase(const struct cfg_lakebase *lb, char *err,
                               size_t errlen)
{
	if (lb->workspace_host == NULL)
		return check_lakebase_off(lb, err, errlen);
	if (strncmp(lb->workspace_host, "https://", 8) != 0 ||
	    lb->workspace_host[8] == '\0') {
		put_err(err, errlen,
		        "[lakebase] workspace_host must be an https:// URL");
		return false;
	}
	if ((lb->instance_name == NULL) == (lb->endpoint == NULL)) {
		put_err(err, errlen,
		        "[lakebase] set exactly one of instance_name "
		        "(provisioned) and endpoint (autoscaling)");
		return false;
	}
	if (lb->instance_name && !is_api_name(lb->instance_name, false)) {
		put_err(
		    err, errlen,
		    "[lakebase] instance_name may hold only letters, digits, "
		    "'-', '_' and '.'");
		return false;
	}
	if (lb->endpoint && (strncmp(lb->endpoint, "projects/", 9) != 0 ||
	                     !is_api_name(lb->endpoint, true))) {
		put_err(err, errlen,
		        "[lakebase] endpoint must look like "
		        "projects/<p>/branches/<b>/endpoints/<e>");
		return false;
	}
	if (lb->retry_base_ms > lb->retry_max_ms) {
		put_err(
		    err, errlen,
		    "[lakebase] retry_base_ms %u is larger than retry_max_ms "
		    "%u",
		    lb->retry_base_ms, lb->retry_max_ms);
		return false;
	}
	return check_lakebase_auth(lb, err, errlen);
}

/* Rules that concern more than one key, after file and environment. */
static bool check_whole(const struct config *cfg, char *err, size_t errlen)
{
	const struct cfg_pool *pool = &cfg->pool;

	if (cfg->upstream.host == NULL &&
	    cfg->lakebase.workspace_host == NULL) {
		put_err(err, errlen,
		        "[upstream] host is not set (in the file "
		        "or LAKEBASE_PROXY_UPSTREAM_HOST), nor is [lakebase] "
		        "workspace_host to look it up");
		return false;
	}
	if (cfg->upstream.user == NULL) {
		put_err(err, errlen,
		        "[upstream] user is not set (in the file "
		        "or LAKEBASE_PROXY_UPSTREAM_USER)");
		return false;
	}
	if (pool->min_size > pool->max_size) {
		put_err(err, errlen,
		        "[pool] min_size %u is larger than max_size %u",
		        pool->min_size, pool->max_size);
		return false;
	}
	if (pool->reconnect_base_ms > pool->reconnect_max_ms) {
		put_err(err, errlen,
		        "[pool] reconnect_base_ms %u is larger than "
		        "reconnect_max_ms %u",
		        pool->reconnect_base_ms, pool->reconnect_max_ms);
		return false;
	}
	return check_ingest(&cfg->ingest, err, errlen) &&
	       check_batch(&cfg->batch, err, errlen) &&
	       check_frontend(&cfg->frontend, err, errlen) &&
	       check_admin(&cfg->admin, err, errlen) &&
	       cfg_check_lakebase(&cfg->lakebase, err, errlen) &&
	       check_sslrootcert(&cfg->upstream, err, errlen);
}

bool cfg_load(struct config *cfg, const char *path, char *const *envp,
              char *err, size_t errlen)
{
	struct config next;

	if (errlen > 0)
		err[0] = '\0';
	if (!cfg_copy(&next, cfg)) {
		put_err(err, errlen, "out of memory");
		return false;
	}
	if (!load_file(&next, path, err, errlen) ||
	    !load_env(&next, envp, err, errlen) ||
	    !check_whole(&next, err, errlen)) {
		cfg_free(&next);
		return false;
	}
	cfg_free(cfg);
	*cfg = next;
	return true;
}

static const char *format_value(const struct config *cfg,
                                const struct cfg_key *k, char *buf, size_t size)
{
	const void *field = cfield_of(cfg, k);
	const char *s;

	switch (k->type) {
	case CFG_STRING:
		s = *(char *const *)field;
		return s != NULL ? s : "";
	case CFG_SECRET:
		return *(char *const *)field != NULL ? SECRET_MASK : "";
	case CFG_UINT:
		snprintf(buf, size, "%u", *(const unsigned *)field);
		return buf;
	case CFG_UINT64:
		snprintf(buf, size, "%" PRIu64, *(const uint64_t *)field);
		return buf;
	case CFG_PORT:
		snprintf(buf, size, "%u", (unsigned)*(const uint16_t *)field);
		return buf;
	case CFG_BOOL:
		return *(const bool *)field ? "on" : "off";
	case CFG_SSLMODE:
		return sslmode_name(*(const enum sslmode *)field);
	case CFG_LOG_LEVEL:
		return log_level_name(*(const enum log_level *)field);
	case CFG_ENUM:
		return k->names[*(const int *)field];
	}
	return "";
}

void cfg_print(const struct config *cfg, FILE *out)
{
	const char *section = NULL;
	char buf[32];

	fputs("; lakebase-proxy effective configuration\n", out);
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct cfg_key *k = &keys[i];

		if (section == NULL || strcmp(section, k->section) != 0) {
			section = k->section;
			fprintf(out, "\n[%s]\n", section);
		}
		fprintf(out, "%s = %s\n", k->key,
		        format_value(cfg, k, buf, sizeof(buf)));
	}
}

static bool same_value(const struct config *a, const struct config *b,
                       const struct cfg_key *k)
{
	const char *sa, *sb;

	if (!is_string(k))
		return memcmp(cfield_of(a, k), cfield_of(b, k), k->size) == 0;
	sa = *(char *const *)cfield_of(a, k);
	sb = *(char *const *)cfield_of(b, k);
	if (sa == NULL || sb == NULL)
		return sa == sb;
	return strcmp(sa, sb) == 0;
}

size_t cfg_key_count(void)
{
	return N_KEYS;
}

unsigned cfg_diff(const struct config *a, const struct config *b,
                  cfg_diff_cb cb, void *arg)
{
	unsigned n = 0;

	for (size_t i = 0; i < N_KEYS; i++) {
		if (same_value(a, b, &keys[i]))
			continue;
		n++;
		if (cb != NULL)
			cb(keys[i].section, keys[i].key, arg);
	}
	return n;
}

bool cfg_copy_key(struct config *dst, const struct config *src,
                  const char *section, const char *key)
{
	const struct cfg_key *k = find_key(section, key);
	const char *s;
	char *copy;

	if (k == NULL)
		return false;
	if (!is_string(k)) {
		memcpy(field_of(dst, k), cfield_of(src, k), k->size);
		return true;
	}
	s = *(char *const *)cfield_of(src, k);
	copy = s != NULL ? strdup(s) : NULL;
	if (s != NULL && copy == NULL)
		return false;
	free(*(char **)field_of(dst, k));
	*(char **)field_of(dst, k) = copy;
	return true;
}
