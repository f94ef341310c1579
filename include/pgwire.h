/* pgwire.h: pure encoder and decoder of PostgreSQL v3 protocol messages. */
#ifndef LBP_PGWIRE_H
#define LBP_PGWIRE_H

/*
 * No I/O happens here. Encoders append whole messages to an evbuffer (a
 * memory buffer); decoders take the bytes of one frame and fill a struct
 * whose pointers point into those bytes. Every length and count that came
 * from the peer is checked against the bytes actually present before use:
 * a decoder given truncated, oversized or hostile bytes returns PGW_ERROR
 * and never reads outside the frame.
 *
 * The same framing (1-byte type, 4-byte big-endian length that counts
 * itself but not the type byte) is used by the ingest protocol, so
 * pgw_frame_next() serves both.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum pgw_rc {
	PGW_OK = 0,    /* a whole item was decoded */
	PGW_AGAIN = 1, /* not enough bytes yet: read more and call again */
	PGW_ERROR = -1 /* malformed: the stream can not be trusted any more */
};

#define PGW_HEADER_LEN 5
/* Default ceiling on a backend message; DataRow of a catalog query is small. */
#define PGW_MAX_BACKEND_MESSAGE (16u * 1024 * 1024)

/* Protocol 3.0 and the special request codes of the startup phase. */
#define PGW_PROTOCOL_V3         196608u
#define PGW_SSL_REQUEST_CODE    80877103u
#define PGW_GSSENC_REQUEST_CODE 80877104u
#define PGW_CANCEL_REQUEST_CODE 80877102u

/* Backend message types. */
#define PGW_MSG_AUTH              'R'
#define PGW_MSG_PARAMETER_STATUS  'S'
#define PGW_MSG_BACKEND_KEY       'K'
#define PGW_MSG_READY             'Z'
#define PGW_MSG_ROW_DESCRIPTION   'T'
#define PGW_MSG_DATA_ROW          'D'
#define PGW_MSG_COMMAND_COMPLETE  'C'
#define PGW_MSG_EMPTY_QUERY       'I'
#define PGW_MSG_COPY_IN           'G'
#define PGW_MSG_COPY_OUT          'H'
#define PGW_MSG_COPY_BOTH         'W'
#define PGW_MSG_ERROR             'E'
#define PGW_MSG_NOTICE            'N'
#define PGW_MSG_NOTIFICATION      'A'
#define PGW_MSG_NEGOTIATE_VERSION 'v'

/* Frontend message types (what a client sends after the startup packet). */
#define PGW_FE_QUERY         'Q'
#define PGW_FE_PARSE         'P'
#define PGW_FE_BIND          'B'
#define PGW_FE_DESCRIBE      'D'
#define PGW_FE_EXECUTE       'E'
#define PGW_FE_CLOSE         'C'
#define PGW_FE_SYNC          'S'
#define PGW_FE_FLUSH         'H'
#define PGW_FE_FUNCTION_CALL 'F'
#define PGW_FE_COPY_DATA     'd'
#define PGW_FE_COPY_DONE     'c'
#define PGW_FE_COPY_FAIL     'f'
#define PGW_FE_PASSWORD      'p' /* also SASLInitialResponse, SASLResponse */
#define PGW_FE_TERMINATE     'X'

/* Authentication request codes (the int32 after 'R'). */
enum pgw_auth_code {
	PGW_AUTH_OK = 0,
	PGW_AUTH_CLEARTEXT = 3,
	PGW_AUTH_MD5 = 5,
	PGW_AUTH_SASL = 10,
	PGW_AUTH_SASL_CONTINUE = 11,
	PGW_AUTH_SASL_FINAL = 12
};

/* ---- frontend encoders: each appends one whole message; false on OOM ---- */

bool pgw_put_ssl_request(struct evbuffer *out);
/* params: NULL-terminated list of key, value, key, value, ... */
bool pgw_put_startup(struct evbuffer *out, const char *const *params);
bool pgw_put_password(struct evbuffer *out, const char *password);
/* data NULL (len 0): no initial response, sent as length -1. */
bool pgw_put_sasl_initial(struct evbuffer *out, const char *mechanism,
                          const void *data, size_t len);
bool pgw_put_sasl_response(struct evbuffer *out, const void *data, size_t len);
bool pgw_put_query(struct evbuffer *out, const char *sql);
bool pgw_put_copy_data(struct evbuffer *out, const void *data, size_t len);
/* Moves len bytes from the front of src into one CopyData, without copying. */
bool pgw_put_copy_data_from(struct evbuffer *out, struct evbuffer *src,
                            size_t len);
bool pgw_put_copy_done(struct evbuffer *out);
bool pgw_put_copy_fail(struct evbuffer *out, const char *reason);
bool pgw_put_sync(struct evbuffer *out);
bool pgw_put_terminate(struct evbuffer *out);

/* ---- framing ---- */

struct pgw_frame {
	uint8_t type;
	const uint8_t *body; /* len bytes, valid until pgw_frame_consume() */
	size_t len;          /* body length, without the 5 header bytes */
};

/*
 * Looks at the front of a flat byte array. PGW_OK: *f describes one whole
 * frame and *frame_len is its size with header. PGW_AGAIN: more bytes are
 * needed. PGW_ERROR: the length field is below 4 or the body above max_body.
 */
enum pgw_rc pgw_frame_parse(const uint8_t *buf, size_t avail, size_t max_body,
                            struct pgw_frame *f, size_t *frame_len);

/*
 * The same on an evbuffer: on PGW_OK the frame is made contiguous and f
 * points into the buffer; call pgw_frame_consume() when done with it.
 */
enum pgw_rc pgw_frame_next(struct evbuffer *in, size_t max_body,
                           struct pgw_frame *f);
void pgw_frame_consume(struct evbuffer *in, const struct pgw_frame *f);

/*
 * ---- reading a frame body: the cursor every decoder (and the ingest
 * protocol's) uses. Each read checks the bytes left first and fails
 * instead of reading past the frame; integers are big-endian.
 */
struct pgw_cursor {
	const uint8_t *p;
	size_t left;
};
/* false if f is not of type `type` */
bool pgw_cur_init(struct pgw_cursor *c, const struct pgw_frame *f,
                  uint8_t type);
bool pgw_cur_bytes(struct pgw_cursor *c, size_t n, const uint8_t **out);
bool pgw_cur_u8(struct pgw_cursor *c, uint8_t *v);
bool pgw_cur_u16(struct pgw_cursor *c, uint16_t *v);
bool pgw_cur_u32(struct pgw_cursor *c, uint32_t *v);
bool pgw_cur_u64(struct pgw_cursor *c, uint64_t *v);
bool pgw_cur_i16(struct pgw_cursor *c, int16_t *v);
bool pgw_cur_i32(struct pgw_cursor *c, int32_t *v);
/* A NUL-terminated string that ends inside the frame. */
bool pgw_cur_str(struct pgw_cursor *c, const char **s);
/* PGW_OK if ok and every byte was read: trailing bytes are an error. */
enum pgw_rc pgw_cur_done(const struct pgw_cursor *c, bool ok);

/* ---- backend decoders: PGW_OK or PGW_ERROR; pointers point into f ---- */

struct pgw_auth {
	uint32_t code;       /* enum pgw_auth_code, or another (unsupported) */
	const uint8_t *data; /* the bytes after the code */
	size_t data_len;
};
enum pgw_rc pgw_parse_auth(const struct pgw_frame *f, struct pgw_auth *a);
/* For PGW_AUTH_SASL: does the NUL-separated mechanism list offer mech? */
bool pgw_sasl_offers(const struct pgw_auth *a, const char *mech);

struct pgw_param_status {
	const char *name;
	const char *value;
};
enum pgw_rc pgw_parse_param_status(const struct pgw_frame *f,
                                   struct pgw_param_status *p);

struct pgw_backend_key {
	uint32_t pid;
	uint32_t secret;
};
enum pgw_rc pgw_parse_backend_key(const struct pgw_frame *f,
                                  struct pgw_backend_key *k);

/* ReadyForQuery: status is 'I' (idle), 'T' (in transaction), 'E' (failed). */
enum pgw_rc pgw_parse_ready(const struct pgw_frame *f, char *status);

struct pgw_field {
	const char *name;
	uint32_t table_oid;
	int16_t column;
	uint32_t type_oid;
	int16_t type_len;
	int32_t type_mod;
	int16_t format;
};
/*
 * RowDescription. Fills at most max fields; *nfields gets the count the
 * server sent (which may exceed max: the caller decides). The whole message
 * is validated either way.
 */
enum pgw_rc pgw_parse_row_description(const struct pgw_frame *f,
                                      struct pgw_field *fields, size_t max,
                                      uint16_t *nfields);

struct pgw_value {
	const uint8_t *data; /* NULL when len < 0 */
	int32_t len;         /* -1 is SQL NULL */
};
/* DataRow, with the same max/count contract as RowDescription. */
enum pgw_rc pgw_parse_data_row(const struct pgw_frame *f,
                               struct pgw_value *values, size_t max,
                               uint16_t *ncols);

/* CommandComplete: the tag, e.g. "COPY 1000" or "INSERT 0 5". */
enum pgw_rc pgw_parse_command_complete(const struct pgw_frame *f,
                                       const char **tag);
/* The row count at the end of a tag; false when the tag carries none. */
bool pgw_tag_rows(const char *tag, uint64_t *rows);

struct pgw_copy_response {
	uint8_t format; /* 0 text, 1 binary */
	uint16_t ncols;
};
/* CopyInResponse, CopyOutResponse and CopyBothResponse share a layout. */
enum pgw_rc pgw_parse_copy_response(const struct pgw_frame *f,
                                    struct pgw_copy_response *r);

/* ErrorResponse and NoticeResponse: every field PostgreSQL documents. */
struct pgw_notice {
	const char *severity;     /* 'S', localized */
	const char *severity_nl;  /* 'V', never localized */
	const char *sqlstate;     /* 'C' */
	const char *message;      /* 'M' */
	const char *detail;       /* 'D' */
	const char *hint;         /* 'H' */
	const char *position;     /* 'P' */
	const char *int_position; /* 'p' */
	const char *int_query;    /* 'q' */
	const char *where;        /* 'W' */
	const char *schema;       /* 's' */
	const char *table;        /* 't' */
	const char *column;       /* 'c' */
	const char *datatype;     /* 'd' */
	const char *constraint;   /* 'n' */
	const char *file;         /* 'F' */
	const char *line;         /* 'L' */
	const char *routine;      /* 'R' */
	char *owned;              /* the heap block of a pgw_notice_dup() */
};
/* Absent fields are NULL; unknown field codes are skipped, as the docs ask. */
enum pgw_rc pgw_parse_notice(const struct pgw_frame *f, struct pgw_notice *n);

/*
 * Copies every present field of src into one heap block owned by dst, so the
 * error outlives the frame. Release with pgw_notice_free(). false on OOM.
 */
bool pgw_notice_dup(const struct pgw_notice *src, struct pgw_notice *dst);
void pgw_notice_free(struct pgw_notice *n);

/*
 * ==== the server side: what a proxy that clients log in to needs ====
 */

/*
 * The first packet of a connection has no type byte: int32 length (which
 * counts itself), int32 code, body. PostgreSQL refuses packets over 10000
 * bytes; so do we, as soon as the length is seen.
 */
#define PGW_MAX_STARTUP_LEN    10000u
#define PGW_MAX_STARTUP_PARAMS 64
/* A CancelRequest's key: 4 bytes in 3.0, up to 256 from protocol 3.2. */
#define PGW_MAX_CANCEL_KEY 256u

enum pgw_startup_kind {
	PGW_STARTUP_SSL,    /* SSLRequest */
	PGW_STARTUP_GSSENC, /* GSSENCRequest */
	PGW_STARTUP_CANCEL, /* CancelRequest */
	PGW_STARTUP_PROTO   /* StartupMessage of protocol major 3 */
};

struct pgw_startup {
	enum pgw_startup_kind kind;
	size_t len;     /* the whole packet, for pgw_startup_consume */
	uint16_t minor; /* PGW_STARTUP_PROTO: the minor version asked for */
	/* PGW_STARTUP_PROTO: name/value pairs in order, pointing into the
	 * packet; user and database point at their values (NULL: absent). */
	size_t nparams;
	const char *names[PGW_MAX_STARTUP_PARAMS];
	const char *values[PGW_MAX_STARTUP_PARAMS];
	const char *user;
	const char *database;
	size_t noptions; /* names that start with "_pq_." (protocol options) */
	/* PGW_STARTUP_CANCEL */
	uint32_t cancel_pid;
	const uint8_t *cancel_key;
	size_t cancel_key_len;
};

/*
 * Parses a startup-phase packet at the front of buf. PGW_AGAIN: more bytes
 * needed. PGW_ERROR: a length under 8 or over PGW_MAX_STARTUP_LEN, an
 * unknown code or protocol major, a parameter list that is not NUL-ended
 * name/value pairs ending with an empty name and nothing after, an empty or
 * repeated name, more than PGW_MAX_STARTUP_PARAMS pairs, a request code
 * with a body (or a CancelRequest key outside 4..256 bytes).
 */
enum pgw_rc pgw_parse_startup(const uint8_t *buf, size_t avail,
                              struct pgw_startup *s);
/* The same on an evbuffer; pointers are valid until the consume. */
enum pgw_rc pgw_startup_next(struct evbuffer *in, struct pgw_startup *s);
void pgw_startup_consume(struct evbuffer *in, const struct pgw_startup *s);

/* ---- backend encoders: each appends one whole message; false on OOM ---- */

/* 'R' with code and the bytes after it (SASL data, or none). */
bool pgw_put_auth(struct evbuffer *out, uint32_t code, const void *data,
                  size_t len);
/* AuthenticationSASL offering one mechanism. */
bool pgw_put_auth_sasl(struct evbuffer *out, const char *mechanism);
bool pgw_put_param_status(struct evbuffer *out, const char *name,
                          const char *value);
bool pgw_put_backend_key(struct evbuffer *out, uint32_t pid, uint32_t secret);
bool pgw_put_ready(struct evbuffer *out, char status);
/*
 * ErrorResponse (type PGW_MSG_ERROR) or NoticeResponse (PGW_MSG_NOTICE)
 * with every field of n that is not NULL, in the order PostgreSQL sends.
 */
bool pgw_put_notice(struct evbuffer *out, uint8_t type,
                    const struct pgw_notice *n);
/* An error with severity, SQLSTATE and message only ("FATAL", "28P01"...). */
bool pgw_put_error(struct evbuffer *out, const char *severity,
                   const char *sqlstate, const char *message);
/* NegotiateProtocolVersion: our newest minor and the options we refuse. */
bool pgw_put_negotiate_version(struct evbuffer *out, uint32_t minor,
                               const char *const *options, size_t n);
/* CancelRequest (16 bytes, no type byte), as sent to a server. */
bool pgw_put_cancel_request(struct evbuffer *out, uint32_t pid,
                            uint32_t secret);

/* ---- decoders of what a client sends (PGW_OK or PGW_ERROR) ---- */

/* PasswordMessage: one string (a cleartext password here). */
enum pgw_rc pgw_parse_password(const struct pgw_frame *f, const char **pw);
/* SASLInitialResponse: mechanism and its data (length -1: none). */
enum pgw_rc pgw_parse_sasl_initial(const struct pgw_frame *f,
                                   const char **mechanism, const uint8_t **data,
                                   size_t *len);
/* SASLResponse: the whole body is the mechanism's data. */
enum pgw_rc pgw_parse_sasl_response(const struct pgw_frame *f,
                                    const uint8_t **data, size_t *len);

/* ---- extended-protocol messages a proxy renames (prepared statements) ---- */

/* Parse: statement name, then the rest (query, parameter types) as is. */
struct pgw_parse_msg {
	const char *name;
	const char *query;
	const uint8_t *rest; /* from the query to the end of the body */
	size_t rest_len;
	uint16_t ntypes;      /* parameter types given (0: unspecified) */
	const uint8_t *types; /* ntypes big-endian uint32 OIDs */
};
/* PGW_ERROR unless: name, query, int16 count >= 0, count * 4 bytes, end. */
enum pgw_rc pgw_parse_parse(const struct pgw_frame *f, struct pgw_parse_msg *p);
/* The same checks on a Parse body after its name (a kept statement's rest);
 * p->name is left alone. */
enum pgw_rc pgw_parse_parse_rest(const uint8_t *rest, size_t len,
                                 struct pgw_parse_msg *p);

/* Bind: portal and statement names, then the rest (formats, values). */
struct pgw_bind_msg {
	const char *portal;
	const char *statement;
	const uint8_t *rest;
	size_t rest_len;
};
/* Only the two names are checked: the server checks the rest. */
enum pgw_rc pgw_parse_bind(const struct pgw_frame *f, struct pgw_bind_msg *b);

/* One parameter value of a Bind. */
struct pgw_bind_value {
	const uint8_t *data; /* NULL with len -1: SQL NULL */
	int32_t len;
	int16_t format; /* 0 text, 1 binary */
};
/*
 * The parameter count of b's rest: int16 format count, the formats, int16
 * parameter count. PGW_ERROR when negative or truncated.
 */
enum pgw_rc pgw_bind_count(const struct pgw_bind_msg *b, uint16_t *n);
/*
 * Decodes the whole rest of b into v[0..n) (n from pgw_bind_count): format
 * count 0 (all text), 1 (one for all) or n, each format 0 or 1; every
 * value's length -1 or within the message; result-format count and formats
 * (0 or 1) and nothing after them. PGW_ERROR otherwise.
 */
enum pgw_rc pgw_parse_bind_values(const struct pgw_bind_msg *b,
                                  struct pgw_bind_value *v, uint16_t n);

/* Describe and Close: 'S' (statement) or 'P' (portal), and a name. */
enum pgw_rc pgw_parse_target(const struct pgw_frame *f, char *kind,
                             const char **name);

/* A message from pieces, e.g. a renamed Parse. false on OOM or oversize. */
struct pgw_piece {
	const void *data;
	size_t len;
};
bool pgw_put_pieces(struct evbuffer *out, uint8_t type,
                    const struct pgw_piece *pieces, size_t n);

/* NegotiateProtocolVersion: the newest minor version the server supports. */
enum pgw_rc pgw_parse_negotiate_version(const struct pgw_frame *f,
                                        uint32_t *minor, uint32_t *nunknown);

#endif
