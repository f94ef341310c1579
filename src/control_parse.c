/* control_parse.c: pure parsing of Databricks API answers, RFC 3339 times and
 * Retry-After. */
#include "control_parse.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "log.h"

/* Retry-After beyond a day is a server bug; cap what we would wait. */
#define MAX_RETRY_AFTER_S 86400

/* ---- times ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned days[] = {31, 28, 31, 30, 31, 30,
	                                31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

/* Exactly n digits at *s, advancing it. */
static bool take_digits(const char **s, unsigned n, unsigned *out)
{
	unsigned v = 0;

	for (unsigned i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*s)[i]))
			return false;
		v = v * 10 + (unsigned)((*s)[i] - '0');
	}
	*s += n;
	*out = v;
	return true;
}

static bool take_char(const char **s, const char *allowed)
{
	if (**s == '\0' || strchr(allowed, **s) == NULL)
		return false;
	(*s)++;
	return true;
}

/* ".123456789": milliseconds, extra digits dropped. */
static unsigned take_fraction(const char **s)
{
	unsigned ms = 0, n = 0;

	if (**s != '.')
		return 0;
	(*s)++;
	while (isdigit((unsigned char)**s)) {
		if (n < 3)
			ms = ms * 10 + (unsigned)(**s - '0');
		n++;
		(*s)++;
	}
	for (; n < 3; n++)
		ms *= 10;
	return n == 0 ? 0 : ms;
}

/* "Z" or "+hh:mm" / "-hh:mm", as seconds east of UTC. */
static bool take_offset(const char **s, int64_t *offset_s)
{
	unsigned hh, mm;
	int sign;

	if (take_char(s, "Zz")) {
		*offset_s = 0;
		return true;
	}
	if (**s != '+' && **s != '-')
		return false;
	sign = **s == '-' ? -1 : 1;
	(*s)++;
	if (!take_digits(s, 2, &hh) || !take_char(s, ":") ||
	    !take_digits(s, 2, &mm) || hh > 23 || mm > 59)
		return false;
	*offset_s = sign * (int64_t)(hh * 3600 + mm * 60);
	return true;
}

bool ctl_parse_rfc3339(const char *s, int64_t *ms)
{
	unsigned y, mo, d, h, mi, sec, frac;
	int64_t offset_s, secs;

	if (s == NULL || !take_digits(&s, 4, &y) || !take_char(&s, "-") ||
	    !take_digits(&s, 2, &mo) || !take_char(&s, "-") ||
	    !take_digits(&s, 2, &d) || !take_char(&s, "Tt ") ||
	    !take_digits(&s, 2, &h) || !take_char(&s, ":") ||
	    !take_digits(&s, 2, &mi) || !take_char(&s, ":") ||
	    !take_digits(&s, 2, &sec))
		return false;
	if (s[0] == '.' && !isdigit((unsigned char)s[1]))
		return false;
	frac = take_fraction(&s);
	if (!take_offset(&s, &offset_s) || *s != '\0')
		return false;
	/* 60 is a leap second, which RFC 3339 allows */
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
	    mi > 59 || sec > 60)
		return false;
	secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
	       offset_s;
	*ms = secs * 1000 + frac;
	return true;
}

void ctl_format_time(int64_t ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		if (size > 0)
			buf[0] = '\0';
	}
}

/* IMF-fixdate, the only HTTP date form servers may send today. */
static bool parse_http_date(const char *s, int64_t *secs)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char wday[4], mon[4];
	unsigned d, y, h, mi, sec, mo;
	const char *m;
	int used = 0;

	if (sscanf(s, "%3[A-Za-z], %2u %3[A-Za-z] %4u %2u:%2u:%2u GMT%n", wday,
	           &d, mon, &y, &h, &mi, &sec, &used) != 7 ||
	    used == 0 || s[used] != '\0' || strlen(mon) != 3)
		return false;
	m = strstr(months, mon);
	if (m == NULL || (m - months) % 3 != 0)
		return false;
	mo = (unsigned)(m - months) / 3 + 1;
	if (y < 1970 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
	    mi > 59 || sec > 60)
		return false;
	*secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	return true;
}

bool ctl_parse_retry_after(const char *value, int64_t now_s, unsigned *delay_s)
{
	int64_t when;

	if (value == NULL || value[0] == '\0')
		return false;
	if (isdigit((unsigned char)value[0])) {
		uint64_t v = 0;

		for (const char *p = value; *p; p++) {
			if (!isdigit((unsigned char)*p))
				return false;
			if (v < MAX_RETRY_AFTER_S)
				v = v * 10 + (uint64_t)(*p - '0');
		}
		*delay_s =
		    v > MAX_RETRY_AFTER_S ? MAX_RETRY_AFTER_S : (unsigned)v;
		return true;
	}
	if (!parse_http_date(value, &when))
		return false;
	when -= now_s;
	if (when < 0)
		when = 0;
	*delay_s =
	    when > MAX_RETRY_AFTER_S ? MAX_RETRY_AFTER_S : (unsigned)when;
	return true;
}

/* ---- JSON answers ---- */

static json_t *load_object(const char *body, size_t len, char *err,
                           size_t errlen)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);

	/* jerr.text may quote the input, so only its position is used */
	if (root == NULL) {
		snprintf(err, errlen, "malformed JSON at line %d column %d",
		         jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "the answer is not a JSON object");
		json_decref(root);
		return NULL;
	}
	return root;
}

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

/* A non-empty string field of obj, checked; name is used in the error. */
static const char *get_string(const json_t *obj, const char *key,
                              const char *name, char *err, size_t errlen)
{
	const json_t *v = json_object_get(obj, key);

	if (v == NULL) {
		snprintf(err, errlen, "the answer has no \"%s\"", name);
		return NULL;
	}
	if (!json_is_string(v)) {
		snprintf(err, errlen, "\"%s\" is %s, not a string", name,
		         json_type_name(v));
		return NULL;
	}
	if (json_string_length(v) == 0 ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		snprintf(err, errlen, "\"%s\" is empty or holds a NUL", name);
		return NULL;
	}
	return json_string_value(v);
}

static bool dup_to(const char *s, char **out, char *err, size_t errlen)
{
	*out = strdup(s);
	if (*out == NULL)
		snprintf(err, errlen, "out of memory");
	return *out != NULL;
}

bool ctl_parse_oauth(const char *body, size_t len, int64_t now_ms, char **token,
                     int64_t *expires_ms, char *err, size_t errlen)
{
	json_t *root = load_object(body, len, err, errlen);
	const json_t *exp;
	const char *tok;
	bool ok = false;

	if (root == NULL)
		return false;
	tok = get_string(root, "access_token", "access_token", err, errlen);
	if (tok == NULL)
		goto out;
	exp = json_object_get(root, "expires_in");
	if (!json_is_integer(exp) || json_integer_value(exp) <= 0 ||
	    json_integer_value(exp) > 366 * 86400) {
		snprintf(err, errlen,
		         "\"expires_in\" is missing or not a positive whole "
		         "number of seconds");
		goto out;
	}
	*expires_ms = now_ms + (int64_t)json_integer_value(exp) * 1000;
	ok = dup_to(tok, token, err, errlen);
out:
	json_decref(root);
	return ok;
}

/* STOPPED, FAILING_OVER...: safe to put in a log line as it is. */
static bool is_word(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++) {
		if (!isupper((unsigned char)s[n]) && s[n] != '_')
			return false;
	}
	return n > 0 && n < 40;
}

bool ctl_parse_instance(const char *body, size_t len, const char *name,
                        char **host, char *err, size_t errlen)
{
	json_t *root = load_object(body, len, err, errlen);
	const char *state, *dns;
	bool ok = false;

	if (root == NULL)
		return false;
	state = get_string(root, "state", "state", err, errlen);
	if (state == NULL)
		goto out;
	if (strcmp(state, "AVAILABLE") != 0) {
		/* config allows only path-safe names; the state is checked */
		snprintf(err, errlen, "instance %s is %s", name,
		         is_word(state) ? state : "in an unknown state");
		goto out;
	}
	dns = get_string(root, "read_write_dns", "read_write_dns", err, errlen);
	ok = dns != NULL && dup_to(dns, host, err, errlen);
out:
	json_decref(root);
	return ok;
}

bool ctl_parse_endpoint(const char *body, size_t len, char **host, char *err,
                        size_t errlen)
{
	json_t *root = load_object(body, len, err, errlen);
	const json_t *status, *hosts;
	const char *h;
	bool ok = false;

	if (root == NULL)
		return false;
	status = json_object_get(root, "status");
	hosts = json_object_get(status, "hosts");
	if (!json_is_object(status) || !json_is_object(hosts)) {
		snprintf(err, errlen,
		         "the answer has no object \"status.hosts\"");
		goto out;
	}
	h = get_string(hosts, "host", "status.hosts.host", err, errlen);
	ok = h != NULL && dup_to(h, host, err, errlen);
out:
	json_decref(root);
	return ok;
}

bool ctl_parse_credential(const char *body, size_t len, const char *expiry_key,
                          char **token, int64_t *expires_ms, char *err,
                          size_t errlen)
{
	json_t *root = load_object(body, len, err, errlen);
	const char *tok, *exp;
	bool ok = false;

	if (root == NULL)
		return false;
	tok = get_string(root, "token", "token", err, errlen);
	exp =
	    tok ? get_string(root, expiry_key, expiry_key, err, errlen) : NULL;
	if (exp == NULL)
		goto out;
	if (!ctl_parse_rfc3339(exp, expires_ms)) {
		snprintf(err, errlen, "\"%s\" is not an RFC 3339 time",
		         expiry_key);
		goto out;
	}
	ok = dup_to(tok, token, err, errlen);
out:
	json_decref(root);
	return ok;
}

/* Appends ' key="value"' for a string member, quoted for the log. */
static void append_member(const json_t *root, const char *key, char *out,
                          size_t outlen)
{
	const json_t *v = json_object_get(root, key);
	char quoted[300];
	size_t used = strlen(out);

	if (!json_is_string(v) || used >= outlen)
		return;
	snprintf(out + used, outlen - used, "%s%s=%s", used ? " " : "", key,
	         log_quote(quoted, sizeof(quoted), json_string_value(v)));
}

void ctl_parse_api_error(const char *body, size_t len, char *out, size_t outlen)
{
	json_t *root = json_loadb(body, len, 0, NULL);

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (json_is_object(root)) {
		append_member(root, "error_code", out, outlen);
		append_member(root, "message", out, outlen);
		append_member(root, "error", out, outlen);
		append_member(root, "error_description", out, outlen);
	}
	json_decref(root);
}

/* ---- retries and ids ---- */

unsigned ctl_backoff_ms(unsigned attempt, unsigned base_ms, unsigned max_ms,
                        uint64_t random)
{
	unsigned shift = attempt == 0 ? 0 : attempt > 20 ? 20 : attempt - 1;
	uint64_t d = (uint64_t)base_ms << shift;

	if (d > max_ms)
		d = max_ms;
	return (unsigned)(d / 2 + random % (d / 2 + 1));
}

bool ctl_uuid4(char out[37])
{
	unsigned char b[16];
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return false;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	for (size_t i = 0; i < sizeof(b); i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
	return true;
}
