/* co_progress.c: reading an exactly-once progress row on a pooled
 * connection (co_progress_read), and the copies units keep of theirs. */
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "coalesce_int.h"
#include "pool.h"
#include "sqlgen.h"
#include "upstream.h"

/* Two tasks creating the table at once: one of them gets 23505 or 42P07. */
#define READ_ATTEMPTS 3

/*
 * One read's life: WAITING for a connection (wait set), then QUERYING on
 * conn, then gone (done called, freed). On the coalescer's list meanwhile.
 */
enum read_state { READ_WAITING, READ_QUERYING };

struct co_read {
	TAILQ_ENTRY(co_read) link;
	struct coalescer *co;
	enum read_state state;
	struct pool_waiter *wait;
	char *sql;
	unsigned attempts;
	co_progress_cb done;
	void *arg;
};
TAILQ_HEAD(co_read_list, co_read);

/* Gives the read its outcome and frees it. */
static void read_end(struct co_read *r, const char *sqlstate,
                     const char *message, int64_t rows, bool complete)
{
	struct co_outcome o = {.sqlstate = sqlstate,
	                       .message = message ? message : "",
	                       .detail = ""};

	TAILQ_REMOVE(r->co->reads, r, link);
	r->done(&o, rows, complete, r->arg);
	free(r->sql);
	free(r);
}

static void read_got_conn(struct up_conn *c, void *arg);

static bool read_again(struct co_read *r)
{
	r->state = READ_WAITING;
	r->wait = pool_acquire(r->co->pool, read_got_conn, r);
	return r->wait != NULL;
}

static bool worth_again(const struct up_result *res)
{
	const char *st = res->error.sqlstate ? res->error.sqlstate : "";

	return res->conn_lost || strcmp(st, "23505") == 0 ||
	       strcmp(st, "42P07") == 0;
}

static void read_done(struct up_conn *c, const struct up_result *res, void *arg)
{
	struct co_read *r = arg;
	const char *rows, *complete;

	pool_release(r->co->pool, c);
	if (!res->ok) {
		if (worth_again(res) && ++r->attempts < READ_ATTEMPTS &&
		    read_again(r))
			return;
		read_end(r, res->conn_lost ? "08006" : res->error.sqlstate,
		         res->conn_lost ? res->conn_error : res->error.message,
		         0, false);
		return;
	}
	if (res->nrows == 0 || res->ncols != 2) {
		read_end(r, NULL, NULL, 0, false);
		return;
	}
	rows = up_result_cell(res, 0, 0);
	complete = up_result_cell(res, 0, 1);
	read_end(r, NULL, NULL, rows ? strtoll(rows, NULL, 10) : 0,
	         complete != NULL && strcmp(complete, "t") == 0);
}

static void read_got_conn(struct up_conn *c, void *arg)
{
	struct co_read *r = arg;

	r->wait = NULL;
	if (c == NULL) {
		read_end(r, "57P01", "the proxy is shutting down", 0, false);
		return;
	}
	r->state = READ_QUERYING;
	if (!up_exec(c, r->sql, NULL, read_done, r)) {
		pool_release(r->co->pool, c);
		read_end(r, "08006", "cannot run the progress query", 0, false);
	}
}

bool co_progress_read(struct coalescer *co, const struct sql_progress *key,
                      co_progress_cb done, void *arg)
{
	struct co_read *r;

	if (co->reads == NULL) {
		if ((co->reads = malloc(sizeof(*co->reads))) == NULL)
			return false;
		TAILQ_INIT(co->reads);
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return false;
	r->co = co;
	r->done = done;
	r->arg = arg;
	if ((r->sql = sql_progress_read(key)) == NULL || !read_again(r)) {
		free(r->sql);
		free(r);
		return false;
	}
	TAILQ_INSERT_TAIL(co->reads, r, link);
	return true;
}

void co_progress_abandon(struct coalescer *co)
{
	struct co_read *r;

	if (co->reads == NULL)
		return;
	while ((r = TAILQ_FIRST(co->reads)) != NULL) {
		/* A query in flight ends with its connection, with the pool. */
		if (r->state == READ_WAITING && r->wait != NULL)
			pool_cancel(co->pool, r->wait);
		read_end(r, "57P01", "the proxy is shutting down", 0, false);
	}
	free(co->reads);
	co->reads = NULL;
}
