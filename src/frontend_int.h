/* frontend_int.h: what frontend.c (listener, startup, TLS, login) and
 * fe_relay.c (pooling and relaying) share; not for other modules. */
#ifndef LBP_FRONTEND_INT_H
#define LBP_FRONTEND_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "fe_stmt.h"
#include "metrics.h"
#include "frontend.h"
#include "log.h"
#include "pool.h"
#include "upstream.h"

/* Stop reading one side while the other's queue is above this. */
#define FE_QUEUE_HIGH (1024u * 1024)
#define FE_QUEUE_LOW  (256u * 1024)
/* Largest client message the proxy must hold whole (Parse, Bind...). */
#define FE_MAX_INSPECT (64u * 1024 * 1024)
/* Largest server message the proxy must hold whole (ErrorResponse...). */
#define FE_MAX_SERVER_INSPECT (1024u * 1024)
/* Named statements one client may have in transaction mode. */
#define FE_MAX_CLIENT_STMTS 10000
/* ParameterStatus values a server sends (PostgreSQL 15: 14). */
#define FE_MAX_PARAMS 32

/* Session parameters a client's transactions carry from server to server. */
enum fe_var {
	FE_VAR_CLIENT_ENCODING,
	FE_VAR_DATESTYLE,
	FE_VAR_INTERVALSTYLE,
	FE_VAR_TIMEZONE,
	FE_VAR_STD_STRINGS,
	FE_VAR_APPLICATION_NAME,
	FE_NVARS
};
extern const char *const fe_var_names[FE_NVARS];
int fe_var_find(const char *name); /* -1: not tracked */

/* One pool: a database (scram), or a user and database (passthrough). */
struct fe_db {
	TAILQ_ENTRY(fe_db) link;
	char *name;
	char *user;     /* passthrough: the pool's own user; else NULL */
	char *password; /* passthrough: the last one that logged in */
	struct pool *pool;
	/* coalescing (fe_coalesce.c): its own connections, whose settings
	 * no client changed; created on first use */
	struct pool *co_pool;
	struct catalog *cat;
	struct coalescer *co;
	size_t nparams; /* the server's ParameterStatus values */
	char *pnames[FE_MAX_PARAMS], *pvalues[FE_MAX_PARAMS];
};
TAILQ_HEAD(fe_db_list, fe_db);

/* A '1' (ParseComplete) or '3' (CloseComplete) the server owes. */
struct fe_expect {
	char type;
	bool swallow; /* the proxy asked, the client did not */
	bool confirm; /* '1': mark name held on success... */
	bool forget;  /* '3': ...or forget it once closed */
	uint64_t gen; /* syncs sent before it */
	char name[FPS_NAME_LEN];
};

struct fco_seq;
struct fco_txn;

struct fe_client {
	TAILQ_ENTRY(fe_client) link;
	struct frontend *fe;
	uint64_t id;
	uint32_t key_secret; /* BackendKeyData: (id, key_secret) */
	enum fe_state state;
	struct bufferevent *bev;
	bool is_unix;
	bool tls;
	bool reading;
	char peer[64];
	char *user, *database;
	char *password;       /* passthrough, until its first login is done */
	char *vars[FE_NVARS]; /* values the client's session has */
	struct fe_db *db;
	struct scram_server *scram;
	unsigned auth_step;  /* SASL messages received */
	struct event *timer; /* by state: auth, wait, idle in txn, closing */
	struct event *kick;  /* process input later, from the loop */

	struct up_conn *probe; /* a first login to a database not seen yet */
	struct up_params probe_params; /* its own copies: fe->up may change */

	/* relaying */
	struct up_conn *up;
	struct pool_waiter *waiter;
	bool exec_running; /* a SET of ours on up; its callback frees if gone */
	bool gone;         /* the client left while exec_running */
	const char *refuse; /* SQLSTATE to answer the startup with (53300) */
	bool rewrite;       /* transaction mode: statements renamed */
	bool server_paused;
	uint64_t wait_start_us;
	uint64_t syncs_sent, syncs_done;
	size_t unsynced; /* extended messages since the last Sync */
	char txn;        /* last ReadyForQuery status */
	size_t sv_skip;  /* bytes of a server message still to pass through */
	size_t cl_skip;  /* bytes of a client message still to pass through */
	size_t cl_drop;  /* bytes of a client message to throw away */
	struct fps_client *stmts;
	struct fe_expect *expect; /* FIFO */
	size_t nexpect, expect_cap;
	/* an error owed to the next statement (server lost mid-transaction) */
	char owed_sqlstate[6];
	const char *owed_message;

	/* coalescing (fe_coalesce.c) */
	struct fco_txn *co_txn;       /* a coalesced explicit transaction */
	struct pgw_notice owed_error; /* owed instead of owed_sqlstate's */
	size_t co_input_held;         /* input counted in co_held_bytes */
	size_t co_scan;         /* bytes of whole messages looked at, idle */
	struct fco_seq *co_seq; /* messages taken aside, until answered */
	bool co_reading;        /* co_seq is a COPY taking its data */
	struct fco_seq *co_handover; /* a COPY given to the server */
	bool sv_swallow_copyin; /* its CopyInResponse is not the client's */
	uint8_t *co_unnamed;    /* the client's unnamed statement: its last */
	size_t co_unnamed_len;  /* unnamed Parse's rest (0: none); the */
	size_t co_unnamed_cap;  /* buffer is reused from Parse to Parse */
	bool unnamed_on_server; /* the lent connection has it (relaying) */
};
TAILQ_HEAD(fe_client_list, fe_client);

/* A CancelRequest on its way to a server. */
struct fe_cancel {
	TAILQ_ENTRY(fe_cancel) link;
	struct frontend *fe;
	struct up_conn *c;
	struct up_params params; /* its own copies: fe->up may change */
};
TAILQ_HEAD(fe_cancel_list, fe_cancel);

struct frontend {
	struct event_base *base;
	struct evdns_base *dns;
	struct cfg_frontend cfg; /* strings: ours */
	struct cfg_pool pool_cfg;
	struct cfg_batch batch_cfg; /* the coalescers' limits */
	unsigned acquire_timeout_ms;
	struct up_params up; /* host and password: ours, current */
	SSL_CTX *up_ctx;
	SSL_CTX *tls_ctx; /* for clients; NULL with tls = off */
	struct userlist *users;
	uint8_t mock_key[32]; /* salts for unknown users and plain secrets */
	struct evconnlistener *listener;
	char unix_path[108];
	struct fe_client_list clients;
	struct fe_db_list dbs;
	struct fe_cancel_list cancels;
	bool draining;
	uint64_t next_id;
	struct fe_stats stats;
	struct mt_metric *m_clients[FE_NSTATES]; /* fe_metrics.c */
	struct mt_metric *m_wait;
};

#define fe_log(level, cl, fmt, ...)                                            \
	log_msg(level, "fe_client=%" PRIu64 " " fmt, (cl)->id, ##__VA_ARGS__)

/* frontend.c */
/* Connection settings of db's pool: the front door's, for that database. */
void fe_db_params(const struct frontend *fe, const struct fe_db *db,
                  struct up_params *out);
void fe_set_state(struct fe_client *cl, enum fe_state to);
/* FATAL (or ERROR) with sqlstate to the client, then close it. */
void fe_fail(struct fe_client *cl, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void fe_close(struct fe_client *cl); /* now, whatever its state */
void fe_update_reading(struct fe_client *cl);
struct evbuffer *fe_out(struct fe_client *cl);
/* The login's last messages once a server told its parameters. */
void fe_finish_login(struct fe_client *cl);
void fe_db_remember_params(struct fe_db *db, struct up_conn *up);

/* fe_coalesce.c */
enum fco_verdict {
	FCO_FORWARD, /* relay the client's messages to a server */
	FCO_MORE,    /* wait for more of them */
	FCO_TAKEN    /* taken aside (state COALESCING) */
};
/*
 * An IDLE client's messages: are the ones up to the next Sync (or one
 * Query) an autocommit INSERT the coalescer can write? Nothing is consumed
 * unless FCO_TAKEN; then the answers come once the rows are committed.
 */
enum fco_verdict fco_try(struct fe_client *cl);
/* Remembers rest as the client's unnamed statement (a Parse with no name,
 * coalesced or relayed). false on OOM. */
bool fco_keep_unnamed(struct fe_client *cl, const uint8_t *rest, size_t len);
/* The client is leaving: what it has taken aside is answered to no one. */
void fco_detach(struct fe_client *cl);
/*
 * A server connection for a client inside a coalesced transaction, which
 * a statement that is not coalescible turns into a real one: BEGIN and the
 * rows so far are written on it, then fe_relay_start relays the rest. When
 * that fails the client's next sequence gets the server's error
 * (owed_error) and the connection is given back. false: no coalesced
 * transaction.
 */
bool fco_materialize(struct fe_client *cl);
/* A COALESCING client's input: the data of its COPY FROM STDIN. */
void fco_copy_input(struct fe_client *cl);
/*
 * Relaying began: a COPY handed over to the server goes first (its Query,
 * the data so far; sv_swallow_copyin set). false on OOM.
 */
bool fco_relay_started(struct fe_client *cl, struct evbuffer *out);
/* New [batch] limits (fe->batch_cfg) for the coalescers already made. */
void fco_reconfigure(struct frontend *fe);
void fco_db_free(struct fe_db *db);
void fco_drain(struct frontend *fe);
bool fco_is_idle(const struct frontend *fe);

/* fe_metrics.c */
void fe_register_metrics(struct frontend *fe);

/* fe_relay.c */
void fe_relay_client_input(struct fe_client *cl);
void fe_relay_server_input(struct fe_client *cl);
/* Relaying begins on cl->up (WAITING -> ACTIVE). */
void fe_relay_start(struct fe_client *cl);
/* An IDLE client's next messages go to a server: WAITING for one. */
void fe_relay_to_server(struct fe_client *cl);
/* A server connection for cl (state WAITING or LOGIN). */
void fe_relay_acquire(struct fe_client *cl);
/* The client is leaving: give back or clean up what it holds. */
void fe_relay_detach(struct fe_client *cl);
/* The wait for a server connection took too long. */
void fe_relay_wait_timeout(struct fe_client *cl);
/* The client's output fell low again: read from the server again. */
void fe_relay_client_drained(struct fe_client *cl);

#endif
