/* fuzz_sqlrec.c: libFuzzer harness for the SQL lexer and the statement
 * recognizer: invariants of tokens, spans and statements, and round trips
 * of recognized values through COPY text, CSV and SQL literals. */
#include "copytext.h"
#include "sqlfit.h"
#include "sqlgen.h"
#include "sqllex.h"
#include "sqlrec.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_invariant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void lex_all(const uint8_t *data, size_t size)
{
	struct sqlx_lexer *lx = sqlx_lexer_new(data, size);
	struct sqlx_token t;
	size_t prev = 0;

	if (lx == NULL)
		return;
	while (sqlx_next(lx, &t) == SQLX_OK && t.kind != SQLX_T_END) {
		INVARIANT(t.start >= prev && t.end > t.start && t.end <= size);
		INVARIANT(strlen(t.text) == t.len);
		prev = t.end;
	}
	sqlx_lexer_free(lx);
}

/* Decodes a COPY text field back (the escapes sqlr_value_copy_text makes). */
static bool text_decode(const char *s, size_t n, struct evbuffer *out)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '\\') {
			INVARIANT(i + 1 < n);
			c = s[++i];
			c = c == 't'   ? '\t'
			    : c == 'n' ? '\n'
			    : c == 'r' ? '\r'
			               : c;
		}
		evbuffer_add(out, &c, 1);
	}
	return true;
}

static bool same(struct evbuffer *b, const struct sqlr_value *v)
{
	return evbuffer_get_length(b) == v->len &&
	       (v->len == 0 ||
	        memcmp(evbuffer_pullup(b, -1), v->text, v->len) == 0);
}

/* A string value, written by sqlgen as a literal, reads back the same. */
static void literal_round_trip(const struct sqlr_value *v)
{
	struct evbuffer *sql = evbuffer_new();
	struct sqlr_stmt *st;
	struct sqlr_why why;

	if (sql == NULL)
		return;
	if (evbuffer_add_printf(sql, "INSERT INTO t VALUES (") >= 0 &&
	    sql_append_literal(sql, v->text) &&
	    evbuffer_add(sql, ")", 1) == 0 &&
	    sqlr_recognize(evbuffer_pullup(sql, -1), evbuffer_get_length(sql),
	                   &st, &why) == SQLR_OK) {
		INVARIANT(st->nrows == 1 && st->width == 1);
		INVARIANT(st->values[0].kind == SQLR_V_STRING);
		INVARIANT(st->values[0].len == v->len);
		INVARIANT(memcmp(st->values[0].text, v->text, v->len) == 0);
		sqlr_stmt_free(st);
	}
	evbuffer_free(sql);
}

static void value_round_trip(const struct sqlr_value *v)
{
	struct evbuffer *f = evbuffer_new(), *back = evbuffer_new();
	uint64_t rows;
	struct ct_error err;

	INVARIANT(strlen(v->text) == v->len);
	if (v->type != NULL) {
		char cast[64];

		/* a cast name in format_type()'s spelling, or a refusal */
		if (sqlf_cast_type_name(v->type, cast, sizeof(cast)))
			INVARIANT(strlen(cast) < sizeof(cast) &&
			          cast[0] != '\0');
		(void)sqlf_value_fits(v, 0, "integer");
	}
	if (f == NULL || back == NULL || v->kind == SQLR_V_PARAM)
		goto out;
	INVARIANT(sqlr_value_copy_text(v, f));
	evbuffer_add(f, "\n", 1);
	INVARIANT(ct_check_rows(evbuffer_pullup(f, -1), evbuffer_get_length(f),
	                        1, &rows, &err) == CT_OK);
	if (v->kind != SQLR_V_NULL) {
		text_decode((char *)evbuffer_pullup(f, -1),
		            evbuffer_get_length(f) - 1, back);
		INVARIANT(same(back, v));
	}
	if (v->kind == SQLR_V_STRING)
		literal_round_trip(v);
out:
	if (f != NULL)
		evbuffer_free(f);
	if (back != NULL)
		evbuffer_free(back);
}

static void check_stmt(const struct sqlr_stmt *st)
{
	INVARIANT(st->table != NULL && strlen(st->table) <= SQLR_MAX_NAME);
	for (size_t i = 0; i < st->ncols; i++)
		INVARIANT(strlen(st->cols[i]) <= SQLR_MAX_NAME);
	if (st->kind == SQLR_COPY) {
		INVARIANT(st->nrows == 0 && st->copy.null_str != NULL);
		return;
	}
	INVARIANT(st->nrows > 0 && st->width > 0);
	INVARIANT(st->ncols == 0 || st->ncols == st->width);
	for (size_t i = 0; i < st->nrows * st->width; i++)
		value_round_trip(&st->values[i]);
}

static void recognize_all(const uint8_t *data, size_t size)
{
	struct sqlr_span spans[8];
	struct sqlr_stmt *st;
	struct sqlr_why why;
	size_t n = 0, prev = 0;

	enum sqlf_txc txc = sqlf_txn_control(data, size);

	INVARIANT(txc >= SQLF_TXC_NONE && txc <= SQLF_TXC_ROLLBACK);
	if (sqlr_recognize(data, size, &st, &why) == SQLR_OK) {
		INVARIANT(txc == SQLF_TXC_NONE); /* an INSERT is no BEGIN */
		check_stmt(st);
		sqlr_stmt_free(st);
	} else {
		INVARIANT(st == NULL && why.reason != NULL);
	}
	(void)sqlr_split(data, size, spans, 8, &n);
	for (size_t i = 0; i < n && i < 8; i++) {
		INVARIANT(spans[i].start >= prev &&
		          spans[i].end > spans[i].start &&
		          spans[i].end <= size);
		prev = spans[i].end;
		if (sqlr_recognize(data + spans[i].start,
		                   spans[i].end - spans[i].start, &st,
		                   &why) == SQLR_OK) {
			check_stmt(st);
			sqlr_stmt_free(st);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = fuzz_exact_copy(data, size);

	if (copy == NULL)
		return 0;
	lex_all(copy, size);
	recognize_all(copy, size);
	free(copy);
	return 0;
}
