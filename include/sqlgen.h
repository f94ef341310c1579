/* sqlgen.h: SQL text the proxy sends: quoted names, literals and batch
 * statements. */
#ifndef LBP_SQLGEN_H
#define LBP_SQLGEN_H

/*
 * Pure code. Every identifier goes through sql_append_ident (always quoted,
 * so names are exact and never SQL); every string literal through
 * sql_append_literal. Statements are built in evbuffers and returned as
 * NUL-terminated heap strings the caller frees.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* NAMEDATALEN - 1: PostgreSQL silently truncates longer names; we refuse. */
#define SQL_MAX_IDENT 63

/* Non-empty, at most SQL_MAX_IDENT bytes, valid UTF-8, no control bytes. */
bool sql_ident_valid(const char *name);
/* "name" with embedded double quotes doubled. */
bool sql_append_ident(struct evbuffer *out, const char *name);
/* "schema"."table", or "table" when schema is NULL or empty. */
bool sql_append_qualified(struct evbuffer *out, const char *schema,
                          const char *table);
/*
 * A string literal that means s whatever standard_conforming_strings says:
 * '...' with quotes doubled, or E'...' with backslashes doubled too.
 */
bool sql_append_literal(struct evbuffer *out, const char *s);

struct sql_target {
	const char *schema; /* NULL or "" = search_path */
	const char *table;
	char mode; /* 'i' insert, 'b' bulk-insert, 'u' upsert */
	size_t ncols;
	const char *const *cols;
	const char *const *types; /* format_type() of each column (upsert) */
	size_t nkeys;
	const char *const *keys;
	const char *version_col; /* NULL or "" = none */
	size_t ncoalesce;
	const char *const *coalesce;
};

/*
 * Insert and bulk-insert, one round trip per batch:
 *   BEGIN; COPY "s"."t" ("a", "b") FROM STDIN; COMMIT
 * The COMMIT is the statement SQL_INSERT_COMMIT_INDEX (0-based).
 */
#define SQL_INSERT_COMMIT_INDEX 2
char *sql_insert_batch(const struct sql_target *t);

/*
 * Staged upsert, one round trip per batch:
 *   CREATE TEMP TABLE IF NOT EXISTS "<stage>" (lbp_seq bigserial,
 *     "a" <type>, ...) ON COMMIT DELETE ROWS;
 *   BEGIN; COPY "<stage>" ("a", ...) FROM STDIN;
 *   INSERT INTO "s"."t" AS t (...) SELECT ... FROM "<stage>" ... ORDER BY keys
 *     ON CONFLICT (keys) DO UPDATE SET ... | DO NOTHING;
 *   COMMIT
 * Rows with the same key are merged in the SELECT so that the result
 * equals applying them one by one in arrival order (lbp_seq): last write
 * wins; coalesce columns keep the last non-NULL value and NULL keeps the
 * stored one; with a version column the greatest version wins (earliest of
 * equals) and replaces the stored row only if the stored version is NULL
 * or smaller. The statements are applied in key order, so concurrent
 * batches lock rows in the same order.
 */
#define SQL_UPSERT_COMMIT_INDEX 4
char *sql_upsert_batch(const struct sql_target *t, const char *stage);

/*
 * SET "name" TO 'value'; ... for session parameters a front-door client's
 * transaction carries to a server connection (names quoted: PostgreSQL
 * matches parameter names without regard to case). NULL on OOM or n 0.
 */
char *sql_set_params(const char *const *names, const char *const *values,
                     size_t n);

/*
 * The row number of a COPY error from its CONTEXT ("where") field, e.g.
 * "COPY t, line 3, column n: \"x\"" -> 3. Uses the last "COPY ..., line N"
 * in the text (triggers may add lines before it). false if there is none.
 */
bool sql_copy_error_line(const char *where, uint64_t *line);

#endif
