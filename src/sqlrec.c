/* sqlrec.c: the coalescible INSERT and COPY statements, recognized over
 * sqllex tokens by recursive descent; anything else is refused. */
#include "sqlrec.h"

#include "copytext.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

/* PostgreSQL's MaxTupleAttributeNumber: no longer column list is valid. */
#define MAX_COLUMNS 1664
/* Values in one statement: bounds memory (a value is ~40 bytes). */
#define MAX_VALUES ((size_t)256 * 1024)

/* ---- the statement's arena: every string and array it points to ---- */

struct chunk {
	struct chunk *next;
	size_t used, cap;
	max_align_t data[];
};

struct box {
	struct sqlr_stmt st; /* first: sqlr_stmt_free casts back */
	struct chunk *chunks;
};

static void *box_alloc(struct box *b, size_t n)
{
	const size_t a = sizeof(max_align_t);
	struct chunk *c = b->chunks;
	size_t need = n == 0 ? a : (n + a - 1) / a * a, cap;
	void *p;

	if (need < n)
		return NULL;
	if (c == NULL || c->cap - c->used < need) {
		cap = need > 4096 ? need : 4096;
		c = malloc(sizeof(*c) + cap);
		if (c == NULL)
			return NULL;
		c->used = 0;
		c->cap = cap;
		c->next = b->chunks;
		b->chunks = c;
	}
	p = (unsigned char *)c->data + c->used;
	c->used += need;
	return p;
}

static char *box_strdup(struct box *b, const char *s, size_t n)
{
	char *p = n + 1 > n ? box_alloc(b, n + 1) : NULL;

	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void sqlr_stmt_free(struct sqlr_stmt *st)
{
	struct box *b = (struct box *)st;
	struct chunk *c, *next;

	if (st == NULL)
		return;
	for (c = b->chunks; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(b);
}

/* ---- the parser's state and its token helpers ---- */

struct rec {
	struct sqlx_lexer *lx;
	struct sqlx_token tok; /* the current token */
	struct sqlr_why *why;
	struct box *box;
	bool nomem;
	struct evbuffer *vals;  /* struct sqlr_value, row by row */
	struct evbuffer *names; /* const char *, the list being read */
	struct evbuffer *type;  /* the type name being read */
};

static bool refuse(struct rec *r, const char *reason)
{
	if (r->why->reason == NULL) {
		r->why->reason = reason;
		r->why->offset = r->tok.start;
	}
	return false;
}

static bool oom(struct rec *r)
{
	r->nomem = true;
	return refuse(r, "out of memory");
}

static bool advance(struct rec *r)
{
	enum sqlx_rc rc = sqlx_next(r->lx, &r->tok);

	if (rc == SQLX_OK)
		return true;
	if (rc == SQLX_E_NOMEM)
		return oom(r);
	r->why->lex = rc;
	r->why->reason = sqlx_rc_text(rc);
	r->why->offset = sqlx_error_offset(r->lx);
	return false;
}

static bool is_kw(const struct rec *r, const char *word)
{
	return r->tok.kind == SQLX_T_IDENT && strcmp(r->tok.text, word) == 0;
}

static bool is_punct(const struct rec *r, char c)
{
	return r->tok.kind == SQLX_T_PUNCT && r->tok.text[0] == c;
}

/* Consumes the keyword word if it is the current token. */
static bool take_kw(struct rec *r, const char *word, bool *ok)
{
	if (!is_kw(r, word))
		return false;
	*ok = advance(r);
	return true;
}

static bool expect_kw(struct rec *r, const char *word, const char *reason)
{
	return is_kw(r, word) ? advance(r) : refuse(r, reason);
}

static bool expect_punct(struct rec *r, char c, const char *reason)
{
	return is_punct(r, c) ? advance(r) : refuse(r, reason);
}

static char *keep_text(struct rec *r)
{
	char *s = box_strdup(r->box, r->tok.text, r->tok.len);

	if (s == NULL)
		oom(r);
	return s;
}

/* ---- names ---- */

/* An identifier that may name a table or column (gram.y's ColId). */
static bool parse_name(struct rec *r, const char **out)
{
	if (r->tok.kind == SQLX_T_IDENT && sqlx_keyword_reserved(r->tok.text))
		return refuse(r, "reserved keyword as a name");
	if (r->tok.kind != SQLX_T_IDENT && r->tok.kind != SQLX_T_QIDENT)
		return refuse(r, "name expected");
	if (r->tok.len > SQLR_MAX_NAME)
		return refuse(r, "name longer than 63 bytes");
	*out = keep_text(r);
	return *out != NULL && advance(r);
}

static bool parse_qualified(struct rec *r)
{
	const char *first;

	if (!parse_name(r, &first))
		return false;
	if (!is_punct(r, '.')) {
		r->box->st.table = first;
		return true;
	}
	r->box->st.schema = first;
	if (!advance(r) || !parse_name(r, &r->box->st.table))
		return false;
	return is_punct(r, '.') ? refuse(r, "name with more than two parts")
	                        : true;
}

static bool name_in(const char *const *list, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], name) == 0)
			return true;
	return false;
}

/* Lists of names are gathered in r->names, then kept in the box. */
static void list_start(struct rec *r)
{
	evbuffer_drain(r->names, evbuffer_get_length(r->names));
}

static bool list_add(struct rec *r, const char *name, size_t *count)
{
	const char **list = (const char **)evbuffer_pullup(r->names, -1);

	if (*count > 0 && name_in(list, *count, name))
		return refuse(r, "column named twice");
	if (*count >= MAX_COLUMNS)
		return refuse(r, "too many columns");
	if (evbuffer_add(r->names, &name, sizeof(name)) != 0)
		return oom(r);
	(*count)++;
	return true;
}

static const char *const *list_end(struct rec *r, size_t count)
{
	const char **list = box_alloc(r->box, count * sizeof(*list));

	if (list == NULL) {
		oom(r);
		return NULL;
	}
	evbuffer_remove(r->names, list, count * sizeof(*list));
	return list;
}

/* ( name [, name] ... ) without duplicates. */
static bool parse_name_list(struct rec *r, size_t *n, const char *const **out)
{
	const char *name;

	*n = 0;
	list_start(r);
	if (!expect_punct(r, '(', "column list expected"))
		return false;
	do {
		if (*n > 0 && !advance(r))
			return false;
		if (!parse_name(r, &name) || !list_add(r, name, n))
			return false;
	} while (is_punct(r, ','));
	if (!expect_punct(r, ')', "column list: ',' or ')' expected"))
		return false;
	*out = list_end(r, *n);
	return *out != NULL;
}

/* ---- type names (of casts and typed literals) ---- */

static bool type_add(struct rec *r, const char *s, size_t n)
{
	return evbuffer_add(r->type, s, n) == 0 ? true : oom(r);
}

/* One word of a type name: folded as is, quoted ones stay quoted. */
static bool type_word(struct rec *r)
{
	bool ok = true;

	if (r->tok.kind == SQLX_T_IDENT) {
		if (sqlx_keyword_reserved(r->tok.text))
			return refuse(r, "reserved keyword as a type");
		ok = type_add(r, r->tok.text, r->tok.len);
	} else if (r->tok.kind == SQLX_T_QIDENT) {
		ok = type_add(r, "\"", 1);
		for (size_t i = 0; ok && i < r->tok.len; i++)
			ok = type_add(r, r->tok.text + i, 1) &&
			     (r->tok.text[i] != '"' || type_add(r, "\"", 1));
		ok = ok && type_add(r, "\"", 1);
	} else {
		return refuse(r, "type name expected");
	}
	return ok && advance(r);
}

/* " word" when the current token is that keyword. */
static bool type_opt_kw(struct rec *r, const char *word, bool *taken)
{
	*taken = is_kw(r, word);
	if (!*taken)
		return true;
	return type_add(r, " ", 1) && type_add(r, word, strlen(word)) &&
	       advance(r);
}

/* (n [, n] ...) of unsigned integers, when there is one. */
static bool type_mods(struct rec *r)
{
	if (!is_punct(r, '('))
		return true;
	do {
		if (!type_add(r, is_punct(r, '(') ? "(" : ",", 1) ||
		    !advance(r))
			return false;
		if (r->tok.kind != SQLX_T_INTEGER)
			return refuse(r, "function call or bad type modifier");
		if (!type_add(r, r->tok.text, r->tok.len) || !advance(r))
			return false;
	} while (is_punct(r, ','));
	return expect_punct(r, ')', "type modifier: ')' expected") &&
	       type_add(r, ")", 1);
}

/* The words of SQL's multi-word types after their first word w. */
static bool type_more_words(struct rec *r, const char *w)
{
	bool taken;

	if (strcmp(w, "double") == 0)
		return type_opt_kw(r, "precision", &taken) &&
		       (taken || refuse(r, "double without precision"));
	if (strcmp(w, "national") == 0) {
		if (!type_opt_kw(r, "character", &taken))
			return false;
		if (!taken && (!type_opt_kw(r, "char", &taken) || !taken))
			return refuse(r, "national without character");
		w = "character";
	}
	if (strcmp(w, "character") == 0 || strcmp(w, "char") == 0 ||
	    strcmp(w, "bit") == 0)
		return type_opt_kw(r, "varying", &taken);
	return true;
}

/* time[stamp][(p)] with[out] time zone */
static bool type_zone(struct rec *r)
{
	bool with, without, t1, t2;

	if (!type_opt_kw(r, "with", &with))
		return false;
	if (!with && !type_opt_kw(r, "without", &without))
		return false;
	if (!with && !without)
		return true;
	if (!type_opt_kw(r, "time", &t1) || !t1 ||
	    !type_opt_kw(r, "zone", &t2) || !t2)
		return refuse(r, "WITH TIME ZONE expected");
	return true;
}

/* [] and [n] suffixes. */
static bool type_arrays(struct rec *r)
{
	while (is_punct(r, '[')) {
		if (!type_add(r, "[", 1) || !advance(r))
			return false;
		if (r->tok.kind == SQLX_T_INTEGER &&
		    (!type_add(r, r->tok.text, r->tok.len) || !advance(r)))
			return false;
		if (!expect_punct(r, ']', "array bound: ']' expected") ||
		    !type_add(r, "]", 1))
			return false;
	}
	return true;
}

/*
 * PostgreSQL's column-name keywords that are not type names: gram.y takes
 * them for neither a cast's type nor a typed literal's (col_name_keyword
 * minus the ones its own type rules use).
 */
static bool not_a_type(const char *w)
{
	static const char *const words[] = {
	    "between",   "coalesce", "exists", "extract",      "greatest",
	    "grouping",  "inout",    "least",  "merge_action", "none",
	    "normalize", "nullif",   "out",    "overlay",      "position",
	    "precision", "row",      "setof",  "substring",    "treat",
	    "trim",      "values"};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(w, words[i]) == 0)
			return true;
	return strncmp(w, "xml", 3) == 0 || (strncmp(w, "json_", 5) == 0);
}

/* A type name, canonical (see sqlrec.h), kept in the box. */
static bool parse_type(struct rec *r, const char **out)
{
	bool plain = r->tok.kind == SQLX_T_IDENT;
	char first[16] = "";
	size_t n;

	evbuffer_drain(r->type, evbuffer_get_length(r->type));
	if (plain && r->tok.len < sizeof(first))
		memcpy(first, r->tok.text, r->tok.len + 1);
	if (plain && not_a_type(r->tok.text))
		return refuse(r, "function call or expression");
	if (!type_word(r))
		return false;
	if (is_punct(r, '.') &&
	    (!type_add(r, ".", 1) || !advance(r) || !type_word(r)))
		return false;
	if (plain && !type_more_words(r, first))
		return false;
	if (!type_mods(r))
		return false;
	if (plain &&
	    (strcmp(first, "timestamp") == 0 || strcmp(first, "time") == 0) &&
	    !type_zone(r))
		return false;
	if (!type_arrays(r))
		return false;
	n = evbuffer_get_length(r->type);
	*out =
	    box_strdup(r->box, (const char *)evbuffer_pullup(r->type, -1), n);
	return *out != NULL ? true : oom(r);
}

/* ---- values ---- */

static bool push_value(struct rec *r, const struct sqlr_value *v)
{
	if (evbuffer_get_length(r->vals) / sizeof(*v) >= MAX_VALUES)
		return refuse(r, "too many values");
	if (v->kind == SQLR_V_PARAM && v->param > r->box->st.max_param)
		r->box->st.max_param = v->param;
	return evbuffer_add(r->vals, v, sizeof(*v)) == 0 ? true : oom(r);
}

/* The current string, $n or NULL token as a value (not yet consumed). */
static bool castable(struct rec *r, struct sqlr_value *v)
{
	*v = (struct sqlr_value){.kind = SQLR_V_NULL, .text = ""};
	if (r->tok.kind == SQLX_T_STRING) {
		v->kind = SQLR_V_STRING;
		v->len = r->tok.len;
		v->text = keep_text(r);
		return v->text != NULL;
	}
	if (r->tok.kind == SQLX_T_PARAM) {
		v->kind = SQLR_V_PARAM;
		v->param = r->tok.param;
		return true;
	}
	if (is_kw(r, "null"))
		return true;
	return refuse(r, "only a string, $n or NULL may be cast");
}

/* CAST(x AS type) */
static bool parse_cast_fn(struct rec *r, struct sqlr_value *v)
{
	if (!advance(r) || !expect_punct(r, '(', "CAST: '(' expected") ||
	    !castable(r, v) || !advance(r) ||
	    !expect_kw(r, "as", "CAST: AS expected") ||
	    !parse_type(r, &v->type))
		return false;
	return expect_punct(r, ')', "CAST: ')' expected");
}

/* string, $n or NULL, with an optional ::type */
static bool parse_castable(struct rec *r, struct sqlr_value *v)
{
	if (!castable(r, v) || !advance(r))
		return false;
	if (r->tok.kind != SQLX_T_TYPECAST)
		return true;
	return advance(r) && parse_type(r, &v->type);
}

/* type 'string' */
static bool parse_typed_string(struct rec *r, struct sqlr_value *v)
{
	const char *type;

	if (!parse_type(r, &type))
		return false;
	if (r->tok.kind != SQLX_T_STRING)
		return refuse(r, "function call or expression");
	if (!parse_castable(r, v))
		return false;
	if (v->type != NULL)
		return refuse(r, "cast of a typed literal");
	v->type = type;
	return true;
}

/* Is the number text zero (all its mantissa digits 0)? */
static bool number_is_zero(const char *s)
{
	for (; *s != '\0' && *s != 'e' && *s != 'E'; s++)
		if (*s != '0' && *s != '.')
			return false;
	return true;
}

/*
 * [+|-] number. "-0.0" is kept as "0.0": INSERT negates the numeric zero
 * (no sign), COPY into a float column would keep a negative zero.
 */
static bool parse_number(struct rec *r, struct sqlr_value *v)
{
	bool minus = false;
	struct evbuffer *b = r->type;
	size_t n;

	if (r->tok.kind == SQLX_T_OP) {
		minus = r->tok.text[0] == '-';
		if (!advance(r))
			return false;
		if (r->tok.kind != SQLX_T_INTEGER &&
		    r->tok.kind != SQLX_T_DECIMAL)
			return refuse(r, "operator in a value");
	}
	v->kind =
	    r->tok.kind == SQLX_T_INTEGER ? SQLR_V_INTEGER : SQLR_V_DECIMAL;
	evbuffer_drain(b, evbuffer_get_length(b));
	if (minus && !number_is_zero(r->tok.text) && evbuffer_add(b, "-", 1))
		return oom(r);
	if (evbuffer_add(b, r->tok.text, r->tok.len) != 0)
		return oom(r);
	n = evbuffer_get_length(b);
	v->text = box_strdup(r->box, (char *)evbuffer_pullup(b, -1), n);
	v->len = n;
	if (v->text == NULL)
		return oom(r);
	if (!advance(r))
		return false;
	return r->tok.kind == SQLX_T_TYPECAST ? refuse(r, "cast of a number")
	                                      : true;
}

static bool parse_keyword_value(struct rec *r, struct sqlr_value *v)
{
	if (is_kw(r, "null"))
		return parse_castable(r, v);
	if (is_kw(r, "true") || is_kw(r, "false")) {
		v->kind = SQLR_V_BOOL;
		v->text = is_kw(r, "true") ? "t" : "f";
		v->len = 1;
		if (!advance(r))
			return false;
		return r->tok.kind == SQLX_T_TYPECAST
		           ? refuse(r, "cast of a boolean")
		           : true;
	}
	if (is_kw(r, "cast"))
		return parse_cast_fn(r, v);
	if (is_kw(r, "default"))
		return refuse(r, "DEFAULT");
	if (sqlx_keyword_reserved(r->tok.text))
		return refuse(r, "expression");
	return parse_typed_string(r, v);
}

static bool parse_value(struct rec *r)
{
	struct sqlr_value v = {.kind = SQLR_V_NULL, .text = ""};
	bool ok;

	switch (r->tok.kind) {
	case SQLX_T_IDENT:
		ok = parse_keyword_value(r, &v);
		break;
	case SQLX_T_QIDENT:
		ok = parse_typed_string(r, &v);
		break;
	case SQLX_T_STRING:
	case SQLX_T_PARAM:
		ok = parse_castable(r, &v);
		break;
	case SQLX_T_INTEGER:
	case SQLX_T_DECIMAL:
		ok = parse_number(r, &v);
		break;
	case SQLX_T_OP:
		ok = (strcmp(r->tok.text, "-") == 0 ||
		      strcmp(r->tok.text, "+") == 0)
		         ? parse_number(r, &v)
		         : refuse(r, "operator in a value");
		break;
	case SQLX_T_BITSTRING:
		return refuse(r, "bit string constant");
	case SQLX_T_NATIONAL:
		return refuse(r, "N'' string constant");
	default:
		return refuse(r, is_punct(r, '(') ? "subquery or parentheses"
		                                  : "not a literal value");
	}
	return ok && push_value(r, &v);
}

/* ---- INSERT ---- */

/* VALUES (v, ...) [, (v, ...)] ... all of one width. */
static bool parse_rows(struct rec *r)
{
	struct sqlr_stmt *st = &r->box->st;
	size_t width;

	do {
		if (!advance(r) ||
		    !expect_punct(r, '(', "VALUES: '(' expected"))
			return false;
		width = 0;
		do {
			if (width > 0 && !advance(r))
				return false;
			if (!parse_value(r))
				return false;
			width++;
		} while (is_punct(r, ','));
		if (!is_punct(r, ')'))
			return refuse(r, "expression");
		if (st->nrows > 0 && width != st->width)
			return refuse(r, "VALUES rows of different widths");
		st->width = width;
		st->nrows++;
	} while (advance(r) && is_punct(r, ','));
	if (r->why->reason != NULL)
		return false;
	if (st->ncols > 0 && st->width != st->ncols)
		return refuse(r, "VALUES width differs from the column list");
	return true;
}

/* SET c = EXCLUDED.c [, ...] */
static bool parse_set_list(struct rec *r)
{
	struct sqlr_stmt *st = &r->box->st;
	const char *const *keep;
	const char *col, *src;

	if (strcmp(st->alias != NULL ? st->alias : st->table, "excluded") == 0)
		return refuse(r, "table or alias named excluded");
	list_start(r);
	do {
		if (st->nset > 0 && !advance(r))
			return false;
		if (!parse_name(r, &col))
			return false;
		if (r->tok.kind != SQLX_T_OP || strcmp(r->tok.text, "=") != 0)
			return refuse(r, "SET: '=' expected");
		if (!advance(r))
			return false;
		if ((r->tok.kind != SQLX_T_IDENT &&
		     r->tok.kind != SQLX_T_QIDENT) ||
		    strcmp(r->tok.text, "excluded") != 0)
			return refuse(r,
			              "SET value other than EXCLUDED.column");
		if (!advance(r) ||
		    !expect_punct(r, '.', "EXCLUDED. expected") ||
		    !parse_name(r, &src))
			return false;
		if (strcmp(col, src) != 0)
			return refuse(r, "SET c = EXCLUDED.other column");
		if (!list_add(r, col, &st->nset))
			return false;
	} while (is_punct(r, ','));
	keep = list_end(r, st->nset);
	st->set_cols = keep;
	return keep != NULL;
}

/* ON CONFLICT (keys) DO NOTHING | DO UPDATE SET c = EXCLUDED.c, ... */
static bool parse_conflict(struct rec *r)
{
	struct sqlr_stmt *st = &r->box->st;
	bool ok = true;

	if (!advance(r) || !expect_kw(r, "conflict", "ON CONFLICT expected"))
		return false;
	if (is_kw(r, "on"))
		return refuse(r, "ON CONFLICT ON CONSTRAINT");
	if (!is_punct(r, '('))
		return refuse(r, "ON CONFLICT without a column list");
	if (!parse_name_list(r, &st->nkeys, &st->keys))
		return false;
	if (is_kw(r, "where"))
		return refuse(r, "ON CONFLICT ... WHERE");
	if (!expect_kw(r, "do", "ON CONFLICT: DO expected"))
		return false;
	if (take_kw(r, "nothing", &ok)) {
		st->conflict = SQLR_DO_NOTHING;
		return ok;
	}
	if (!expect_kw(r, "update", "DO NOTHING or DO UPDATE expected") ||
	    !expect_kw(r, "set", "DO UPDATE: SET expected"))
		return false;
	st->conflict = SQLR_DO_UPDATE;
	if (is_punct(r, '('))
		return refuse(r, "SET (columns) = ...");
	if (!parse_set_list(r))
		return false;
	return is_kw(r, "where") ? refuse(r, "DO UPDATE ... WHERE") : true;
}

/* Why the word after the table (or its column list) is not VALUES. */
static const char *not_values(const struct rec *r)
{
	if (is_kw(r, "default"))
		return "DEFAULT VALUES";
	if (is_kw(r, "select") || is_kw(r, "table") || is_punct(r, '('))
		return "INSERT ... SELECT";
	if (is_kw(r, "overriding"))
		return "OVERRIDING";
	return "VALUES expected";
}

static bool parse_insert(struct rec *r)
{
	struct sqlr_stmt *st = &r->box->st;
	bool ok = true;

	st->kind = SQLR_INSERT;
	if (!advance(r) || !expect_kw(r, "into", "INSERT: INTO expected") ||
	    !parse_qualified(r))
		return false;
	if (take_kw(r, "as", &ok) && (!ok || !parse_name(r, &st->alias)))
		return false;
	if (is_punct(r, '(') && !parse_name_list(r, &st->ncols, &st->cols))
		return false;
	if (!is_kw(r, "values"))
		return refuse(r, not_values(r));
	if (!parse_rows(r))
		return false;
	if (is_kw(r, "on") && !parse_conflict(r))
		return false;
	if (is_kw(r, "returning"))
		return refuse(r, "RETURNING");
	return true;
}

/* ---- COPY ---- */

/* Which options a COPY gave, to refuse one given twice. */
enum copy_opt {
	OPT_FORMAT = 1,
	OPT_DELIMITER = 2,
	OPT_NULL = 4,
	OPT_HEADER = 8,
	OPT_QUOTE = 16,
	OPT_ESCAPE = 32
};

static bool copy_seen(struct rec *r, unsigned *seen, unsigned opt)
{
	if (*seen & opt)
		return refuse(r, "COPY option given twice");
	*seen |= opt;
	return true;
}

/* A one-byte ASCII string option value, e.g. DELIMITER ','. */
static bool copy_char(struct rec *r, char *out)
{
	if (r->tok.kind != SQLX_T_STRING || r->tok.len != 1 ||
	    (unsigned char)r->tok.text[0] >= 0x80)
		return refuse(r, "COPY: one-byte character expected");
	*out = r->tok.text[0];
	return advance(r);
}

static bool copy_null_str(struct rec *r)
{
	if (r->tok.kind != SQLX_T_STRING)
		return refuse(r, "COPY NULL: string expected");
	r->box->st.copy.null_str = keep_text(r);
	return r->box->st.copy.null_str != NULL && advance(r);
}

/* HEADER [true | false | on | off | 1 | 0] (the old form: no value) */
static bool copy_header(struct rec *r, bool value)
{
	struct sqlr_copy *c = &r->box->st.copy;
	const char *t;

	c->header = true;
	if (!advance(r) || !value)
		return r->why->reason == NULL;
	t = r->tok.text;
	if (r->tok.kind == SQLX_T_INTEGER && r->tok.len == 1 &&
	    (t[0] == '0' || t[0] == '1')) {
		c->header = t[0] == '1';
		return advance(r);
	}
	if (r->tok.kind != SQLX_T_IDENT)
		return true;
	if (strcmp(t, "true") == 0 || strcmp(t, "on") == 0)
		return advance(r);
	if (strcmp(t, "false") == 0 || strcmp(t, "off") == 0) {
		c->header = false;
		return advance(r);
	}
	return refuse(r, "COPY HEADER: boolean expected");
}

static bool copy_format(struct rec *r)
{
	const char *t = r->tok.text;

	if (r->tok.kind != SQLX_T_IDENT && r->tok.kind != SQLX_T_STRING)
		return refuse(r, "COPY FORMAT: name expected");
	if (strcmp(t, "csv") == 0)
		r->box->st.copy.format = SQLR_CSV;
	else if (strcmp(t, "text") == 0)
		r->box->st.copy.format = SQLR_TEXT;
	else
		return refuse(r, "COPY FORMAT other than text or csv");
	return advance(r);
}

/* The options the recognizer models, in both forms. */
static const struct {
	const char *name;
	unsigned opt;
} copy_opts[] = {{"format", OPT_FORMAT}, {"delimiter", OPT_DELIMITER},
                 {"null", OPT_NULL},     {"header", OPT_HEADER},
                 {"quote", OPT_QUOTE},   {"escape", OPT_ESCAPE}};

/* The current token as a modelled option name (consumed), or 0. */
static unsigned copy_opt_name(struct rec *r, unsigned *seen)
{
	size_t n = sizeof(copy_opts) / sizeof(copy_opts[0]);

	if (r->tok.kind != SQLX_T_IDENT)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(r->tok.text, copy_opts[i].name) == 0)
			return copy_seen(r, seen, copy_opts[i].opt)
			           ? copy_opts[i].opt
			           : 0;
	return 0;
}

/* The value of a DELIMITER, NULL, QUOTE or ESCAPE option. */
static bool copy_value(struct rec *r, unsigned opt)
{
	struct sqlr_copy *c = &r->box->st.copy;

	if (opt == OPT_NULL)
		return copy_null_str(r);
	return copy_char(r, opt == OPT_DELIMITER ? &c->delimiter
	                    : opt == OPT_QUOTE   ? &c->quote
	                                         : &c->escape);
}

/* name [value], in (FORMAT csv, HEADER, ...) */
static bool copy_new_opt(struct rec *r, unsigned *seen)
{
	unsigned opt = copy_opt_name(r, seen);

	if (opt == 0)
		return refuse(r, "COPY option not modelled");
	if (opt == OPT_HEADER)
		return copy_header(r, true);
	if (!advance(r))
		return false;
	return opt == OPT_FORMAT ? copy_format(r) : copy_value(r, opt);
}

/* CSV, HEADER, DELIMITER [AS] 'c', NULL [AS] 's', QUOTE..., ESCAPE... */
static bool copy_old_opt(struct rec *r, unsigned *seen)
{
	unsigned opt;
	bool ok = true;

	if (is_kw(r, "csv")) {
		if (!copy_seen(r, seen, OPT_FORMAT))
			return false;
		r->box->st.copy.format = SQLR_CSV;
		return advance(r);
	}
	opt = copy_opt_name(r, seen);
	if (opt == 0 || opt == OPT_FORMAT)
		return refuse(r, "COPY option not modelled");
	if (opt == OPT_HEADER)
		return copy_header(r, false);
	if (!advance(r) || (take_kw(r, "as", &ok) && !ok))
		return false;
	return copy_value(r, opt);
}

/* PostgreSQL's checks of the options (ProcessCopyOptions), and defaults. */
static bool copy_finish(struct rec *r, unsigned seen)
{
	struct sqlr_copy *c = &r->box->st.copy;
	bool csv = c->format == SQLR_CSV;

	if (!csv && (seen & (OPT_QUOTE | OPT_ESCAPE)) != 0)
		return refuse(r, "COPY QUOTE or ESCAPE without CSV");
	if (!csv && (seen & OPT_HEADER) != 0)
		return refuse(r, "COPY HEADER in text format");
	if ((seen & OPT_DELIMITER) == 0)
		c->delimiter = csv ? ',' : '\t';
	if ((seen & OPT_NULL) == 0)
		c->null_str = csv ? "" : "\\N";
	if (csv && c->quote == 0)
		c->quote = '"';
	if (csv && c->escape == 0)
		c->escape = c->quote;
	if (c->delimiter == '\r' || c->delimiter == '\n' ||
	    (!csv && strchr("\\.abcdefghijklmnopqrstuvwxyz0123456789",
	                    c->delimiter) != NULL))
		return refuse(r, "COPY delimiter not allowed");
	if (strpbrk(c->null_str, "\r\n") != NULL ||
	    strchr(c->null_str, c->delimiter) != NULL ||
	    (csv && strchr(c->null_str, c->quote) != NULL))
		return refuse(r, "COPY NULL string not allowed");
	if (csv && c->delimiter == c->quote)
		return refuse(r, "COPY delimiter and quote are the same");
	return true;
}

static bool copy_options(struct rec *r)
{
	unsigned seen = 0;
	bool ok = true;

	if (take_kw(r, "with", &ok) && !ok)
		return false;
	if (is_punct(r, '(')) {
		do {
			if (!advance(r) || !copy_new_opt(r, &seen))
				return false;
		} while (is_punct(r, ','));
		if (!expect_punct(r, ')', "COPY options: ')' expected"))
			return false;
	} else {
		while (r->tok.kind == SQLX_T_IDENT && !is_kw(r, "where"))
			if (!copy_old_opt(r, &seen))
				return false;
	}
	if (is_kw(r, "where"))
		return refuse(r, "COPY ... WHERE");
	return copy_finish(r, seen);
}

static bool parse_copy(struct rec *r)
{
	struct sqlr_stmt *st = &r->box->st;

	st->kind = SQLR_COPY;
	if (!advance(r))
		return false;
	if (is_punct(r, '('))
		return refuse(r, "COPY (query)");
	if (is_kw(r, "binary"))
		return refuse(r, "COPY BINARY");
	if (!parse_qualified(r))
		return false;
	if (is_punct(r, '(') && !parse_name_list(r, &st->ncols, &st->cols))
		return false;
	if (is_kw(r, "to"))
		return refuse(r, "COPY TO");
	if (!expect_kw(r, "from", "COPY: FROM expected"))
		return false;
	if (r->tok.kind == SQLX_T_STRING)
		return refuse(r, "COPY FROM a file");
	if (is_kw(r, "program"))
		return refuse(r, "COPY FROM PROGRAM");
	if (!expect_kw(r, "stdin", "COPY: FROM STDIN expected"))
		return false;
	return copy_options(r);
}

/* ---- statements ---- */

static bool parse_statement(struct rec *r)
{
	bool ok;

	if (is_kw(r, "insert"))
		ok = parse_insert(r);
	else if (is_kw(r, "copy"))
		ok = parse_copy(r);
	else if (is_kw(r, "with"))
		return refuse(r, "WITH");
	else
		return refuse(r, "not INSERT or COPY");
	if (!ok)
		return false;
	while (is_punct(r, ';'))
		if (!advance(r))
			return false;
	if (r->tok.kind != SQLX_T_END)
		return refuse(r,
		              r->box->st.kind == SQLR_INSERT
		                  ? "more than one statement or an expression"
		                  : "more than one statement or an option");
	return true;
}

/* The values gathered in r->vals, into an array in the box. */
static bool keep_values(struct rec *r)
{
	size_t n = evbuffer_get_length(r->vals);
	struct sqlr_value *v;

	if (n == 0)
		return true;
	v = box_alloc(r->box, n);
	if (v == NULL)
		return oom(r);
	evbuffer_remove(r->vals, v, n);
	r->box->st.values = v;
	return true;
}

static bool rec_init(struct rec *r, const uint8_t *sql, size_t len,
                     struct sqlr_why *why)
{
	memset(r, 0, sizeof(*r));
	r->why = why;
	r->box = calloc(1, sizeof(*r->box));
	r->lx = sqlx_lexer_new(sql, len);
	r->vals = evbuffer_new();
	r->names = evbuffer_new();
	r->type = evbuffer_new();
	return r->box != NULL && r->lx != NULL && r->vals != NULL &&
	       r->names != NULL && r->type != NULL;
}

static void rec_done(struct rec *r)
{
	sqlx_lexer_free(r->lx);
	if (r->vals != NULL)
		evbuffer_free(r->vals);
	if (r->names != NULL)
		evbuffer_free(r->names);
	if (r->type != NULL)
		evbuffer_free(r->type);
}

enum sqlr_rc sqlr_recognize(const uint8_t *sql, size_t len,
                            struct sqlr_stmt **out, struct sqlr_why *why)
{
	struct rec r;
	bool ok;

	*out = NULL;
	*why = (struct sqlr_why){.reason = NULL, .offset = 0, .lex = SQLX_OK};
	if (!rec_init(&r, sql, len, why)) {
		ok = oom(&r);
	} else {
		ok = advance(&r) && parse_statement(&r) && keep_values(&r);
	}
	rec_done(&r);
	if (ok) {
		*out = &r.box->st;
		return SQLR_OK;
	}
	sqlr_stmt_free(r.box != NULL ? &r.box->st : NULL);
	return r.nomem ? SQLR_NOMEM : SQLR_REFUSED;
}

/* ---- splitting a Query ---- */

enum sqlx_rc sqlr_split(const uint8_t *sql, size_t len, struct sqlr_span *spans,
                        size_t max, size_t *n)
{
	struct sqlx_lexer *lx = sqlx_lexer_new(sql, len);
	struct sqlx_token t;
	struct sqlr_span cur = {0, 0};
	bool open = false;
	enum sqlx_rc rc;

	*n = 0;
	if (lx == NULL)
		return SQLX_E_NOMEM;
	while ((rc = sqlx_next(lx, &t)) == SQLX_OK) {
		bool semi = t.kind == SQLX_T_PUNCT && t.text[0] == ';';

		if (open && (semi || t.kind == SQLX_T_END)) {
			if (*n < max)
				spans[*n] = cur;
			(*n)++;
			open = false;
		} else if (!semi && t.kind != SQLX_T_END) {
			if (!open)
				cur.start = t.start;
			cur.end = t.end;
			open = true;
		}
		if (t.kind == SQLX_T_END)
			break;
	}
	sqlx_lexer_free(lx);
	return rc;
}

/* ---- values as COPY fields ---- */

bool sqlr_value_copy_text(const struct sqlr_value *v, struct evbuffer *out)
{
	if (v->kind == SQLR_V_PARAM)
		return false;
	if (v->kind == SQLR_V_NULL)
		return evbuffer_add(out, "\\N", 2) == 0;
	return ct_escape((const uint8_t *)v->text, v->len, out);
}

bool sqlr_value_copy_csv(const struct sqlr_value *v, struct evbuffer *out)
{
	const char *s = v->text;
	size_t i = 0, j;

	if (v->kind == SQLR_V_PARAM)
		return false;
	if (v->kind == SQLR_V_NULL)
		return true;
	if (v->kind != SQLR_V_STRING)
		return evbuffer_add(out, s, v->len) == 0;
	if (evbuffer_add(out, "\"", 1) != 0)
		return false;
	while (i < v->len) {
		const char *q = memchr(s + i, '"', v->len - i);

		j = q != NULL ? (size_t)(q - s) + 1 : v->len;
		if (evbuffer_add(out, s + i, j - i) != 0)
			return false;
		if (q != NULL && evbuffer_add(out, "\"", 1) != 0)
			return false;
		i = j;
	}
	return evbuffer_add(out, "\"", 1) == 0;
}
