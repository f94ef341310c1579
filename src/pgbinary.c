/* pgbinary.c: Bind parameters in PostgreSQL's binary formats, written as
 * the COPY text fields that store the same values. */
#include "pgbinary.h"

#include "bytes.h"
#include "copytext.h"
#include "strutil.h"
#include "utf8.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

/* ---- types ---- */

struct type_info {
	enum pgb_type type;
	uint32_t oid;
	const char *typname;
	const char *format_name; /* format_type() without typmod */
	bool typmod;             /* format_type() may add "(n[,m])" */
};

static const struct type_info types[] = {
    {PGB_BOOL, 16, "bool", "boolean", false},
    {PGB_INT2, 21, "int2", "smallint", false},
    {PGB_INT4, 23, "int4", "integer", false},
    {PGB_INT8, 20, "int8", "bigint", false},
    {PGB_FLOAT4, 700, "float4", "real", false},
    {PGB_FLOAT8, 701, "float8", "double precision", false},
    {PGB_NUMERIC, 1700, "numeric", "numeric", true},
    {PGB_TEXT, 25, "text", "text", false},
    {PGB_VARCHAR, 1043, "varchar", "character varying", true},
    {PGB_BPCHAR, 1042, "bpchar", "character", true},
    {PGB_BYTEA, 17, "bytea", "bytea", false},
    {PGB_DATE, 1082, "date", "date", false},
    {PGB_TIMESTAMP, 1114, "timestamp", "timestamp without time zone", true},
    {PGB_TIMESTAMPTZ, 1184, "timestamptz", "timestamp with time zone", true},
    {PGB_UUID, 2950, "uuid", "uuid", false},
    {PGB_JSON, 114, "json", "json", false},
    {PGB_JSONB, 3802, "jsonb", "jsonb", false},
};

#define NTYPES (sizeof(types) / sizeof(types[0]))

static const struct type_info *info_of(enum pgb_type t)
{
	for (size_t i = 0; i < NTYPES; i++)
		if (types[i].type == t)
			return &types[i];
	return NULL;
}

enum pgb_type pgb_type_from_oid(uint32_t oid)
{
	for (size_t i = 0; i < NTYPES; i++)
		if (types[i].oid == oid)
			return types[i].type;
	return PGB_UNKNOWN;
}

uint32_t pgb_type_oid(enum pgb_type t)
{
	const struct type_info *ti = info_of(t);

	return ti != NULL ? ti->oid : 0;
}

const char *pgb_type_name(enum pgb_type t)
{
	const struct type_info *ti = info_of(t);

	return ti != NULL ? ti->typname : "unknown";
}

/* Length of a typmod "(n)" or "(n,m)" at s, 0 if there is none. */
static size_t typmod_len(const char *s)
{
	size_t i = 1, groups = 0;

	if (s[0] != '(')
		return 0;
	for (;;) {
		size_t digits = strspn(s + i, "0123456789");

		if (digits == 0 || digits > 10)
			return 0;
		i += digits;
		groups++;
		if (s[i] == ')')
			return i + 1;
		if (s[i] != ',' || groups == 2)
			return 0;
		i++;
	}
}

/*
 * Does name equal base with one typmod inserted where format_type puts it:
 * after the first word for the timestamps ("timestamp(3) with time
 * zone"), at the end for the others?
 */
static bool matches_with_typmod(const char *name, const char *base)
{
	size_t head = strncmp(base, "timestamp ", 10) == 0 ? 9 : strlen(base);
	size_t mod;

	if (strncmp(name, base, head) != 0)
		return false;
	mod = typmod_len(name + head);
	return mod > 0 && strcmp(name + head + mod, base + head) == 0;
}

enum pgb_type pgb_type_from_name(const char *format_type_text)
{
	const char *s = format_type_text;

	if (s == NULL)
		return PGB_UNKNOWN;
	for (size_t i = 0; i < NTYPES; i++) {
		if (strcmp(s, types[i].format_name) == 0 ||
		    (types[i].typmod &&
		     matches_with_typmod(s, types[i].format_name)))
			return types[i].type;
	}
	/* format_type writes "bpchar" for character without a length. */
	return strcmp(s, "bpchar") == 0 ? PGB_BPCHAR : PGB_UNKNOWN;
}

static int int_rank(enum pgb_type t)
{
	return t == PGB_INT2 ? 1 : t == PGB_INT4 ? 2 : t == PGB_INT8 ? 3 : 0;
}

bool pgb_param_fits(enum pgb_type param, enum pgb_type column)
{
	if (param == PGB_UNKNOWN || column == PGB_UNKNOWN)
		return false;
	if (param == column)
		return true;
	if (int_rank(param) > 0)
		return column == PGB_NUMERIC ||
		       int_rank(column) > int_rank(param);
	if (param == PGB_TEXT || param == PGB_VARCHAR)
		return column == PGB_TEXT || column == PGB_VARCHAR ||
		       column == PGB_BPCHAR;
	return false;
}

/* ---- fixed-size values ---- */

static bool want_len(const char *what, size_t len, size_t want, char *err,
                     size_t errlen)
{
	if (len == want)
		return true;
	set_err(err, errlen, "%s: %zu bytes, want %zu", what, len, want);
	return false;
}

static bool oom(char *err, size_t errlen)
{
	set_err(err, errlen, "out of memory");
	return false;
}

static bool add_str(struct evbuffer *out, const char *s, char *err,
                    size_t errlen)
{
	return evbuffer_add(out, s, strlen(s)) == 0 || oom(err, errlen);
}

static bool integer_field(enum pgb_type t, const uint8_t *v, size_t len,
                          struct evbuffer *out, char *err, size_t errlen)
{
	size_t want = t == PGB_INT2 ? 2 : t == PGB_INT4 ? 4 : 8;
	char buf[24];
	int64_t n;

	if (!want_len(pgb_type_name(t), len, want, err, errlen))
		return false;
	n = want == 2   ? (int16_t)get_be16(v)
	    : want == 4 ? (int32_t)get_be32(v)
	                : (int64_t)get_be64(v);
	snprintf(buf, sizeof(buf), "%" PRId64, n);
	return add_str(out, buf, err, errlen);
}

static bool bool_field(const uint8_t *v, size_t len, struct evbuffer *out,
                       char *err, size_t errlen)
{
	if (!want_len("bool", len, 1, err, errlen))
		return false;
	/* boolrecv takes any non-zero byte as true; clients send 0 or 1. */
	if (v[0] > 1) {
		set_err(err, errlen, "bool: byte %u, want 0 or 1", v[0]);
		return false;
	}
	return add_str(out, v[0] ? "t" : "f", err, errlen);
}

/*
 * A float field that float4in / float8in read back bit for bit: 9 and 17
 * significant digits round-trip, "-0" keeps its sign. A NaN reads back as
 * the one NaN the server makes, so only that NaN is accepted.
 */
static bool float_field(enum pgb_type t, const uint8_t *v, size_t len,
                        struct evbuffer *out, char *err, size_t errlen)
{
	bool f4 = t == PGB_FLOAT4;
	uint64_t bits, nan = f4 ? 0x7fc00000u : UINT64_C(0x7ff8000000000000);
	double d;
	char buf[40];

	if (!want_len(pgb_type_name(t), len, f4 ? 4 : 8, err, errlen))
		return false;
	bits = f4 ? get_be32(v) : get_be64(v);
	if (f4) {
		float f;
		uint32_t b32 = (uint32_t)bits;

		memcpy(&f, &b32, sizeof(f));
		d = f;
	} else {
		memcpy(&d, &bits, sizeof(d));
	}
	if (isnan(d) && bits != nan) {
		set_err(err, errlen, "%s: NaN with sign or payload 0x%" PRIx64,
		        pgb_type_name(t), bits);
		return false;
	}
	if (isnan(d) || isinf(d))
		return add_str(out,
		               isnan(d)  ? "NaN"
		               : d > 0.0 ? "Infinity"
		                         : "-Infinity",
		               err, errlen);
	snprintf(buf, sizeof(buf), "%.*g", f4 ? 9 : 17, d);
	return add_str(out, buf, err, errlen);
}

static bool uuid_field(const uint8_t *v, size_t len, struct evbuffer *out,
                       char *err, size_t errlen)
{
	static const char hex[] = "0123456789abcdef";
	char buf[37];
	size_t o = 0;

	if (!want_len("uuid", len, 16, err, errlen))
		return false;
	for (size_t i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			buf[o++] = '-';
		buf[o++] = hex[v[i] >> 4];
		buf[o++] = hex[v[i] & 15];
	}
	buf[o] = '\0';
	return add_str(out, buf, err, errlen);
}

/* ---- dates and times ---- */

/* PostgreSQL's limits: Julian day 0 (4714-11-24 BC) to 294276-12-31 for
 * timestamps, to 5874897-12-31 for dates, counted from 2000-01-01. */
#define MIN_DATE      (-2451545)
#define END_DATE      (2147483494 - 2451545)
#define USECS_PER_DAY INT64_C(86400000000)
#define MIN_TIMESTAMP (-INT64_C(211813488000000000))
#define END_TIMESTAMP INT64_C(9223371331200000000)

/* The proleptic Gregorian date of days since 2000-01-01 as PostgreSQL
 * writes it in ISO style: "YYYY-MM-DD", " BC" for years <= 0 as 1 - y. */
static void format_date(int64_t days, char *buf, size_t size, bool *bc)
{
	/* Days since 0000-03-01, in 400-year eras (H. Hinnant's method). */
	int64_t z = days + 10957 + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int64_t d = doy - (153 * mp + 2) / 5 + 1;
	int64_t m = mp < 10 ? mp + 3 : mp - 9;
	int64_t y = yoe + era * 400 + (m <= 2);

	*bc = y <= 0;
	snprintf(buf, size, "%04" PRId64 "-%02" PRId64 "-%02" PRId64,
	         *bc ? 1 - y : y, m, d);
}

static bool date_field(const uint8_t *v, size_t len, struct evbuffer *out,
                       char *err, size_t errlen)
{
	char date[32], buf[40];
	bool bc;
	int32_t days;

	if (!want_len("date", len, 4, err, errlen))
		return false;
	days = (int32_t)get_be32(v);
	if (days == INT32_MIN || days == INT32_MAX)
		return add_str(out, days < 0 ? "-infinity" : "infinity", err,
		               errlen);
	if (days < MIN_DATE || days >= END_DATE) {
		set_err(err, errlen, "date: %" PRId32 " days out of range",
		        days);
		return false;
	}
	format_date(days, date, sizeof(date), &bc);
	snprintf(buf, sizeof(buf), "%s%s", date, bc ? " BC" : "");
	return add_str(out, buf, err, errlen);
}

/* "HH:MM:SS[.ffffff]" of us microseconds into a day, zeros trimmed. */
static void format_time(int64_t us, char *buf, size_t size)
{
	int64_t s = us / 1000000, frac = us % 1000000;
	int n = snprintf(buf, size, "%02" PRId64 ":%02" PRId64 ":%02" PRId64,
	                 s / 3600, s / 60 % 60, s % 60);

	if (frac == 0 || n < 0 || (size_t)n >= size)
		return;
	snprintf(buf + n, size - (size_t)n, ".%06" PRId64, frac);
	for (size_t end = strlen(buf); buf[end - 1] == '0'; end--)
		buf[end - 1] = '\0';
}

static bool timestamp_field(enum pgb_type t, const uint8_t *v, size_t len,
                            struct evbuffer *out, char *err, size_t errlen)
{
	bool tz = t == PGB_TIMESTAMPTZ, bc;
	char date[32], time[32], buf[80];
	int64_t ts, days;

	if (!want_len(pgb_type_name(t), len, 8, err, errlen))
		return false;
	ts = (int64_t)get_be64(v);
	if (ts == INT64_MIN || ts == INT64_MAX)
		return add_str(out, ts < 0 ? "-infinity" : "infinity", err,
		               errlen);
	if (ts < MIN_TIMESTAMP || ts >= END_TIMESTAMP) {
		set_err(err, errlen, "%s: %" PRId64 " out of range",
		        pgb_type_name(t), ts);
		return false;
	}
	days = ts / USECS_PER_DAY - (ts % USECS_PER_DAY < 0);
	format_date(days, date, sizeof(date), &bc);
	format_time(ts - days * USECS_PER_DAY, time, sizeof(time));
	/* PostgreSQL's order: the zone, then the era. */
	snprintf(buf, sizeof(buf), "%s %s%s%s", date, time, tz ? "+00" : "",
	         bc ? " BC" : "");
	return add_str(out, buf, err, errlen);
}

/* ---- numeric ---- */

/* numeric's binary header and the sign values numeric_recv accepts. */
#define NUMERIC_POS        0x0000
#define NUMERIC_NEG        0x4000
#define NUMERIC_NAN        0xC000
#define NUMERIC_PINF       0xD000
#define NUMERIC_NINF       0xF000
#define NUMERIC_DSCALE_MAX 0x3FFF
#define NBASE              10000

struct numeric {
	uint16_t ndigits;
	int16_t weight; /* of the first digit, in powers of NBASE */
	uint16_t sign;
	uint16_t dscale;  /* decimal digits after the point */
	const uint8_t *d; /* ndigits big-endian int16 digits */
};

static bool numeric_parse(const uint8_t *v, size_t len, struct numeric *n,
                          char *err, size_t errlen)
{
	if (len < 8) {
		set_err(err, errlen, "numeric: %zu bytes, want at least 8",
		        len);
		return false;
	}
	*n = (struct numeric){get_be16(v), (int16_t)get_be16(v + 2),
	                      get_be16(v + 4), get_be16(v + 6), v + 8};
	if (!want_len("numeric", len, 8 + 2 * (size_t)n->ndigits, err, errlen))
		return false;
	if (n->sign != NUMERIC_POS && n->sign != NUMERIC_NEG &&
	    n->sign != NUMERIC_NAN && n->sign != NUMERIC_PINF &&
	    n->sign != NUMERIC_NINF) {
		set_err(err, errlen, "numeric: invalid sign 0x%04x", n->sign);
		return false;
	}
	if (n->dscale > NUMERIC_DSCALE_MAX) {
		set_err(err, errlen, "numeric: invalid scale %u", n->dscale);
		return false;
	}
	for (size_t i = 0; i < n->ndigits; i++) {
		/* A digit is an int16: "negative" ones are above NBASE too. */
		if (get_be16(n->d + 2 * i) >= NBASE) {
			set_err(err, errlen, "numeric: invalid digit %d",
			        (int16_t)get_be16(n->d + 2 * i));
			return false;
		}
	}
	return true;
}

/* The base-NBASE digit at position i (0: the one of weight n->weight). */
static unsigned numeric_digit(const struct numeric *n, int64_t i)
{
	return i >= 0 && i < n->ndigits ? get_be16(n->d + 2 * i) : 0;
}

/*
 * The decimal text of a finite numeric, unsigned, written into buf (size
 * at least 4 * max(weight + 1, 1) + dscale + 2): the integer part without
 * leading zeros, then exactly dscale digits after the point, the ones beyond
 * dscale dropped (numeric_recv truncates them the same way). Returns
 * whether any digit written is not zero.
 */
static bool numeric_digits(const struct numeric *n, char *buf)
{
	static const unsigned pow10[] = {1000, 100, 10, 1};
	size_t o = 0;
	bool nonzero = false;

	for (int64_t i = 0; i <= n->weight; i++) {
		unsigned dig = numeric_digit(n, i);

		for (int k = 0; k < 4; k++) {
			char c = (char)('0' + dig / pow10[k] % 10);

			if (c != '0' || nonzero || (i == n->weight && k == 3))
				buf[o++] = c;
			nonzero |= c != '0';
		}
	}
	if (n->weight < 0)
		buf[o++] = '0';
	if (n->dscale > 0)
		buf[o++] = '.';
	for (int64_t k = 0; k < n->dscale; k++) {
		unsigned dig = numeric_digit(n, n->weight + 1 + k / 4);
		char c = (char)('0' + dig / pow10[k % 4] % 10);

		buf[o++] = c;
		nonzero |= c != '0';
	}
	buf[o] = '\0';
	return nonzero;
}

static bool numeric_field(const uint8_t *v, size_t len, struct evbuffer *out,
                          char *err, size_t errlen)
{
	struct numeric n;
	size_t size;
	char *buf;
	bool ok, nonzero;

	if (!numeric_parse(v, len, &n, err, errlen))
		return false;
	if (n.sign != NUMERIC_POS && n.sign != NUMERIC_NEG)
		return add_str(out,
		               n.sign == NUMERIC_NAN    ? "NaN"
		               : n.sign == NUMERIC_PINF ? "Infinity"
		                                        : "-Infinity",
		               err, errlen);
	/* sign, integer part or "0", point, fraction, NUL */
	size = 4 * (size_t)(n.weight >= 0 ? n.weight + 1 : 1) + n.dscale + 3;
	buf = malloc(size);
	if (buf == NULL)
		return oom(err, errlen);
	buf[0] = '-';
	nonzero = numeric_digits(&n, buf + 1);
	/* A zero has no sign: numeric_recv makes every zero positive. */
	ok = add_str(out, n.sign == NUMERIC_NEG && nonzero ? buf : buf + 1, err,
	             errlen);
	free(buf);
	return ok;
}

/* ---- text-like values ---- */

static bool text_ok(const char *what, const uint8_t *v, size_t len, char *err,
                    size_t errlen)
{
	const uint8_t *nul = len > 0 ? memchr(v, 0, len) : NULL;

	if (nul != NULL) {
		set_err(err, errlen, "%s: zero byte at offset %zu", what,
		        (size_t)(nul - v));
		return false;
	}
	if (!utf8_valid(v, len)) {
		set_err(err, errlen, "%s: invalid UTF-8", what);
		return false;
	}
	return true;
}

static bool escaped(const uint8_t *v, size_t len, struct evbuffer *out,
                    char *err, size_t errlen)
{
	return ct_escape(v, len, out) || oom(err, errlen);
}

bool pgb_text_to_copy_text(const uint8_t *v, size_t len, struct evbuffer *out,
                           char *err, size_t errlen)
{
	return text_ok("text parameter", v, len, err, errlen) &&
	       escaped(v, len, out, err, errlen);
}

/* bytea in hex: "\x" and two digits a byte, the backslash escaped. */
static bool bytea_field(const uint8_t *v, size_t len, struct evbuffer *out,
                        char *err, size_t errlen)
{
	static const char hex[] = "0123456789abcdef";
	struct evbuffer_iovec vec;
	char *p;

	if (len > (SIZE_MAX - 3) / 2 ||
	    evbuffer_reserve_space(out, 3 + 2 * len, &vec, 1) < 1)
		return oom(err, errlen);
	p = vec.iov_base;
	memcpy(p, "\\\\x", 3);
	for (size_t i = 0; i < len; i++) {
		p[3 + 2 * i] = hex[v[i] >> 4];
		p[4 + 2 * i] = hex[v[i] & 15];
	}
	vec.iov_len = 3 + 2 * len;
	return evbuffer_commit_space(out, &vec, 1) == 0 || oom(err, errlen);
}

static bool jsonb_field(const uint8_t *v, size_t len, struct evbuffer *out,
                        char *err, size_t errlen)
{
	if (len == 0 || v[0] != 1) {
		set_err(err, errlen, "jsonb: %s",
		        len == 0 ? "no version byte" : "version is not 1");
		return false;
	}
	return text_ok("jsonb", v + 1, len - 1, err, errlen) &&
	       escaped(v + 1, len - 1, out, err, errlen);
}

/* ---- the entry point ---- */

bool pgb_binary_to_copy_text(enum pgb_type t, const uint8_t *v, size_t len,
                             struct evbuffer *out, char *err, size_t errlen)
{
	switch (t) {
	case PGB_BOOL:
		return bool_field(v, len, out, err, errlen);
	case PGB_INT2:
	case PGB_INT4:
	case PGB_INT8:
		return integer_field(t, v, len, out, err, errlen);
	case PGB_FLOAT4:
	case PGB_FLOAT8:
		return float_field(t, v, len, out, err, errlen);
	case PGB_NUMERIC:
		return numeric_field(v, len, out, err, errlen);
	case PGB_TEXT:
	case PGB_VARCHAR:
	case PGB_BPCHAR:
	case PGB_JSON:
		return text_ok(pgb_type_name(t), v, len, err, errlen) &&
		       escaped(v, len, out, err, errlen);
	case PGB_BYTEA:
		return bytea_field(v, len, out, err, errlen);
	case PGB_DATE:
		return date_field(v, len, out, err, errlen);
	case PGB_TIMESTAMP:
	case PGB_TIMESTAMPTZ:
		return timestamp_field(t, v, len, out, err, errlen);
	case PGB_UUID:
		return uuid_field(v, len, out, err, errlen);
	case PGB_JSONB:
		return jsonb_field(v, len, out, err, errlen);
	case PGB_UNKNOWN:
		break;
	}
	set_err(err, errlen, "type not supported in binary format");
	return false;
}
