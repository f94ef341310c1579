/* catalog.h: what the proxy knows of target tables: columns, types, unique
 * keys. */
#ifndef LBP_CATALOG_H
#define LBP_CATALOG_H

/*
 * One query per table (columns with format_type(), unique indexes without
 * predicates or expressions) on a pooled connection, cached for ttl_s and
 * dropped early by cat_invalidate() when a batch fails with an error that
 * says the table changed. Concurrent lookups of one table share the query.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct pool;
struct catalog;

struct cat_column {
	char *name;
	char *type; /* format_type(), e.g. "timestamp with time zone" */
	bool not_null;
	bool identity_always; /* GENERATED ALWAYS AS IDENTITY */
	bool generated;       /* GENERATED ALWAYS AS (...) STORED */
};

struct cat_index {
	size_t ncols;
	char **cols; /* the columns of one unique index, sorted */
};

struct cat_table {
	char *schema; /* as asked ("" = search_path) */
	char *table;
	char *rel_schema; /* the relation's names as the catalog has them */
	char *rel_name;
	size_t ncols;
	struct cat_column *cols; /* in attnum order */
	size_t nindexes;
	struct cat_index *indexes;
	/* what makes COPY differ from INSERT on it: rules (COPY ignores
	 * them), statement-level INSERT or UPDATE triggers (once per batch) */
	bool has_rules;
	bool statement_triggers;
};

/*
 * t is NULL on failure, with a SQLSTATE and message to pass to the client
 * (42P01 no such table, or several equal ignoring case (the message names
 * them), 42809 not a table, or the server's error). t lives
 * until the callback returns; copy what you keep.
 */
typedef void (*cat_cb)(const struct cat_table *t, const char *sqlstate,
                       const char *message, void *arg);

struct catalog *cat_new(struct event_base *base, struct pool *pool,
                        unsigned ttl_s);
/* Pending lookups are called back with 57P01 first. */
void cat_free(struct catalog *cat);
/* A new cache lifetime (a reload); it applies to entries already cached. */
void cat_set_ttl(struct catalog *cat, unsigned ttl_s);

struct cat_lookup;
/* Calls cb from the event loop, never from inside cat_lookup. */
struct cat_lookup *cat_lookup(struct catalog *cat, const char *schema,
                              const char *table, cat_cb cb, void *arg);
/* Withdraws a lookup whose callback has not run (its requester is gone). */
void cat_cancel(struct catalog *cat, struct cat_lookup *l);
/* Drops the entries of schema.table, asked so or resolved to it. */
void cat_invalidate(struct catalog *cat, const char *schema, const char *table);

/* Equal when the case of ASCII letters is ignored (and only theirs). */
bool cat_same_folded(const char *a, const char *b);
/*
 * The column a client's name means: the one named exactly so, else the only
 * one whose name is equal ignoring the case of ASCII letters (as PostgreSQL
 * folds unquoted names). NULL when there is none, or several (*ambiguous
 * true then).
 */
const struct cat_column *cat_find_column(const struct cat_table *t,
                                         const char *name, bool *ambiguous);
/* Is there a unique index on exactly these columns (in any order)? */
bool cat_has_unique(const struct cat_table *t, const char *const *cols,
                    size_t ncols);

#endif
