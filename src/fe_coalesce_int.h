/* fe_coalesce_int.h: what fe_coalesce.c (sequences), fe_cotxn.c (coalesced
 * transactions) and fe_copyin.c (COPY FROM STDIN) share; not for others. */
#ifndef LBP_FE_COALESCE_INT_H
#define LBP_FE_COALESCE_INT_H

#include "frontend_int.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "coalesce.h"
#include "pgwire.h"
#include "sqlrec.h"

/* The most bytes of messages held to look at; longer ones are relayed. */
#define FCO_MAX_SEQ (8u * 1024 * 1024)
/* A statement the sequence uses. */
struct fco_stmt {
	char *name; /* the client's ("" unnamed); NULL for a Query */
	struct sqlr_stmt *st;
	uint16_t ntypes;
	uint32_t *types; /* the Parse's parameter types (0: unspecified) */
	size_t nparams;  /* what a Bind must give: max(ntypes, $n) */
};

/* What a message of the sequence is, from the first look. */
struct fco_op {
	uint8_t type;
	int stmt;  /* index into stmts, or -1 */
	char kind; /* Describe and Close: 'S' or 'P' */
};

/* One Execute (or the Query): its rows, where its CommandComplete is. */
struct fco_exec {
	uint64_t rows;
	size_t answer_at;
	bool count_later; /* DO NOTHING: its INSERT tag is made at the answer */
};

struct fco_seq {
	struct fe_client *cl; /* NULL once the client left */
	struct frontend *fe;
	struct fe_db *db;
	size_t len; /* bytes of the client's messages */
	struct fco_stmt *stmts;
	size_t nstmts;
	struct fco_op *ops;
	size_t nops;
	struct cat_lookup *lookup;
	struct evbuffer *answers;
	struct fco_exec *execs;
	size_t nexecs;
	struct evbuffer *rows;
	uint64_t nrows;
	size_t held;      /* counted in fe->stats.co_held_bytes */
	char status;      /* ReadyForQuery's: 'I', or 'T' in a transaction */
	bool first_wins;  /* its INSERTs are ON CONFLICT DO NOTHING */
	bool begin;       /* it starts with BEGIN (coalesce_transactions) */
	char *begin_name; /* a Parse of BEGIN in it, under this name */
	char why[200];    /* why a value made it be relayed (debug log) */
	/* COPY FROM STDIN: its data arrives after CopyInResponse */
	bool copy_in;
	struct co_target *target; /* its target (a reference) */
	uint8_t *query;           /* the client's Query, for a handover */
	size_t query_len;
	unsigned copy_cols;
	struct evbuffer *tail; /* data after the last whole line */
	struct evbuffer *raw;  /* CSV: the data as it came, for a handover */
};

/* A coalesced explicit transaction: its rows wait for COMMIT. */
struct fco_txn {
	struct co_target *target; /* NULL until its first INSERT */
	struct evbuffer *rows;
	uint64_t nrows;
	size_t held; /* counted in fe->stats.co_held_bytes */
};

/* The table written, from the first statement and the catalog. */
struct fco_target {
	const struct cat_table *t;
	size_t ncols;
	const char **cols;  /* the catalog's names */
	const char **types; /* their format_type() */
	bool upsert;
	bool first_wins; /* ON CONFLICT DO NOTHING */
	bool *is_key;    /* per column (upsert) */
};

/* The statement index of a BEGIN that starts a sequence. */
#define STMT_BEGIN (-2)

/* fe_coalesce.c: sequences */
void fco_seq_free(struct fco_seq *q);
/* Calls fn on each message of the sequence at the front of in. */
bool fco_each_message(struct fco_seq *q, struct evbuffer *in,
                      bool (*fn)(struct fco_seq *q, size_t i,
                                 const struct pgw_frame *f, void *arg),
                      void *arg);
/* The Parses and Closes of statements, once the sequence is taken. */
bool fco_keep_fn(struct fco_seq *q, size_t i, const struct pgw_frame *f,
                 void *arg);
bool fco_put_empty(struct evbuffer *out, uint8_t type);
/* The server's error without what belonged to the batch's COPY. */
void fco_put_failure(struct evbuffer *out, const struct co_outcome *o);
/* The coalescer's target for the sequence's table (a reference). */
struct co_target *fco_target_of(struct fco_seq *q, const struct fco_target *g);
/* A unit's outcome (co_done_cb): the client is answered, or q freed. */
void fco_unit_done(const struct co_outcome *o, void *arg);
/* Back to IDLE; the client's next messages are looked at. */
void fco_relay_rest(struct fe_client *cl);

/* fe_cotxn.c: coalesced explicit transactions */
void fco_txn_free(struct fe_client *cl);
bool fco_txn_new(struct fe_client *cl);
/* q's rows (for q->target, the transaction's target) join it. */
void fco_txn_take(struct fe_client *cl, struct fco_seq *q);
/*
 * The sequence's rows join the client's transaction (answered at once, the
 * commit comes with COMMIT). NULL, or why it must be relayed instead.
 */
const char *fco_add_to_txn(struct fco_seq *q, const struct fco_target *g);
/*
 * BEGIN, COMMIT or ROLLBACK of a coalesced transaction: answered here
 * (COMMIT once its rows are committed). FCO_FORWARD for the others.
 */
enum fco_verdict fco_control(struct fe_client *cl, struct fco_seq *q);

/* fe_copyin.c: COPY FROM STDIN */
/*
 * The table is known: the client gets CopyInResponse, and its data is
 * taken as it comes (fco_copy_input). NULL, or why it must be relayed.
 */
const char *fco_start_copy_in(struct fco_seq *q, const struct fco_target *g);

#endif
