/* userlist.c: reads PgBouncer's auth_file format ("user" "secret" lines). */
#include "userlist.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "secret.h"

struct ul_entry {
	char *user;
	char *secret;
};

struct userlist {
	struct ul_entry *v;
	size_t n, cap;
};

/* One line being read. */
struct line_cursor {
	const char *p, *end;
	unsigned lineno;
	char *err;
	size_t errlen;
};

static bool fail(struct line_cursor *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static bool fail(struct line_cursor *c, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "line %u: %s", c->lineno, msg);
	return false;
}

static void skip_blanks(struct line_cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
}

/* A quoted field with "" for a quote; *out is malloc'd. */
static bool read_field(struct line_cursor *c, const char *what, char **out)
{
	char *buf;
	size_t n = 0;

	skip_blanks(c);
	if (c->p >= c->end || *c->p != '"')
		return fail(c, "expected the %s in double quotes", what);
	c->p++;
	if ((buf = malloc(UL_MAX_FIELD + 1)) == NULL)
		return fail(c, "out of memory");
	for (;;) {
		if (c->p >= c->end) {
			free(buf);
			return fail(c, "the %s's closing quote is missing",
			            what);
		}
		if (*c->p == '"' && (c->p + 1 >= c->end || c->p[1] != '"'))
			break;
		if ((unsigned char)*c->p < 0x20 || *c->p == 0x7f ||
		    n == UL_MAX_FIELD) {
			free(buf);
			return fail(c,
			            "the %s has a control character or is "
			            "longer than %u bytes",
			            what, UL_MAX_FIELD);
		}
		buf[n++] = *c->p;
		c->p += *c->p == '"' ? 2 : 1;
	}
	c->p++;
	buf[n] = '\0';
	*out = buf;
	return true;
}

static bool add_entry(struct userlist *ul, struct line_cursor *c, char *user,
                      char *secret)
{
	if (user[0] == '\0' || ul_secret(ul, user) != NULL) {
		fail(c,
		     user[0] ? "user \"%s\" is listed twice"
		             : "empty user name%s",
		     user);
		return false;
	}
	if (ul->n == ul->cap) {
		size_t cap = ul->cap ? ul->cap * 2 : 16;
		struct ul_entry *v = realloc(ul->v, cap * sizeof(*v));

		if (v == NULL)
			return fail(c, "out of memory");
		ul->v = v;
		ul->cap = cap;
	}
	ul->v[ul->n++] = (struct ul_entry){user, secret};
	return true;
}

static bool parse_line(struct userlist *ul, struct line_cursor *c)
{
	char *user = NULL, *secret = NULL;

	skip_blanks(c);
	if (c->p == c->end || *c->p == ';' || *c->p == '#')
		return true;
	if (!read_field(c, "user name", &user))
		return false;
	if (!read_field(c, "secret", &secret)) {
		free(user);
		return false;
	}
	skip_blanks(c);
	if (c->p != c->end) {
		fail(c, "unexpected text after the secret");
	} else if (add_entry(ul, c, user, secret)) {
		return true;
	}
	free(user);
	secret_free(secret);
	return false;
}

struct userlist *ul_parse(const char *text, size_t len, char *err,
                          size_t errlen)
{
	struct userlist *ul = calloc(1, sizeof(*ul));
	struct line_cursor c = {.err = err, .errlen = errlen};
	const char *p = text, *end = text + len;

	if (ul == NULL || memchr(text, '\0', len) != NULL) {
		snprintf(err, errlen,
		         ul ? "the file holds a NUL byte" : "out of memory");
		ul_free(ul);
		return NULL;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		c.lineno++;
		c.p = p;
		c.end = nl ? nl : end;
		if (c.end > c.p && c.end[-1] == '\r')
			c.end--;
		if (!parse_line(ul, &c)) {
			ul_free(ul);
			return NULL;
		}
		p = nl ? nl + 1 : end;
	}
	return ul;
}

struct userlist *ul_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL, why[300];
	size_t n = 0;
	struct userlist *ul = NULL;

	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path,
		         strerror(errno));
		return NULL;
	}
	buf = malloc(UL_MAX_FILE_BYTES + 1);
	if (buf != NULL)
		n = fread(buf, 1, UL_MAX_FILE_BYTES + 1, f);
	if (buf == NULL || ferror(f) || n > UL_MAX_FILE_BYTES)
		snprintf(err, errlen,
		         "%s: cannot read, or larger than %u bytes", path,
		         UL_MAX_FILE_BYTES);
	else if ((ul = ul_parse(buf, n, why, sizeof(why))) == NULL)
		snprintf(err, errlen, "%s: %s", path, why);
	fclose(f);
	if (buf != NULL)
		OPENSSL_cleanse(buf, n);
	free(buf);
	return ul;
}

void ul_free(struct userlist *ul)
{
	if (ul == NULL)
		return;
	for (size_t i = 0; i < ul->n; i++) {
		free(ul->v[i].user);
		secret_free(ul->v[i].secret);
	}
	free(ul->v);
	free(ul);
}

const char *ul_secret(const struct userlist *ul, const char *user)
{
	for (size_t i = 0; ul != NULL && i < ul->n; i++) {
		if (strcmp(ul->v[i].user, user) == 0)
			return ul->v[i].secret;
	}
	return NULL;
}

size_t ul_count(const struct userlist *ul)
{
	return ul ? ul->n : 0;
}

/* s in double quotes, each quote doubled, appended at out[*n]. */
static void put_quoted(char *out, size_t *n, const char *s)
{
	out[(*n)++] = '"';
	for (; *s; s++) {
		if (*s == '"')
			out[(*n)++] = '"';
		out[(*n)++] = *s;
	}
	out[(*n)++] = '"';
}

char *ul_format_line(const char *user, const char *secret)
{
	size_t lu = strlen(user), ls = strlen(secret), n = 0;
	char *out;

	if (lu > UL_MAX_FIELD || ls > UL_MAX_FIELD)
		return NULL;
	out = malloc(2 * (lu + ls) + 7);
	if (out == NULL)
		return NULL;
	put_quoted(out, &n, user);
	out[n++] = ' ';
	put_quoted(out, &n, secret);
	out[n++] = '\n';
	out[n] = '\0';
	return out;
}
