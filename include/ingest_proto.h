/* ingest_proto.h: pure codec of the ingest protocol (docs/ingest-protocol.md).
 */
#ifndef LBP_INGEST_PROTO_H
#define LBP_INGEST_PROTO_H

/*
 * Framing is PostgreSQL's (pgw_frame_next serves both). Both directions are
 * here: the proxy decodes client messages and encodes answers; the load
 * generator and tests do the reverse. Decoders return pointers into the
 * frame; every string must be NUL-terminated inside it and every count is
 * checked against the bytes present.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgwire.h"

#define IGP_VERSION_MAJOR 1
/* 1.1: FlushProgress and ProgressQuery (exactly-once progress rows). */
#define IGP_VERSION_MINOR 1
/* Largest frame before the handshake is done (Hello, HelloOk). */
#define IGP_PREAUTH_MAX_FRAME (64u * 1024)
#define IGP_MAX_COLUMNS       1600
#define IGP_MAX_CLIENT_NAME   200
/* The longest query_id of a progress row (bytes). */
#define IGP_MAX_QUERY_ID 255

/* Client messages. */
#define IGP_MSG_HELLO 'H'
#define IGP_MSG_OPEN  'O'
#define IGP_MSG_ROWS  'D'
#define IGP_MSG_FLUSH 'F'
#define IGP_MSG_CLOSE 'X'
/* 1.1 */
#define IGP_MSG_FLUSH_PROGRESS 'P'
#define IGP_MSG_PROGRESS_QUERY 'Q'
/* Proxy messages. */
#define IGP_MSG_HELLO_OK    'h'
#define IGP_MSG_OPEN_OK     'o'
#define IGP_MSG_ACK         'a'
#define IGP_MSG_FLUSH_ERROR 'e'
#define IGP_MSG_ERROR       'E'
#define IGP_MSG_CLOSE_OK    'c'
/* 1.1 */
#define IGP_MSG_PROGRESS 'p'

#define IGP_MODE_INSERT 'i'
#define IGP_MODE_UPSERT 'u'
#define IGP_MODE_BULK   'b'

struct igp_hello {
	uint16_t major;
	uint16_t minor;
	const char *client_name;
	const char *token;
};

struct igp_open {
	const char *schema; /* "" = search_path */
	const char *table;
	char mode;
	uint16_t ncols;
	const char **cols; /* heap array of pointers into the frame */
	uint16_t nkeys;
	const char **keys;
	const char *version_col; /* "" = none */
	uint16_t ncoalesce;
	const char **coalesce;
};

/*
 * A progress row (1.1): FlushProgress carries all of it, ProgressQuery all
 * but rows_committed and complete. Strings point into the frame.
 */
struct igp_progress {
	const char *schema; /* "" = search_path */
	const char *table;
	const char *query_id;
	uint64_t partition_id; /* the wire's int64s, sign unchecked */
	uint64_t epoch_id;
	uint64_t rows_committed;
	uint8_t complete;
};

/* ---- decoding client messages (the proxy) ---- */

enum pgw_rc igp_parse_hello(const struct pgw_frame *f, struct igp_hello *h);
/* On PGW_OK the arrays are allocated: release with igp_open_free. */
enum pgw_rc igp_parse_open(const struct pgw_frame *f, struct igp_open *o);
void igp_open_free(struct igp_open *o);
/*
 * The rules of Open beyond its layout: known mode, valid names
 * (sql_ident_valid; schema may be empty), no duplicate columns, keys for
 * upsert only and all among the columns, version and coalesce columns
 * among the columns and not keys, no duplicates among keys or coalesce
 * columns. On false: sqlstate (5 chars + NUL) and a message naming the
 * offending name.
 */
bool igp_open_check(const struct igp_open *o, char sqlstate[6], char *msg,
                    size_t msglen);
enum pgw_rc igp_parse_flush(const struct pgw_frame *f, uint64_t *flush_id);
/* FlushProgress: a Flush whose unit also writes the progress row p. */
enum pgw_rc igp_parse_flush_progress(const struct pgw_frame *f,
                                     uint64_t *flush_id,
                                     struct igp_progress *p);
/* ProgressQuery: rows_committed and complete are left 0. */
enum pgw_rc igp_parse_progress_query(const struct pgw_frame *f,
                                     uint64_t *request_id,
                                     struct igp_progress *p);
/*
 * The rules of a progress row beyond its layout: valid table (and schema
 * when not empty) names (42602); a query_id of 1..IGP_MAX_QUERY_ID bytes of
 * UTF-8 without control bytes, ids and count from 0 to INT64_MAX, complete
 * 0 or 1 (22023). with_count false: rows_committed and complete are not
 * looked at (a ProgressQuery). On false: sqlstate and a message.
 */
bool igp_progress_check(const struct igp_progress *p, bool with_count,
                        char sqlstate[6], char *msg, size_t msglen);
/* Close has an empty body; anything in it is a malformed message. */
enum pgw_rc igp_parse_close(const struct pgw_frame *f);
/*
 * The largest body a frame of at most max_frame_bytes has: the limit
 * counts the length field too (section 2), so this is what
 * pgw_frame_next's max_body gets.
 */
size_t igp_max_body(uint64_t max_frame_bytes);

/*
 * ---- encoding answers (the proxy); false on OOM ----
 * The message and detail of Error and FlushError go out as valid UTF-8
 * whatever they hold: invalid bytes, control bytes and DEL become \xNN.
 */

bool igp_put_hello_ok(struct evbuffer *out, uint32_t max_frame,
                      uint64_t max_flush, const char *server_name);
bool igp_put_open_ok(struct evbuffer *out, uint16_t n, const char *const *cols,
                     const char *const *types);
bool igp_put_ack(struct evbuffer *out, uint64_t flush_id, uint64_t rows);
bool igp_put_flush_error(struct evbuffer *out, uint64_t flush_id,
                         const char *sqlstate, const char *message,
                         const char *detail, uint64_t row);
bool igp_put_error(struct evbuffer *out, const char *sqlstate,
                   const char *message);
bool igp_put_close_ok(struct evbuffer *out);
/* The answer to a ProgressQuery (1.1). */
bool igp_put_progress(struct evbuffer *out, uint64_t request_id,
                      uint64_t rows_committed, bool complete);

/*
 * A PostgreSQL client at the ingest port: its first message (SSLRequest,
 * GSSENCRequest, CancelRequest or a StartupMessage) starts with a length,
 * so its first byte is 0 where ours is a letter. PGW_OK when the first 8
 * bytes of p are such a message, PGW_ERROR when they cannot be,
 * PGW_AGAIN when fewer than 8 bytes came and they still could.
 */
enum pgw_rc igp_detect_postgres(const uint8_t *p, size_t len);
/* A PostgreSQL ErrorResponse (severity FATAL) such a client can show. */
bool igp_put_pg_fatal(struct evbuffer *out, const char *sqlstate,
                      const char *message);

/* ---- the client side (load generator, tests) ---- */

bool igp_put_hello(struct evbuffer *out, const char *client_name,
                   const char *token);
bool igp_put_open(struct evbuffer *out, const struct igp_open *o);
bool igp_put_rows(struct evbuffer *out, const void *rows, size_t len);
bool igp_put_flush(struct evbuffer *out, uint64_t flush_id);
bool igp_put_close(struct evbuffer *out);
bool igp_put_flush_progress(struct evbuffer *out, uint64_t flush_id,
                            const struct igp_progress *p);
bool igp_put_progress_query(struct evbuffer *out, uint64_t request_id,
                            const struct igp_progress *p);

/* Any proxy message; fields not in that message type are zero / NULL. */
struct igp_answer {
	uint8_t type;
	uint16_t major, minor;   /* h */
	uint32_t max_frame;      /* h */
	uint64_t max_flush;      /* h */
	const char *server_name; /* h */
	uint16_t ncols;          /* o: count only; columns not decoded */
	uint64_t flush_id;       /* a, e; p: the request id */
	uint64_t rows;           /* a; p: rows_committed */
	uint8_t complete;        /* p */
	uint64_t row;            /* e */
	const char *sqlstate;    /* e, E */
	const char *message;     /* e, E */
	const char *detail;      /* e */
};
enum pgw_rc igp_parse_answer(const struct pgw_frame *f, struct igp_answer *a);

#endif
