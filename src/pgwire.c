/* pgwire.c: pure encoder and decoder of PostgreSQL v3 protocol messages. */
#include "pgwire.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "bytes.h"

/*
 * The length field is a signed int32 that counts itself, so a body may hold
 * at most INT32_MAX - 4 bytes; anything longer could not be framed.
 */
#define PGW_MAX_FRONTEND_BODY ((size_t)INT32_MAX - 4)

/* Startup and SSLRequest: int32 length + int32 code, no type byte. */
#define PGW_STARTUP_HEADER_LEN 8

/* ---- big-endian helpers ---- */

/* Casting an out-of-range unsigned to signed is implementation-defined. */
static inline int32_t to_int32(uint32_t v)
{
	if (v <= INT32_MAX)
		return (int32_t)v;
	return -(int32_t)~v - 1;
}

static inline int16_t to_int16(uint16_t v)
{
	return (int16_t)(v <= INT16_MAX ? (int32_t)v : (int32_t)v - 65536);
}

/* ---- encoders ---- */

/*
 * Appends type, length and the chunks. Space is reserved first so that an
 * allocation failure leaves no half-written message behind in out.
 */
static bool put_message(struct evbuffer *out, uint8_t type,
                        const struct pgw_piece *chunks, size_t n)
{
	uint8_t hdr[PGW_HEADER_LEN];
	size_t body = 0;

	for (size_t i = 0; i < n; i++) {
		if (chunks[i].len > PGW_MAX_FRONTEND_BODY - body)
			return false;
		body += chunks[i].len;
	}
	hdr[0] = type;
	put_be32(hdr + 1, (uint32_t)(body + 4));
	if (evbuffer_expand(out, PGW_HEADER_LEN + body) != 0)
		return false;
	if (evbuffer_add(out, hdr, sizeof(hdr)) != 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (chunks[i].len == 0)
			continue;
		if (evbuffer_add(out, chunks[i].data, chunks[i].len) != 0)
			return false;
	}
	return true;
}

static bool put_empty(struct evbuffer *out, uint8_t type)
{
	return put_message(out, type, NULL, 0);
}

/* A C string with its terminating NUL, as the protocol sends strings. */
static struct pgw_piece cstr_chunk(const char *s)
{
	return (struct pgw_piece){s, strlen(s) + 1};
}

bool pgw_put_ssl_request(struct evbuffer *out)
{
	uint8_t msg[PGW_STARTUP_HEADER_LEN];

	put_be32(msg, sizeof(msg));
	put_be32(msg + 4, PGW_SSL_REQUEST_CODE);
	return evbuffer_add(out, msg, sizeof(msg)) == 0;
}

/*
 * Total startup packet size. An empty key is refused: the server would read
 * it as the end of the list and take the rest as garbage.
 */
static bool startup_length(const char *const *params, size_t *total)
{
	size_t len = PGW_STARTUP_HEADER_LEN + 1; /* header + final NUL */

	for (size_t i = 0; params[i] != NULL; i += 2) {
		if (params[i][0] == '\0' || params[i + 1] == NULL)
			return false;
		for (size_t j = 0; j < 2; j++) {
			size_t n = strlen(params[i + j]) + 1;

			if (n > (size_t)INT32_MAX - len)
				return false;
			len += n;
		}
	}
	*total = len;
	return true;
}

bool pgw_put_startup(struct evbuffer *out, const char *const *params)
{
	uint8_t hdr[PGW_STARTUP_HEADER_LEN];
	size_t total;

	if (!startup_length(params, &total))
		return false;
	put_be32(hdr, (uint32_t)total);
	put_be32(hdr + 4, PGW_PROTOCOL_V3);
	if (evbuffer_expand(out, total) != 0 ||
	    evbuffer_add(out, hdr, sizeof(hdr)) != 0)
		return false;
	for (size_t i = 0; params[i] != NULL; i++) {
		if (evbuffer_add(out, params[i], strlen(params[i]) + 1) != 0)
			return false;
	}
	return evbuffer_add(out, "", 1) == 0;
}

bool pgw_put_password(struct evbuffer *out, const char *password)
{
	struct pgw_piece c = cstr_chunk(password);

	return put_message(out, 'p', &c, 1);
}

/* data == NULL means "no initial response": the length is sent as -1. */
bool pgw_put_sasl_initial(struct evbuffer *out, const char *mechanism,
                          const void *data, size_t len)
{
	uint8_t len_field[4];

	if (len > PGW_MAX_FRONTEND_BODY || (data == NULL && len != 0))
		return false;
	put_be32(len_field, data == NULL ? UINT32_MAX : (uint32_t)len);

	struct pgw_piece c[] = {
	    cstr_chunk(mechanism),
	    {len_field, sizeof(len_field)},
	    {data, len},
	};
	return put_message(out, 'p', c, 3);
}

bool pgw_put_sasl_response(struct evbuffer *out, const void *data, size_t len)
{
	struct pgw_piece c = {data, len};

	return put_message(out, 'p', &c, 1);
}

bool pgw_put_query(struct evbuffer *out, const char *sql)
{
	struct pgw_piece c = cstr_chunk(sql);

	return put_message(out, 'Q', &c, 1);
}

bool pgw_put_copy_data(struct evbuffer *out, const void *data, size_t len)
{
	struct pgw_piece c = {data, len};

	return put_message(out, 'd', &c, 1);
}

/*
 * COPY payloads are the bulk of our traffic: evbuffer_remove_buffer() hands
 * whole chains over instead of copying them. Everything that can be checked
 * is checked before the header goes out, so a refusal leaves out unchanged.
 */
bool pgw_put_copy_data_from(struct evbuffer *out, struct evbuffer *src,
                            size_t len)
{
	uint8_t hdr[PGW_HEADER_LEN];

	if (len > PGW_MAX_FRONTEND_BODY || evbuffer_get_length(src) < len)
		return false;
	hdr[0] = 'd';
	put_be32(hdr + 1, (uint32_t)(len + 4));
	if (evbuffer_add(out, hdr, sizeof(hdr)) != 0)
		return false;
	if (len == 0)
		return true;
	/* A failure here leaves a header without body: the caller must drop
	 * the connection, as after any other failed write. */
	return evbuffer_remove_buffer(src, out, len) == (int)len;
}

bool pgw_put_copy_done(struct evbuffer *out)
{
	return put_empty(out, 'c');
}

bool pgw_put_copy_fail(struct evbuffer *out, const char *reason)
{
	struct pgw_piece c = cstr_chunk(reason);

	return put_message(out, 'f', &c, 1);
}

bool pgw_put_sync(struct evbuffer *out)
{
	return put_empty(out, 'S');
}

bool pgw_put_terminate(struct evbuffer *out)
{
	return put_empty(out, 'X');
}

/* ---- framing ---- */

/*
 * Validates the 5 header bytes. The length is rejected as soon as it is
 * seen, so a hostile peer can not make us buffer a huge body first.
 */
static enum pgw_rc parse_header(const uint8_t *hdr, size_t max_body,
                                size_t *body_len)
{
	uint32_t len = get_be32(hdr + 1);

	if (len < 4 || len > INT32_MAX)
		return PGW_ERROR;
	if ((size_t)len - 4 > max_body)
		return PGW_ERROR;
	*body_len = (size_t)len - 4;
	return PGW_OK;
}

enum pgw_rc pgw_frame_parse(const uint8_t *buf, size_t avail, size_t max_body,
                            struct pgw_frame *f, size_t *frame_len)
{
	size_t body_len;

	if (avail < PGW_HEADER_LEN)
		return PGW_AGAIN;
	if (parse_header(buf, max_body, &body_len) != PGW_OK)
		return PGW_ERROR;
	if (avail - PGW_HEADER_LEN < body_len)
		return PGW_AGAIN;
	f->type = buf[0];
	f->body = buf + PGW_HEADER_LEN;
	f->len = body_len;
	*frame_len = PGW_HEADER_LEN + body_len;
	return PGW_OK;
}

enum pgw_rc pgw_frame_next(struct evbuffer *in, size_t max_body,
                           struct pgw_frame *f)
{
	uint8_t hdr[PGW_HEADER_LEN];
	size_t body_len;
	uint8_t *p;

	if (evbuffer_copyout(in, hdr, sizeof(hdr)) != (ev_ssize_t)sizeof(hdr))
		return PGW_AGAIN;
	if (parse_header(hdr, max_body, &body_len) != PGW_OK)
		return PGW_ERROR;
	if (evbuffer_get_length(in) - PGW_HEADER_LEN < body_len)
		return PGW_AGAIN;
	/* Only fails on OOM; the stream can not go on without the frame. */
	p = evbuffer_pullup(in, (ev_ssize_t)(PGW_HEADER_LEN + body_len));
	if (p == NULL)
		return PGW_ERROR;
	f->type = hdr[0];
	f->body = p + PGW_HEADER_LEN;
	f->len = body_len;
	return PGW_OK;
}

void pgw_frame_consume(struct evbuffer *in, const struct pgw_frame *f)
{
	evbuffer_drain(in, PGW_HEADER_LEN + f->len);
}

/* ---- decoding cursor: every read checks the bytes left first ---- */

bool pgw_cur_init(struct pgw_cursor *c, const struct pgw_frame *f, uint8_t type)
{
	if (f->type != type || (f->body == NULL && f->len != 0))
		return false;
	c->p = f->body;
	c->left = f->len;
	return true;
}

bool pgw_cur_bytes(struct pgw_cursor *c, size_t n, const uint8_t **out)
{
	if (n > c->left)
		return false;
	*out = c->p;
	c->p += n;
	c->left -= n;
	return true;
}

bool pgw_cur_u8(struct pgw_cursor *c, uint8_t *v)
{
	const uint8_t *p;

	if (!pgw_cur_bytes(c, 1, &p))
		return false;
	*v = p[0];
	return true;
}

bool pgw_cur_u16(struct pgw_cursor *c, uint16_t *v)
{
	const uint8_t *p;

	if (!pgw_cur_bytes(c, 2, &p))
		return false;
	*v = get_be16(p);
	return true;
}

bool pgw_cur_u32(struct pgw_cursor *c, uint32_t *v)
{
	const uint8_t *p;

	if (!pgw_cur_bytes(c, 4, &p))
		return false;
	*v = get_be32(p);
	return true;
}

bool pgw_cur_i16(struct pgw_cursor *c, int16_t *v)
{
	uint16_t u;

	if (!pgw_cur_u16(c, &u))
		return false;
	*v = to_int16(u);
	return true;
}

bool pgw_cur_i32(struct pgw_cursor *c, int32_t *v)
{
	uint32_t u;

	if (!pgw_cur_u32(c, &u))
		return false;
	*v = to_int32(u);
	return true;
}

/* A string must end with a NUL inside the frame, or we would read past it. */
bool pgw_cur_str(struct pgw_cursor *c, const char **s)
{
	const uint8_t *nul;

	if (c->left == 0)
		return false;
	nul = memchr(c->p, '\0', c->left);
	if (nul == NULL)
		return false;
	*s = (const char *)c->p;
	c->left -= (size_t)(nul - c->p) + 1;
	c->p = nul + 1;
	return true;
}

bool pgw_cur_u64(struct pgw_cursor *c, uint64_t *v)
{
	uint32_t hi, lo;

	if (!pgw_cur_u32(c, &hi) || !pgw_cur_u32(c, &lo))
		return false;
	*v = (uint64_t)hi << 32 | lo;
	return true;
}

/* Trailing bytes mean we misread the message or the peer is lying. */
enum pgw_rc pgw_cur_done(const struct pgw_cursor *c, bool ok)
{
	return ok && c->left == 0 ? PGW_OK : PGW_ERROR;
}

/* ---- backend decoders ---- */

/* A list of NUL-terminated names ended by an empty one, nothing after. */
static bool name_list_valid(struct pgw_cursor *c)
{
	const char *name;

	do {
		if (!pgw_cur_str(c, &name))
			return false;
	} while (name[0] != '\0');
	return c->left == 0;
}

/* The bytes after the code are checked for the methods we implement. */
static bool auth_data_valid(uint32_t code, const uint8_t *data, size_t len)
{
	struct pgw_cursor c = {data, len};

	switch (code) {
	case PGW_AUTH_OK:
	case PGW_AUTH_CLEARTEXT:
		return len == 0;
	case PGW_AUTH_MD5:
		return len == 4; /* the salt */
	case PGW_AUTH_SASL:
		return name_list_valid(&c);
	default:
		return true; /* SASL payloads and unsupported methods */
	}
}

enum pgw_rc pgw_parse_auth(const struct pgw_frame *f, struct pgw_auth *a)
{
	struct pgw_cursor c;

	if (!pgw_cur_init(&c, f, PGW_MSG_AUTH) || !pgw_cur_u32(&c, &a->code))
		return PGW_ERROR;
	a->data = c.p;
	a->data_len = c.left;
	return auth_data_valid(a->code, a->data, a->data_len) ? PGW_OK
	                                                      : PGW_ERROR;
}

bool pgw_sasl_offers(const struct pgw_auth *a, const char *mech)
{
	struct pgw_cursor c = {a->data, a->data_len};
	const char *name;

	if (a->code != PGW_AUTH_SASL || mech == NULL || mech[0] == '\0')
		return false;
	while (pgw_cur_str(&c, &name) && name[0] != '\0') {
		if (strcmp(name, mech) == 0)
			return true;
	}
	return false;
}

enum pgw_rc pgw_parse_param_status(const struct pgw_frame *f,
                                   struct pgw_param_status *p)
{
	struct pgw_cursor c;
	bool ok = pgw_cur_init(&c, f, PGW_MSG_PARAMETER_STATUS) &&
	          pgw_cur_str(&c, &p->name) && pgw_cur_str(&c, &p->value);

	return pgw_cur_done(&c, ok);
}

enum pgw_rc pgw_parse_backend_key(const struct pgw_frame *f,
                                  struct pgw_backend_key *k)
{
	struct pgw_cursor c;
	bool ok = pgw_cur_init(&c, f, PGW_MSG_BACKEND_KEY) &&
	          pgw_cur_u32(&c, &k->pid) && pgw_cur_u32(&c, &k->secret);

	return pgw_cur_done(&c, ok);
}

enum pgw_rc pgw_parse_ready(const struct pgw_frame *f, char *status)
{
	struct pgw_cursor c;
	uint8_t s;

	if (!pgw_cur_init(&c, f, PGW_MSG_READY) || !pgw_cur_u8(&c, &s))
		return PGW_ERROR;
	if (s != 'I' && s != 'T' && s != 'E')
		return PGW_ERROR;
	*status = (char)s;
	return pgw_cur_done(&c, true);
}

static bool read_field(struct pgw_cursor *c, struct pgw_field *fl)
{
	return pgw_cur_str(c, &fl->name) && pgw_cur_u32(c, &fl->table_oid) &&
	       pgw_cur_i16(c, &fl->column) && pgw_cur_u32(c, &fl->type_oid) &&
	       pgw_cur_i16(c, &fl->type_len) && pgw_cur_i32(c, &fl->type_mod) &&
	       pgw_cur_i16(c, &fl->format);
}

enum pgw_rc pgw_parse_row_description(const struct pgw_frame *f,
                                      struct pgw_field *fields, size_t max,
                                      uint16_t *nfields)
{
	struct pgw_cursor c;
	uint16_t n;

	if (!pgw_cur_init(&c, f, PGW_MSG_ROW_DESCRIPTION) ||
	    !pgw_cur_u16(&c, &n))
		return PGW_ERROR;
	/* Fields past max are still parsed, into scratch, to validate them. */
	for (size_t i = 0; i < n; i++) {
		struct pgw_field scratch;

		if (!read_field(&c, i < max ? &fields[i] : &scratch))
			return PGW_ERROR;
	}
	*nfields = n;
	return pgw_cur_done(&c, true);
}

static bool read_value(struct pgw_cursor *c, struct pgw_value *v)
{
	const uint8_t *data;

	if (!pgw_cur_i32(c, &v->len) || v->len < -1)
		return false;
	if (v->len == -1) {
		v->data = NULL;
		return true;
	}
	if (!pgw_cur_bytes(c, (size_t)v->len, &data))
		return false;
	v->data = data;
	return true;
}

enum pgw_rc pgw_parse_data_row(const struct pgw_frame *f,
                               struct pgw_value *values, size_t max,
                               uint16_t *ncols)
{
	struct pgw_cursor c;
	uint16_t n;

	if (!pgw_cur_init(&c, f, PGW_MSG_DATA_ROW) || !pgw_cur_u16(&c, &n))
		return PGW_ERROR;
	for (size_t i = 0; i < n; i++) {
		struct pgw_value scratch;

		if (!read_value(&c, i < max ? &values[i] : &scratch))
			return PGW_ERROR;
	}
	*ncols = n;
	return pgw_cur_done(&c, true);
}

enum pgw_rc pgw_parse_command_complete(const struct pgw_frame *f,
                                       const char **tag)
{
	struct pgw_cursor c;
	bool ok = pgw_cur_init(&c, f, PGW_MSG_COMMAND_COMPLETE) &&
	          pgw_cur_str(&c, tag);

	return pgw_cur_done(&c, ok);
}

/*
 * The count is the last space-separated word ("INSERT 0 5": the 0 is the
 * obsolete OID). Tags without a count ("BEGIN", "CREATE TABLE") say false.
 */
bool pgw_tag_rows(const char *tag, uint64_t *rows)
{
	const char *sp;
	uint64_t n = 0;

	if (tag == NULL)
		return false;
	sp = strrchr(tag, ' ');
	if (sp == NULL || sp == tag || sp[1] == '\0')
		return false;
	for (const char *p = sp + 1; *p != '\0'; p++) {
		unsigned digit;

		if (*p < '0' || *p > '9')
			return false;
		digit = (unsigned)(*p - '0');
		if (n > (UINT64_MAX - digit) / 10)
			return false;
		n = n * 10 + digit;
	}
	*rows = n;
	return true;
}

/* Per-column formats must be 0 or 1, and all 0 when the copy is text. */
static bool read_copy_formats(struct pgw_cursor *c, uint8_t overall, uint16_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint16_t fmt;

		if (!pgw_cur_u16(c, &fmt) || fmt > 1 ||
		    (overall == 0 && fmt != 0))
			return false;
	}
	return true;
}

enum pgw_rc pgw_parse_copy_response(const struct pgw_frame *f,
                                    struct pgw_copy_response *r)
{
	struct pgw_cursor c;
	uint8_t type = f->type;

	if (type != PGW_MSG_COPY_IN && type != PGW_MSG_COPY_OUT &&
	    type != PGW_MSG_COPY_BOTH)
		return PGW_ERROR;
	if (!pgw_cur_init(&c, f, type) || !pgw_cur_u8(&c, &r->format) ||
	    r->format > 1 || !pgw_cur_u16(&c, &r->ncols))
		return PGW_ERROR;
	return pgw_cur_done(&c, read_copy_formats(&c, r->format, r->ncols));
}

/* Every field code PostgreSQL documents, and where it lands in the struct. */
static const struct {
	uint8_t code;
	size_t offset;
} notice_fields[] = {
    {'S', offsetof(struct pgw_notice, severity)},
    {'V', offsetof(struct pgw_notice, severity_nl)},
    {'C', offsetof(struct pgw_notice, sqlstate)},
    {'M', offsetof(struct pgw_notice, message)},
    {'D', offsetof(struct pgw_notice, detail)},
    {'H', offsetof(struct pgw_notice, hint)},
    {'P', offsetof(struct pgw_notice, position)},
    {'p', offsetof(struct pgw_notice, int_position)},
    {'q', offsetof(struct pgw_notice, int_query)},
    {'W', offsetof(struct pgw_notice, where)},
    {'s', offsetof(struct pgw_notice, schema)},
    {'t', offsetof(struct pgw_notice, table)},
    {'c', offsetof(struct pgw_notice, column)},
    {'d', offsetof(struct pgw_notice, datatype)},
    {'n', offsetof(struct pgw_notice, constraint)},
    {'F', offsetof(struct pgw_notice, file)},
    {'L', offsetof(struct pgw_notice, line)},
    {'R', offsetof(struct pgw_notice, routine)},
};

#define NOTICE_NFIELDS (sizeof(notice_fields) / sizeof(notice_fields[0]))

static const char **notice_slot(struct pgw_notice *n, size_t i)
{
	return (const char **)((char *)n + notice_fields[i].offset);
}

/* NULL for codes we do not know: the docs ask clients to skip those. */
static const char **notice_field(struct pgw_notice *n, uint8_t code)
{
	for (size_t i = 0; i < NOTICE_NFIELDS; i++) {
		if (notice_fields[i].code == code)
			return notice_slot(n, i);
	}
	return NULL;
}

enum pgw_rc pgw_parse_notice(const struct pgw_frame *f, struct pgw_notice *n)
{
	struct pgw_cursor c;
	uint8_t code = 1;

	memset(n, 0, sizeof(*n));
	if (!pgw_cur_init(&c, f,
	                  f->type == PGW_MSG_NOTICE ? PGW_MSG_NOTICE
	                                            : PGW_MSG_ERROR))
		return PGW_ERROR;
	/* Fields until a zero code byte, which must be the last byte. */
	while (pgw_cur_u8(&c, &code) && code != 0) {
		const char **slot = notice_field(n, code);
		const char *value;

		if (!pgw_cur_str(&c, &value))
			return PGW_ERROR;
		if (slot != NULL)
			*slot = value;
	}
	return pgw_cur_done(&c, code == 0);
}

/* Sum of the present fields with their NULs; false if it can not be held. */
static bool notice_size(struct pgw_notice *n, size_t *total)
{
	size_t sum = 0;

	for (size_t i = 0; i < NOTICE_NFIELDS; i++) {
		const char *s = *notice_slot(n, i);
		size_t len;

		if (s == NULL)
			continue;
		len = strlen(s) + 1;
		if (len > SIZE_MAX - sum)
			return false;
		sum += len;
	}
	*total = sum;
	return true;
}

/*
 * One block for all fields: the error travels to a client long after its
 * frame is drained, and one free() is easy to get right on every path.
 */
bool pgw_notice_dup(const struct pgw_notice *src, struct pgw_notice *dst)
{
	struct pgw_notice tmp = *src;
	size_t total, off = 0;
	char *block;

	if (!notice_size(&tmp, &total))
		return false;
	block = malloc(total > 0 ? total : 1);
	if (block == NULL)
		return false;
	for (size_t i = 0; i < NOTICE_NFIELDS; i++) {
		const char **slot = notice_slot(&tmp, i);
		size_t len;

		if (*slot == NULL)
			continue;
		len = strlen(*slot) + 1;
		memcpy(block + off, *slot, len);
		*slot = block + off;
		off += len;
	}
	tmp.owned = block;
	*dst = tmp;
	return true;
}

void pgw_notice_free(struct pgw_notice *n)
{
	if (n == NULL)
		return;
	free(n->owned);
	memset(n, 0, sizeof(*n));
}

/*
 * NegotiateProtocolVersion: the server's newest minor version, then the
 * startup options ("_pq_.*") it did not recognise, which we only count.
 */
enum pgw_rc pgw_parse_negotiate_version(const struct pgw_frame *f,
                                        uint32_t *minor, uint32_t *nunknown)
{
	struct pgw_cursor c;
	int32_t ver, count;

	if (!pgw_cur_init(&c, f, PGW_MSG_NEGOTIATE_VERSION) ||
	    !pgw_cur_i32(&c, &ver) || !pgw_cur_i32(&c, &count))
		return PGW_ERROR;
	/* Each name takes at least its NUL, so count can not exceed left. */
	if (ver < 0 || count < 0 || (size_t)count > c.left)
		return PGW_ERROR;
	for (int32_t i = 0; i < count; i++) {
		const char *name;

		if (!pgw_cur_str(&c, &name))
			return PGW_ERROR;
	}
	*minor = (uint32_t)ver;
	*nunknown = (uint32_t)count;
	return pgw_cur_done(&c, true);
}

/* ==== the server side ==== */

/* ---- startup-phase packets ---- */

/*
 * Name/value pairs until an empty name, which must be the last byte. Names
 * are unique and non-empty; user and database are picked out.
 */
static bool read_startup_params(struct pgw_cursor *c, struct pgw_startup *s)
{
	const char *name, *value;

	for (;;) {
		if (!pgw_cur_str(c, &name))
			return false;
		if (name[0] == '\0')
			return c->left == 0;
		if (!pgw_cur_str(c, &value) ||
		    s->nparams == PGW_MAX_STARTUP_PARAMS)
			return false;
		for (size_t i = 0; i < s->nparams; i++) {
			if (strcmp(s->names[i], name) == 0)
				return false;
		}
		s->names[s->nparams] = name;
		s->values[s->nparams++] = value;
		if (strcmp(name, "user") == 0)
			s->user = value;
		else if (strcmp(name, "database") == 0)
			s->database = value;
		else if (strncmp(name, "_pq_.", 5) == 0)
			s->noptions++;
	}
}

static bool read_cancel(struct pgw_cursor *c, struct pgw_startup *s)
{
	s->kind = PGW_STARTUP_CANCEL;
	if (!pgw_cur_u32(c, &s->cancel_pid) || c->left < 4 ||
	    c->left > PGW_MAX_CANCEL_KEY)
		return false;
	s->cancel_key_len = c->left;
	return pgw_cur_bytes(c, c->left, &s->cancel_key);
}

/* The body after length and code, by code. */
static bool read_startup_body(struct pgw_cursor *c, uint32_t code,
                              struct pgw_startup *s)
{
	switch (code) {
	case PGW_SSL_REQUEST_CODE:
		s->kind = PGW_STARTUP_SSL;
		return c->left == 0;
	case PGW_GSSENC_REQUEST_CODE:
		s->kind = PGW_STARTUP_GSSENC;
		return c->left == 0;
	case PGW_CANCEL_REQUEST_CODE:
		return read_cancel(c, s);
	}
	if (code >> 16 != 3)
		return false;
	s->kind = PGW_STARTUP_PROTO;
	s->minor = (uint16_t)(code & 0xffff);
	return read_startup_params(c, s);
}

enum pgw_rc pgw_parse_startup(const uint8_t *buf, size_t avail,
                              struct pgw_startup *s)
{
	struct pgw_cursor c;
	uint32_t len, code;

	memset(s, 0, sizeof(*s));
	if (avail < 4)
		return PGW_AGAIN;
	len = get_be32(buf);
	if (len < PGW_STARTUP_HEADER_LEN || len > PGW_MAX_STARTUP_LEN)
		return PGW_ERROR;
	if (avail < len)
		return PGW_AGAIN;
	code = get_be32(buf + 4);
	c.p = buf + PGW_STARTUP_HEADER_LEN;
	c.left = len - PGW_STARTUP_HEADER_LEN;
	if (!read_startup_body(&c, code, s))
		return PGW_ERROR;
	s->len = len;
	return PGW_OK;
}

enum pgw_rc pgw_startup_next(struct evbuffer *in, struct pgw_startup *s)
{
	uint8_t hdr[4];
	uint32_t len;
	uint8_t *p;

	memset(s, 0, sizeof(*s));
	if (evbuffer_copyout(in, hdr, sizeof(hdr)) != (ev_ssize_t)sizeof(hdr))
		return PGW_AGAIN;
	len = get_be32(hdr);
	if (len < PGW_STARTUP_HEADER_LEN || len > PGW_MAX_STARTUP_LEN)
		return PGW_ERROR;
	if (evbuffer_get_length(in) < len)
		return PGW_AGAIN;
	p = evbuffer_pullup(in, (ev_ssize_t)len);
	if (p == NULL)
		return PGW_ERROR;
	return pgw_parse_startup(p, len, s);
}

void pgw_startup_consume(struct evbuffer *in, const struct pgw_startup *s)
{
	evbuffer_drain(in, s->len);
}

/* ---- backend encoders ---- */

bool pgw_put_auth(struct evbuffer *out, uint32_t code, const void *data,
                  size_t len)
{
	uint8_t code_be[4];

	if (data == NULL && len != 0)
		return false;
	put_be32(code_be, code);
	struct pgw_piece c[] = {{code_be, sizeof(code_be)}, {data, len}};
	return put_message(out, PGW_MSG_AUTH, c, 2);
}

/* The mechanism list is NUL-separated and ends with an empty name. */
bool pgw_put_auth_sasl(struct evbuffer *out, const char *mechanism)
{
	uint8_t code_be[4];

	put_be32(code_be, PGW_AUTH_SASL);
	struct pgw_piece c[] = {
	    {code_be, sizeof(code_be)}, cstr_chunk(mechanism), {"", 1}};
	return put_message(out, PGW_MSG_AUTH, c, 3);
}

bool pgw_put_param_status(struct evbuffer *out, const char *name,
                          const char *value)
{
	struct pgw_piece c[] = {cstr_chunk(name), cstr_chunk(value)};

	return put_message(out, PGW_MSG_PARAMETER_STATUS, c, 2);
}

bool pgw_put_backend_key(struct evbuffer *out, uint32_t pid, uint32_t secret)
{
	uint8_t body[8];
	struct pgw_piece c = {body, sizeof(body)};

	put_be32(body, pid);
	put_be32(body + 4, secret);
	return put_message(out, PGW_MSG_BACKEND_KEY, &c, 1);
}

bool pgw_put_ready(struct evbuffer *out, char status)
{
	struct pgw_piece c = {&status, 1};

	if (status != 'I' && status != 'T' && status != 'E')
		return false;
	return put_message(out, PGW_MSG_READY, &c, 1);
}

/* Field code byte, value and NUL of every present field, then a 0 byte. */
bool pgw_put_notice(struct evbuffer *out, uint8_t type,
                    const struct pgw_notice *n)
{
	struct pgw_notice tmp = *n;
	struct pgw_piece c[NOTICE_NFIELDS * 2 + 1];
	size_t k = 0;

	if (type != PGW_MSG_ERROR && type != PGW_MSG_NOTICE)
		return false;
	for (size_t i = 0; i < NOTICE_NFIELDS; i++) {
		const char *v = *notice_slot(&tmp, i);

		if (v == NULL)
			continue;
		c[k++] = (struct pgw_piece){&notice_fields[i].code, 1};
		c[k++] = cstr_chunk(v);
	}
	c[k++] = (struct pgw_piece){"", 1};
	return put_message(out, type, c, k);
}

bool pgw_put_error(struct evbuffer *out, const char *severity,
                   const char *sqlstate, const char *message)
{
	struct pgw_notice n = {.severity = severity,
	                       .severity_nl = severity,
	                       .sqlstate = sqlstate,
	                       .message = message};

	return pgw_put_notice(out, PGW_MSG_ERROR, &n);
}

bool pgw_put_negotiate_version(struct evbuffer *out, uint32_t minor,
                               const char *const *options, size_t n)
{
	struct evbuffer *body = evbuffer_new();
	uint8_t be[8];
	bool ok;

	if (body == NULL || n > INT32_MAX || minor > INT32_MAX) {
		if (body != NULL)
			evbuffer_free(body);
		return false;
	}
	put_be32(be, minor);
	put_be32(be + 4, (uint32_t)n);
	ok = evbuffer_add(body, be, sizeof(be)) == 0;
	for (size_t i = 0; ok && i < n; i++)
		ok =
		    evbuffer_add(body, options[i], strlen(options[i]) + 1) == 0;
	if (ok) {
		size_t len = evbuffer_get_length(body);
		struct pgw_piece c = {evbuffer_pullup(body, -1), len};

		ok = c.data != NULL &&
		     put_message(out, PGW_MSG_NEGOTIATE_VERSION, &c, 1);
	}
	evbuffer_free(body);
	return ok;
}

bool pgw_put_cancel_request(struct evbuffer *out, uint32_t pid, uint32_t secret)
{
	uint8_t msg[16];

	put_be32(msg, sizeof(msg));
	put_be32(msg + 4, PGW_CANCEL_REQUEST_CODE);
	put_be32(msg + 8, pid);
	put_be32(msg + 12, secret);
	return evbuffer_add(out, msg, sizeof(msg)) == 0;
}

/* ---- decoders of client messages ---- */

enum pgw_rc pgw_parse_password(const struct pgw_frame *f, const char **pw)
{
	struct pgw_cursor c;
	bool ok = pgw_cur_init(&c, f, PGW_FE_PASSWORD) && pgw_cur_str(&c, pw);

	return pgw_cur_done(&c, ok);
}

enum pgw_rc pgw_parse_sasl_initial(const struct pgw_frame *f,
                                   const char **mechanism, const uint8_t **data,
                                   size_t *len)
{
	struct pgw_cursor c;
	int32_t n;

	if (!pgw_cur_init(&c, f, PGW_FE_PASSWORD) ||
	    !pgw_cur_str(&c, mechanism) || !pgw_cur_i32(&c, &n) || n < -1)
		return PGW_ERROR;
	if (n == -1) {
		*data = NULL;
		*len = 0;
		return pgw_cur_done(&c, true);
	}
	*len = (size_t)n;
	return pgw_cur_done(&c, pgw_cur_bytes(&c, (size_t)n, data));
}

enum pgw_rc pgw_parse_sasl_response(const struct pgw_frame *f,
                                    const uint8_t **data, size_t *len)
{
	struct pgw_cursor c;

	if (!pgw_cur_init(&c, f, PGW_FE_PASSWORD))
		return PGW_ERROR;
	*len = c.left;
	return pgw_cur_done(&c, pgw_cur_bytes(&c, c.left, data));
}

/* ---- extended-protocol messages ---- */

enum pgw_rc pgw_parse_parse_rest(const uint8_t *rest, size_t len,
                                 struct pgw_parse_msg *p)
{
	struct pgw_cursor c = {rest, len};
	int16_t n;

	p->rest = rest;
	p->rest_len = len;
	if (!pgw_cur_str(&c, &p->query) || !pgw_cur_i16(&c, &n) || n < 0)
		return PGW_ERROR;
	p->ntypes = (uint16_t)n;
	return pgw_cur_done(&c, pgw_cur_bytes(&c, (size_t)n * 4, &p->types));
}

enum pgw_rc pgw_parse_parse(const struct pgw_frame *f, struct pgw_parse_msg *p)
{
	struct pgw_cursor c;

	if (!pgw_cur_init(&c, f, PGW_FE_PARSE) || !pgw_cur_str(&c, &p->name))
		return PGW_ERROR;
	return pgw_parse_parse_rest(c.p, c.left, p);
}

enum pgw_rc pgw_parse_bind(const struct pgw_frame *f, struct pgw_bind_msg *b)
{
	struct pgw_cursor c;

	if (!pgw_cur_init(&c, f, PGW_FE_BIND) || !pgw_cur_str(&c, &b->portal) ||
	    !pgw_cur_str(&c, &b->statement))
		return PGW_ERROR;
	b->rest = c.p;
	b->rest_len = c.left;
	return PGW_OK;
}

/* The format codes of a Bind (or its result formats): count, then codes. */
static bool bind_formats(struct pgw_cursor *c, int16_t *count,
                         const uint8_t **codes)
{
	if (!pgw_cur_i16(c, count) || *count < 0 ||
	    !pgw_cur_bytes(c, (size_t)*count * 2, codes))
		return false;
	for (int16_t i = 0; i < *count; i++) {
		uint16_t f = get_be16(*codes + 2 * i);

		if (f > 1)
			return false;
	}
	return true;
}

enum pgw_rc pgw_bind_count(const struct pgw_bind_msg *b, uint16_t *n)
{
	struct pgw_cursor c = {b->rest, b->rest_len};
	const uint8_t *codes;
	int16_t nf, np;

	if (!bind_formats(&c, &nf, &codes) || !pgw_cur_i16(&c, &np) || np < 0)
		return PGW_ERROR;
	*n = (uint16_t)np;
	return PGW_OK;
}

enum pgw_rc pgw_parse_bind_values(const struct pgw_bind_msg *b,
                                  struct pgw_bind_value *v, uint16_t n)
{
	struct pgw_cursor c = {b->rest, b->rest_len};
	const uint8_t *codes, *rcodes;
	int16_t nf, np, nr;

	if (!bind_formats(&c, &nf, &codes) || !pgw_cur_i16(&c, &np) ||
	    np != (int16_t)n || (nf > 1 && nf != np))
		return PGW_ERROR;
	for (uint16_t i = 0; i < n; i++) {
		int32_t len;

		if (!pgw_cur_i32(&c, &len) || len < -1)
			return PGW_ERROR;
		v[i].len = len;
		v[i].data = NULL;
		v[i].format =
		    nf == 0 ? 0
		            : (int16_t)get_be16(codes + 2 * (nf == 1 ? 0 : i));
		if (len >= 0 && !pgw_cur_bytes(&c, (size_t)len, &v[i].data))
			return PGW_ERROR;
	}
	return pgw_cur_done(&c, bind_formats(&c, &nr, &rcodes));
}

enum pgw_rc pgw_parse_target(const struct pgw_frame *f, char *kind,
                             const char **name)
{
	struct pgw_cursor c;
	uint8_t k;

	if ((f->type != PGW_FE_DESCRIBE && f->type != PGW_FE_CLOSE) ||
	    !pgw_cur_init(&c, f, f->type) || !pgw_cur_u8(&c, &k) ||
	    (k != 'S' && k != 'P'))
		return PGW_ERROR;
	*kind = (char)k;
	return pgw_cur_done(&c, pgw_cur_str(&c, name));
}

bool pgw_put_pieces(struct evbuffer *out, uint8_t type,
                    const struct pgw_piece *pieces, size_t n)
{
	return put_message(out, type, pieces, n);
}
