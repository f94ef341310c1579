/* upstream.h: one PostgreSQL server connection: connect, TLS, login, queries,
 * COPY. */
#ifndef LBP_UPSTREAM_H
#define LBP_UPSTREAM_H

/*
 * An up_conn lives on the proxy's libevent loop and never blocks it: name
 * resolution goes through evdns, connect is non-blocking and tries every
 * address the name has (IPv6 and IPv4), TLS runs in a bufferevent.
 *
 * Life cycle (each change is logged with the connection id):
 *
 *   RESOLVING -> CONNECTING -> SSL_REQUEST -> TLS_HANDSHAKE -> LOGIN -> IDLE
 *                          \______________ sslmode=disable ___/
 *   IDLE <-> BUSY (one up_exec at a time)
 *   IDLE <-> RELAY (a front-door client's messages, up_relay_begin/_end)
 *   any state -> CLOSED (error, timeout, server gone, or up_close)
 *
 * The owner learns of readiness and of the end through up_events; after
 * on_closed the owner must call up_free. It may call it anywhere, also
 * from inside a callback of the same connection (the pool does, from
 * result callbacks): the connection then goes when that callback returns,
 * and no further callback of it runs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "config.h"
#include "pgwire.h"

struct event_base;
struct evdns_base;
struct evbuffer;
struct up_conn;

enum up_state {
	UP_RESOLVING,
	UP_CONNECTING,
	UP_SSL_REQUEST,
	UP_TLS_HANDSHAKE,
	UP_LOGIN,
	UP_IDLE,
	UP_BUSY,
	UP_RELAY, /* lent to a front-door client: bytes flow through its owner
	           */
	UP_CLOSED
};
const char *up_state_name(enum up_state s);

/* Everything a connection needs; pointers must outlive the connection. */
struct up_params {
	const char *host;
	uint16_t port;
	const char *dbname;
	const char *user;
	const char *password;
	const char *application_name;
	enum sslmode sslmode;
	SSL_CTX *ssl_ctx; /* NULL only with sslmode disable */
	unsigned connect_timeout_ms;
	unsigned login_timeout_ms;
	unsigned query_timeout_ms;
	unsigned keepalive_idle_s;
	unsigned keepalive_interval_s;
	unsigned keepalive_count;
	unsigned tcp_user_timeout_ms; /* 0: the kernel's default */
	/* true: the server's notices at its default level (front-door
	 * clients see them); false: only warnings and worse */
	bool notices;
};

/*
 * dst = src with its own copies of every string and its own reference to
 * the TLS context, so that whoever gave src may free it. false on OOM (dst
 * then holds nothing). up_params_clear frees them (the password wiped).
 */
bool up_params_copy(struct up_params *dst, const struct up_params *src);
void up_params_clear(struct up_params *p);

/* Why a connection ended, for the owner's backoff and its log line. */
enum up_close_reason {
	UP_CLOSE_NONE = 0,
	UP_CLOSE_BY_OWNER, /* up_close() */
	UP_CLOSE_RESOLVE,  /* host name did not resolve */
	UP_CLOSE_CONNECT,  /* no address accepted the TCP connection */
	UP_CLOSE_TLS,      /* TLS refused, handshake or verification failed */
	UP_CLOSE_AUTH,     /* the server refused the login (see sqlstate) */
	UP_CLOSE_SERVER,   /* the server closed or sent a FATAL error */
	UP_CLOSE_PROTOCOL, /* malformed or unexpected bytes from the server */
	UP_CLOSE_TIMEOUT,  /* connect, login or query timeout */
	UP_CLOSE_INTERNAL  /* out of memory and the like */
};
const char *up_close_reason_name(enum up_close_reason r);

struct up_events {
	void (*on_ready)(struct up_conn *c, void *arg);
	/* The connection is CLOSED; up_last_error() says why. */
	void (*on_closed)(struct up_conn *c, void *arg);
	void *arg;
};

/* Starts connecting at once. NULL only on OOM. */
struct up_conn *up_connect(struct event_base *base, struct evdns_base *dns,
                           const struct up_params *params, uint64_t id,
                           const struct up_events *events);
/* Closes (Terminate when possible); on_closed is not called. */
void up_free(struct up_conn *c);
/* Closes now and calls on_closed (and a pending exec's callback) later. */
void up_close(struct up_conn *c, enum up_close_reason why, const char *detail);

enum up_state up_get_state(const struct up_conn *c);
uint64_t up_get_id(const struct up_conn *c);
uint32_t up_backend_pid(const struct up_conn *c);
/* Transaction status of the last ReadyForQuery: 'I', 'T' or 'E'. */
char up_txn_status(const struct up_conn *c);
/* The reason the connection closed, and its text ("" while open). */
enum up_close_reason up_close_reason(const struct up_conn *c);
const char *up_last_error(const struct up_conn *c);
/* SQLSTATE of the server error that ended the login, or "". */
const char *up_login_sqlstate(const struct up_conn *c);
/* A server ParameterStatus value, e.g. "server_version"; NULL if unknown. */
const char *up_server_param(const struct up_conn *c, const char *name);
/*
 * clock_now_ms() of the last bytes from the server (of the start, before
 * any), and whether the connection now waits for the server to answer
 * (connecting, logging in, or a statement in flight).
 */
uint64_t up_last_progress_ms(const struct up_conn *c);
bool up_waits_on_server(const struct up_conn *c);
/* The i-th ParameterStatus the server sent (i from 0); false past the end. */
bool up_server_param_at(const struct up_conn *c, size_t i, const char **name,
                        const char **value);
/* Records a ParameterStatus the owner saw while relaying. */
void up_store_param(struct up_conn *c, const char *name, const char *value);
/* The secret of BackendKeyData, for a CancelRequest. */
uint32_t up_backend_secret(const struct up_conn *c);

/*
 * Data an owner keeps with the connection (the front door: which prepared
 * statements it holds); free_fn(data) runs when the connection is freed.
 * Setting again frees the old data first.
 */
void up_set_user_data(struct up_conn *c, void *data, void (*free_fn)(void *));
void *up_get_user_data(const struct up_conn *c);

/* ---- running statements ---- */

/* Cap on the rows a result may hold in memory (catalog-sized results). */
#define UP_MAX_RESULT_BYTES (8u * 1024 * 1024)

struct up_result {
	bool ok;        /* ReadyForQuery came and no ErrorResponse */
	bool conn_lost; /* the connection ended before ReadyForQuery */
	bool timed_out; /* query_timeout_ms passed (the connection is closed) */
	/*
	 * CopyDone was queued: from then on the server may have run what
	 * follows the COPY (e.g. COMMIT) even if the connection died before
	 * its answer came back. Before it, nothing after the COPY ran.
	 */
	bool copy_done;
	struct pgw_notice error; /* the first ErrorResponse, when one came */
	const char *conn_error;  /* text when conn_lost */
	char tag[64];            /* the last CommandComplete tag */
	uint64_t rows;   /* the row count of the last tag that had one */
	char txn_status; /* from ReadyForQuery: 'I', 'T' or 'E' */
	/* Result set of the last statement that returned rows. */
	uint16_t ncols;
	size_t nrows;
	char *
	    *cells; /* nrows * ncols NUL-terminated strings, NULL = SQL NULL */
	bool truncated; /* more than UP_MAX_RESULT_BYTES: rows were dropped */
};
/* A cell of the result, or NULL. */
const char *up_result_cell(const struct up_result *r, size_t row, size_t col);

/*
 * Called once per up_exec with a result that lives until the callback
 * returns. The callback may start the next up_exec on c, or up_close it.
 */
typedef void (*up_result_cb)(struct up_conn *c, const struct up_result *r,
                             void *arg);

/*
 * Sends sql as one simple Query (it may hold several statements, e.g.
 * "BEGIN; COPY t FROM STDIN; COMMIT"). If the server asks for COPY FROM
 * STDIN, copy_data is streamed to it as CopyData messages (moved out of
 * copy_data, which ends empty) and ended with CopyDone; without copy_data
 * a COPY is refused with CopyFail. Only in state IDLE; false (and no
 * callback) otherwise.
 */
bool up_exec(struct up_conn *c, const char *sql, struct evbuffer *copy_data,
             up_result_cb cb, void *arg);

/*
 * For a COPY whose data is not all in memory (a file, say): set before
 * up_exec; whenever copy_data runs low, refill(copy_data, arg) appends at
 * least one byte and returns true, or returns false once there is no more,
 * after which CopyDone goes out. Cleared when the statement ends. The daemon
 * itself never uses it: refill runs on the event loop, so it must be quick.
 */
typedef bool (*up_refill_cb)(struct evbuffer *copy_data, void *arg);
void up_set_copy_refill(struct up_conn *c, up_refill_cb refill, void *arg);

/* Registers the server-error counter family (metrics.h). */
void up_register_metrics(void);

/*
 * ---- relaying (the PostgreSQL front door) ----
 *
 * In state RELAY the connection does not read the server's messages
 * itself: bytes from the server wait in up_relay_input() and the owner
 * takes them out (on_input says when more came); the owner appends whole
 * client messages to up_relay_output(). No query timeout runs. The owner
 * watches ReadyForQuery and ends the relay when the transaction is over,
 * with the status it saw, so that pool_release can judge the connection.
 */
struct up_relay {
	void (*on_input)(struct up_conn *c, void *arg);
	/* What was queued for the server fell under the low watermark. */
	void (*on_drained)(struct up_conn *c, void *arg);
	/* The connection closed while relaying (before the pool hears it). */
	void (*on_closed)(struct up_conn *c, void *arg);
	void *arg;
};
/* IDLE -> RELAY. false in any other state. */
bool up_relay_begin(struct up_conn *c, const struct up_relay *r);
/* RELAY -> IDLE with the transaction status the owner saw last. */
void up_relay_end(struct up_conn *c, char txn_status);
struct evbuffer *up_relay_input(struct up_conn *c);
struct evbuffer *up_relay_output(struct up_conn *c);
/* Stops (false) or resumes reading from the server: backpressure. */
void up_relay_read(struct up_conn *c, bool on);

/*
 * Sends a CancelRequest for backend (pid, secret) over a new connection
 * made with params (TLS as configured), then closes it. Fire and forget:
 * the returned handle only lets the caller free it early (up_free) when
 * it shuts down; done(arg) runs once it is over, and the caller frees it
 * then. NULL on OOM.
 */
struct up_conn *up_cancel(struct event_base *base, struct evdns_base *dns,
                          const struct up_params *params, uint64_t id,
                          uint32_t pid, uint32_t secret,
                          void (*done)(struct up_conn *c, void *arg),
                          void *arg);

#endif
