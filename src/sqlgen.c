/* sqlgen.c: quoted names, string literals and the batch statements the proxy
 * runs. */
#include "sqlgen.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "utf8.h"

/* The stage table's arrival-order column; no target column may share it. */
#define SEQ_COL "lbp_seq"

/* ---- names and literals ---- */

const char *sql_mode_name(enum sql_mode mode)
{
	switch (mode) {
	case SQL_INSERT:
		return "insert";
	case SQL_BULK_INSERT:
		return "bulk-insert";
	case SQL_UPSERT:
		return "upsert";
	}
	return "unknown";
}

bool sql_ident_valid(const char *name)
{
	size_t len;

	if (name == NULL)
		return false;
	len = strlen(name);
	if (len == 0 || len > SQL_MAX_IDENT)
		return false;
	for (size_t i = 0; i < len; i++) {
		uint8_t b = (uint8_t)name[i];

		if (b < 0x20 || b == 0x7f)
			return false;
	}
	return utf8_valid((const uint8_t *)name, len);
}

static bool add_str(struct evbuffer *out, const char *s)
{
	return evbuffer_add(out, s, strlen(s)) == 0;
}

/* s between quote characters, each quote inside written twice. */
static bool add_doubled(struct evbuffer *out, const char *s, char quote)
{
	const char *q;

	while ((q = strchr(s, quote)) != NULL) {
		if (evbuffer_add(out, s, (size_t)(q - s) + 1) != 0 ||
		    evbuffer_add(out, &quote, 1) != 0)
			return false;
		s = q + 1;
	}
	return add_str(out, s);
}

bool sql_append_ident(struct evbuffer *out, const char *name)
{
	return name != NULL && add_str(out, "\"") &&
	       add_doubled(out, name, '"') && add_str(out, "\"");
}

bool sql_append_qualified(struct evbuffer *out, const char *schema,
                          const char *table)
{
	if (schema != NULL && schema[0] != '\0' &&
	    !(sql_append_ident(out, schema) && add_str(out, ".")))
		return false;
	return sql_append_ident(out, table);
}

/* Backslashes doubled and quotes doubled, for the inside of E'...'. */
static bool add_escaped(struct evbuffer *out, const char *s)
{
	for (; *s != '\0'; s++) {
		size_t n = (*s == '\\' || *s == '\'') ? 2 : 1;

		if (evbuffer_add(out, s, 1) != 0 ||
		    (n == 2 && evbuffer_add(out, s, 1) != 0))
			return false;
	}
	return true;
}

/*
 * '...' means the same to every server only without backslashes (with
 * standard_conforming_strings off they escape); E'...' always escapes.
 */
bool sql_append_literal(struct evbuffer *out, const char *s)
{
	if (s == NULL)
		return false;
	if (strchr(s, '\\') == NULL)
		return add_str(out, "'") && add_doubled(out, s, '\'') &&
		       add_str(out, "'");
	return add_str(out, "E'") && add_escaped(out, s) && add_str(out, "'");
}

/* ---- statement helpers ---- */

/* The buffer's text as a heap string, freeing the buffer; NULL on failure. */
static char *take_text(struct evbuffer *b, bool ok)
{
	size_t len = evbuffer_get_length(b);
	char *s = ok ? malloc(len + 1) : NULL;

	if (s != NULL) {
		evbuffer_remove(b, s, len);
		s[len] = '\0';
	}
	evbuffer_free(b);
	return s;
}

char *sql_set_params(const char *const *names, const char *const *values,
                     size_t n)
{
	struct evbuffer *b = evbuffer_new();
	bool ok = b != NULL && n > 0;

	for (size_t i = 0; ok && i < n; i++)
		ok = add_str(b, i ? ";SET " : "SET ") &&
		     sql_append_ident(b, names[i]) && add_str(b, " TO ") &&
		     sql_append_literal(b, values[i]);
	if (b == NULL)
		return NULL;
	return take_text(b, ok);
}

static bool in_list(const char *const *list, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(list[i], name) == 0)
			return true;
	}
	return false;
}

static bool has_version(const struct sql_target *t)
{
	return t->version_col != NULL && t->version_col[0] != '\0';
}

/* "a", "b", ... each name optionally prefixed (t., EXCLUDED.). */
static bool add_ident_list(struct evbuffer *out, const char *prefix,
                           const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if ((i > 0 && !add_str(out, ", ")) || !add_str(out, prefix) ||
		    !sql_append_ident(out, names[i]))
			return false;
	}
	return true;
}

static bool sql_names_valid(const char *const *names, size_t n)
{
	if (n > 0 && names == NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!sql_ident_valid(names[i]))
			return false;
	}
	return true;
}

/* Refuses what would produce broken SQL, whoever built the target. */
static bool target_valid(const struct sql_target *t)
{
	if (t == NULL || t->ncols == 0 || !sql_ident_valid(t->table) ||
	    !sql_names_valid(t->cols, t->ncols))
		return false;
	if (t->schema != NULL && t->schema[0] != '\0' &&
	    !sql_ident_valid(t->schema))
		return false;
	return sql_names_valid(t->keys, t->nkeys) &&
	       sql_names_valid(t->coalesce, t->ncoalesce) &&
	       (!has_version(t) || sql_ident_valid(t->version_col));
}

/* COPY <table> (<cols>) FROM STDIN */
static bool add_copy(struct evbuffer *out, const char *schema,
                     const char *table, const struct sql_target *t)
{
	return add_str(out, "COPY ") &&
	       sql_append_qualified(out, schema, table) && add_str(out, " (") &&
	       add_ident_list(out, "", t->cols, t->ncols) &&
	       add_str(out, ") FROM STDIN");
}

static bool insert_target_valid(const struct sql_target *t)
{
	return target_valid(t) &&
	       (t->mode == SQL_INSERT || t->mode == SQL_BULK_INSERT);
}

/* BEGIN; SET LOCAL "name" TO 'value'; ... (the target's settings) */
static bool add_begin(struct evbuffer *out, const struct sql_target *t)
{
	if (!add_str(out, "BEGIN; "))
		return false;
	for (size_t i = 0; i < t->nsettings; i++) {
		if (!add_str(out, "SET LOCAL ") ||
		    !sql_append_ident(out, t->setting_names[i]) ||
		    !add_str(out, " TO ") ||
		    !sql_append_literal(out, t->setting_values[i]) ||
		    !add_str(out, "; "))
			return false;
	}
	return true;
}

/* BEGIN; COPY ... FROM STDIN (the batch without its COMMIT) */
static bool add_insert_body(struct evbuffer *out, const struct sql_target *t)
{
	return add_begin(out, t) && add_copy(out, t->schema, t->table, t);
}

char *sql_insert_batch(const struct sql_target *t)
{
	struct evbuffer *b;

	if (!insert_target_valid(t) || (b = evbuffer_new()) == NULL)
		return NULL;
	return take_text(b, add_insert_body(b, t) && add_str(b, "; COMMIT"));
}

char *sql_insert_begin(const struct sql_target *t)
{
	struct evbuffer *b;

	if (!insert_target_valid(t) || (b = evbuffer_new()) == NULL)
		return NULL;
	return take_text(b, add_insert_body(b, t));
}

/* ---- staged upsert ---- */

static bool add_stage_table(struct evbuffer *out, const struct sql_target *t,
                            const char *stage)
{
	if (!add_str(out, "CREATE TEMP TABLE IF NOT EXISTS ") ||
	    !sql_append_ident(out, stage) ||
	    !add_str(out, " (" SEQ_COL " bigserial"))
		return false;
	for (size_t i = 0; i < t->ncols; i++) {
		if (!add_str(out, ", ") || !sql_append_ident(out, t->cols[i]) ||
		    !add_str(out, " ") || !add_str(out, t->types[i]))
			return false;
	}
	return add_str(out, ") ON COMMIT DELETE ROWS");
}

/*
 * The last non-NULL value of a coalesce column per key. A window, not
 * array_agg(...)[1]: array_agg of an array-typed column builds a
 * two-dimensional array, and [1] of that is NULL.
 */
static bool add_last_non_null(struct evbuffer *out, const struct sql_target *t,
                              const char *col)
{
	return add_str(out, "first_value(") && sql_append_ident(out, col) &&
	       add_str(out, ") OVER (PARTITION BY ") &&
	       add_ident_list(out, "", t->keys, t->nkeys) &&
	       add_str(out, " ORDER BY ") && sql_append_ident(out, col) &&
	       add_str(out, " IS NULL, " SEQ_COL " DESC) AS ") &&
	       sql_append_ident(out, col);
}

/* A coalesce column looks past the last row to its last non-NULL value. */
static bool add_select_list(struct evbuffer *out, const struct sql_target *t)
{
	for (size_t i = 0; i < t->ncols; i++) {
		const char *c = t->cols[i];
		bool merge = in_list(t->coalesce, t->ncoalesce, c) &&
		             !in_list(t->keys, t->nkeys, c);

		if (i > 0 && !add_str(out, ", "))
			return false;
		if (merge ? !add_last_non_null(out, t, c)
		          : !sql_append_ident(out, c))
			return false;
	}
	return true;
}

/*
 * Without a version column the rows of a key merge exactly into one: the
 * last row, each coalesce column's last non-NULL value.
 * SELECT DISTINCT ON (keys) ... FROM stage ORDER BY keys, lbp_seq DESC
 */
static bool add_merge_select(struct evbuffer *out, const struct sql_target *t,
                             const char *stage)
{
	return add_str(out, "SELECT DISTINCT ON (") &&
	       add_ident_list(out, "", t->keys, t->nkeys) &&
	       add_str(out, ") ") && add_select_list(out, t) &&
	       add_str(out, " FROM ") && sql_append_ident(out, stage) &&
	       add_str(out, " ORDER BY ") &&
	       add_ident_list(out, "", t->keys, t->nkeys) &&
	       add_str(out,
	               t->first_wins ? ", " SEQ_COL : ", " SEQ_COL " DESC");
}

/* "s"."k1" = i."k1" AND ... */
static bool add_key_match(struct evbuffer *out, const struct sql_target *t)
{
	for (size_t k = 0; k < t->nkeys; k++) {
		if (!add_str(out, k ? " AND s." : "s.") ||
		    !sql_append_ident(out, t->keys[k]) ||
		    !add_str(out, " = i.") ||
		    !sql_append_ident(out, t->keys[k]))
			return false;
	}
	return true;
}

/* INSERT INTO "s"."t" AS t (cols) <merge select> ON CONFLICT (keys) */
static bool add_merge_insert(struct evbuffer *out, const struct sql_target *t,
                             const char *stage)
{
	return add_str(out, "INSERT INTO ") &&
	       sql_append_qualified(out, t->schema, t->table) &&
	       add_str(out, " AS t (") &&
	       add_ident_list(out, "", t->cols, t->ncols) &&
	       add_str(out, ") ") && add_merge_select(out, t, stage) &&
	       add_str(out, " ON CONFLICT (") &&
	       add_ident_list(out, "", t->keys, t->nkeys) && add_str(out, ") ");
}

/*
 * DO NOTHING, saying which staged rows went in:
 *   WITH i AS (INSERT ... ON CONFLICT (keys) DO NOTHING RETURNING keys)
 *   SELECT (SELECT min(lbp_seq) FROM stage s WHERE <keys match>) -
 *     (SELECT min(lbp_seq) FROM stage) FROM i ORDER BY 1
 * (DISTINCT ON kept each key's first row: the smallest lbp_seq.)
 */
static bool add_first_wins(struct evbuffer *out, const struct sql_target *t,
                           const char *stage)
{
	return add_str(out, "WITH i AS (") && add_merge_insert(out, t, stage) &&
	       add_str(out, "DO NOTHING RETURNING ") &&
	       add_ident_list(out, "", t->keys, t->nkeys) &&
	       add_str(out, ") SELECT (SELECT min(s." SEQ_COL ") FROM ") &&
	       sql_append_ident(out, stage) && add_str(out, " s WHERE ") &&
	       add_key_match(out, t) &&
	       add_str(out, ") - (SELECT min(" SEQ_COL ") FROM ") &&
	       sql_append_ident(out, stage) &&
	       add_str(out, ") FROM i ORDER BY 1");
}

/* "c" = EXCLUDED."c", or COALESCE(EXCLUDED."c", t."c") to keep old values. */
static bool add_assignment(struct evbuffer *out, const struct sql_target *t,
                           const char *c)
{
	if (!sql_append_ident(out, c) || !add_str(out, " = "))
		return false;
	if (!in_list(t->coalesce, t->ncoalesce, c))
		return add_str(out, "EXCLUDED.") && sql_append_ident(out, c);
	return add_str(out, "COALESCE(EXCLUDED.") && sql_append_ident(out, c) &&
	       add_str(out, ", t.") && sql_append_ident(out, c) &&
	       add_str(out, ")");
}

/* 0.1's rule: greater, or either version NULL; equal does not update. */
static bool add_version_guard(struct evbuffer *out, const char *v)
{
	return add_str(out, " WHERE EXCLUDED.") && sql_append_ident(out, v) &&
	       add_str(out, " IS NULL OR t.") && sql_append_ident(out, v) &&
	       add_str(out, " IS NULL OR EXCLUDED.") &&
	       sql_append_ident(out, v) && add_str(out, " > t.") &&
	       sql_append_ident(out, v);
}

static bool add_conflict_action(struct evbuffer *out,
                                const struct sql_target *t)
{
	bool first = true;

	for (size_t i = 0; i < t->ncols; i++) {
		if (in_list(t->keys, t->nkeys, t->cols[i]))
			continue;
		if (!add_str(out, first ? "DO UPDATE SET " : ", ") ||
		    !add_assignment(out, t, t->cols[i]))
			return false;
		first = false;
	}
	if (first)
		return add_str(out, "DO NOTHING");
	return !has_version(t) || add_version_guard(out, t->version_col);
}

/* ---- upsert with a version column: rounds ---- */

/*
 * Whether a row applies depends on the stored version at that moment, so
 * rows of one key cannot in general be merged into one. The batch is
 * applied in rounds instead: round r holds the r-th remaining row of every
 * key, each round one INSERT ... ON CONFLICT with the row-at-a-time rule.
 * Before numbering, rows that provably change nothing are dropped (SQL
 * compares the versions, with the column type's own ordering):
 *  - a row whose version is not NULL and not greater than the previous
 *    row's (of the same key) never applies: that row left a stored version
 *    at least as great;
 *  - a row is dropped when the next remaining row b of its key always
 *    applies after it (b's version NULL, or both not NULL and b's greater)
 *    and overrides everything it wrote (every coalesce column of b is not
 *    NULL, or the row's is NULL).
 * Inside the rounds, column i of the target is lbp_c<i>, so target names
 * never meet the helper columns (only lbp_seq is reserved).
 */

static size_t col_index(const struct sql_target *t, const char *name)
{
	size_t i = 0;

	while (i < t->ncols && strcmp(t->cols[i], name) != 0)
		i++;
	return i;
}

/* alias.lbp_<kind><i + 1>, e.g. x.lbp_c3; no "alias." for "" */
static bool add_slot(struct evbuffer *out, const char *alias, const char *kind,
                     size_t i)
{
	return evbuffer_add_printf(out, "%s%slbp_%s%zu", alias,
	                           alias[0] != '\0' ? "." : "", kind,
	                           i + 1) > 0;
}

static bool add_slot_of(struct evbuffer *out, const char *alias,
                        const char *kind, const struct sql_target *t,
                        const char *name)
{
	return add_slot(out, alias, kind, col_index(t, name));
}

static bool add_key_slots(struct evbuffer *out, const char *alias,
                          const struct sql_target *t)
{
	for (size_t i = 0; i < t->nkeys; i++) {
		if ((i > 0 && !add_str(out, ", ")) ||
		    !add_slot_of(out, alias, "c", t, t->keys[i]))
			return false;
	}
	return true;
}

/* PARTITION BY <keys> ORDER BY <alias>.lbp_seq */
static bool add_key_window(struct evbuffer *out, const char *alias,
                           const struct sql_target *t)
{
	return add_str(out, "PARTITION BY ") && add_key_slots(out, alias, t) &&
	       add_str(out, " ORDER BY ") && add_str(out, alias) &&
	       add_str(out, "." SEQ_COL);
}

/* The stage renamed, with the previous row's version of the same key. */
static bool add_rounds_inner(struct evbuffer *out, const struct sql_target *t,
                             const char *stage)
{
	if (!add_str(out, "SELECT s." SEQ_COL))
		return false;
	for (size_t i = 0; i < t->ncols; i++) {
		if (!add_str(out, ", s.") ||
		    !sql_append_ident(out, t->cols[i]) ||
		    !add_str(out, " AS ") || !add_slot(out, "", "c", i))
			return false;
	}
	return add_str(out, ", lag(s.") &&
	       sql_append_ident(out, t->version_col) &&
	       add_str(out, ") OVER (PARTITION BY ") &&
	       add_ident_list(out, "s.", t->keys, t->nkeys) &&
	       add_str(out, " ORDER BY s." SEQ_COL ") AS lbp_pv FROM ") &&
	       sql_append_ident(out, stage) && add_str(out, " s");
}

/* lead() of the version and of each coalesce column, over the window w */
static bool add_rounds_leads(struct evbuffer *out, const struct sql_target *t)
{
	if (!add_str(out, ", lead(") ||
	    !add_slot_of(out, "y", "c", t, t->version_col) ||
	    !add_str(out, ") OVER w AS ") ||
	    !add_slot_of(out, "", "n", t, t->version_col))
		return false;
	for (size_t i = 0; i < t->ncoalesce; i++) {
		if (strcmp(t->coalesce[i], t->version_col) == 0)
			continue;
		if (!add_str(out, ", lead(") ||
		    !add_slot_of(out, "y", "c", t, t->coalesce[i]) ||
		    !add_str(out, ") OVER w AS ") ||
		    !add_slot_of(out, "", "n", t, t->coalesce[i]))
			return false;
	}
	return true;
}

/* Rows that are not at least the previous row's version, with the leads. */
static bool add_rounds_middle(struct evbuffer *out, const struct sql_target *t,
                              const char *stage)
{
	size_t v = col_index(t, t->version_col);

	return add_str(out, "SELECT y.*, lead(y." SEQ_COL ") OVER w AS "
	                    "lbp_nseq") &&
	       add_rounds_leads(out, t) && add_str(out, " FROM (") &&
	       add_rounds_inner(out, t, stage) &&
	       add_str(out, ") y WHERE NOT (") && add_slot(out, "y", "c", v) &&
	       add_str(out, " IS NOT NULL AND y.lbp_pv IS NOT NULL AND "
	                    "y.lbp_pv >= ") &&
	       add_slot(out, "y", "c", v) && add_str(out, ") WINDOW w AS (") &&
	       add_key_window(out, "y", t) && add_str(out, ")");
}

/* The next row always applies and overrides this one: it may go. */
static bool add_rounds_absorbed(struct evbuffer *out,
                                const struct sql_target *t)
{
	size_t v = col_index(t, t->version_col);

	if (!add_str(out, "(") || !add_slot(out, "x", "n", v) ||
	    !add_str(out, " IS NULL OR (") || !add_slot(out, "x", "c", v) ||
	    !add_str(out, " IS NOT NULL AND ") || !add_slot(out, "x", "n", v) ||
	    !add_str(out, " > ") || !add_slot(out, "x", "c", v) ||
	    !add_str(out, "))"))
		return false;
	for (size_t i = 0; i < t->ncoalesce; i++) {
		size_t c = col_index(t, t->coalesce[i]);

		if (!add_str(out, " AND (") || !add_slot(out, "x", "n", c) ||
		    !add_str(out, " IS NOT NULL OR ") ||
		    !add_slot(out, "x", "c", c) || !add_str(out, " IS NULL)"))
			return false;
	}
	return true;
}

/* The remaining rows, each with its round (1 for the first of its key). */
static bool add_rounds_query(struct evbuffer *out, const struct sql_target *t,
                             const char *stage)
{
	return add_str(out, "SELECT x.*, row_number() OVER (") &&
	       add_key_window(out, "x", t) &&
	       add_str(out, ") AS lbp_round FROM (") &&
	       add_rounds_middle(out, t, stage) &&
	       add_str(out, ") x WHERE x.lbp_nseq IS NULL OR NOT (") &&
	       add_rounds_absorbed(out, t) && add_str(out, ")");
}

/*
 * One round, and the number of rounds, in one statement (the rounds query
 * runs once a round):
 *   WITH q AS MATERIALIZED (<rounds>), i AS (INSERT ... SELECT <round
 *   lbp.r of q> ORDER BY keys ON CONFLICT ...) SELECT max(lbp_round) INTO n
 */
static bool add_round(struct evbuffer *out, const struct sql_target *t,
                      const char *stage)
{
	if (!add_str(out, "WITH q AS MATERIALIZED (") ||
	    !add_rounds_query(out, t, stage) ||
	    !add_str(out, "), i AS (INSERT INTO ") ||
	    !sql_append_qualified(out, t->schema, t->table) ||
	    !add_str(out, " AS t (") ||
	    !add_ident_list(out, "", t->cols, t->ncols) ||
	    !add_str(out, ") SELECT "))
		return false;
	for (size_t i = 0; i < t->ncols; i++) {
		if ((i > 0 && !add_str(out, ", ")) ||
		    !add_slot(out, "q", "c", i))
			return false;
	}
	return add_str(out, " FROM q WHERE q.lbp_round = lbp.r ORDER BY ") &&
	       add_key_slots(out, "q", t) && add_str(out, " ON CONFLICT (") &&
	       add_ident_list(out, "", t->keys, t->nkeys) &&
	       add_str(out, ") ") && add_conflict_action(out, t) &&
	       add_str(out, ") SELECT coalesce(max(q.lbp_round), 0) INTO n "
	                    "FROM q");
}

/* No key twice in the stage: one INSERT of the stage, as round 1 would. */
static bool add_unique_insert(struct evbuffer *out, const struct sql_target *t,
                              const char *stage)
{
	return add_str(out, "INSERT INTO ") &&
	       sql_append_qualified(out, t->schema, t->table) &&
	       add_str(out, " AS t (") &&
	       add_ident_list(out, "", t->cols, t->ncols) &&
	       add_str(out, ") SELECT ") &&
	       add_ident_list(out, "", t->cols, t->ncols) &&
	       add_str(out, " FROM ") && sql_append_ident(out, stage) &&
	       add_str(out, " ORDER BY ") &&
	       add_ident_list(out, "", t->keys, t->nkeys) &&
	       add_str(out, " ON CONFLICT (") &&
	       add_ident_list(out, "", t->keys, t->nkeys) &&
	       add_str(out, ") ") && add_conflict_action(out, t);
}

/*
 * The DO block's body: when no key repeats (the common case), the stage in
 * one INSERT; otherwise one INSERT per round, as many rounds as needed.
 */
static bool add_rounds_body(struct evbuffer *out, const struct sql_target *t,
                            const char *stage)
{
	return add_str(out, "BEGIN IF NOT EXISTS (SELECT FROM ") &&
	       sql_append_ident(out, stage) && add_str(out, " GROUP BY ") &&
	       add_ident_list(out, "", t->keys, t->nkeys) &&
	       add_str(out, " HAVING count(*) > 1) THEN ") &&
	       add_unique_insert(out, t, stage) &&
	       add_str(out, "; ELSE <<lbp>> DECLARE r bigint := 1; n bigint := "
	                    "1; BEGIN WHILE r <= n LOOP ") &&
	       add_round(out, t, stage) &&
	       add_str(out, "; r := r + 1; END LOOP; END; END IF; END");
}

/*
 * DO $tag$<body>$tag$ with a dollar-quote tag the body does not contain
 * (quoted names and type names may hold '$').
 */
static bool add_rounds_upsert(struct evbuffer *out, const struct sql_target *t,
                              const char *stage)
{
	struct evbuffer *body = evbuffer_new();
	char tag[32];
	bool ok = body != NULL && add_rounds_body(body, t, stage);

	for (int n = 0; ok && n < 100; n++) {
		snprintf(tag, sizeof(tag), "$lbp%d$", n);
		if (evbuffer_search(body, tag, strlen(tag), NULL).pos < 0) {
			ok = add_str(out, "DO ") && add_str(out, tag) &&
			     evbuffer_add_buffer(out, body) == 0 &&
			     add_str(out, tag);
			evbuffer_free(body);
			return ok;
		}
	}
	if (body != NULL)
		evbuffer_free(body);
	return false;
}

static bool add_upsert(struct evbuffer *out, const struct sql_target *t,
                       const char *stage)
{
	if (has_version(t))
		return add_rounds_upsert(out, t, stage);
	if (t->first_wins)
		return add_first_wins(out, t, stage);
	return add_merge_insert(out, t, stage) && add_conflict_action(out, t);
}

static bool upsert_target_valid(const struct sql_target *t, const char *stage)
{
	if (!target_valid(t) || t->mode != SQL_UPSERT || t->nkeys == 0 ||
	    t->types == NULL || !sql_ident_valid(stage) ||
	    (t->first_wins && (has_version(t) || t->ncoalesce > 0)))
		return false;
	for (size_t i = 0; i < t->ncols; i++) {
		if (t->types[i] == NULL || t->types[i][0] == '\0' ||
		    strcmp(t->cols[i], SEQ_COL) == 0)
			return false;
	}
	/* Keys, version and coalesce columns are columns of the batch. */
	for (size_t i = 0; i < t->nkeys; i++) {
		if (col_index(t, t->keys[i]) == t->ncols)
			return false;
	}
	for (size_t i = 0; i < t->ncoalesce; i++) {
		if (col_index(t, t->coalesce[i]) == t->ncols)
			return false;
	}
	return !has_version(t) || col_index(t, t->version_col) < t->ncols;
}

/* CREATE TEMP TABLE ...; BEGIN; COPY ...; INSERT ... ON CONFLICT ... */
static bool add_upsert_body(struct evbuffer *out, const struct sql_target *t,
                            const char *stage)
{
	return add_stage_table(out, t, stage) && add_str(out, "; ") &&
	       add_begin(out, t) && add_copy(out, NULL, stage, t) &&
	       add_str(out, "; ") && add_upsert(out, t, stage);
}

char *sql_upsert_batch(const struct sql_target *t, const char *stage)
{
	struct evbuffer *b;

	if (!upsert_target_valid(t, stage) || (b = evbuffer_new()) == NULL)
		return NULL;
	return take_text(b, add_upsert_body(b, t, stage) &&
	                        add_str(b, "; COMMIT"));
}

/* ---- dead letters ---- */

/* "<table>_dead_letter" in t's schema, quoted; false if not a valid name. */
static bool add_dead_letter_name(struct evbuffer *out, const char *schema,
                                 const char *table)
{
	struct evbuffer *name = evbuffer_new();
	bool ok;

	ok = name != NULL && add_str(name, table) &&
	     add_str(name, SQL_DEAD_LETTER_SUFFIX) &&
	     evbuffer_add(name, "", 1) == 0 &&
	     sql_ident_valid((const char *)evbuffer_pullup(name, -1)) &&
	     sql_append_qualified(out, schema,
	                          (const char *)evbuffer_pullup(name, -1));
	if (name)
		evbuffer_free(name);
	return ok;
}

static bool add_dead_letter_create(struct evbuffer *out, const char *schema,
                                   const char *table)
{
	return add_str(out, "CREATE TABLE IF NOT EXISTS ") &&
	       add_dead_letter_name(out, schema, table) &&
	       add_str(out, " (received_at timestamptz NOT NULL DEFAULT "
	                    "now(), sqlstate text, message text, detail text, "
	                    "flush_row bigint, row_text text)");
}

char *sql_dead_letter_create(const char *schema, const char *table)
{
	struct evbuffer *b;

	if (table == NULL || (b = evbuffer_new()) == NULL)
		return NULL;
	return take_text(b, add_dead_letter_create(b, schema, table));
}

bool sql_append_dead_letter_row(struct evbuffer *out,
                                const struct sql_dead_letter *d)
{
	char row[24];

	snprintf(row, sizeof(row), "%" PRIu64, d->flush_row);
	return add_str(out, evbuffer_get_length(out) > 0 ? ", (" : "(") &&
	       sql_append_literal(out, d->sqlstate ? d->sqlstate : "") &&
	       add_str(out, ", ") &&
	       sql_append_literal(out, d->message ? d->message : "") &&
	       add_str(out, ", ") &&
	       sql_append_literal(out, d->detail ? d->detail : "") &&
	       add_str(out, ", ") && add_str(out, row) && add_str(out, ", ") &&
	       sql_append_literal(out, d->row_text ? d->row_text : "") &&
	       add_str(out, ")");
}

/* Every letter buffer's bytes, in order; they are left as they were. */
static bool add_letters(struct evbuffer *out, struct evbuffer *const *letters,
                        size_t n)
{
	bool first = true;

	for (size_t i = 0; i < n; i++) {
		size_t len = evbuffer_get_length(letters[i]);

		if (len == 0)
			continue;
		if ((!first && !add_str(out, ", ")) ||
		    evbuffer_add(out, evbuffer_pullup(letters[i], -1), len) !=
		        0)
			return false;
		first = false;
	}
	return !first; /* at least one row */
}

char *sql_batch_with_dead_letters(const struct sql_target *t, const char *stage,
                                  struct evbuffer *const *letters,
                                  size_t nletters)
{
	bool any = false;

	for (size_t i = 0; i < nletters; i++)
		any = any || evbuffer_get_length(letters[i]) > 0;
	if (!any)
		return NULL;
	return sql_batch_statement(t, stage, letters, nletters, NULL, 0);
}

/* ---- exactly-once progress rows ---- */

struct sql_progress *sql_progress_copy(const struct sql_progress *p)
{
	const char *schema = p->schema != NULL ? p->schema : "";
	size_t ls = strlen(schema) + 1, lt = strlen(p->table) + 1,
	       lq = strlen(p->query_id) + 1;
	struct sql_progress *c = malloc(sizeof(*c) + ls + lt + lq);
	char *text;

	if (c == NULL)
		return NULL;
	*c = *p;
	text = (char *)(c + 1);
	c->schema = memcpy(text, schema, ls);
	c->table = memcpy(text + ls, p->table, lt);
	c->query_id = memcpy(text + ls + lt, p->query_id, lq);
	return c;
}

bool sql_progress_valid(const struct sql_progress *p)
{
	return p != NULL && sql_ident_valid(p->table) &&
	       (p->schema == NULL || p->schema[0] == '\0' ||
	        sql_ident_valid(p->schema)) &&
	       p->query_id != NULL && p->query_id[0] != '\0' &&
	       p->partition_id >= 0 && p->epoch_id >= 0 &&
	       p->rows_committed >= 0;
}

static bool add_progress_create(struct evbuffer *out,
                                const struct sql_progress *p)
{
	return add_str(out, "CREATE TABLE IF NOT EXISTS ") &&
	       sql_append_qualified(out, p->schema, p->table) &&
	       add_str(out,
	               " (query_id text NOT NULL, partition_id bigint NOT "
	               "NULL, epoch_id bigint NOT NULL, rows_committed "
	               "bigint NOT NULL, complete boolean NOT NULL DEFAULT "
	               "false, updated_at timestamptz NOT NULL DEFAULT "
	               "now(), PRIMARY KEY (query_id, partition_id, "
	               "epoch_id))");
}

/* query_id = '<q>' AND partition_id = <p> AND epoch_id = <e> */
static bool add_progress_where(struct evbuffer *out,
                               const struct sql_progress *p)
{
	char ids[80];

	snprintf(ids, sizeof(ids),
	         " AND partition_id = %" PRId64 " AND epoch_id = %" PRId64,
	         p->partition_id, p->epoch_id);
	return add_str(out, " WHERE query_id = ") &&
	       sql_append_literal(out, p->query_id) && add_str(out, ids);
}

char *sql_progress_read(const struct sql_progress *p)
{
	struct evbuffer *b;

	if (!sql_progress_valid(p) || (b = evbuffer_new()) == NULL)
		return NULL;
	return take_text(b, add_progress_create(b, p) &&
	                        add_str(b, "; SELECT rows_committed, complete "
	                                   "FROM ") &&
	                        sql_append_qualified(b, p->schema, p->table) &&
	                        add_progress_where(b, p));
}

static bool same_table(const struct sql_progress *a,
                       const struct sql_progress *b)
{
	const char *sa = a->schema ? a->schema : "",
	           *sb = b->schema ? b->schema : "";

	return strcmp(sa, sb) == 0 && strcmp(a->table, b->table) == 0;
}

/* Table, query, partition, epoch: the order progress rows are locked in. */
static int progress_cmp(const void *x, const void *y)
{
	const struct sql_progress *a = *(const struct sql_progress *const *)x;
	const struct sql_progress *b = *(const struct sql_progress *const *)y;
	int c = strcmp(a->schema ? a->schema : "", b->schema ? b->schema : "");

	if (c == 0)
		c = strcmp(a->table, b->table);
	if (c == 0)
		c = strcmp(a->query_id, b->query_id);
	if (c == 0)
		c = (a->partition_id > b->partition_id) -
		    (a->partition_id < b->partition_id);
	if (c == 0)
		c = (a->epoch_id > b->epoch_id) - (a->epoch_id < b->epoch_id);
	return c;
}

/* One CREATE per distinct table (sorted: equal tables are adjacent). */
static bool add_progress_creates(struct evbuffer *out,
                                 const struct sql_progress *const *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && same_table(p[i - 1], p[i]))
			continue;
		if (!add_progress_create(out, p[i]) || !add_str(out, "; "))
			return false;
	}
	return true;
}

/* The last of several rows of one key wins by keeping the largest count. */
static bool add_progress_upsert(struct evbuffer *out,
                                const struct sql_progress *p)
{
	char vals[80];

	snprintf(vals, sizeof(vals),
	         ", %" PRId64 ", %" PRId64 ", %" PRId64 ", %s)",
	         p->partition_id, p->epoch_id, p->rows_committed,
	         p->complete ? "true" : "false");
	return add_str(out, "; INSERT INTO ") &&
	       sql_append_qualified(out, p->schema, p->table) &&
	       add_str(out, " AS p (query_id, partition_id, epoch_id, "
	                    "rows_committed, complete) VALUES (") &&
	       sql_append_literal(out, p->query_id) && add_str(out, vals) &&
	       add_str(out,
	               " ON CONFLICT (query_id, partition_id, epoch_id) DO "
	               "UPDATE SET rows_committed = GREATEST("
	               "p.rows_committed, EXCLUDED.rows_committed), "
	               "complete = p.complete OR EXCLUDED.complete, "
	               "updated_at = now()");
}

/*
 * The query's rows of epochs before `epoch` (of every partition key: a
 * partition's key changes from epoch to epoch, docs/ingest-protocol.md 6.5).
 */
static bool add_progress_prune(struct evbuffer *out,
                               const struct sql_progress *p, int64_t epoch)
{
	char cond[48];

	snprintf(cond, sizeof(cond), " AND epoch_id < %" PRId64, epoch);
	return add_str(out, "; DELETE FROM ") &&
	       sql_append_qualified(out, p->schema, p->table) &&
	       add_str(out, " WHERE query_id = ") &&
	       sql_append_literal(out, p->query_id) && add_str(out, cond);
}

/*
 * The upserts in key order, then one prune per (table, query) of the epochs
 * before the one preceding the smallest epoch of its rows in this batch (a
 * failed real-time task's input is replayed in the next epoch; sorted: a
 * group is adjacent).
 */
static bool add_progress_upserts(struct evbuffer *out,
                                 const struct sql_progress *const *p, size_t n)
{
	int64_t epoch = INT64_MAX; /* the smallest of the group so far */

	for (size_t i = 0; i < n; i++) {
		if (!add_progress_upsert(out, p[i]))
			return false;
		if (p[i]->epoch_id < epoch)
			epoch = p[i]->epoch_id;
		if (i + 1 < n && same_table(p[i], p[i + 1]) &&
		    strcmp(p[i]->query_id, p[i + 1]->query_id) == 0)
			continue;
		if (!add_progress_prune(out, p[i], epoch - 1))
			return false;
		epoch = INT64_MAX;
	}
	return true;
}

/* A sorted copy of the progress rows; NULL if one is invalid or on OOM. */
static const struct sql_progress **
sorted_progress(const struct sql_progress *const *p, size_t n)
{
	const struct sql_progress **s = malloc((n ? n : 1) * sizeof(*s));

	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (!sql_progress_valid(p[i])) {
			free(s);
			return NULL;
		}
		s[i] = p[i];
	}
	qsort(s, n, sizeof(*s), progress_cmp);
	return s;
}

static bool add_dead_insert(struct evbuffer *out, const struct sql_target *t,
                            struct evbuffer *const *letters, size_t n)
{
	return add_str(out, "; INSERT INTO ") &&
	       add_dead_letter_name(out, t->schema, t->table) &&
	       add_str(out, " (sqlstate, message, detail, flush_row, row_text) "
	                    "VALUES ") &&
	       add_letters(out, letters, n);
}

static bool has_letters(struct evbuffer *const *letters, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (evbuffer_get_length(letters[i]) > 0)
			return true;
	return false;
}

static bool add_full_batch(struct evbuffer *b, const struct sql_target *t,
                           const char *stage, struct evbuffer *const *letters,
                           size_t nletters,
                           const struct sql_progress *const *progress,
                           size_t nprogress)
{
	bool upsert = t->mode == SQL_UPSERT;
	bool dead = has_letters(letters, nletters);

	return (!dead || (add_dead_letter_create(b, t->schema, t->table) &&
	                  add_str(b, "; "))) &&
	       add_progress_creates(b, progress, nprogress) &&
	       (upsert ? add_upsert_body(b, t, stage)
	               : add_insert_body(b, t)) &&
	       (!dead || add_dead_insert(b, t, letters, nletters)) &&
	       add_progress_upserts(b, progress, nprogress) &&
	       add_str(b, "; COMMIT");
}

char *sql_batch_statement(const struct sql_target *t, const char *stage,
                          struct evbuffer *const *letters, size_t nletters,
                          const struct sql_progress *const *progress,
                          size_t nprogress)
{
	bool upsert = t != NULL && t->mode == SQL_UPSERT;
	const struct sql_progress **sorted;
	struct evbuffer *b;
	bool ok;

	if (upsert ? !upsert_target_valid(t, stage) : !insert_target_valid(t))
		return NULL;
	if ((sorted = sorted_progress(progress, nprogress)) == NULL)
		return NULL;
	if ((b = evbuffer_new()) == NULL) {
		free(sorted);
		return NULL;
	}
	ok = add_full_batch(b, t, stage, letters, nletters, sorted, nprogress);
	free(sorted);
	return take_text(b, ok);
}

/* ---- COPY error context ---- */

/* Digits at s up to a ',' ':' or the end of the line; overflow is false. */
static bool parse_line_number(const char *s, const char *eol, uint64_t *n)
{
	uint64_t v = 0;
	const char *p = s;

	for (; p < eol && *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (p == s || v == 0 || (p < eol && *p != ',' && *p != ':'))
		return false;
	*n = v;
	return true;
}

/*
 * In "COPY <table>, line N[, column c][: value]" the first ", line N"
 * that parses is taken: the value after it is client data and may hold
 * anything.
 */
static bool parse_copy_line(const char *s, const char *eol, uint64_t *n)
{
	static const char tag[] = ", line ";
	const char *p = s + 5;

	while (p < eol) {
		const char *hit = strstr(p, tag);

		if (hit == NULL || hit >= eol)
			return false;
		p = hit + sizeof(tag) - 1;
		if (parse_line_number(p, eol, n))
			return true;
	}
	return false;
}

bool sql_copy_error_line(const char *where, uint64_t *line)
{
	const char *last = NULL, *last_eol = NULL;

	if (where == NULL)
		return false;
	for (const char *s = where; *s != '\0';) {
		const char *eol = strchr(s, '\n');

		if (eol == NULL)
			eol = s + strlen(s);
		if (strncmp(s, "COPY ", 5) == 0) {
			last = s;
			last_eol = eol;
		}
		s = *eol == '\n' ? eol + 1 : eol;
	}
	return last != NULL && parse_copy_line(last, last_eol, line);
}

/* translate(<text>, 'A..Z', 'a..z'): ASCII letters folded, nothing else. */
#define SQL_FOLD_TAIL                                                          \
	", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"

/* translate(<column>) = translate(<literal>) */
static bool add_folded_eq(struct evbuffer *q, const char *col, const char *lit)
{
	return add_str(q, "translate(") && add_str(q, col) &&
	       add_str(q, SQL_FOLD_TAIL " = translate(") &&
	       sql_append_literal(q, lit) && add_str(q, SQL_FOLD_TAIL);
}

/*
 * cand: the tables (and views, foreign tables) whose name equals the asked
 * one ignoring the case of ASCII letters, in the asked schema (same rule)
 * or, without one, in the schemas PostgreSQL searches, with their search
 * path position and whether both names match exactly. pick: the first exact
 * match in path order, else the only candidate, else none.
 */
static bool add_catalog_candidates(struct evbuffer *q, const char *schema,
                                   const char *table)
{
	bool has_schema = schema != NULL && schema[0] != '\0';

	return add_str(q, "WITH cand AS (SELECT c.oid, c.relkind, n.nspname, "
	                  "c.relname, array_position(current_schemas(true), "
	                  "n.nspname) AS pos, c.relname = ") &&
	       sql_append_literal(q, table) &&
	       (!has_schema || (add_str(q, " AND n.nspname = ") &&
	                        sql_append_literal(q, schema))) &&
	       add_str(q,
	               " AS exact FROM pg_class c JOIN pg_namespace n ON "
	               "n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', "
	               "'v', 'f') AND ") &&
	       add_folded_eq(q, "c.relname", table) && add_str(q, " AND ") &&
	       (has_schema
	            ? add_folded_eq(q, "n.nspname", schema)
	            : add_str(q, "n.nspname = ANY(current_schemas(true))")) &&
	       add_str(q,
	               "), pick AS (SELECT * FROM cand WHERE exact OR (SELECT "
	               "count(*) FROM cand) = 1 ORDER BY exact DESC, pos NULLS "
	               "LAST LIMIT 1), r AS (SELECT (SELECT oid FROM pick) AS "
	               "oid) ");
}

char *sql_catalog_lookup(const char *schema, const char *table)
{
	struct evbuffer *q;
	bool ok;

	if (table == NULL || (q = evbuffer_new()) == NULL)
		return NULL;
	ok = add_catalog_candidates(q, schema, table) &&
	     add_str(
	         q,
	         "SELECT 'a', r.oid::text, p.relkind::text, p.nspname::text, "
	         "(SELECT CASE WHEN c.relhasrules THEN 1 ELSE 0 END FROM "
	         "pg_class c WHERE c.oid = r.oid) + coalesce((SELECT 2 FROM "
	         "pg_trigger g WHERE g.tgrelid = r.oid AND NOT g.tgisinternal "
	         "AND (g.tgtype & 1) = 0 AND (g.tgtype & 20) <> 0 LIMIT 1), 0)"
	         "::bigint FROM r LEFT JOIN pick p ON true "
	         "UNION ALL SELECT 'b', (SELECT relname::text FROM pick), "
	         "(SELECT string_agg(quote_ident(nspname) || '.' || "
	         "quote_ident(relname), ', ' ORDER BY pos, nspname, relname) "
	         "FROM cand WHERE NOT EXISTS (SELECT FROM pick)), NULL, 0 "
	         "UNION ALL SELECT 'c', a.attname::text, "
	         "format_type(a.atttypid, a.atttypmod), "
	         "a.attnotnull::text || a.attidentity::text || "
	         "a.attgenerated::text, a.attnum::bigint "
	         "FROM r "
	         "JOIN pg_attribute a ON a.attrelid = r.oid "
	         "AND a.attnum > 0 AND NOT a.attisdropped "
	         "UNION ALL SELECT 'u', i.indexrelid::text, "
	         "a.attname::text, NULL, "
	         "i.indexrelid::bigint * 2000 + a.attnum FROM r "
	         "JOIN pg_index i ON i.indrelid = r.oid AND i.indisunique "
	         "AND i.indpred IS NULL AND i.indexprs IS NULL "
	         "JOIN pg_attribute a ON a.attrelid = r.oid AND "
	         "a.attnum = ANY(i.indkey) ORDER BY 1, 5");
	return take_text(q, ok);
}
