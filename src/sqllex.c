/* sqllex.c: PostgreSQL's lexical rules (scan.l) for the statement
 * recognizer: identifiers, every kind of string, numbers, operators. */
#include "sqllex.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "utf8.h"

struct sqlx_lexer {
	const uint8_t *src;
	size_t len, pos;
	bool checked;     /* the whole input was checked (UTF-8, NUL) */
	enum sqlx_rc err; /* sticky */
	size_t err_off;
	struct evbuffer *text; /* the current token's value */
	struct evbuffer *raw;  /* U&'' before its escapes are decoded */
};

/* The kinds of quoted string, each with its own body rules. */
enum str_kind { STR_STD, STR_ESC, STR_BIT, STR_UNI };

struct sqlx_lexer *sqlx_lexer_new(const uint8_t *src, size_t len)
{
	struct sqlx_lexer *lx = calloc(1, sizeof(*lx));

	if (lx == NULL)
		return NULL;
	lx->src = src;
	lx->len = len;
	lx->text = evbuffer_new();
	lx->raw = evbuffer_new();
	if (lx->text == NULL || lx->raw == NULL) {
		sqlx_lexer_free(lx);
		return NULL;
	}
	return lx;
}

void sqlx_lexer_free(struct sqlx_lexer *lx)
{
	if (lx == NULL)
		return;
	if (lx->text != NULL)
		evbuffer_free(lx->text);
	if (lx->raw != NULL)
		evbuffer_free(lx->raw);
	free(lx);
}

size_t sqlx_error_offset(const struct sqlx_lexer *lx)
{
	return lx->err != SQLX_OK ? lx->err_off : 0;
}

static enum sqlx_rc fail(struct sqlx_lexer *lx, enum sqlx_rc rc, size_t off)
{
	lx->err = rc;
	lx->err_off = off;
	return rc;
}

/* ---- character classes (scan.l's) ---- */

static bool is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static bool is_alpha(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool ident_start(uint8_t c)
{
	return is_alpha(c) || c == '_' || c >= 0x80;
}

static bool ident_cont(uint8_t c)
{
	return ident_start(c) || is_digit(c) || c == '$';
}

static bool is_op_char(uint8_t c)
{
	return c != 0 && strchr("~!@#^&|`?+-*/%<>=", c) != NULL;
}

static int hex_val(uint8_t c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static uint8_t peek(const struct sqlx_lexer *lx, size_t at)
{
	return at < lx->len ? lx->src[at] : 0;
}

/* ---- whitespace and comments ---- */

/* Past a nested comment starting at *p ("/" "*"). */
static enum sqlx_rc skip_block_comment(struct sqlx_lexer *lx, size_t *p)
{
	size_t depth = 0, i = *p;

	while (i + 1 < lx->len) {
		if (lx->src[i] == '/' && lx->src[i + 1] == '*') {
			depth++;
			i += 2;
		} else if (lx->src[i] == '*' && lx->src[i + 1] == '/') {
			i += 2;
			if (--depth == 0) {
				*p = i;
				return SQLX_OK;
			}
		} else {
			i++;
		}
	}
	return fail(lx, SQLX_E_UNTERMINATED_COMMENT, *p);
}

/* Past any whitespace and comments from *p. */
static enum sqlx_rc skip_blank(struct sqlx_lexer *lx, size_t *p)
{
	size_t i = *p;

	for (;;) {
		uint8_t c = peek(lx, i);

		if (i < lx->len && is_space(c)) {
			i++;
		} else if (c == '-' && peek(lx, i + 1) == '-') {
			while (i < lx->len && lx->src[i] != '\n' &&
			       lx->src[i] != '\r')
				i++;
		} else if (c == '/' && peek(lx, i + 1) == '*') {
			if (skip_block_comment(lx, &i) != SQLX_OK)
				return lx->err;
		} else {
			break;
		}
	}
	*p = i;
	return SQLX_OK;
}

/*
 * A string ending before at continues when whitespace holding a newline
 * (and "--" comments, not slash-star ones) leads to another quote; returns
 * the offset just past that quote, or 0.
 */
static size_t continuation(const struct sqlx_lexer *lx, size_t at)
{
	bool newline = false;

	while (at < lx->len) {
		uint8_t c = lx->src[at];

		if (c == '\n' || c == '\r') {
			newline = true;
			at++;
		} else if (c == ' ' || c == '\t' || c == '\f') {
			at++;
		} else if (c == '-' && peek(lx, at + 1) == '-') {
			while (at < lx->len && lx->src[at] != '\n' &&
			       lx->src[at] != '\r')
				at++;
		} else {
			break;
		}
	}
	return newline && peek(lx, at) == '\'' ? at + 1 : 0;
}

/* ---- token values ---- */

static enum sqlx_rc text_reset(struct sqlx_lexer *lx)
{
	evbuffer_drain(lx->text, evbuffer_get_length(lx->text));
	return SQLX_OK;
}

static enum sqlx_rc text_add(struct sqlx_lexer *lx, const void *p, size_t n)
{
	if (n > 0 && evbuffer_add(lx->text, p, n) != 0)
		return fail(lx, SQLX_E_NOMEM, lx->pos);
	return SQLX_OK;
}

static enum sqlx_rc text_byte(struct sqlx_lexer *lx, uint8_t c)
{
	return text_add(lx, &c, 1);
}

/* Ends the token: NUL-terminates its value and fills *t. */
static enum sqlx_rc finish(struct sqlx_lexer *lx, struct sqlx_token *t,
                           enum sqlx_tok kind, size_t start, size_t end)
{
	size_t n = evbuffer_get_length(lx->text);
	unsigned char *p;

	if (text_byte(lx, 0) != SQLX_OK)
		return lx->err;
	p = evbuffer_pullup(lx->text, -1);
	if (p == NULL)
		return fail(lx, SQLX_E_NOMEM, start);
	t->kind = kind;
	t->start = start;
	t->end = end;
	t->text = (const char *)p;
	t->len = n;
	lx->pos = end;
	return SQLX_OK;
}

/* The token is src[start..end) as it is. */
static enum sqlx_rc finish_verbatim(struct sqlx_lexer *lx, struct sqlx_token *t,
                                    enum sqlx_tok kind, size_t start,
                                    size_t end)
{
	text_reset(lx);
	if (text_add(lx, lx->src + start, end - start) != SQLX_OK)
		return lx->err;
	return finish(lx, t, kind, start, end);
}

/* A decoded value must be UTF-8 without NUL, as the server checks it. */
static enum sqlx_rc check_decoded(struct sqlx_lexer *lx, size_t start)
{
	size_t n = evbuffer_get_length(lx->text);
	const uint8_t *p = evbuffer_pullup(lx->text, -1);

	if (n == 0)
		return SQLX_OK;
	if (p == NULL)
		return fail(lx, SQLX_E_NOMEM, start);
	if (memchr(p, 0, n) != NULL)
		return fail(lx, SQLX_E_NUL, start);
	if (!utf8_valid(p, n))
		return fail(lx, SQLX_E_BAD_UTF8, start);
	return SQLX_OK;
}

/* ---- Unicode escapes (E'' \u, U&'' and U&"") ---- */

static enum sqlx_rc add_utf8(struct sqlx_lexer *lx, uint32_t cp)
{
	uint8_t b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (uint8_t)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (uint8_t)(0xc0 | cp >> 6);
		b[1] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (uint8_t)(0xe0 | cp >> 12);
		b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (uint8_t)(0xf0 | cp >> 18);
		b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return text_add(lx, b, n);
}

/*
 * One escaped code point; *hi holds a high surrogate waiting for its low
 * half (0 when none). Code 0, lone surrogates and codes past U+10FFFF are
 * errors, as in PostgreSQL.
 */
static enum sqlx_rc add_code_point(struct sqlx_lexer *lx, uint32_t *hi,
                                   uint32_t cp, size_t at)
{
	bool high = cp >= 0xd800 && cp <= 0xdbff;
	bool low = cp >= 0xdc00 && cp <= 0xdfff;

	if (*hi != 0) {
		if (!low)
			return fail(lx, SQLX_E_BAD_UNICODE, at);
		cp = 0x10000 + ((*hi - 0xd800) << 10) + (cp - 0xdc00);
		*hi = 0;
		return add_utf8(lx, cp);
	}
	if (high) {
		*hi = cp;
		return SQLX_OK;
	}
	if (low || cp == 0 || cp > 0x10ffff)
		return fail(lx, SQLX_E_BAD_UNICODE, at);
	return add_utf8(lx, cp);
}

/* n hex digits at s[0..left) into *v; false if there are not n of them. */
static bool read_hex(const uint8_t *s, size_t left, size_t n, uint32_t *v)
{
	*v = 0;
	if (left < n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int h = hex_val(s[i]);

		if (h < 0)
			return false;
		*v = *v << 4 | (uint32_t)h;
	}
	return true;
}

/* ---- quoted strings ---- */

/* One E'' backslash escape at *pi; *pi moves past it. */
static enum sqlx_rc esc_escape(struct sqlx_lexer *lx, size_t *pi, uint32_t *hi)
{
	static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";
	size_t at = *pi, i = at + 1;
	uint8_t c = peek(lx, i);
	uint32_t v = 0;

	if (i >= lx->len)
		return fail(lx, SQLX_E_UNTERMINATED_STRING, at);
	if (c == 'u' || c == 'U') {
		size_t n = c == 'u' ? 4 : 8;

		if (!read_hex(lx->src + i + 1, lx->len - i - 1, n, &v))
			return fail(lx, SQLX_E_BAD_UNICODE, at);
		*pi = i + 1 + n;
		return add_code_point(lx, hi, v, at);
	}
	if (*hi != 0)
		return fail(lx, SQLX_E_BAD_UNICODE, at);
	if (c == 'v')
		return fail(lx, SQLX_E_BAD_ESCAPE, at);
	if (c >= '0' && c <= '7') {
		for (size_t n = 0; n < 3 && i < lx->len && lx->src[i] >= '0' &&
		                   lx->src[i] <= '7';
		     n++)
			v = v * 8 + (uint32_t)(lx->src[i++] - '0');
		*pi = i;
		return text_byte(lx, (uint8_t)v);
	}
	if (c == 'x' && hex_val(peek(lx, i + 1)) >= 0) {
		v = (uint32_t)hex_val(lx->src[i + 1]);
		i += 2;
		if (i < lx->len && hex_val(lx->src[i]) >= 0)
			v = v * 16 + (uint32_t)hex_val(lx->src[i++]);
		*pi = i;
		return text_byte(lx, (uint8_t)v);
	}
	*pi = i + 1;
	for (size_t k = 0; k < sizeof(from) - 1; k++)
		if (c == (uint8_t)from[k])
			return text_byte(lx, (uint8_t)to[k]);
	return text_byte(lx, c);
}

/*
 * One quoted part from *pi (just past its opening quote) to just past its
 * closing quote, appended to the token's value.
 */
static enum sqlx_rc str_part(struct sqlx_lexer *lx, enum str_kind k, size_t *pi,
                             uint32_t *hi, size_t start)
{
	size_t i = *pi;

	for (;;) {
		size_t j = i;

		if (i >= lx->len)
			return fail(lx, SQLX_E_UNTERMINATED_STRING, start);
		if (k == STR_ESC && lx->src[i] == '\\') {
			if (esc_escape(lx, &i, hi) != SQLX_OK)
				return lx->err;
			continue;
		}
		if (*hi != 0)
			return fail(lx, SQLX_E_BAD_UNICODE, i);
		if (lx->src[i] == '\'') {
			if (k == STR_BIT || peek(lx, i + 1) != '\'')
				break;
			if (text_byte(lx, '\'') != SQLX_OK)
				return lx->err;
			i += 2;
			continue;
		}
		while (j < lx->len && lx->src[j] != '\'' &&
		       !(k == STR_ESC && lx->src[j] == '\\'))
			j++;
		if (text_add(lx, lx->src + i, j - i) != SQLX_OK)
			return lx->err;
		i = j;
	}
	*pi = i + 1;
	return SQLX_OK;
}

static bool word_at(const struct sqlx_lexer *lx, size_t at, const char *w)
{
	size_t n = strlen(w);

	if (lx->len - at < n ||
	    (at + n < lx->len && ident_cont(lx->src[at + n])))
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = lx->src[at + i];

		if (c >= 'A' && c <= 'Z')
			c = (uint8_t)(c - 'A' + 'a');
		if (c != (uint8_t)w[i])
			return false;
	}
	return true;
}

/*
 * A UESCAPE 'c' clause after a U&'' or U&"" ending at *end: sets *esc and
 * moves *end past it. The character may not be a hex digit, +, a quote or
 * whitespace, and must be one byte, as in PostgreSQL.
 */
static enum sqlx_rc uescape(struct sqlx_lexer *lx, size_t *end, uint8_t *esc)
{
	size_t p = *end;
	uint8_t c;

	if (skip_blank(lx, &p) != SQLX_OK)
		return lx->err;
	if (p >= lx->len || !word_at(lx, p, "uescape"))
		return SQLX_OK;
	p += 7;
	if (skip_blank(lx, &p) != SQLX_OK)
		return lx->err;
	if (peek(lx, p) != '\'' || peek(lx, p + 2) != '\'' ||
	    peek(lx, p + 3) == '\'' || continuation(lx, p + 3) != 0)
		return fail(lx, SQLX_E_BAD_UESCAPE, p);
	c = lx->src[p + 1];
	if (hex_val(c) >= 0 || c == '+' || c == '\'' || c == '"' ||
	    is_space(c) || c >= 0x80 || c < 0x20)
		return fail(lx, SQLX_E_BAD_UESCAPE, p);
	*esc = c;
	*end = p + 3;
	return SQLX_OK;
}

/* Decodes the U&'' or U&"" body in lx->raw into the token's value. */
static enum sqlx_rc uni_decode(struct sqlx_lexer *lx, uint8_t esc, size_t start)
{
	size_t n = evbuffer_get_length(lx->raw), i = 0;
	const uint8_t *p = evbuffer_pullup(lx->raw, -1);
	uint32_t hi = 0, v;

	while (i < n) {
		if (p[i] != esc) {
			if (hi != 0)
				return fail(lx, SQLX_E_BAD_UNICODE, start);
			if (text_byte(lx, p[i++]) != SQLX_OK)
				return lx->err;
		} else if (i + 1 < n && p[i + 1] == esc && hi == 0) {
			if (text_byte(lx, esc) != SQLX_OK)
				return lx->err;
			i += 2;
		} else if (i + 1 < n && p[i + 1] == '+' &&
		           read_hex(p + i + 2, n - i - 2, 6, &v)) {
			if (add_code_point(lx, &hi, v, start) != SQLX_OK)
				return lx->err;
			i += 8;
		} else if (read_hex(p + i + 1, n - i - 1, 4, &v)) {
			if (add_code_point(lx, &hi, v, start) != SQLX_OK)
				return lx->err;
			i += 5;
		} else {
			return fail(lx, SQLX_E_BAD_ESCAPE, start);
		}
	}
	if (hi != 0)
		return fail(lx, SQLX_E_BAD_UNICODE, start);
	return SQLX_OK;
}

/* Ends a U&'' string or U&"" identifier whose raw body is the value. */
static enum sqlx_rc finish_uni(struct sqlx_lexer *lx, struct sqlx_token *t,
                               enum sqlx_tok kind, size_t start, size_t end)
{
	uint8_t esc = '\\';

	evbuffer_drain(lx->raw, evbuffer_get_length(lx->raw));
	if (evbuffer_add_buffer(lx->raw, lx->text) != 0)
		return fail(lx, SQLX_E_NOMEM, start);
	if (uescape(lx, &end, &esc) != SQLX_OK ||
	    uni_decode(lx, esc, start) != SQLX_OK ||
	    check_decoded(lx, start) != SQLX_OK)
		return lx->err;
	if (kind == SQLX_T_QIDENT && evbuffer_get_length(lx->text) == 0)
		return fail(lx, SQLX_E_EMPTY_QIDENT, start);
	return finish(lx, t, kind, start, end);
}

/* A string of kind k whose first body byte is at body. */
static enum sqlx_rc lex_string(struct sqlx_lexer *lx, struct sqlx_token *t,
                               enum str_kind k, size_t start, size_t body)
{
	size_t i = body, next;
	uint32_t hi = 0;

	text_reset(lx);
	if (k == STR_BIT &&
	    text_byte(lx, (uint8_t)(lx->src[start] | 0x20)) != SQLX_OK)
		return lx->err;
	for (;;) {
		if (str_part(lx, k, &i, &hi, start) != SQLX_OK)
			return lx->err;
		if (hi != 0)
			return fail(lx, SQLX_E_BAD_UNICODE, start);
		next = continuation(lx, i);
		if (next == 0)
			break;
		i = next;
	}
	if (k == STR_UNI)
		return finish_uni(lx, t, SQLX_T_STRING, start, i);
	if (k == STR_ESC && check_decoded(lx, start) != SQLX_OK)
		return lx->err;
	return finish(lx, t, k == STR_BIT ? SQLX_T_BITSTRING : SQLX_T_STRING,
	              start, i);
}

/* "..." from body (just past the opening quote); "" is one ". */
static enum sqlx_rc qident_body(struct sqlx_lexer *lx, size_t *pi, size_t start)
{
	size_t i = *pi;

	text_reset(lx);
	for (;;) {
		size_t j = i;

		if (i >= lx->len)
			return fail(lx, SQLX_E_UNTERMINATED_QIDENT, start);
		if (lx->src[i] == '"') {
			if (peek(lx, i + 1) != '"')
				break;
			if (text_byte(lx, '"') != SQLX_OK)
				return lx->err;
			i += 2;
			continue;
		}
		while (j < lx->len && lx->src[j] != '"')
			j++;
		if (text_add(lx, lx->src + i, j - i) != SQLX_OK)
			return lx->err;
		i = j;
	}
	*pi = i + 1;
	return SQLX_OK;
}

static enum sqlx_rc lex_qident(struct sqlx_lexer *lx, struct sqlx_token *t,
                               size_t start, bool uni)
{
	size_t i = start + (uni ? 3 : 1);

	if (qident_body(lx, &i, start) != SQLX_OK)
		return lx->err;
	if (uni)
		return finish_uni(lx, t, SQLX_T_QIDENT, start, i);
	if (evbuffer_get_length(lx->text) == 0)
		return fail(lx, SQLX_E_EMPTY_QIDENT, start);
	return finish(lx, t, SQLX_T_QIDENT, start, i);
}

/* ---- dollar quotes and parameters ---- */

static bool dolq_cont(uint8_t c)
{
	return ident_start(c) || is_digit(c);
}

/* $n: 1..65535 and no identifier right after it (PostgreSQL 16 refuses
 * $1abc; older versions read $1 then abc). */
static enum sqlx_rc lex_param(struct sqlx_lexer *lx, struct sqlx_token *t,
                              size_t start)
{
	size_t p = start + 1;
	uint32_t v = 0;

	while (p < lx->len && is_digit(lx->src[p])) {
		if (v <= 65535)
			v = v * 10 + (uint32_t)(lx->src[p] - '0');
		p++;
	}
	if (v == 0 || v > 65535 || (p < lx->len && ident_start(lx->src[p])))
		return fail(lx, SQLX_E_BAD_PARAM, start);
	if (finish_verbatim(lx, t, SQLX_T_PARAM, start, p) != SQLX_OK)
		return lx->err;
	t->param = v;
	return SQLX_OK;
}

/* The first offset >= from where src holds delim[0..n), or len. */
static size_t find_delim(const struct sqlx_lexer *lx, size_t from,
                         const uint8_t *delim, size_t n)
{
	size_t i = from;

	while (i < lx->len && lx->len - i >= n) {
		const uint8_t *q = memchr(lx->src + i, '$', lx->len - i);

		if (q == NULL)
			break;
		i = (size_t)(q - lx->src);
		if (lx->len - i >= n && memcmp(q, delim, n) == 0)
			return i;
		i++;
	}
	return lx->len;
}

/* $tag$...$tag$, a parameter, or a lone '$'. */
static enum sqlx_rc lex_dollar(struct sqlx_lexer *lx, struct sqlx_token *t,
                               size_t start)
{
	size_t p = start + 1, n, close;

	if (is_digit(peek(lx, p)))
		return lex_param(lx, t, start);
	if (p < lx->len && ident_start(lx->src[p]))
		while (p < lx->len && dolq_cont(lx->src[p]))
			p++;
	if (peek(lx, p) != '$')
		return finish_verbatim(lx, t, SQLX_T_PUNCT, start, start + 1);
	n = p + 1 - start;
	close = find_delim(lx, p + 1, lx->src + start, n);
	if (close == lx->len)
		return fail(lx, SQLX_E_UNTERMINATED_DOLLAR, start);
	text_reset(lx);
	if (text_add(lx, lx->src + p + 1, close - (p + 1)) != SQLX_OK)
		return lx->err;
	return finish(lx, t, SQLX_T_STRING, start, close + n);
}

/* ---- numbers, identifiers, operators ---- */

static enum sqlx_rc lex_number(struct sqlx_lexer *lx, struct sqlx_token *t,
                               size_t start)
{
	enum sqlx_tok kind = SQLX_T_INTEGER;
	size_t p = start, q;

	while (p < lx->len && is_digit(lx->src[p]))
		p++;
	/* "1..2" is 1 then "..": PostgreSQL keeps ".." for PL/pgSQL. */
	if (peek(lx, p) == '.' && peek(lx, p + 1) != '.') {
		kind = SQLX_T_DECIMAL;
		p++;
		while (p < lx->len && is_digit(lx->src[p]))
			p++;
	}
	if (peek(lx, p) == 'e' || peek(lx, p) == 'E') {
		q = p + 1;
		if (peek(lx, q) == '+' || peek(lx, q) == '-')
			q++;
		if (is_digit(peek(lx, q))) {
			while (q < lx->len && is_digit(lx->src[q]))
				q++;
			p = q;
			kind = SQLX_T_DECIMAL;
		}
	}
	if (p < lx->len && ident_start(lx->src[p]))
		return fail(lx, SQLX_E_NUMBER_JUNK, start);
	return finish_verbatim(lx, t, kind, start, p);
}

static enum sqlx_rc lex_ident(struct sqlx_lexer *lx, struct sqlx_token *t,
                              size_t start)
{
	size_t p = start;
	char *s;

	while (p < lx->len && ident_cont(lx->src[p]))
		p++;
	if (finish_verbatim(lx, t, SQLX_T_IDENT, start, p) != SQLX_OK)
		return lx->err;
	/* Our own buffer: fold in place, ASCII only, as PostgreSQL does. */
	s = (char *)t->text;
	for (size_t i = 0; i < t->len; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			s[i] = (char)(s[i] - 'A' + 'a');
	return SQLX_OK;
}

static enum sqlx_rc lex_op(struct sqlx_lexer *lx, struct sqlx_token *t,
                           size_t start)
{
	size_t p = start, n;
	bool plain = true;

	while (p < lx->len && is_op_char(lx->src[p])) {
		uint8_t c = lx->src[p], d = peek(lx, p + 1);

		if (p > start &&
		    ((c == '-' && d == '-') || (c == '/' && d == '*')))
			break;
		if (strchr("~!@#^&|`?%", c) != NULL)
			plain = false;
		p++;
	}
	n = p - start;
	/* "=-1" is "=" then "-1"; "@-" stays one operator. */
	while (plain && n > 1 &&
	       (lx->src[start + n - 1] == '+' || lx->src[start + n - 1] == '-'))
		n--;
	return finish_verbatim(lx, t, SQLX_T_OP, start, start + n);
}

/* ---- the token dispatcher ---- */

/* Strings with a prefix letter: E'' B'' X'' N'' U&'' U&"". */
static bool lex_prefixed(struct sqlx_lexer *lx, struct sqlx_token *t, size_t p,
                         enum sqlx_rc *rc)
{
	uint8_t c = lx->src[p] | 0x20, q1 = peek(lx, p + 1);

	if (q1 == '\'' && (c == 'e' || c == 'b' || c == 'x')) {
		*rc = lex_string(lx, t, c == 'e' ? STR_ESC : STR_BIT, p, p + 2);
		return true;
	}
	if (q1 == '\'' && c == 'n') {
		*rc = finish_verbatim(lx, t, SQLX_T_NATIONAL, p, p + 1);
		return true;
	}
	if (c == 'u' && q1 == '&' && peek(lx, p + 2) == '\'') {
		*rc = lex_string(lx, t, STR_UNI, p, p + 3);
		return true;
	}
	if (c == 'u' && q1 == '&' && peek(lx, p + 2) == '"') {
		*rc = lex_qident(lx, t, p, true);
		return true;
	}
	return false;
}

static enum sqlx_rc lex_at(struct sqlx_lexer *lx, struct sqlx_token *t,
                           size_t p)
{
	uint8_t c = lx->src[p];
	enum sqlx_rc rc;

	if (is_alpha(c) && lex_prefixed(lx, t, p, &rc))
		return rc;
	if (c == '\'')
		return lex_string(lx, t, STR_STD, p, p + 1);
	if (c == '"')
		return lex_qident(lx, t, p, false);
	if (c == '$')
		return lex_dollar(lx, t, p);
	if (is_digit(c) || (c == '.' && is_digit(peek(lx, p + 1))))
		return lex_number(lx, t, p);
	if (ident_start(c))
		return lex_ident(lx, t, p);
	if (c == ':' && peek(lx, p + 1) == ':')
		return finish_verbatim(lx, t, SQLX_T_TYPECAST, p, p + 2);
	if (c == ':' && peek(lx, p + 1) == '=')
		return finish_verbatim(lx, t, SQLX_T_OP, p, p + 2);
	if (is_op_char(c))
		return lex_op(lx, t, p);
	if (c == '\v')
		return fail(lx, SQLX_E_BAD_CHAR, p);
	return finish_verbatim(lx, t, SQLX_T_PUNCT, p, p + 1);
}

/* The whole input, once: its size, no NUL, valid UTF-8. */
static enum sqlx_rc check_input(struct sqlx_lexer *lx)
{
	const uint8_t *nul;
	size_t i = 0;

	lx->checked = true;
	if (lx->len > SQLX_MAX_INPUT)
		return fail(lx, SQLX_E_TOO_LONG, SQLX_MAX_INPUT);
	if (lx->len == 0)
		return SQLX_OK;
	nul = memchr(lx->src, 0, lx->len);
	if (nul != NULL)
		return fail(lx, SQLX_E_NUL, (size_t)(nul - lx->src));
	while (i < lx->len) {
		size_t n = utf8_seq_len(lx->src + i, lx->len - i);

		if (n == 0)
			return fail(lx, SQLX_E_BAD_UTF8, i);
		i += n;
	}
	return SQLX_OK;
}

enum sqlx_rc sqlx_next(struct sqlx_lexer *lx, struct sqlx_token *t)
{
	size_t p;

	memset(t, 0, sizeof(*t));
	if (lx->err != SQLX_OK)
		return lx->err;
	if (!lx->checked && check_input(lx) != SQLX_OK)
		return lx->err;
	p = lx->pos;
	if (skip_blank(lx, &p) != SQLX_OK)
		return lx->err;
	if (p >= lx->len) {
		text_reset(lx);
		return finish(lx, t, SQLX_T_END, lx->len, lx->len);
	}
	return lex_at(lx, t, p);
}

/* ---- keywords ---- */

/*
 * PostgreSQL's reserved and type/function-name keywords (kwlist.h), over
 * the versions we may meet: an unquoted table or column name may not be
 * one of them (ColId in gram.y).
 */
static const char *const reserved_words[] = {"all",
                                             "analyse",
                                             "analyze",
                                             "and",
                                             "any",
                                             "array",
                                             "as",
                                             "asc",
                                             "asymmetric",
                                             "authorization",
                                             "binary",
                                             "both",
                                             "case",
                                             "cast",
                                             "check",
                                             "collate",
                                             "collation",
                                             "column",
                                             "concurrently",
                                             "constraint",
                                             "create",
                                             "cross",
                                             "current_catalog",
                                             "current_date",
                                             "current_role",
                                             "current_schema",
                                             "current_time",
                                             "current_timestamp",
                                             "current_user",
                                             "default",
                                             "deferrable",
                                             "desc",
                                             "distinct",
                                             "do",
                                             "else",
                                             "end",
                                             "except",
                                             "false",
                                             "fetch",
                                             "for",
                                             "foreign",
                                             "freeze",
                                             "from",
                                             "full",
                                             "grant",
                                             "group",
                                             "having",
                                             "ilike",
                                             "in",
                                             "initially",
                                             "inner",
                                             "intersect",
                                             "into",
                                             "is",
                                             "isnull",
                                             "join",
                                             "lateral",
                                             "leading",
                                             "left",
                                             "like",
                                             "limit",
                                             "localtime",
                                             "localtimestamp",
                                             "natural",
                                             "not",
                                             "notnull",
                                             "null",
                                             "offset",
                                             "on",
                                             "only",
                                             "or",
                                             "order",
                                             "outer",
                                             "overlaps",
                                             "placing",
                                             "primary",
                                             "references",
                                             "returning",
                                             "right",
                                             "select",
                                             "session_user",
                                             "similar",
                                             "some",
                                             "symmetric",
                                             "system_user",
                                             "table",
                                             "tablesample",
                                             "then",
                                             "to",
                                             "trailing",
                                             "true",
                                             "union",
                                             "unique",
                                             "user",
                                             "using",
                                             "variadic",
                                             "verbose",
                                             "when",
                                             "where",
                                             "window",
                                             "with"};

bool sqlx_keyword_reserved(const char *word)
{
	size_t n = sizeof(reserved_words) / sizeof(reserved_words[0]);

	for (size_t i = 0; i < n; i++)
		if (strcmp(word, reserved_words[i]) == 0)
			return true;
	return false;
}

const char *sqlx_rc_text(enum sqlx_rc rc)
{
	static const char *const text[] = {
	    [SQLX_OK] = "ok",
	    [SQLX_E_NOMEM] = "out of memory",
	    [SQLX_E_TOO_LONG] = "statement too long",
	    [SQLX_E_NUL] = "zero byte",
	    [SQLX_E_BAD_UTF8] = "invalid UTF-8",
	    [SQLX_E_BAD_CHAR] = "vertical tab outside a string",
	    [SQLX_E_UNTERMINATED_COMMENT] = "unterminated /* comment",
	    [SQLX_E_UNTERMINATED_STRING] = "unterminated quoted string",
	    [SQLX_E_UNTERMINATED_QIDENT] = "unterminated quoted identifier",
	    [SQLX_E_UNTERMINATED_DOLLAR] = "unterminated dollar-quoted string",
	    [SQLX_E_EMPTY_QIDENT] = "zero-length delimited identifier",
	    [SQLX_E_BAD_ESCAPE] = "invalid escape",
	    [SQLX_E_BAD_UNICODE] = "invalid Unicode escape",
	    [SQLX_E_BAD_UESCAPE] = "invalid UESCAPE",
	    [SQLX_E_NUMBER_JUNK] = "trailing junk after a number",
	    [SQLX_E_BAD_PARAM] = "invalid parameter number",
	};

	if ((size_t)rc >= sizeof(text) / sizeof(text[0]) || text[rc] == NULL)
		return "unknown error";
	return text[rc];
}
