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

/* Fixed statements. */
#define SQL_ROLLBACK "ROLLBACK"
/* Resets a session (settings, prepared statements, temp tables, ...). */
#define SQL_DISCARD_ALL "DISCARD ALL"
/* The cheapest round trip, for health checks: an empty query. */
#define SQL_PING ";"

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

/*
 * How a target is written. Insert and bulk-insert both COPY through the
 * proxy (the client's mode names are kept apart for metrics and logs).
 */
enum sql_mode { SQL_INSERT, SQL_BULK_INSERT, SQL_UPSERT };

/* "insert", "bulk-insert", "upsert"; "unknown" for anything else. */
const char *sql_mode_name(enum sql_mode mode);

struct sql_target {
	const char *schema; /* NULL or "" = search_path */
	const char *table;
	enum sql_mode mode;
	size_t ncols;
	const char *const *cols;
	const char *const *types; /* format_type() of each column (upsert) */
	size_t nkeys;
	const char *const *keys;
	const char *version_col; /* NULL or "" = none */
	size_t ncoalesce;
	const char *const *coalesce;
	/*
	 * Upsert as ON CONFLICT (keys) DO NOTHING (the front door's): of the
	 * rows of a key the first wins, a stored row wins over all, and the
	 * batch's result rows say which staged rows were inserted: their
	 * 0-based positions in the batch's COPY data, ascending.
	 */
	bool first_wins;
	/* session settings the batch runs under, as SET LOCAL right after
	 * its BEGIN (the front door's clients' DateStyle, TimeZone...) */
	size_t nsettings;
	const char *const *setting_names;
	const char *const *setting_values;
};

/*
 * Insert and bulk-insert, one round trip per batch:
 *   BEGIN; [SET LOCAL "name" TO 'value'; ...] COPY "s"."t" ("a", "b")
 *   FROM STDIN; COMMIT
 * The COMMIT is the statement SQL_INSERT_COMMIT_INDEX (0-based).
 */
#define SQL_INSERT_COMMIT_INDEX 2
char *sql_insert_batch(const struct sql_target *t);
/* The same without its COMMIT: BEGIN; [SET LOCAL ...;] COPY ... FROM STDIN
 * (rows written into a transaction the client goes on with). */
char *sql_insert_begin(const struct sql_target *t);

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
 * Dead letters: rows the server rejected, kept beside the target in
 * "<table>_dead_letter" (same schema) instead of failing their flush.
 */
#define SQL_DEAD_LETTER_SUFFIX "_dead_letter"

struct sql_dead_letter {
	const char *sqlstate, *message, *detail; /* the server's error */
	uint64_t flush_row;   /* the row's number in its flush, 1-based */
	const char *row_text; /* the row as the client sent it (COPY text) */
};

/*
 * CREATE TABLE IF NOT EXISTS "s"."<table>_dead_letter" (received_at
 * timestamptz NOT NULL DEFAULT now(), sqlstate text, message text, detail
 * text, flush_row bigint, row_text text). NULL when "<table>_dead_letter"
 * is not a valid identifier (a table name over 51 bytes) or on OOM.
 */
char *sql_dead_letter_create(const char *schema, const char *table);
/* Appends one VALUES tuple for d, after ", " unless out is empty. */
bool sql_append_dead_letter_row(struct evbuffer *out,
                                const struct sql_dead_letter *d);
/*
 * The batch statement of t (sql_insert_batch or sql_upsert_batch) that also
 * writes dead letters in its transaction:
 *   <dead-letter CREATE>; <the batch without COMMIT>;
 *   INSERT INTO "s"."<table>_dead_letter" (sqlstate, message, detail,
 *     flush_row, row_text) VALUES <letters>; COMMIT
 * letters: buffers of tuples from sql_append_dead_letter_row (read, not
 * drained; empty ones skipped). NULL when none holds a row, when the names
 * are invalid, or on OOM.
 */
char *sql_batch_with_dead_letters(const struct sql_target *t, const char *stage,
                                  struct evbuffer *const *letters,
                                  size_t nletters);

/*
 * Exactly-once progress rows (docs/ingest-protocol.md, FlushProgress): one
 * per (query_id, partition_id, epoch_id) in a client-named table, the same
 * layout as the Python writer's direct path (progress.py):
 *   (query_id text, partition_id bigint, epoch_id bigint, rows_committed
 *    bigint, complete boolean, updated_at timestamptz,
 *    PRIMARY KEY (query_id, partition_id, epoch_id))
 */
struct sql_progress {
	const char *schema; /* NULL or "" = search_path */
	const char *table;
	const char *query_id;
	int64_t partition_id, epoch_id, rows_committed;
	bool complete;
};

/* A deep copy of p in one allocation (free() it); NULL on OOM. */
struct sql_progress *sql_progress_copy(const struct sql_progress *p);
/* Valid names and query_id (a non-empty string); ids not negative. */
bool sql_progress_valid(const struct sql_progress *p);
/*
 * CREATE TABLE IF NOT EXISTS <table> (...);
 *   SELECT rows_committed, complete FROM <table> WHERE <key>
 * rows_committed and complete of p are not used. NULL if invalid or OOM.
 */
char *sql_progress_read(const struct sql_progress *p);
/*
 * The batch statement of t (sql_insert_batch or sql_upsert_batch) with,
 * in its transaction, the dead letters (as sql_batch_with_dead_letters;
 * empty buffers skipped, none at all is fine) and the progress rows:
 *   [<dead-letter CREATE>;] CREATE TABLE IF NOT EXISTS <progress table>
 *   (once per table); <the batch without COMMIT>; [<dead letters>;]
 *   then for each progress row, in key order (so that concurrent batches
 *   lock progress rows in the same order):
 *   INSERT INTO <progress> AS p (...) VALUES (...) ON CONFLICT (query_id,
 *     partition_id, epoch_id) DO UPDATE SET rows_committed =
 *     GREATEST(p.rows_committed, EXCLUDED.rows_committed), complete =
 *     p.complete OR EXCLUDED.complete, updated_at = now();
 *   DELETE FROM <progress> WHERE query_id = .. AND partition_id = ..
 *     AND epoch_id < ..;
 *   COMMIT
 * NULL when a name or progress row is invalid, or on OOM.
 */
char *sql_batch_statement(const struct sql_target *t, const char *stage,
                          struct evbuffer *const *letters, size_t nletters,
                          const struct sql_progress *const *progress,
                          size_t nprogress);

/*
 * The catalog's one statement about a table (schema NULL or "": the
 * search_path's). The table is found by the names rule (docs/ingest-
 * protocol.md, Open): an exact match first (without a schema, the first in
 * the search path), else the only one equal ignoring the case of ASCII
 * letters. Rows tagged by kind and sorted by it, five columns each:
 *   'a', oid, relkind, schema, flags   the relation; always first; oid,
 *                                      relkind and schema NULL when no
 *                                      relation or several match; flags
 *                                      1: it has rules, 2: statement-level
 *                                      INSERT or UPDATE triggers
 *   'b', name, candidates, NULL, 0     the relation's name as the catalog
 *                                      has it; when several match instead,
 *                                      candidates lists them ("s.t, s.T")
 *   'c', name, format_type(), attnotnull ("true"/"false") followed by
 *        attidentity ("a" always, "d" by default) or attgenerated ("s"
 *        stored), or nothing, attnum
 *   'u', index oid, column name, NULL, sort key
 *                                      one row per column of each unique
 *                                      index without predicate or expression
 */
char *sql_catalog_lookup(const char *schema, const char *table);

/*
 * The row number of a COPY error from its CONTEXT ("where") field, e.g.
 * "COPY t, line 3, column n: \"x\"" -> 3. Uses the last "COPY ..., line N"
 * in the text (triggers may add lines before it). false if there is none.
 */
bool sql_copy_error_line(const char *where, uint64_t *line);

#endif
