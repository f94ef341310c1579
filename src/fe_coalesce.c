/* fe_coalesce.c: front-door INSERTs written by the coalescer: which
 * message sequences qualify, the checks against the table, the flush unit
 * they become, and the answers the server would have given. */
#include "fe_coalesce_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "bytes.h"
#include "pgbinary.h"
#include "sqlfit.h"
#include "timer.h"

/*
 * A sequence is one Query, or the extended-protocol messages up to and
 * including a Sync (Parse, Bind, Describe, Execute, Close, Flush). It is
 * looked at whole, in the client's input buffer, before anything of it is
 * consumed: if any part is not coalescible the whole goes to a server as
 * it came. Otherwise it becomes one flush unit (PostgreSQL runs the
 * Executes before a Sync as one implicit transaction: all or nothing, as
 * the unit) and the client gets, once the unit is done, exactly the
 * messages the server would have sent.
 */

/* ---- statements ---- */

static void stmt_clear(struct fco_stmt *s)
{
	free(s->name);
	sqlr_stmt_free(s->st);
	free(s->types);
}

void fco_seq_free(struct fco_seq *q)
{
	for (size_t i = 0; i < q->nstmts; i++)
		stmt_clear(&q->stmts[i]);
	free(q->stmts);
	free(q->begin_name);
	free(q->query);
	co_target_put(q->target);
	free(q->ops);
	free(q->execs);
	if (q->answers != NULL)
		evbuffer_free(q->answers);
	if (q->rows != NULL)
		evbuffer_free(q->rows);
	if (q->tail != NULL)
		evbuffer_free(q->tail);
	if (q->raw != NULL)
		evbuffer_free(q->raw);
	free(q);
}

/* COPY FROM STDIN in a Query, in the text or CSV format's defaults. */
static bool copy_fits(const struct sqlr_stmt *st, const char *name)
{
	const struct sqlr_copy *c = &st->copy;

	if (name != NULL || st->kind != SQLR_COPY || c->header)
		return false;
	if (c->format == SQLR_CSV)
		return c->delimiter == ',' && c->quote == '"' &&
		       c->escape == '"' && c->null_str[0] == '\0';
	return c->delimiter == '\t' && strcmp(c->null_str, "\\N") == 0;
}

/*
 * Adds the statement of a Parse body (after the name) under name (NULL: a
 * Query's text). -1 when it is not coalescible or on OOM.
 */
static int add_stmt(struct fco_seq *q, const char *name, const uint8_t *sql,
                    size_t sql_len, const struct pgw_parse_msg *m)
{
	struct fco_stmt *v, *s;
	struct sqlr_why why;

	v = realloc(q->stmts, (q->nstmts + 1) * sizeof(*v));
	if (v == NULL)
		return -1;
	q->stmts = v;
	s = &v[q->nstmts];
	memset(s, 0, sizeof(*s));
	if (sqlr_recognize(sql, sql_len, &s->st, &why) != SQLR_OK ||
	    (s->st->kind != SQLR_INSERT && !copy_fits(s->st, name)))
		goto fail;
	if (name != NULL && (s->name = strdup(name)) == NULL)
		goto fail;
	if (m != NULL && m->ntypes > 0) {
		s->types = calloc(m->ntypes, sizeof(*s->types));
		if (s->types == NULL)
			goto fail;
		s->ntypes = m->ntypes;
		for (uint16_t i = 0; i < m->ntypes; i++)
			s->types[i] = get_be32(m->types + 4 * i);
	}
	s->nparams =
	    s->ntypes > s->st->max_param ? s->ntypes : s->st->max_param;
	return (int)q->nstmts++;
fail:
	stmt_clear(s);
	return -1;
}

/* A Parse body kept from before (the client's named or unnamed one). */
static int add_kept_stmt(struct fco_seq *q, const char *name,
                         const uint8_t *rest, size_t len)
{
	struct pgw_parse_msg m;

	if (pgw_parse_parse_rest(rest, len, &m) != PGW_OK)
		return -1;
	return add_stmt(q, name, (const uint8_t *)m.query, strlen(m.query), &m);
}

/* The statement a Bind or Describe names: this sequence's, else kept. */
static int find_stmt(struct fco_seq *q, const char *name)
{
	const struct fps_stmt *kept;

	for (size_t i = q->nstmts; i-- > 0;) {
		if (q->stmts[i].name != NULL &&
		    strcmp(q->stmts[i].name, name) == 0)
			return (int)i;
	}
	if (name[0] == '\0')
		return q->cl->co_unnamed_len == 0
		           ? -1
		           : add_kept_stmt(q, "", q->cl->co_unnamed,
		                           q->cl->co_unnamed_len);
	kept = q->cl->stmts ? fps_client_find(q->cl->stmts, name) : NULL;
	return kept == NULL ? -1
	                    : add_kept_stmt(q, name, kept->parse_rest,
	                                    kept->parse_rest_len);
}

/* ---- the first look: which messages, which statements ---- */

static bool add_op(struct fco_seq *q, uint8_t type, int stmt, char kind)
{
	struct fco_op *v = realloc(q->ops, (q->nops + 1) * sizeof(*v));

	if (v == NULL)
		return false;
	q->ops = v;
	v[q->nops++] = (struct fco_op){type, stmt, kind};
	return true;
}

/*
 * pgJDBC sends a transaction's BEGIN (Parse, Bind and Execute, later Bind
 * and Execute of the statement kept under a name) before the first
 * statement, in the same sequence. With coalesce_transactions, such a
 * sequence starts a coalesced transaction.
 */
static bool begin_may_come(const struct fco_seq *q)
{
	return q->fe->cfg.coalesce_transactions && q->cl->co_txn == NULL &&
	       (q->nops == 0 || (q->nops == 1 && q->ops[0].stmt == STMT_BEGIN));
}

static bool is_begin(const uint8_t *rest, size_t len)
{
	struct pgw_parse_msg m;

	return pgw_parse_parse_rest(rest, len, &m) == PGW_OK && m.ntypes == 0 &&
	       sqlf_txn_control((const uint8_t *)m.query, strlen(m.query)) ==
	           SQLF_TXC_BEGIN;
}

/* Does a Bind of name bind that BEGIN? */
static bool binds_begin(struct fco_seq *q, const char *name)
{
	const struct fps_stmt *kept;

	if (!begin_may_come(q))
		return false;
	if (q->begin_name != NULL)
		return strcmp(q->begin_name, name) == 0;
	if (name[0] == '\0')
		return q->cl->co_unnamed_len > 0 &&
		       is_begin(q->cl->co_unnamed, q->cl->co_unnamed_len);
	kept = q->cl->stmts ? fps_client_find(q->cl->stmts, name) : NULL;
	return kept != NULL && is_begin(kept->parse_rest, kept->parse_rest_len);
}

/* A Parse; false: not coalescible (or OOM). */
static bool look_at_parse(struct fco_seq *q, const struct pgw_frame *f)
{
	struct pgw_parse_msg pm;
	int s;

	if (pgw_parse_parse(f, &pm) != PGW_OK)
		return false;
	if (pm.name[0] != '\0' &&
	    (q->fe->cfg.max_prepared_statements == 0 ||
	     fps_client_find(q->cl->stmts, pm.name) != NULL))
		return false;
	if (q->nops == 0 && begin_may_come(q) &&
	    is_begin(pm.rest, pm.rest_len)) {
		q->begin_name = strdup(pm.name);
		return q->begin_name != NULL &&
		       add_op(q, f->type, STMT_BEGIN, 0);
	}
	if (q->begin_name != NULL && strcmp(q->begin_name, pm.name) == 0) {
		free(q->begin_name); /* no longer the BEGIN */
		q->begin_name = NULL;
	}
	s = add_stmt(q, pm.name, (const uint8_t *)pm.query, strlen(pm.query),
	             &pm);
	return s >= 0 && add_op(q, f->type, s, 0);
}

/* A Bind of the unnamed portal; *portal: what it binds. */
static bool look_at_bind(struct fco_seq *q, const struct pgw_frame *f,
                         int *portal)
{
	struct pgw_bind_msg bm;
	uint16_t n;

	if (pgw_parse_bind(f, &bm) != PGW_OK || bm.portal[0] != '\0')
		return false;
	if (binds_begin(q, bm.statement)) {
		*portal = STMT_BEGIN;
		return pgw_bind_count(&bm, &n) == PGW_OK && n == 0 &&
		       add_op(q, f->type, STMT_BEGIN, 0);
	}
	*portal = find_stmt(q, bm.statement);
	return *portal >= 0 && add_op(q, f->type, *portal, 0);
}

/* One message; false: not coalescible (or OOM). *portal: the unnamed
 * portal's statement (-1: none). */
static bool look_at(struct fco_seq *q, const struct pgw_frame *f, int *portal)
{
	const char *name;
	char kind = 0;
	int s = -1;

	switch (f->type) {
	case PGW_FE_QUERY:
		if (f->len == 0 || f->body[f->len - 1] != '\0')
			return false;
		s = add_stmt(q, NULL, f->body, f->len - 1, NULL);
		return s >= 0 && q->stmts[s].st->max_param == 0 &&
		       add_op(q, f->type, s, 0);
	case PGW_FE_PARSE:
		return look_at_parse(q, f);
	case PGW_FE_BIND:
		return look_at_bind(q, f, portal);
	case PGW_FE_DESCRIBE:
	case PGW_FE_CLOSE:
		if (pgw_parse_target(f, &kind, &name) != PGW_OK)
			return false;
		if (kind == 'P' && name[0] != '\0')
			return false; /* only the unnamed portal is ours */
		if (kind == 'S' && f->type == PGW_FE_DESCRIBE &&
		    (s = find_stmt(q, name)) < 0)
			return false;
		if (f->type == PGW_FE_DESCRIBE && kind == 'P' && *portal == -1)
			return false;
		if (f->type == PGW_FE_CLOSE && kind == 'P')
			*portal = -1;
		return add_op(q, f->type, s, kind);
	case PGW_FE_EXECUTE:
		if (f->len < 1 || f->body[0] != '\0' || *portal == -1)
			return false;
		s = *portal == STMT_BEGIN ? STMT_BEGIN : -1;
		q->begin |= s == STMT_BEGIN;
		break;
	case PGW_FE_FLUSH:
	case PGW_FE_SYNC:
		break;
	default:
		return false;
	}
	return add_op(q, f->type, s, kind);
}

static bool same_names(const char *const *a, const char *const *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(a[i], b[i]) != 0)
			return false;
	}
	return true;
}

/* Every statement writes the same table the same way (one target). */
static bool one_target(const struct fco_seq *q)
{
	const struct sqlr_stmt *a = q->stmts[0].st;

	for (size_t i = 1; i < q->nstmts; i++) {
		const struct sqlr_stmt *b = q->stmts[i].st;

		if ((a->schema == NULL) != (b->schema == NULL) ||
		    (a->schema && strcmp(a->schema, b->schema) != 0) ||
		    strcmp(a->table, b->table) != 0 || a->ncols != b->ncols ||
		    a->width != b->width || a->conflict != b->conflict ||
		    a->nkeys != b->nkeys || a->nset != b->nset ||
		    !same_names(a->cols, b->cols, a->ncols) ||
		    !same_names(a->keys, b->keys, a->nkeys) ||
		    !same_names(a->set_cols, b->set_cols, a->nset))
			return false;
	}
	return true;
}

/*
 * A Bind parameter as the COPY field of a column of type col (declared:
 * its Parse type, 0 when the server infers it from the column). false when
 * COPY would not store what the INSERT would: forward the statement.
 */
static bool put_param(uint32_t declared, const struct pgw_bind_value *p,
                      const char *col, struct evbuffer *out)
{
	enum pgb_type ct = pgb_type_from_name(col), pt = ct;
	size_t len = p->len < 0 ? 0 : (size_t)p->len;

	if (p->len < 0)
		return evbuffer_add(out, "\\N", 2) == 0;
	if (declared != SQLF_OID_UNSPECIFIED && declared != SQLF_OID_UNKNOWN) {
		pt = pgb_type_from_oid(declared);
		if (!pgb_param_fits(pt, ct))
			return false;
		if (p->format == 0 && pt != ct &&
		    (pt == PGB_INT2 || pt == PGB_INT4 || pt == PGB_INT8) &&
		    !sqlf_int_text_in_range(pt, p->data, (size_t)p->len))
			return false;
	}
	if (p->format == 0)
		return pgb_text_to_copy_text(p->data, len, out, NULL, 0);
	return pt != PGB_UNKNOWN &&
	       pgb_binary_to_copy_text(pt, p->data, len, out, NULL, 0);
}

/* ---- the target ---- */

static void target_clear(struct fco_target *g)
{
	free(g->cols);
	free(g->types);
	free(g->is_key);
}

static const struct cat_column *exact_column(const struct cat_table *t,
                                             const char *name)
{
	for (size_t i = 0; i < t->ncols; i++) {
		if (strcmp(t->cols[i].name, name) == 0)
			return &t->cols[i];
	}
	return NULL;
}

static bool in_names(const char *const *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i], name) == 0)
			return true;
	}
	return false;
}

/* ON CONFLICT (keys) DO UPDATE SET every other column: an upsert. */
static bool upsert_fits(struct fco_target *g, const struct sqlr_stmt *st)
{
	size_t others = 0;

	if (!cat_has_unique(g->t, st->keys, st->nkeys))
		return false;
	g->is_key = calloc(g->ncols, sizeof(*g->is_key));
	if (g->is_key == NULL)
		return false;
	for (size_t k = 0; k < st->nkeys; k++) {
		if (!in_names(g->cols, g->ncols, st->keys[k]))
			return false;
	}
	g->upsert = true;
	g->first_wins = st->conflict == SQLR_DO_NOTHING;
	for (size_t i = 0; i < g->ncols; i++) {
		g->is_key[i] = in_names(st->keys, st->nkeys, g->cols[i]);
		if (g->is_key[i] || g->first_wins)
			continue;
		others++;
		if (!in_names(st->set_cols, st->nset, g->cols[i]))
			return false;
	}
	return g->first_wins || others == st->nset;
}

/* The columns COPY without a column list writes: all but generated. */
static size_t stored_columns(const struct cat_table *t)
{
	size_t n = 0;

	for (size_t i = 0; i < t->ncols; i++)
		n += !t->cols[i].generated;
	return n;
}

/* The columns written and their types. false: forward the sequence. */
static bool resolve_target(struct fco_target *g, const struct cat_table *t,
                           const struct sqlr_stmt *st)
{
	bool copy = st->kind == SQLR_COPY;

	memset(g, 0, sizeof(*g));
	g->t = t;
	g->ncols = st->ncols ? st->ncols : copy ? stored_columns(t) : st->width;
	if (strcmp(t->rel_name, st->table) != 0 ||
	    (st->schema != NULL && strcmp(t->rel_schema, st->schema) != 0) ||
	    !sql_ident_valid(t->rel_name) || !sql_ident_valid(t->rel_schema) ||
	    g->ncols > t->ncols || g->ncols == 0)
		return false;
	/* COPY ignores rules, fires statement triggers once per batch */
	if (t->has_rules || t->statement_triggers)
		return false;
	g->cols = calloc(g->ncols, sizeof(*g->cols));
	g->types = calloc(g->ncols, sizeof(*g->types));
	if (g->cols == NULL || g->types == NULL)
		return false;
	for (size_t i = 0, k = 0; i < g->ncols; i++, k++) {
		const struct cat_column *c;

		while (copy && !st->ncols && t->cols[k].generated)
			k++; /* COPY without a column list skips them */
		c = st->ncols ? exact_column(t, st->cols[i]) : &t->cols[k];
		/* INSERT refuses a value for an identity column ALWAYS
		 * (428C9), COPY takes it; generated ones: their own error */
		if (c == NULL || !sql_ident_valid(c->name) || c->generated ||
		    (!copy && c->identity_always))
			return false;
		g->cols[i] = c->name;
		g->types[i] = c->type;
	}
	if (st->conflict == SQLR_NO_CONFLICT)
		return true;
	return upsert_fits(g, st);
}

/* ---- rows ---- */

/* The statement's rows with params (NULL for a Query) into q->rows. */
static bool put_rows(struct fco_seq *q, const struct fco_target *g,
                     const struct fco_stmt *s,
                     const struct pgw_bind_value *params)
{
	const struct sqlr_stmt *st = s->st;

	if (g->upsert && !g->first_wins && st->nrows != 1)
		return false; /* the server refuses a key twice in one */
	for (size_t r = 0; r < st->nrows; r++) {
		for (size_t c = 0; c < st->width; c++) {
			const struct sqlr_value *v =
			    &st->values[r * st->width + c];
			bool param = v->kind == SQLR_V_PARAM;
			uint32_t declared = param && v->param <= s->ntypes
			                        ? s->types[v->param - 1]
			                        : SQLF_OID_UNSPECIFIED;
			const struct pgw_bind_value *p =
			    param ? &params[v->param - 1] : NULL;

			bool ok =
			    sqlf_value_fits(v, declared, g->types[c]) &&
			    (c == 0 || evbuffer_add(q->rows, "\t", 1) == 0) &&
			    (param
			         ? put_param(declared, p, g->types[c], q->rows)
			         : sqlr_value_copy_text(v, q->rows));

			if (ok && g->upsert && g->is_key[c] &&
			    (v->kind == SQLR_V_NULL || (p && p->len < 0)))
				ok = false; /* NULL never conflicts */
			if (!ok) {
				snprintf(q->why, sizeof(q->why),
				         "value %zu (%s, declared type %" PRIu32
				         ", format %d) for column %s (%s)",
				         c + 1, param ? "parameter" : "literal",
				         declared, p ? p->format : 0,
				         g->cols[c], g->types[c]);
				return false;
			}
		}
		if (evbuffer_add(q->rows, "\n", 1) != 0)
			return false;
	}
	q->nrows += st->nrows;
	return true;
}

/* ---- answers ---- */

bool fco_put_empty(struct evbuffer *out, uint8_t type)
{
	return pgw_put_pieces(out, type, NULL, 0);
}

static bool put_insert_tag(struct evbuffer *out, uint64_t rows)
{
	char tag[40];
	int n = snprintf(tag, sizeof(tag), "INSERT 0 %" PRIu64, rows);

	return pgw_put_pieces(out, PGW_MSG_COMMAND_COMPLETE,
	                      &(struct pgw_piece){tag, (size_t)n + 1}, 1);
}

/* An Execute's (or Query's) CommandComplete; DO NOTHING's comes later. */
static bool put_insert_done(struct fco_seq *q, uint64_t rows)
{
	struct fco_exec *v = realloc(q->execs, (q->nexecs + 1) * sizeof(*v));

	if (v == NULL)
		return false;
	q->execs = v;
	v[q->nexecs++] = (struct fco_exec){
	    rows, evbuffer_get_length(q->answers), q->first_wins};
	return q->first_wins || put_insert_tag(q->answers, rows);
}

/*
 * ParameterDescription of s: the declared types, else the type of the one
 * column each parameter goes to. false when one cannot be told.
 */
static bool put_param_types(struct fco_seq *q, const struct fco_target *g,
                            const struct fco_stmt *s)
{
	const struct sqlr_stmt *st = s->st;
	uint8_t *buf;
	bool ok;

	if (s->nparams > 65535 || (buf = malloc(2 + 4 * s->nparams)) == NULL)
		return false;
	put_be16(buf, (uint16_t)s->nparams);
	for (size_t i = 0; i < s->nparams; i++) {
		uint32_t oid =
		    i < s->ntypes ? s->types[i] : SQLF_OID_UNSPECIFIED;

		for (size_t k = 0;
		     oid == SQLF_OID_UNSPECIFIED && k < st->nrows * st->width;
		     k++) {
			const struct sqlr_value *v = &st->values[k];

			if (v->kind == SQLR_V_PARAM && v->param == i + 1)
				oid = pgb_type_oid(pgb_type_from_name(
				    g->types[k % st->width]));
		}
		if (oid == SQLF_OID_UNSPECIFIED || oid == SQLF_OID_UNKNOWN) {
			free(buf);
			return false;
		}
		put_be32(buf + 2 + 4 * i, oid);
	}
	ok = pgw_put_pieces(q->answers, 't',
	                    &(struct pgw_piece){buf, 2 + 4 * s->nparams}, 1) &&
	     fco_put_empty(q->answers, 'n');
	free(buf);
	return ok;
}

/* ---- the second look, with the table: rows and answers ---- */

/* The current portal: a bound statement and its parameter values. */
struct fco_portal {
	int stmt;
	struct pgw_bind_value *params;
};

static bool take_bind(struct fco_seq *q, const struct pgw_frame *f,
                      const struct fco_op *op, struct fco_portal *p)
{
	struct pgw_bind_msg bm;
	uint16_t n;

	free(p->params);
	p->params = NULL;
	p->stmt = op->stmt;
	if (pgw_parse_bind(f, &bm) != PGW_OK ||
	    pgw_bind_count(&bm, &n) != PGW_OK ||
	    n != q->stmts[op->stmt].nparams)
		return false; /* the server says what is wrong */
	p->params = calloc(n ? n : 1, sizeof(*p->params));
	return p->params != NULL &&
	       pgw_parse_bind_values(&bm, p->params, n) == PGW_OK &&
	       fco_put_empty(q->answers, '2');
}

/* The answer to one message, and its rows for an Execute or a Query. */
static bool second_look(struct fco_seq *q, const struct fco_target *g,
                        const struct pgw_frame *f, const struct fco_op *op,
                        struct fco_portal *p)
{
	uint64_t before = q->nrows;

	switch (op->type) {
	case PGW_FE_QUERY:
		return put_rows(q, g, &q->stmts[op->stmt], NULL) &&
		       put_insert_done(q, q->nrows - before) &&
		       pgw_put_ready(q->answers, q->status);
	case PGW_FE_PARSE:
		return fco_put_empty(q->answers, '1');
	case PGW_FE_BIND:
		if (op->stmt == STMT_BEGIN) {
			free(p->params);
			p->params = NULL;
			p->stmt = STMT_BEGIN;
			return fco_put_empty(q->answers, '2');
		}
		return take_bind(q, f, op, p);
	case PGW_FE_DESCRIBE:
		return op->kind == 'P'
		           ? fco_put_empty(q->answers, 'n')
		           : put_param_types(q, g, &q->stmts[op->stmt]);
	case PGW_FE_EXECUTE:
		if (p->stmt == STMT_BEGIN)
			return pgw_put_pieces(
			    q->answers, PGW_MSG_COMMAND_COMPLETE,
			    &(struct pgw_piece){"BEGIN", 6}, 1);
		return p->params != NULL &&
		       put_rows(q, g, &q->stmts[p->stmt], p->params) &&
		       put_insert_done(q, q->nrows - before);
	case PGW_FE_CLOSE:
		if (op->kind == 'P') {
			free(p->params);
			p->params = NULL;
		}
		return fco_put_empty(q->answers, '3');
	case PGW_FE_FLUSH:
		return true;
	case PGW_FE_SYNC:
		return pgw_put_ready(q->answers, q->status);
	}
	return false;
}

/* Calls fn on each message of the sequence at the front of in. */
bool fco_each_message(struct fco_seq *q, struct evbuffer *in,
                      bool (*fn)(struct fco_seq *q, size_t i,
                                 const struct pgw_frame *f, void *arg),
                      void *arg)
{
	const uint8_t *base = evbuffer_pullup(in, (ev_ssize_t)q->len);
	size_t off = 0, flen;
	struct pgw_frame f;

	if (base == NULL)
		return false;
	for (size_t i = 0; off < q->len; i++) {
		if (pgw_frame_parse(base + off, q->len - off, FCO_MAX_SEQ, &f,
		                    &flen) != PGW_OK ||
		    !fn(q, i, &f, arg))
			return false;
		off += flen;
	}
	return true;
}

struct second_ctx {
	const struct fco_target *g;
	struct fco_portal portal;
};

static bool second_fn(struct fco_seq *q, size_t i, const struct pgw_frame *f,
                      void *arg)
{
	struct second_ctx *x = arg;

	return i < q->nops && second_look(q, x->g, f, &q->ops[i], &x->portal);
}

bool fco_keep_unnamed(struct fe_client *cl, const uint8_t *rest, size_t len)
{
	if (len > cl->co_unnamed_cap) { /* grows; the next one reuses it */
		uint8_t *v = realloc(cl->co_unnamed, len);

		if (v == NULL)
			return false;
		cl->co_unnamed = v;
		cl->co_unnamed_cap = len;
	}
	memcpy(cl->co_unnamed, rest, len);
	cl->co_unnamed_len = len;
	return true;
}

/* The Parses and Closes of statements, once the sequence is taken. */
bool fco_keep_fn(struct fco_seq *q, size_t i, const struct pgw_frame *f,
                 void *arg)
{
	struct fe_client *cl = q->cl;
	struct pgw_parse_msg pm;
	const char *name;
	char kind;

	(void)i;
	(void)arg;
	if (f->type == PGW_FE_PARSE && pgw_parse_parse(f, &pm) == PGW_OK) {
		if (pm.name[0] != '\0')
			return fps_client_parse(cl->stmts, pm.name, pm.rest,
			                        pm.rest_len) != NULL;
		return fco_keep_unnamed(cl, pm.rest, pm.rest_len);
	}
	if (f->type == PGW_FE_CLOSE &&
	    pgw_parse_target(f, &kind, &name) == PGW_OK && kind == 'S') {
		if (name[0] != '\0') {
			fps_client_close(cl->stmts, name);
		} else {
			cl->co_unnamed_len = 0; /* closed: there is none */
		}
	}
	return true;
}

/* ---- the unit and its outcome ---- */

void fco_relay_rest(struct fe_client *cl);

/* Which Execute holds the unit's 1-based row (0: the first one). */
static size_t exec_of_row(const struct fco_seq *q, uint64_t row)
{
	uint64_t seen = 0;

	for (size_t j = 0; j < q->nexecs; j++) {
		seen += q->execs[j].rows;
		if (row <= seen)
			return j;
	}
	return q->nexecs ? q->nexecs - 1 : 0;
}

/* The server's error without what belonged to the batch's COPY. */
void fco_put_failure(struct evbuffer *out, const struct co_outcome *o)
{
	struct pgw_notice n = {0};

	if (o->error != NULL) {
		n = *o->error;
		n.where = NULL;
		n.position = n.int_position = n.int_query = NULL;
	} else {
		n.sqlstate = o->sqlstate;
		n.message = o->message;
		n.detail = o->detail && o->detail[0] ? o->detail : NULL;
	}
	if (n.severity == NULL)
		n.severity = n.severity_nl = "ERROR";
	pgw_put_notice(out, PGW_MSG_ERROR, &n);
}

/* What the server would have said: every answer, or up to the failed
 * Execute, its error and ReadyForQuery (the rest was skipped). */
static void answer(struct fe_client *cl, struct fco_seq *q,
                   const struct co_outcome *o)
{
	struct evbuffer *out = fe_out(cl);
	size_t stop = o->sqlstate == NULL ? q->nexecs : exec_of_row(q, o->row);
	size_t sent = 0, at = 0;
	uint64_t first = 0;

	/* DO NOTHING: each Execute's count of the rows that went in */
	for (size_t j = 0; j < stop && j < q->nexecs; j++) {
		const struct fco_exec *e = &q->execs[j];
		uint64_t n = 0;

		for (; o->inserted && at < o->ninserted &&
		       o->inserted[at] < first + e->rows;
		     at++)
			n++;
		if (e->count_later) {
			evbuffer_remove_buffer(q->answers, out,
			                       e->answer_at - sent);
			sent = e->answer_at;
			put_insert_tag(out, o->inserted ? n : e->rows);
		}
		first += e->rows;
	}
	if (o->sqlstate == NULL) {
		evbuffer_add_buffer(out, q->answers);
		return;
	}
	evbuffer_remove_buffer(
	    q->answers, out, (q->nexecs ? q->execs[stop].answer_at : 0) - sent);
	fco_put_failure(out, o);
	pgw_put_ready(out, 'I');
}

void fco_unit_done(const struct co_outcome *o, void *arg)
{
	struct fco_seq *q = arg;
	struct fe_client *cl = q->cl;

	q->fe->stats.co_held_bytes -= q->held;
	if (o->sqlstate != NULL)
		q->fe->stats.co_failed++;
	if (cl == NULL) {
		fco_seq_free(q);
		return;
	}
	cl->co_seq = NULL;
	answer(cl, q, o);
	fco_seq_free(q);
	fco_relay_rest(cl);
}

/* Back to IDLE; the client's next messages are looked at. */
void fco_relay_rest(struct fe_client *cl)
{
	fe_set_state(cl, FE_IDLE);
	if (cl->fe->draining) {
		fe_fail(cl, "57P01", "the proxy is shutting down");
		return;
	}
	if (cl->co_txn != NULL && cl->fe->cfg.idle_transaction_timeout_s > 0)
		timer_add_ms(cl->timer,
		             cl->fe->cfg.idle_transaction_timeout_s * 1000u);
	fe_update_reading(cl);
	event_active(cl->kick, 0, 0);
}

/* A sequence it turns out to be better to relay: to a server, as it is. */
static void forward(struct fe_client *cl, struct fco_seq *q, const char *why)
{
	if (log_get_level() <= LOG_DEBUG)
		fe_log(LOG_DEBUG, cl, "event=coalesce_forward reason=\"%s\"",
		       why);
	cl->co_seq = NULL;
	cl->co_scan = 0;
	cl->fe->stats.co_forwarded++;
	fco_seq_free(q);
	fe_set_state(cl, FE_IDLE);
	fe_relay_to_server(cl);
}

/*
 * The lexer reads strings as the server does only with these; the
 * settings that change how values are read (DateStyle, TimeZone,
 * IntervalStyle) travel with the rows instead (SET LOCAL in the batch).
 */
static bool session_fits(const struct fe_client *cl)
{
	const char *enc = cl->vars[FE_VAR_CLIENT_ENCODING];
	const char *scs = cl->vars[FE_VAR_STD_STRINGS];

	return enc != NULL && strcasecmp(enc, "UTF8") == 0 && scs != NULL &&
	       strcmp(scs, "on") == 0;
}

/* The client's settings that change how COPY reads a value. */
static const enum fe_var value_settings[] = {
    FE_VAR_DATESTYLE, FE_VAR_INTERVALSTYLE, FE_VAR_TIMEZONE};
#define NVALUE_SETTINGS (sizeof(value_settings) / sizeof(value_settings[0]))

static size_t settings_of(const struct fe_client *cl, const char **names,
                          const char **values)
{
	size_t n = 0;

	for (size_t i = 0; i < NVALUE_SETTINGS; i++) {
		if (cl->vars[value_settings[i]] == NULL)
			continue;
		names[n] = fe_var_names[value_settings[i]];
		values[n++] = cl->vars[value_settings[i]];
	}
	return n;
}

/* The coalescer's target for the sequence's table (a reference). */
struct co_target *fco_target_of(struct fco_seq *q, const struct fco_target *g)
{
	struct sql_target def = {
	    .schema = g->t->rel_schema,
	    .table = g->t->rel_name,
	    .mode = g->upsert ? SQL_UPSERT : SQL_INSERT,
	    .ncols = g->ncols,
	    .cols = g->cols,
	    .types = g->types,
	    .nkeys = g->upsert ? q->stmts[0].st->nkeys : 0,
	    .keys = g->upsert ? q->stmts[0].st->keys : NULL,
	    .first_wins = g->first_wins,
	};
	const char *names[NVALUE_SETTINGS], *values[NVALUE_SETTINGS];

	def.nsettings = settings_of(q->cl, names, values);
	def.setting_names = names;
	def.setting_values = values;
	return co_target_get(q->db->co, &def);
}

/* The rows go to the coalescer; false: relay the sequence instead. */
static bool submit(struct fco_seq *q, const struct fco_target *g)
{
	struct frontend *fe = q->fe;
	struct co_target *t;
	size_t bytes = evbuffer_get_length(q->rows);
	bool ok;

	if (fe->stats.co_held_bytes + bytes > fe->cfg.coalesce_buffer_bytes ||
	    (t = fco_target_of(q, g)) == NULL)
		return false;
	mt_add(co_target_metrics(t)->rows_received, q->nrows);
	mt_add(co_target_metrics(t)->bytes_received, bytes);
	ok = co_submit(t, q->rows, q->nrows, fco_unit_done, q);
	co_target_put(t);
	if (ok) {
		q->held = bytes;
		fe->stats.co_held_bytes += bytes;
		fe->stats.co_rows += q->nrows;
	}
	return ok;
}

/*
 * The rows go to the client's coalesced transaction (one its BEGIN starts,
 * maybe), or to the coalescer; none (a Parse and a Describe): nothing to
 * do. NULL, or why the sequence must be relayed instead.
 */
static const char *take_rows(struct fco_seq *q, const struct fco_target *g)
{
	struct fe_client *cl = q->cl;
	const char *why;

	if (q->begin && !fco_txn_new(cl))
		return "out of memory";
	if (cl->co_txn != NULL) {
		why = fco_add_to_txn(q, g);
		if (why != NULL && q->begin)
			fco_txn_free(cl); /* its BEGIN goes to the server too */
		return why;
	}
	if (q->nrows > 0 && !submit(q, g))
		return "coalesce_buffer_bytes reached";
	return NULL;
}

/* The table is known: coalesce the sequence, or relay it. */
static void decide(struct fco_seq *q, const struct cat_table *t)
{
	struct fe_client *cl = q->cl;
	struct evbuffer *in = bufferevent_get_input(cl->bev);
	struct second_ctx x = {.portal = {.stmt = -1}};
	struct fco_target g;
	const char *why = NULL;

	if (q->begin)
		q->status = 'T';
	if (!resolve_target(&g, t, q->stmts[0].st))
		why = "columns or ON CONFLICT do not fit the table";
	else if (!cfg_frontend_coalesce_table(&cl->fe->cfg, t->rel_schema,
	                                      t->rel_name))
		why = "table not in coalesce_tables";
	else if ((q->answers = evbuffer_new()) == NULL ||
	         (q->rows = evbuffer_new()) == NULL)
		why = "out of memory";
	x.g = &g;
	q->first_wins = g.first_wins;
	if (why == NULL && q->stmts[0].st->kind == SQLR_COPY) {
		why = fco_start_copy_in(q, &g);
		target_clear(&g);
		if (why != NULL)
			forward(cl, q, why);
		return;
	}
	if (why == NULL && !fco_each_message(q, in, second_fn, &x))
		why = q->why[0] ? q->why : "a message does not fit";
	free(x.portal.params);
	if (why == NULL)
		why = take_rows(q, &g);
	target_clear(&g);
	if (why != NULL) {
		forward(cl, q, why);
		return;
	}
	if (!fco_each_message(q, in, fco_keep_fn, NULL)) {
		fe_fail(cl, "53200", "out of memory");
		return;
	}
	evbuffer_drain(in, q->len);
	cl->co_scan = 0;
	cl->fe->stats.co_sequences++;
	if (q->nrows == 0 || cl->co_txn != NULL) {
		struct co_outcome done = {0};

		fco_unit_done(&done, q);
	}
}

static void looked_up(const struct cat_table *t, const char *sqlstate,
                      const char *message, void *arg)
{
	struct fco_seq *q = arg;

	(void)sqlstate;
	(void)message;
	q->lookup = NULL;
	if (t == NULL) /* the server will say what is wrong */
		forward(q->cl, q, "no such table");
	else
		decide(q, t);
}

/* ---- looking at an idle client's messages ---- */

/* The coalescer of db, made on first use. */
/* The [batch] limits but dead_letter: a statement's row never leaves it. */
static void co_config_of(const struct frontend *fe, struct co_config *cc)
{
	co_config_from(&fe->batch_cfg, cc);
	cc->dead_letter = false;
}

void fco_reconfigure(struct frontend *fe)
{
	struct fe_db *db;
	struct co_config cc;

	co_config_of(fe, &cc);
	TAILQ_FOREACH(db, &fe->dbs, link)
	{
		if (db->co != NULL) {
			co_set_config(db->co, &cc);
			cat_set_ttl(db->cat, fe->batch_cfg.catalog_ttl_s);
		}
	}
}

static bool db_ready(struct frontend *fe, struct fe_db *db)
{
	struct up_params params;
	struct co_config cc;

	if (db->co != NULL)
		return true;
	if (db->co_pool == NULL) {
		fe_db_params(fe, db, &params);
		db->co_pool =
		    pool_new(fe->base, fe->dns, &params, &fe->pool_cfg);
	}
	if (db->co_pool != NULL && db->cat == NULL)
		db->cat =
		    cat_new(fe->base, db->co_pool, fe->batch_cfg.catalog_ttl_s);
	co_config_of(fe, &cc);
	if (db->cat != NULL)
		db->co = co_new(fe->base, db->co_pool, db->cat, &cc);
	return db->co != NULL;
}

/*
 * Where the sequence at the front of in ends: FCO_TAKEN with *len, FCO_MORE
 * until its last message is in, FCO_FORWARD when it holds a message the
 * proxy does not coalesce, or is too long.
 */
static enum fco_verdict find_end(struct fe_client *cl, struct evbuffer *in,
                                 size_t *len)
{
	size_t have = evbuffer_get_length(in);
	struct evbuffer_ptr at;
	uint8_t h[PGW_HEADER_LEN];

	if (cl->co_scan > have)
		cl->co_scan = 0; /* cannot happen: start again */
	for (;;) {
		size_t end;
		uint32_t mlen;

		if (have - cl->co_scan < sizeof(h))
			return FCO_MORE;
		if (evbuffer_ptr_set(in, &at, cl->co_scan, EVBUFFER_PTR_SET) !=
		        0 ||
		    evbuffer_copyout_from(in, &at, h, sizeof(h)) !=
		        (ev_ssize_t)sizeof(h))
			return FCO_FORWARD;
		mlen = get_be32(h + 1);
		end = cl->co_scan + 1 + (size_t)mlen;
		if (mlen < 4 || end > FCO_MAX_SEQ)
			return FCO_FORWARD;
		if (!strchr("QPBDECHS", h[0]) ||
		    (h[0] == PGW_FE_QUERY && cl->co_scan > 0))
			return FCO_FORWARD;
		if (have < end)
			return FCO_MORE;
		if (h[0] == PGW_FE_FLUSH && cl->co_scan == 0) {
			/* nothing owed before it: a Flush asks for nothing */
			evbuffer_drain(in, end);
			have -= end;
			continue;
		}
		cl->co_scan = end;
		if (h[0] == PGW_FE_QUERY || h[0] == PGW_FE_SYNC) {
			*len = end;
			return FCO_TAKEN;
		}
		/* a Flush with nothing after it: the client waits for
		 * answers the coalescer gives only at commit */
		if (h[0] == PGW_FE_FLUSH && have == end)
			return FCO_FORWARD;
	}
}

static bool first_fn(struct fco_seq *q, size_t i, const struct pgw_frame *f,
                     void *arg)
{
	(void)i;
	return look_at(q, f, arg);
}

/* The first look: every message coalescible, one table. */
static enum fco_verdict first_look(struct fe_client *cl, size_t len)
{
	struct fco_seq *q = calloc(1, sizeof(*q));
	enum fco_verdict v;
	int portal = -1;

	if (q == NULL)
		return FCO_FORWARD;
	q->cl = cl;
	q->fe = cl->fe;
	q->db = cl->db;
	q->len = len;
	q->status = cl->co_txn != NULL ? 'T' : 'I';
	if ((v = fco_control(cl, q)) == FCO_TAKEN)
		return v;
	if (!fco_each_message(q, bufferevent_get_input(cl->bev), first_fn,
	                      &portal) ||
	    q->nstmts == 0 || !one_target(q) || !db_ready(cl->fe, cl->db)) {
		fco_seq_free(q);
		return FCO_FORWARD;
	}
	q->lookup = cat_lookup(cl->db->cat, q->stmts[0].st->schema,
	                       q->stmts[0].st->table, looked_up, q);
	if (q->lookup == NULL) {
		fco_seq_free(q);
		return FCO_FORWARD;
	}
	cl->co_seq = q;
	fe_set_state(cl, FE_COALESCING);
	fe_update_reading(cl);
	return FCO_TAKEN;
}

/*
 * A client's input held past the usual read limit (FE_QUEUE_HIGH) to see
 * its whole sequence counts against coalesce_buffer_bytes with everything
 * else held for coalescing. false: no room, relay the sequence instead.
 */
static bool hold_input(struct fe_client *cl, size_t have)
{
	struct frontend *fe = cl->fe;
	size_t want = have > FE_QUEUE_HIGH ? have : 0;

	fe->stats.co_held_bytes -= cl->co_input_held;
	cl->co_input_held = 0;
	if (fe->stats.co_held_bytes + want > fe->cfg.coalesce_buffer_bytes)
		return false;
	cl->co_input_held = want;
	fe->stats.co_held_bytes += want;
	/* a step at a time: each is counted before it is read */
	bufferevent_setwatermark(cl->bev, EV_READ, 0, have + FE_QUEUE_HIGH);
	return true;
}

static void release_input(struct fe_client *cl)
{
	cl->fe->stats.co_held_bytes -= cl->co_input_held;
	cl->co_input_held = 0;
	bufferevent_setwatermark(cl->bev, EV_READ, 0, FE_QUEUE_HIGH);
}

enum fco_verdict fco_try(struct fe_client *cl)
{
	struct evbuffer *in = bufferevent_get_input(cl->bev);
	const char *why = NULL;
	enum fco_verdict v;
	size_t len;

	if (!cl->fe->cfg.coalesce ||
	    cl->fe->cfg.pool_mode != FE_POOL_TRANSACTION)
		return FCO_FORWARD;
	if (!session_fits(cl)) {
		why = "client_encoding is not UTF8 or "
		      "standard_conforming_strings is off";
		v = FCO_FORWARD;
	} else if ((v = find_end(cl, in, &len)) == FCO_MORE) {
		if (hold_input(cl, evbuffer_get_length(in)))
			return v;
		why = "coalesce_buffer_bytes reached before the Sync";
		v = FCO_FORWARD;
	} else if (v == FCO_FORWARD) {
		why = "a message other than an INSERT's";
	} else if ((v = first_look(cl, len)) == FCO_FORWARD) {
		why = "not a coalescible INSERT";
	}
	release_input(cl);
	if (v == FCO_FORWARD) {
		if (log_get_level() <= LOG_DEBUG)
			fe_log(LOG_DEBUG, cl,
			       "event=coalesce_forward reason=\"%s\"", why);
		cl->co_scan = 0;
		cl->fe->stats.co_forwarded++;
	}
	return v;
}

void fco_detach(struct fe_client *cl)
{
	struct fco_seq *q = cl->co_seq;

	free(cl->co_unnamed);
	cl->co_unnamed = NULL;
	cl->co_unnamed_len = cl->co_unnamed_cap = 0;
	cl->fe->stats.co_held_bytes -= cl->co_input_held;
	cl->co_input_held = 0;
	fco_txn_free(cl); /* never committed: nothing of it is written */
	if (cl->co_handover != NULL) {
		fco_seq_free(cl->co_handover);
		cl->co_handover = NULL;
	}
	pgw_notice_free(&cl->owed_error);
	if (q == NULL)
		return;
	cl->co_seq = NULL;
	if (q->lookup != NULL || q->copy_in) { /* nothing submitted yet */
		if (q->lookup != NULL)
			cat_cancel(q->db->cat, q->lookup);
		fco_seq_free(q);
		return;
	}
	q->cl = NULL; /* its unit commits or fails; no one is told */
}

/* ---- the coalescers of the front door ---- */

void fco_db_free(struct fe_db *db)
{
	co_free(db->co); /* its units' callbacks free their sequences */
	cat_free(db->cat);
	pool_free(db->co_pool);
	db->co = NULL;
	db->cat = NULL;
	db->co_pool = NULL;
}

void fco_drain(struct frontend *fe)
{
	struct fe_db *db;

	TAILQ_FOREACH(db, &fe->dbs, link)
	{
		if (db->co != NULL)
			co_drain(db->co);
	}
}

bool fco_is_idle(const struct frontend *fe)
{
	const struct fe_db *db;

	TAILQ_FOREACH(db, &fe->dbs, link)
	{
		if (db->co != NULL && !co_is_idle(db->co))
			return false;
	}
	return true;
}
