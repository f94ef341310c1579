/* sqlrec.h: recognizes the INSERT and COPY statements the front door may
 * coalesce; everything else is "not coalescible", with a reason. */
#ifndef LBP_SQLREC_H
#define LBP_SQLREC_H

/*
 * Pure code on top of sqllex.h (same assumptions: standard_conforming_strings
 * on, server encoding UTF8; the caller must not coalesce for a session whose
 * ParameterStatus says otherwise). Exactly these statements are recognized
 * (keywords in any case, comments and whitespace anywhere between tokens),
 * optionally followed by ';' (and empty statements), nothing else after:
 *
 *   INSERT INTO [schema.]table [AS alias] [(col, ...)]
 *     VALUES (v, ...) [, (v, ...)] ...
 *     [ON CONFLICT (col, ...) DO NOTHING
 *      | ON CONFLICT (col, ...) DO UPDATE SET c = EXCLUDED.c [, ...]]
 *
 *   COPY [schema.]table [(col, ...)] FROM STDIN
 *     [[WITH] (option [, ...])]        FORMAT text|csv, DELIMITER 'c',
 *                                      NULL 's', HEADER [bool] (csv),
 *                                      QUOTE 'c' (csv), ESCAPE 'c' (csv)
 *     | [WITH] old options            DELIMITER [AS] 'c', NULL [AS] 's',
 *                                      CSV, HEADER, QUOTE [AS] 'c',
 *                                      ESCAPE [AS] 'c'
 *
 * Names: unquoted identifiers (folded to lower case; not a reserved
 * keyword) or "quoted" ones, at most 63 bytes (PostgreSQL would truncate a
 * longer one: refused). Column lists without duplicates; with a column list
 * every row has exactly its width; all rows have the same width. DO UPDATE
 * SET: every item exactly c = EXCLUDED.c (same column both sides, excluded
 * in any case or quoted "excluded"), no column twice; SET list and conflict
 * columns are reported for the caller to check against the table.
 *
 * A value v is one of:
 *   NULL                      SQLR_V_NULL
 *   TRUE | FALSE              SQLR_V_BOOL   (text "t" / "f")
 *   [+|-] integer             SQLR_V_INTEGER (text: the digits, "-" kept
 *                                            unless the number is zero)
 *   [+|-] decimal | 1e5       SQLR_V_DECIMAL (likewise)
 *   'str' E'str' U&'str' $$str$$   SQLR_V_STRING (text decoded)
 *   $n                        SQLR_V_PARAM  (param = n)
 *   and, with type set: 'str'::T, CAST('str' AS T), T 'str', NULL::T,
 *   CAST(NULL AS T), $n::T, CAST($n AS T).
 * T is a type name: [schema.]name or double precision, character
 * [varying], char [varying], national character [varying], bit [varying],
 * time[stamp] [(p)] with[out] time zone, each with an optional (n[, m])
 * and [] / [n] suffixes; type holds it canonically: words lower case (a
 * quoted word stays quoted, as "My Type"), one space between words, no
 * spaces around ( , ) . [ ], e.g. "character varying(10)", "int4[]",
 * "timestamp(3) with time zone", "pg_catalog.int8". It is not resolved:
 * "char" means character(1), "int" is int4, and so on.
 *
 * Refused, among others: RETURNING, DEFAULT, DEFAULT VALUES, SELECT, WITH,
 * OVERRIDING, subqueries, function calls, operators (1+1, 'a'||'b'),
 * casts of numbers or booleans, casts of casts, COLLATE, B''/X''/N''
 * strings, ON CONFLICT ON CONSTRAINT, ON CONFLICT without columns,
 * ON CONFLICT ... WHERE, any other DO UPDATE, COPY with a query, TO,
 * a file, PROGRAM, BINARY, FREEZE, FORCE_*, ENCODING, DEFAULT, ON_ERROR,
 * WHERE, HEADER in text format (its meaning changed in PostgreSQL 15), and
 * more than one statement.
 *
 * What the caller must still decide (against the table's column types),
 * because INSERT converts a typed value where COPY calls the column's input
 * function: a STRING without type, NULL and a PARAM go to any column; a
 * typed value only when its type is exactly the column's; BOOL only to
 * boolean; INTEGER only to integer, numeric and floating-point columns
 * (an integer over int8 is numeric in PostgreSQL); DECIMAL only to numeric
 * and floating-point columns.
 *
 * A Query message may hold several statements: sqlr_split gives each one's
 * span. PostgreSQL runs them as one implicit transaction, and a CREATE
 * FUNCTION ... BEGIN ATOMIC body holds ';' that do not end its statement:
 * use the spans to decide whether every statement is coalescible, and
 * otherwise forward the whole Query unchanged.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sqllex.h"

struct evbuffer;

/* NAMEDATALEN - 1: a longer name is truncated by PostgreSQL; refused. */
#define SQLR_MAX_NAME 63

enum sqlr_rc {
	SQLR_OK = 0,
	SQLR_REFUSED, /* not coalescible: forward it; why says why */
	SQLR_NOMEM
};

/* Why a statement is not coalescible, for logs and tests. */
struct sqlr_why {
	const char *reason; /* static English text, e.g. "RETURNING" */
	size_t offset;      /* byte offset of the token it concerns */
	enum sqlx_rc lex;   /* SQLX_OK unless the lexer failed */
};

enum sqlr_vkind {
	SQLR_V_NULL,
	SQLR_V_BOOL,
	SQLR_V_INTEGER,
	SQLR_V_DECIMAL,
	SQLR_V_STRING,
	SQLR_V_PARAM
};

struct sqlr_value {
	enum sqlr_vkind kind;
	const char *text; /* NUL-terminated; "" for NULL and PARAM */
	size_t len;       /* bytes of text */
	uint32_t param;   /* SQLR_V_PARAM: n of $n */
	const char *type; /* canonical type name of a cast, or NULL */
};

enum sqlr_kind { SQLR_INSERT, SQLR_COPY };
enum sqlr_conflict { SQLR_NO_CONFLICT, SQLR_DO_NOTHING, SQLR_DO_UPDATE };
enum sqlr_format { SQLR_TEXT, SQLR_CSV };

/* A COPY's options, with PostgreSQL's defaults filled in. */
struct sqlr_copy {
	enum sqlr_format format;
	char delimiter;       /* text '\t', csv ',' */
	const char *null_str; /* text "\\N", csv "" */
	bool header;          /* csv only */
	char quote, escape;   /* csv: '"' and the quote by default; else 0 */
};

/*
 * A recognized statement; every pointer lives inside it until
 * sqlr_stmt_free. Names are decoded (folded or unquoted).
 */
struct sqlr_stmt {
	enum sqlr_kind kind;
	const char *schema; /* NULL when not qualified */
	const char *table;
	const char *alias; /* INSERT ... AS alias, or NULL */
	size_t ncols;      /* 0: no column list */
	const char *const *cols;
	/* INSERT */
	size_t nrows, width;
	const struct sqlr_value *values; /* nrows * width, row by row */
	uint32_t max_param;              /* greatest $n, 0 when none */
	enum sqlr_conflict conflict;
	size_t nkeys; /* ON CONFLICT (keys) */
	const char *const *keys;
	size_t nset; /* DO UPDATE SET c = EXCLUDED.c, ... */
	const char *const *set_cols;
	/* COPY */
	struct sqlr_copy copy;
};

/*
 * Recognizes sql[0..len) as exactly one statement. SQLR_OK: *out is the
 * statement (free it with sqlr_stmt_free). SQLR_REFUSED: *out is NULL and
 * *why says why (lexer errors included). SQLR_NOMEM: out of memory.
 */
enum sqlr_rc sqlr_recognize(const uint8_t *sql, size_t len,
                            struct sqlr_stmt **out, struct sqlr_why *why);
void sqlr_stmt_free(struct sqlr_stmt *st);

/* One statement of a Query: sql[start..end), without its ';'. */
struct sqlr_span {
	size_t start, end;
};

/*
 * The non-empty statements of sql[0..len) split at top-level ';' (not in
 * strings, quoted names, comments or dollar quotes; see the note above on
 * BEGIN ATOMIC). Fills spans[0..min(*n, max)) and sets *n to the count.
 * A lexer error is returned as is (and *n is the count before it).
 */
enum sqlx_rc sqlr_split(const uint8_t *sql, size_t len, struct sqlr_span *spans,
                        size_t max, size_t *n);

/*
 * Appends v as one COPY text field: \N for NULL, t/f, the number, the
 * string with \\ \t \n \r escaped. false for a PARAM (its value comes from
 * Bind) or on OOM.
 */
bool sqlr_value_copy_text(const struct sqlr_value *v, struct evbuffer *out);
/*
 * Appends v as one CSV field (delimiter ',', quote '"'): nothing for NULL,
 * strings always quoted with '"' doubled, numbers and t/f bare. false for a
 * PARAM or on OOM.
 */
bool sqlr_value_copy_csv(const struct sqlr_value *v, struct evbuffer *out);

#endif
