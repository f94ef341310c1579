/* sqlfit.c: which coalesced values read back as the INSERT would store
 * them (contracts in sqlfit.h), and transaction-control statements. */
#include "sqlfit.h"

#include <stdio.h>
#include <string.h>

#include "sqllex.h"

enum tclass { TC_INT, TC_NUMERIC, TC_FLOAT, TC_BOOL, TC_TEXT, TC_OTHER };

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* The class of a column type (format_type() text). */
static enum tclass class_of(const char *t)
{
	if (!strcmp(t, "smallint") || !strcmp(t, "integer") ||
	    !strcmp(t, "bigint"))
		return TC_INT;
	if (!strcmp(t, "numeric") || has_prefix(t, "numeric("))
		return TC_NUMERIC;
	if (!strcmp(t, "real") || !strcmp(t, "double precision"))
		return TC_FLOAT;
	if (!strcmp(t, "boolean"))
		return TC_BOOL;
	if (!strcmp(t, "text") || !strcmp(t, "character varying") ||
	    has_prefix(t, "character varying("))
		return TC_TEXT;
	return TC_OTHER;
}

bool sqlf_cast_type_name(const char *rec, char *out, size_t size)
{
	static const char *const alias[][2] = {
	    {"int", "integer"},
	    {"int4", "integer"},
	    {"integer", "integer"},
	    {"int2", "smallint"},
	    {"smallint", "smallint"},
	    {"int8", "bigint"},
	    {"bigint", "bigint"},
	    {"float8", "double precision"},
	    {"double precision", "double precision"},
	    {"float4", "real"},
	    {"real", "real"},
	    {"bool", "boolean"},
	    {"boolean", "boolean"},
	    {"varchar", "character varying"},
	    {"character varying", "character varying"},
	    {"decimal", "numeric"},
	    {"numeric", "numeric"},
	    {"timestamp", "timestamp@ without time zone"},
	    {"timestamp without time zone", "timestamp@ without time zone"},
	    {"timestamptz", "timestamp@ with time zone"},
	    {"timestamp with time zone", "timestamp@ with time zone"},
	    {"date", "date"},
	    {"text", "text"},
	    {"uuid", "uuid"},
	    {"json", "json"},
	    {"jsonb", "jsonb"},
	    {"bytea", "bytea"},
	};
	const char *open, *close, *tail = "";
	char base[64], mod[32] = "";
	size_t n;

	if (strncmp(rec, "pg_catalog.", 11) == 0)
		rec += 11;
	open = strchr(rec, '(');
	n = open ? (size_t)(open - rec) : strlen(rec);
	if (open != NULL) {
		close = strchr(open, ')');
		if (close == NULL || (size_t)(close + 1 - open) >= sizeof(mod))
			return false;
		memcpy(mod, open, (size_t)(close + 1 - open));
		mod[close + 1 - open] = '\0';
		tail = close + 1;
	}
	if (n >= sizeof(base) || strchr(rec, '[') != NULL)
		return false;
	snprintf(base, sizeof(base), "%.*s%s", (int)n, rec, tail);
	for (size_t i = 0; i < sizeof(alias) / sizeof(alias[0]); i++) {
		const char *at = strchr(alias[i][1], '@');

		if (strcmp(base, alias[i][0]) != 0)
			continue;
		if (at == NULL)
			return snprintf(out, size, "%s%s", alias[i][1], mod) <
			       (int)size;
		return snprintf(out, size, "%.*s%s%s", (int)(at - alias[i][1]),
		                alias[i][1], mod, at + 1) < (int)size;
	}
	return false;
}

bool sqlf_value_fits(const struct sqlr_value *v, uint32_t declared,
                     const char *t)
{
	enum tclass c = class_of(t);
	char cast[128];

	if (v->type != NULL)
		return sqlf_cast_type_name(v->type, cast, sizeof(cast)) &&
		       strcmp(cast, t) == 0 &&
		       (v->kind != SQLR_V_PARAM ||
		        declared == SQLF_OID_UNSPECIFIED ||
		        declared == SQLF_OID_UNKNOWN);
	switch (v->kind) {
	case SQLR_V_NULL:
	case SQLR_V_STRING:
		return true;
	case SQLR_V_BOOL:
		return c == TC_BOOL;
	case SQLR_V_INTEGER:
		return c == TC_INT || c == TC_NUMERIC || c == TC_FLOAT;
	case SQLR_V_DECIMAL:
		return c == TC_NUMERIC || c == TC_FLOAT;
	case SQLR_V_PARAM:
		return true; /* put_param decides, with the value */
	}
	return false;
}

bool sqlf_int_text_in_range(enum pgb_type declared, const uint8_t *text,
                            size_t len)
{
	uint64_t limit = declared == PGB_INT2   ? 32767
	                 : declared == PGB_INT4 ? 2147483647
	                 : declared == PGB_INT8 ? INT64_MAX
	                                        : 0;
	uint64_t v = 0;
	bool neg = len > 0 && text[0] == '-';

	if (limit == 0 || len <= (neg ? 1u : 0u))
		return false;
	for (size_t i = neg ? 1 : 0; i < len; i++) {
		unsigned d = (unsigned)text[i] - '0';

		if (d > 9 || v > (limit + 1 - d) / 10)
			return false;
		v = v * 10 + d;
	}
	return v <= limit + (neg ? 1 : 0);
}

enum sqlf_txc sqlf_txn_control(const uint8_t *sql, size_t len)
{
	static const struct {
		const char *word;
		enum sqlf_txc kind;
	} words[] = {
	    {"begin", SQLF_TXC_BEGIN},       {"start", SQLF_TXC_BEGIN},
	    {"commit", SQLF_TXC_COMMIT},     {"end", SQLF_TXC_COMMIT},
	    {"rollback", SQLF_TXC_ROLLBACK}, {"abort", SQLF_TXC_ROLLBACK}};
	struct sqlx_lexer *lx = sqlx_lexer_new(sql, len);
	struct sqlx_token t;
	enum sqlf_txc kind = SQLF_TXC_NONE;
	bool start;

	if (lx == NULL || sqlx_next(lx, &t) != SQLX_OK ||
	    t.kind != SQLX_T_IDENT)
		goto out;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strcmp(t.text, words[i].word) == 0)
			kind = words[i].kind;
	}
	start = strcmp(t.text, "start") == 0;
	if (kind == SQLF_TXC_NONE || sqlx_next(lx, &t) != SQLX_OK)
		goto none;
	if (t.kind == SQLX_T_IDENT &&
	    (strcmp(t.text, "transaction") == 0 ||
	     (!start && strcmp(t.text, "work") == 0))) {
		start = false;
		if (sqlx_next(lx, &t) != SQLX_OK)
			goto none;
	}
	if (start)
		goto none;
	if (t.kind == SQLX_T_PUNCT && strcmp(t.text, ";") == 0 &&
	    sqlx_next(lx, &t) != SQLX_OK)
		goto none;
	if (t.kind == SQLX_T_END)
		goto out;
none:
	kind = SQLF_TXC_NONE;
out:
	sqlx_lexer_free(lx);
	return kind;
}
