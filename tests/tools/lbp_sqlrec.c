/* lbp_sqlrec.c: prints what the statement recognizer makes of the SQL on
 * stdin, as JSON (for the tests against a real PostgreSQL, and for people
 * asking why a statement is not coalesced). */
#include "sqlrec.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const vkind[] = {"null",    "bool",   "integer",
                                    "decimal", "string", "param"};

/* One value's field, from sqlr_value_copy_text or _csv; null for a PARAM. */
static json_t *field(const struct sqlr_value *v, bool csv)
{
	struct evbuffer *b = evbuffer_new();
	json_t *s = json_null();

	if (b != NULL &&
	    (csv ? sqlr_value_copy_csv(v, b) : sqlr_value_copy_text(v, b)))
		s = evbuffer_get_length(b) == 0
		        ? json_string("")
		        : json_stringn((const char *)evbuffer_pullup(b, -1),
		                       evbuffer_get_length(b));
	if (b != NULL)
		evbuffer_free(b);
	return s;
}

static json_t *value_json(const struct sqlr_value *v)
{
	return json_pack("{s:s, s:s%, s:I, s:s?, s:o, s:o}", "kind",
	                 vkind[v->kind], "text", v->text, v->len, "param",
	                 (json_int_t)v->param, "type", v->type, "copy_text",
	                 field(v, false), "csv", field(v, true));
}

static json_t *names(const char *const *list, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(list[i]));
	return a;
}

static json_t *rows_json(const struct sqlr_stmt *st)
{
	json_t *rows = json_array();

	for (size_t r = 0; r < st->nrows; r++) {
		json_t *row = json_array();

		for (size_t c = 0; c < st->width; c++) {
			json_t *v = value_json(&st->values[r * st->width + c]);

			if (v == NULL || json_array_append_new(row, v) != 0)
				exit(2);
		}
		json_array_append_new(rows, row);
	}
	return rows;
}

static json_t *stmt_json(const struct sqlr_stmt *st)
{
	static const char *const conflict[] = {"none", "nothing", "update"};
	const struct sqlr_copy *c = &st->copy;

	return json_pack(
	    "{s:b, s:s, s:s?, s:s, s:s?, s:o, s:o, s:s, s:o, s:o, s:{s:s, "
	    "s:s#, s:s?, s:b, s:s#, s:s#}}",
	    "ok", 1, "kind", st->kind == SQLR_INSERT ? "insert" : "copy",
	    "schema", st->schema, "table", st->table, "alias", st->alias,
	    "cols", names(st->cols, st->ncols), "rows", rows_json(st),
	    "conflict", conflict[st->conflict], "keys",
	    names(st->keys, st->nkeys), "set", names(st->set_cols, st->nset),
	    "copy", "format", c->format == SQLR_CSV ? "csv" : "text",
	    "delimiter", &c->delimiter, (int)(c->delimiter != 0), "null",
	    c->null_str, "header", c->header, "quote", &c->quote,
	    (int)(c->quote != 0), "escape", &c->escape, (int)(c->escape != 0));
}

int main(void)
{
	struct evbuffer *in = evbuffer_new();
	struct sqlr_stmt *st;
	struct sqlr_why why;
	json_t *out;
	int n;

	while (in != NULL && (n = evbuffer_read(in, 0, 65536)) > 0)
		;
	if (in == NULL || n < 0)
		return 2;
	switch (sqlr_recognize(evbuffer_pullup(in, -1), evbuffer_get_length(in),
	                       &st, &why)) {
	case SQLR_OK:
		out = stmt_json(st);
		sqlr_stmt_free(st);
		break;
	case SQLR_REFUSED:
		out = json_pack("{s:b, s:s, s:I, s:s}", "ok", 0, "reason",
		                why.reason, "offset", (json_int_t)why.offset,
		                "lex", sqlx_rc_text(why.lex));
		break;
	default:
		return 2;
	}
	if (out == NULL || json_dumpf(out, stdout, JSON_COMPACT) != 0)
		return 2;
	json_decref(out);
	evbuffer_free(in);
	return 0;
}
