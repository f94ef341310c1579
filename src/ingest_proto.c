/* ingest_proto.c: pure encoder and decoder of the ingest protocol messages. */
#include "ingest_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "bytes.h"
#include "utf8.h"
#include "sqlgen.h"

/* The length field counts itself and must fit a signed int32, as in v3. */
#define IGP_MAX_BODY ((size_t)INT32_MAX - 4)

/* ---- big-endian helpers ---- */

/* ---- encoding: a body is built in a scratch buffer, then framed ---- */

static bool body_u16(struct evbuffer *b, uint16_t v)
{
	uint8_t p[2];

	put_be16(p, v);
	return evbuffer_add(b, p, sizeof(p)) == 0;
}

static bool body_u32(struct evbuffer *b, uint32_t v)
{
	uint8_t p[4];

	put_be32(p, v);
	return evbuffer_add(b, p, sizeof(p)) == 0;
}

static bool body_u64(struct evbuffer *b, uint64_t v)
{
	uint8_t p[8];

	put_be64(p, v);
	return evbuffer_add(b, p, sizeof(p)) == 0;
}

/* NULL is sent as the empty string: every string field is optional text. */
static bool body_str(struct evbuffer *b, const char *s)
{
	if (s == NULL)
		s = "";
	return evbuffer_add(b, s, strlen(s) + 1) == 0;
}

/*
 * Text the proxy echoes (names a client sent, server messages): valid
 * UTF-8 on the wire whatever came in. A byte that is not part of a valid
 * UTF-8 sequence, a control byte and DEL become the four characters \xNN.
 */
static bool body_text(struct evbuffer *b, const char *s)
{
	const uint8_t *p = (const uint8_t *)(s != NULL ? s : "");
	size_t left = strlen((const char *)p);

	while (left > 0) {
		size_t n = utf8_seq_len(p, left);
		char esc[5];

		if (n == 0 || (n == 1 && (p[0] < 0x20 || p[0] == 0x7f))) {
			snprintf(esc, sizeof(esc), "\\x%02x", p[0]);
			if (evbuffer_add(b, esc, 4) != 0)
				return false;
			n = 1;
		} else if (evbuffer_add(b, p, n) != 0) {
			return false;
		}
		p += n;
		left -= n;
	}
	return evbuffer_add(b, "", 1) == 0;
}

static bool body_str_list(struct evbuffer *b, uint16_t n,
                          const char *const *list)
{
	if (n > IGP_MAX_COLUMNS || (n > 0 && list == NULL))
		return false;
	if (!body_u16(b, n))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!body_str(b, list[i]))
			return false;
	}
	return true;
}

/*
 * Appends the frame only when the whole body was built, so a failure
 * (OOM, oversize) leaves out as it was. body may be NULL for empty.
 */
static bool put_frame(struct evbuffer *out, uint8_t type, struct evbuffer *body)
{
	size_t len = body != NULL ? evbuffer_get_length(body) : 0;
	uint8_t hdr[PGW_HEADER_LEN];

	if (len > IGP_MAX_BODY)
		return false;
	hdr[0] = type;
	put_be32(hdr + 1, (uint32_t)(len + 4));
	if (evbuffer_expand(out, sizeof(hdr) + len) != 0 ||
	    evbuffer_add(out, hdr, sizeof(hdr)) != 0)
		return false;
	/*
	 * Copied, not moved: moving would hang the body's own chain (1 KiB
	 * or more, for an Ack of 21 bytes) on out, so that answers waiting to
	 * be written would cost fifty times their size.
	 */
	return len == 0 ||
	       evbuffer_add(out, evbuffer_pullup(body, -1), len) == 0;
}

/* Frames the body when built_ok, and frees it either way. */
static bool finish(struct evbuffer *out, uint8_t type, struct evbuffer *body,
                   bool built_ok)
{
	bool ok = built_ok && put_frame(out, type, body);

	evbuffer_free(body);
	return ok;
}

bool igp_put_hello_ok(struct evbuffer *out, uint32_t max_frame,
                      uint64_t max_flush, const char *server_name)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL)
		return false;
	return finish(out, IGP_MSG_HELLO_OK, b,
	              body_u16(b, IGP_VERSION_MAJOR) &&
	                  body_u16(b, IGP_VERSION_MINOR) &&
	                  body_u32(b, max_frame) && body_u64(b, max_flush) &&
	                  body_str(b, server_name));
}

static bool body_col_types(struct evbuffer *b, uint16_t n,
                           const char *const *cols, const char *const *types)
{
	if (n > IGP_MAX_COLUMNS || (n > 0 && (cols == NULL || types == NULL)))
		return false;
	if (!body_u16(b, n))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!body_str(b, cols[i]) || !body_str(b, types[i]))
			return false;
	}
	return true;
}

bool igp_put_open_ok(struct evbuffer *out, uint16_t n, const char *const *cols,
                     const char *const *types)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL)
		return false;
	return finish(out, IGP_MSG_OPEN_OK, b,
	              body_col_types(b, n, cols, types));
}

bool igp_put_ack(struct evbuffer *out, uint64_t flush_id, uint64_t rows)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL)
		return false;
	return finish(out, IGP_MSG_ACK, b,
	              body_u64(b, flush_id) && body_u64(b, rows));
}

bool igp_put_flush_error(struct evbuffer *out, uint64_t flush_id,
                         const char *sqlstate, const char *message,
                         const char *detail, uint64_t row)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL)
		return false;
	return finish(out, IGP_MSG_FLUSH_ERROR, b,
	              body_u64(b, flush_id) && body_str(b, sqlstate) &&
	                  body_text(b, message) && body_text(b, detail) &&
	                  body_u64(b, row));
}

bool igp_put_error(struct evbuffer *out, const char *sqlstate,
                   const char *message)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL)
		return false;
	return finish(out, IGP_MSG_ERROR, b,
	              body_str(b, sqlstate) && body_text(b, message));
}

bool igp_put_close_ok(struct evbuffer *out)
{
	return put_frame(out, IGP_MSG_CLOSE_OK, NULL);
}

bool igp_put_progress(struct evbuffer *out, uint64_t request_id,
                      uint64_t rows_committed, bool complete)
{
	struct evbuffer *b = evbuffer_new();
	uint8_t c = complete ? 1 : 0;

	if (b == NULL)
		return false;
	return finish(out, IGP_MSG_PROGRESS, b,
	              body_u64(b, request_id) && body_u64(b, rows_committed) &&
	                  evbuffer_add(b, &c, 1) == 0);
}

enum pgw_rc igp_detect_postgres(const uint8_t *p, size_t len)
{
	uint32_t code;

	if (len == 0)
		return PGW_AGAIN;
	if (p[0] != 0)
		return PGW_ERROR; /* a length below 16 MiB: ours is a letter */
	if (len < 8)
		return PGW_AGAIN;
	code = get_be32(p + 4);
	/* 1234.5679 SSL, 1234.5680 GSS, 1234.5678 cancel, 3.0 startup */
	if (code == PGW_SSL_REQUEST_CODE || code == PGW_SSL_REQUEST_CODE + 1 ||
	    code == PGW_SSL_REQUEST_CODE - 1 || code == PGW_PROTOCOL_V3)
		return PGW_OK;
	return PGW_ERROR;
}

/* ErrorResponse: 'E', length, then (code byte, string) fields, then 0. */
bool igp_put_pg_fatal(struct evbuffer *out, const char *sqlstate,
                      const char *message)
{
	struct evbuffer *b = evbuffer_new();
	bool ok;

	if (b == NULL)
		return false;
	ok = evbuffer_add(b, "SFATAL", 7) == 0 &&
	     evbuffer_add(b, "VFATAL", 7) == 0 &&
	     evbuffer_add(b, "C", 1) == 0 && body_str(b, sqlstate) &&
	     evbuffer_add(b, "M", 1) == 0 && body_text(b, message) &&
	     evbuffer_add(b, "", 1) == 0;
	return finish(out, 'E', b, ok);
}

/* A name the proxy would refuse is refused here too, so tests see it. */
bool igp_put_hello(struct evbuffer *out, const char *client_name,
                   const char *token)
{
	struct evbuffer *b;

	if (client_name != NULL && strlen(client_name) > IGP_MAX_CLIENT_NAME)
		return false;
	b = evbuffer_new();
	if (b == NULL)
		return false;
	return finish(out, IGP_MSG_HELLO, b,
	              body_u16(b, IGP_VERSION_MAJOR) &&
	                  body_u16(b, IGP_VERSION_MINOR) &&
	                  body_str(b, client_name) && body_str(b, token));
}

static bool body_open(struct evbuffer *b, const struct igp_open *o)
{
	uint8_t mode = (uint8_t)o->mode;

	return body_str(b, o->schema) && body_str(b, o->table) &&
	       evbuffer_add(b, &mode, 1) == 0 &&
	       body_str_list(b, o->ncols, o->cols) &&
	       body_str_list(b, o->nkeys, o->keys) &&
	       body_str(b, o->version_col) &&
	       body_str_list(b, o->ncoalesce, o->coalesce);
}

bool igp_put_open(struct evbuffer *out, const struct igp_open *o)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL)
		return false;
	return finish(out, IGP_MSG_OPEN, b, body_open(b, o));
}

bool igp_put_rows(struct evbuffer *out, const void *rows, size_t len)
{
	uint8_t hdr[PGW_HEADER_LEN];

	if (len > IGP_MAX_BODY || (rows == NULL && len != 0))
		return false;
	hdr[0] = IGP_MSG_ROWS;
	put_be32(hdr + 1, (uint32_t)(len + 4));
	if (evbuffer_expand(out, sizeof(hdr) + len) != 0 ||
	    evbuffer_add(out, hdr, sizeof(hdr)) != 0)
		return false;
	return len == 0 || evbuffer_add(out, rows, len) == 0;
}

bool igp_put_flush(struct evbuffer *out, uint64_t flush_id)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL)
		return false;
	return finish(out, IGP_MSG_FLUSH, b, body_u64(b, flush_id));
}

bool igp_put_close(struct evbuffer *out)
{
	return put_frame(out, IGP_MSG_CLOSE, NULL);
}

/* The key of a progress row: schema, table, query_id, partition, epoch. */
static bool body_progress_key(struct evbuffer *b, const struct igp_progress *p)
{
	return body_str(b, p->schema) && body_str(b, p->table) &&
	       body_str(b, p->query_id) && body_u64(b, p->partition_id) &&
	       body_u64(b, p->epoch_id);
}

bool igp_put_flush_progress(struct evbuffer *out, uint64_t flush_id,
                            const struct igp_progress *p)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL)
		return false;
	return finish(out, IGP_MSG_FLUSH_PROGRESS, b,
	              body_u64(b, flush_id) && body_progress_key(b, p) &&
	                  body_u64(b, p->rows_committed) &&
	                  evbuffer_add(b, &p->complete, 1) == 0);
}

bool igp_put_progress_query(struct evbuffer *out, uint64_t request_id,
                            const struct igp_progress *p)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL)
		return false;
	return finish(out, IGP_MSG_PROGRESS_QUERY, b,
	              body_u64(b, request_id) && body_progress_key(b, p));
}

/* ---- decoding cursor: every read checks the bytes left first ---- */

/* ---- decoding client messages ---- */

enum pgw_rc igp_parse_hello(const struct pgw_frame *f, struct igp_hello *h)
{
	struct pgw_cursor c;
	bool ok = pgw_cur_init(&c, f, IGP_MSG_HELLO) &&
	          pgw_cur_u16(&c, &h->major) && pgw_cur_u16(&c, &h->minor) &&
	          pgw_cur_str(&c, &h->client_name) &&
	          pgw_cur_str(&c, &h->token);

	if (ok && strlen(h->client_name) > IGP_MAX_CLIENT_NAME)
		return PGW_ERROR;
	return pgw_cur_done(&c, ok);
}

/*
 * A string list into a fresh heap array. The count is checked against the
 * bytes left (each string takes at least its NUL) before the allocation,
 * so a hostile count can not make us allocate more than the frame's size
 * in pointers. Counts above IGP_MAX_COLUMNS decode: a well-formed Open
 * asking for too many is igp_open_check's to refuse (22023), not a
 * malformed message.
 */
static bool cur_str_list(struct pgw_cursor *c, uint16_t *n, const char ***list)
{
	const char **arr;

	*list = NULL;
	if (!pgw_cur_u16(c, n) || *n > c->left)
		return false;
	if (*n == 0)
		return true;
	arr = calloc(*n, sizeof(*arr));
	if (arr == NULL)
		return false;
	*list = arr;
	for (size_t i = 0; i < *n; i++) {
		if (!pgw_cur_str(c, &arr[i]))
			return false;
	}
	return true;
}

static bool cur_mode(struct pgw_cursor *c, char *mode)
{
	uint8_t v;

	if (!pgw_cur_u8(c, &v))
		return false;
	*mode = (char)v;
	return true;
}

enum pgw_rc igp_parse_open(const struct pgw_frame *f, struct igp_open *o)
{
	struct pgw_cursor c;
	bool ok;

	memset(o, 0, sizeof(*o));
	ok = pgw_cur_init(&c, f, IGP_MSG_OPEN) && pgw_cur_str(&c, &o->schema) &&
	     pgw_cur_str(&c, &o->table) && cur_mode(&c, &o->mode) &&
	     cur_str_list(&c, &o->ncols, &o->cols) &&
	     cur_str_list(&c, &o->nkeys, &o->keys) &&
	     pgw_cur_str(&c, &o->version_col) &&
	     cur_str_list(&c, &o->ncoalesce, &o->coalesce);
	if (pgw_cur_done(&c, ok) != PGW_OK) {
		igp_open_free(o);
		return PGW_ERROR;
	}
	return PGW_OK;
}

void igp_open_free(struct igp_open *o)
{
	if (o == NULL)
		return;
	free(o->cols);
	free(o->keys);
	free(o->coalesce);
	memset(o, 0, sizeof(*o));
}

enum pgw_rc igp_parse_close(const struct pgw_frame *f)
{
	struct pgw_cursor c;

	return pgw_cur_done(&c, pgw_cur_init(&c, f, IGP_MSG_CLOSE));
}

size_t igp_max_body(uint64_t max_frame_bytes)
{
	return max_frame_bytes > 4 ? (size_t)(max_frame_bytes - 4) : 0;
}

enum pgw_rc igp_parse_flush(const struct pgw_frame *f, uint64_t *flush_id)
{
	struct pgw_cursor c;
	bool ok =
	    pgw_cur_init(&c, f, IGP_MSG_FLUSH) && pgw_cur_u64(&c, flush_id);

	return pgw_cur_done(&c, ok);
}

static bool cur_progress_key(struct pgw_cursor *c, struct igp_progress *p)
{
	return pgw_cur_str(c, &p->schema) && pgw_cur_str(c, &p->table) &&
	       pgw_cur_str(c, &p->query_id) &&
	       pgw_cur_u64(c, &p->partition_id) && pgw_cur_u64(c, &p->epoch_id);
}

enum pgw_rc igp_parse_flush_progress(const struct pgw_frame *f,
                                     uint64_t *flush_id, struct igp_progress *p)
{
	struct pgw_cursor c;
	bool ok;

	memset(p, 0, sizeof(*p));
	ok = pgw_cur_init(&c, f, IGP_MSG_FLUSH_PROGRESS) &&
	     pgw_cur_u64(&c, flush_id) && cur_progress_key(&c, p) &&
	     pgw_cur_u64(&c, &p->rows_committed) &&
	     pgw_cur_u8(&c, &p->complete);
	return pgw_cur_done(&c, ok);
}

enum pgw_rc igp_parse_progress_query(const struct pgw_frame *f,
                                     uint64_t *request_id,
                                     struct igp_progress *p)
{
	struct pgw_cursor c;
	bool ok;

	memset(p, 0, sizeof(*p));
	ok = pgw_cur_init(&c, f, IGP_MSG_PROGRESS_QUERY) &&
	     pgw_cur_u64(&c, request_id) && cur_progress_key(&c, p);
	return pgw_cur_done(&c, ok);
}

/* ---- the rules of a progress row beyond its layout ---- */

static bool query_id_valid(const char *q)
{
	size_t len = q != NULL ? strlen(q) : 0;

	if (len == 0 || len > IGP_MAX_QUERY_ID)
		return false;
	for (size_t i = 0; i < len; i++) {
		uint8_t b = (uint8_t)q[i];

		if (b < 0x20 || b == 0x7f)
			return false;
	}
	return utf8_valid((const uint8_t *)q, len);
}

static bool progress_fail(char sqlstate[6], char *msg, size_t msglen,
                          const char *state, const char *text)
{
	memcpy(sqlstate, state, 6);
	if (msg != NULL && msglen > 0)
		snprintf(msg, msglen, "%s", text);
	return false;
}

bool igp_progress_check(const struct igp_progress *p, bool with_count,
                        char sqlstate[6], char *msg, size_t msglen)
{
	const char *schema = p->schema != NULL ? p->schema : "";

	if (!sql_ident_valid(p->table) ||
	    (schema[0] != '\0' && !sql_ident_valid(schema)))
		return progress_fail(sqlstate, msg, msglen, "42602",
		                     "invalid progress table name");
	if (!query_id_valid(p->query_id))
		return progress_fail(
		    sqlstate, msg, msglen, "22023",
		    "invalid query_id: 1 to 255 bytes of UTF-8 "
		    "without control characters");
	if (p->partition_id > INT64_MAX || p->epoch_id > INT64_MAX)
		return progress_fail(sqlstate, msg, msglen, "22023",
		                     "negative partition_id or epoch_id");
	if (with_count && p->rows_committed > INT64_MAX)
		return progress_fail(sqlstate, msg, msglen, "22023",
		                     "negative rows_committed");
	if (with_count && p->complete > 1)
		return progress_fail(sqlstate, msg, msglen, "22023",
		                     "complete must be 0 or 1");
	return true;
}

/* ---- the rules of Open beyond its layout ---- */

struct open_err {
	char *sqlstate;
	char *msg;
	size_t msglen;
};

/* msg = pre "name" post; name NULL leaves out the quoted part. */
static bool fail(const struct open_err *e, const char *state, const char *pre,
                 const char *name, const char *post)
{
	memcpy(e->sqlstate, state, 6);
	if (e->msg == NULL || e->msglen == 0)
		return false;
	if (name == NULL)
		snprintf(e->msg, e->msglen, "%s%s", pre, post);
	else
		snprintf(e->msg, e->msglen, "%s\"%s\"%s", pre, name, post);
	return false;
}

static int igp_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted copy of a list, for bsearch and duplicate detection. */
static const char **sorted_copy(const char *const *list, size_t n)
{
	const char **s = malloc((n > 0 ? n : 1) * sizeof(*s));

	if (s == NULL)
		return NULL;
	if (n > 0)
		memcpy(s, list, n * sizeof(*s));
	qsort(s, n, sizeof(*s), igp_cmp_str);
	return s;
}

static bool in_sorted(const char **sorted, size_t n, const char *name)
{
	return n > 0 && bsearch(&name, sorted, n, sizeof(*sorted), igp_cmp_str);
}

/* NULL when the list has no duplicate, else one of the duplicated names. */
static const char *find_duplicate(const char *const *list, size_t n, bool *oom)
{
	const char **s = sorted_copy(list, n);
	const char *dup = NULL;

	*oom = s == NULL;
	for (size_t i = 1; s != NULL && i < n && dup == NULL; i++) {
		if (strcmp(s[i - 1], s[i]) == 0)
			dup = s[i];
	}
	free(s);
	return dup;
}

static bool igp_names_valid(const struct open_err *e, const char *const *list,
                            size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		if (!sql_ident_valid(list[i]))
			return fail(e, "42602", what, list[i], "");
	}
	return true;
}

static bool no_duplicates(const struct open_err *e, const char *const *list,
                          size_t n, const char *what)
{
	bool oom;
	const char *dup = find_duplicate(list, n, &oom);

	if (oom)
		return fail(e, "53200", "out of memory", NULL, "");
	if (dup != NULL)
		return fail(e, "22023", what, dup, "");
	return true;
}

static bool check_names(const struct open_err *e, const struct igp_open *o)
{
	const char *v = o->version_col != NULL ? o->version_col : "";
	const char *table = o->table != NULL ? o->table : "";

	if (!sql_ident_valid(table))
		return fail(e, "42602", "invalid table name ", table, "");
	if (o->schema != NULL && o->schema[0] != '\0' &&
	    !sql_ident_valid(o->schema))
		return fail(e, "42602", "invalid schema name ", o->schema, "");
	if (v[0] != '\0' && !sql_ident_valid(v))
		return fail(e, "42602", "invalid version column name ", v, "");
	return igp_names_valid(e, o->cols, o->ncols, "invalid column name ") &&
	       igp_names_valid(e, o->keys, o->nkeys, "invalid key name ") &&
	       igp_names_valid(e, o->coalesce, o->ncoalesce,
	                       "invalid coalesce column name ");
}

/* Keys, version and coalesce columns only make sense for upsert. */
static bool check_insert_extras(const struct open_err *e,
                                const struct igp_open *o)
{
	const char *v = o->version_col;

	if (o->nkeys > 0)
		return fail(e, "22023", "key ", o->keys[0],
		            " given in insert mode");
	if (v != NULL && v[0] != '\0')
		return fail(e, "22023", "version column ", v,
		            " given in insert mode");
	if (o->ncoalesce > 0)
		return fail(e, "22023", "coalesce column ", o->coalesce[0],
		            " given in insert mode");
	return true;
}

static bool check_shape(const struct open_err *e, const struct igp_open *o)
{
	char mode[2] = {o->mode, '\0'};

	if (o->mode != IGP_MODE_INSERT && o->mode != IGP_MODE_BULK &&
	    o->mode != IGP_MODE_UPSERT)
		return fail(e, "22023", "invalid mode ", mode, "");
	if (o->ncols == 0 || o->ncols > IGP_MAX_COLUMNS)
		return fail(e, "22023", "between 1 and 1600 columns needed",
		            NULL, "");
	if (o->mode != IGP_MODE_UPSERT)
		return check_insert_extras(e, o);
	if (o->nkeys == 0)
		return fail(e, "22023", "upsert needs key columns", NULL, "");
	/* The staging table numbers rows in a column of its own. */
	for (size_t i = 0; i < o->ncols; i++)
		if (o->cols[i] != NULL && strcmp(o->cols[i], "lbp_seq") == 0)
			return fail(e, "42602", "column name ", "lbp_seq",
			            " is reserved in upsert mode");
	return true;
}

/* Every name of list among the sorted columns and, unless allowed, not a key.
 */
static bool check_members(const struct open_err *e, const char **cols,
                          const char **keys, const struct igp_open *o,
                          const char *const *list, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		if (!in_sorted(cols, o->ncols, list[i]))
			return fail(e, "22023", what, list[i],
			            " is not among the columns");
		if (keys != NULL && in_sorted(keys, o->nkeys, list[i]))
			return fail(e, "22023", what, list[i],
			            " must not be a key");
	}
	return true;
}

static bool check_roles(const struct open_err *e, const struct igp_open *o,
                        const char **cols, const char **keys)
{
	const char *v = o->version_col;
	size_t nv = v != NULL && v[0] != '\0' ? 1 : 0;

	return check_members(e, cols, NULL, o, o->keys, o->nkeys, "key ") &&
	       check_members(e, cols, keys, o, &v, nv, "version column ") &&
	       check_members(e, cols, keys, o, o->coalesce, o->ncoalesce,
	                     "coalesce column ");
}

static bool check_membership(const struct open_err *e, const struct igp_open *o)
{
	const char **cols = sorted_copy(o->cols, o->ncols);
	const char **keys = sorted_copy(o->keys, o->nkeys);
	bool ok;

	if (cols == NULL || keys == NULL)
		ok = fail(e, "53200", "out of memory", NULL, "");
	else
		ok = check_roles(e, o, cols, keys);
	free(cols);
	free(keys);
	return ok;
}

bool igp_open_check(const struct igp_open *o, char sqlstate[6], char *msg,
                    size_t msglen)
{
	struct open_err e = {sqlstate, msg, msglen};

	return check_shape(&e, o) && check_names(&e, o) &&
	       no_duplicates(&e, o->cols, o->ncols, "duplicate column ") &&
	       no_duplicates(&e, o->keys, o->nkeys, "duplicate key ") &&
	       no_duplicates(&e, o->coalesce, o->ncoalesce,
	                     "duplicate coalesce column ") &&
	       check_membership(&e, o);
}

/* ---- decoding proxy messages (the client side) ---- */

static bool parse_hello_ok(struct pgw_cursor *c, struct igp_answer *a)
{
	return pgw_cur_u16(c, &a->major) && pgw_cur_u16(c, &a->minor) &&
	       pgw_cur_u32(c, &a->max_frame) && pgw_cur_u64(c, &a->max_flush) &&
	       pgw_cur_str(c, &a->server_name);
}

/* The pairs are validated but not kept: clients only need the count. */
static bool parse_open_ok(struct pgw_cursor *c, struct igp_answer *a)
{
	if (!pgw_cur_u16(c, &a->ncols) || a->ncols > IGP_MAX_COLUMNS)
		return false;
	for (size_t i = 0; i < a->ncols; i++) {
		const char *col, *type;

		if (!pgw_cur_str(c, &col) || !pgw_cur_str(c, &type))
			return false;
	}
	return true;
}

static bool parse_flush_error(struct pgw_cursor *c, struct igp_answer *a)
{
	return pgw_cur_u64(c, &a->flush_id) && pgw_cur_str(c, &a->sqlstate) &&
	       pgw_cur_str(c, &a->message) && pgw_cur_str(c, &a->detail) &&
	       pgw_cur_u64(c, &a->row);
}

static bool parse_answer_body(struct pgw_cursor *c, struct igp_answer *a)
{
	switch (a->type) {
	case IGP_MSG_HELLO_OK:
		return parse_hello_ok(c, a);
	case IGP_MSG_OPEN_OK:
		return parse_open_ok(c, a);
	case IGP_MSG_ACK:
		return pgw_cur_u64(c, &a->flush_id) && pgw_cur_u64(c, &a->rows);
	case IGP_MSG_FLUSH_ERROR:
		return parse_flush_error(c, a);
	case IGP_MSG_ERROR:
		return pgw_cur_str(c, &a->sqlstate) &&
		       pgw_cur_str(c, &a->message);
	case IGP_MSG_CLOSE_OK:
		return true;
	case IGP_MSG_PROGRESS:
		return pgw_cur_u64(c, &a->flush_id) &&
		       pgw_cur_u64(c, &a->rows) && pgw_cur_u8(c, &a->complete);
	default:
		return false;
	}
}

enum pgw_rc igp_parse_answer(const struct pgw_frame *f, struct igp_answer *a)
{
	struct pgw_cursor c;
	bool ok;

	memset(a, 0, sizeof(*a));
	if (f == NULL || !pgw_cur_init(&c, f, f->type))
		return PGW_ERROR;
	a->type = f->type;
	ok = parse_answer_body(&c, a);
	if (pgw_cur_done(&c, ok) != PGW_OK) {
		memset(a, 0, sizeof(*a));
		return PGW_ERROR;
	}
	return PGW_OK;
}
