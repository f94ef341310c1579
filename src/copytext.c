/* copytext.c: checks the framing, escapes and UTF-8 of COPY text rows. */
#include "copytext.h"

#include "utf8.h"

#include <event2/buffer.h>

/* What a byte means to the scanner; PLAIN bytes need no further look. */
enum byte_class {
	B_PLAIN = 0,
	B_TAB,
	B_NL,
	B_BACKSLASH,
	B_NUL,
	B_CR,
	B_HIGH /* 0x80..0xff: part of a multibyte UTF-8 sequence, or invalid */
};

#define HIGH16                                                                 \
	B_HIGH, B_HIGH, B_HIGH, B_HIGH, B_HIGH, B_HIGH, B_HIGH, B_HIGH,        \
	    B_HIGH, B_HIGH, B_HIGH, B_HIGH, B_HIGH, B_HIGH, B_HIGH, B_HIGH

/* A table lookup per byte beats a chain of compares in the hot loop. */
static const uint8_t byte_class[256] = {
    [0x00] = B_NUL,       [0x09] = B_TAB,  [0x0a] = B_NL,   [0x0d] = B_CR,
    [0x5c] = B_BACKSLASH, [0x80] = HIGH16, [0x90] = HIGH16, [0xa0] = HIGH16,
    [0xb0] = HIGH16,      [0xc0] = HIGH16, [0xd0] = HIGH16, [0xe0] = HIGH16,
    [0xf0] = HIGH16,
};

/* ---- rows ---- */

struct scan {
	const uint8_t *data;
	size_t len;
	size_t pos;
	size_t field_start; /* offset of the current field's first byte */
	unsigned ncols;
	unsigned field; /* 1-based field of the current row */
	uint64_t rows;  /* whole good rows so far */
	struct ct_error *err;
};

static enum ct_rc scan_fail(struct scan *s, enum ct_rc rc, size_t offset)
{
	s->err->rc = rc;
	s->err->row = s->rows + 1;
	s->err->offset = offset;
	return rc;
}

static enum ct_rc on_tab(struct scan *s)
{
	if (s->field >= s->ncols)
		return scan_fail(s, CT_FIELD_COUNT, s->pos);
	s->field++;
	s->pos++;
	s->field_start = s->pos;
	return CT_OK;
}

static enum ct_rc on_newline(struct scan *s)
{
	if (s->field != s->ncols)
		return scan_fail(s, CT_FIELD_COUNT, s->pos);
	s->rows++;
	s->field = 1;
	s->pos++;
	s->field_start = s->pos;
	return CT_OK;
}

/* \N is NULL only as a whole field: "a\N" or "\Nb" would be text to COPY. */
static bool null_alone(const struct scan *s)
{
	size_t after = s->pos + 2;

	if (s->pos != s->field_start)
		return false;
	return after == s->len || s->data[after] == '\t' ||
	       s->data[after] == '\n';
}

static enum ct_rc on_backslash(struct scan *s)
{
	uint8_t next;

	if (s->pos + 1 >= s->len)
		return scan_fail(s, CT_BAD_ESCAPE, s->pos);
	next = s->data[s->pos + 1];
	switch (next) {
	case 'N':
		if (!null_alone(s))
			return scan_fail(s, CT_MISPLACED_NULL, s->pos);
		break;
	case '\\':
	case 't':
	case 'n':
	case 'r':
	case 'b':
	case 'f':
	case 'v':
		break;
	default:
		return scan_fail(s, CT_BAD_ESCAPE, s->pos);
	}
	s->pos += 2;
	return CT_OK;
}

static enum ct_rc on_high(struct scan *s)
{
	size_t n = utf8_seq_len(s->data + s->pos, s->len - s->pos);

	if (n == 0)
		return scan_fail(s, CT_BAD_UTF8, s->pos);
	s->pos += n;
	return CT_OK;
}

static enum ct_rc on_special(struct scan *s, uint8_t cls)
{
	switch (cls) {
	case B_TAB:
		return on_tab(s);
	case B_NL:
		return on_newline(s);
	case B_BACKSLASH:
		return on_backslash(s);
	case B_NUL:
		return scan_fail(s, CT_NUL, s->pos);
	case B_CR:
		return scan_fail(s, CT_CR, s->pos);
	default:
		return on_high(s);
	}
}

/* Most bytes are plain ASCII text: skip them four at a time. */
static size_t skip_plain(const uint8_t *d, size_t pos, size_t len)
{
	while (len - pos >= 4 &&
	       (byte_class[d[pos]] | byte_class[d[pos + 1]] |
	        byte_class[d[pos + 2]] | byte_class[d[pos + 3]]) == B_PLAIN)
		pos += 4;
	while (pos < len && byte_class[d[pos]] == B_PLAIN)
		pos++;
	return pos;
}

uint64_t ct_find_null(const uint8_t *data, size_t len, const bool *mask,
                      unsigned ncols, unsigned *field)
{
	uint64_t row = 1;
	unsigned f = 0;
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		if (data[i] != '\t' && data[i] != '\n')
			continue;
		/* Checked rows: raw tabs and newlines only separate. */
		if (f < ncols && mask[f] && i - start == 2 &&
		    data[start] == '\\' && data[start + 1] == 'N') {
			*field = f;
			return row;
		}
		start = i + 1;
		if (data[i] == '\n') {
			row++;
			f = 0;
		} else {
			f++;
		}
	}
	return 0;
}

enum ct_rc ct_check_rows(const uint8_t *data, size_t len, unsigned ncols,
                         uint64_t *rows, struct ct_error *err)
{
	struct ct_error scratch;
	uint64_t rows_scratch;
	struct scan s = {.data = data, .len = len, .ncols = ncols, .field = 1};

	s.err = err != NULL ? err : &scratch;
	if (rows == NULL)
		rows = &rows_scratch;
	*s.err = (struct ct_error){CT_OK, 0, 0};
	while (data != NULL) {
		enum ct_rc rc;

		s.pos = skip_plain(data, s.pos, len);
		if (s.pos == len)
			break;
		rc = on_special(&s, byte_class[data[s.pos]]);
		if (rc != CT_OK) {
			*rows = s.rows;
			return rc;
		}
	}
	*rows = s.rows;
	/* Ending on '\n' leaves the scan at the start of an empty field. */
	if (len == 0 || s.field_start != len || s.field != 1)
		return scan_fail(&s, CT_NO_NEWLINE, len);
	return CT_OK;
}

/* ---- writing fields ---- */

bool ct_escape(const uint8_t *s, size_t len, struct evbuffer *out)
{
	size_t i = 0;

	while (i < len) {
		size_t j = i;
		char esc[2] = {'\\', 0};

		while (j < len && s[j] != '\\' && s[j] != '\t' &&
		       s[j] != '\n' && s[j] != '\r')
			j++;
		if (j > i && evbuffer_add(out, s + i, j - i) != 0)
			return false;
		if (j == len)
			break;
		esc[1] = s[j] == '\\'   ? '\\'
		         : s[j] == '\t' ? 't'
		         : s[j] == '\n' ? 'n'
		                        : 'r';
		if (evbuffer_add(out, esc, 2) != 0)
			return false;
		i = j + 1;
	}
	return true;
}

/*
 * A CSV field p[start..i) ends: one text field to out. Without quotes its
 * bytes are escaped as they stand (none: NULL); with quotes, what the loop
 * gathered in field is.
 */
static bool put_csv_field(const uint8_t *p, size_t start, size_t i,
                          bool saw_quote, struct evbuffer *field,
                          struct evbuffer *out)
{
	size_t n = evbuffer_get_length(field);
	bool ok;

	if (!saw_quote)
		return i == start ? evbuffer_add(out, "\\N", 2) == 0
		                  : ct_escape(p + start, i - start, out);
	ok = ct_escape(evbuffer_pullup(field, -1), n, out);
	evbuffer_drain(field, n);
	return ok;
}

/*
 * One CSV record from p; *end: past its '\n', or 0 when it is not whole.
 * Plain bytes are taken in runs; only a field with quotes is gathered in
 * field (its quotes dropped, "" inside quotes as one ").
 */
static enum ct_rc csv_record(const uint8_t *p, size_t len, struct evbuffer *out,
                             struct evbuffer *field, size_t *end)
{
	bool quoted = false, saw_quote = false, ok = true;
	size_t start = 0, run = 0, i;

	*end = 0;
	if (len >= 3 && p[0] == '\\' && p[1] == '.' && p[2] == '\n')
		return CT_BAD_ESCAPE;
	for (i = 0; i < len && ok; i++) {
		uint8_t c = p[i];

		if (c == '"') {
			if (!saw_quote)
				run =
				    start; /* the bytes before it join field */
			ok = evbuffer_add(field, p + run, i - run) == 0;
			if (quoted && i + 1 < len && p[i + 1] == '"') {
				ok = ok && evbuffer_add(field, "\"", 1) == 0;
				i++;
			} else {
				quoted = !quoted;
			}
			saw_quote = true;
			run = i + 1;
		} else if (quoted) {
			continue;
		} else if (c == '\r') {
			return CT_CR;
		} else if (c == ',' || c == '\n') {
			ok =
			    (!saw_quote ||
			     evbuffer_add(field, p + run, i - run) == 0) &&
			    put_csv_field(p, start, i, saw_quote, field, out) &&
			    evbuffer_add(out, c == ',' ? "\t" : "\n", 1) == 0;
			saw_quote = false;
			start = run = i + 1;
			if (ok && c == '\n') {
				*end = i + 1;
				return CT_OK;
			}
		}
	}
	return ok ? CT_OK : CT_NUL; /* not whole yet; CT_NUL: out of memory */
}

enum ct_rc ct_csv_to_text(const uint8_t *data, size_t len, struct evbuffer *out,
                          size_t *used)
{
	struct evbuffer *field = evbuffer_new(), *rec = evbuffer_new();
	enum ct_rc rc = field && rec ? CT_OK : CT_NUL;
	size_t end = 1;

	*used = 0;
	while (rc == CT_OK && *used < len && end > 0) {
		/* a record goes out only whole */
		evbuffer_drain(rec, evbuffer_get_length(rec));
		evbuffer_drain(field, evbuffer_get_length(field));
		rc = csv_record(data + *used, len - *used, rec, field, &end);
		if (rc == CT_OK && end > 0) {
			evbuffer_add_buffer(out, rec);
			*used += end;
		}
	}
	if (field != NULL)
		evbuffer_free(field);
	if (rec != NULL)
		evbuffer_free(rec);
	return rc;
}

const char *ct_rc_text(enum ct_rc rc)
{
	switch (rc) {
	case CT_OK:
		return "ok";
	case CT_FIELD_COUNT:
		return "wrong number of fields";
	case CT_BAD_ESCAPE:
		return "invalid backslash escape";
	case CT_NUL:
		return "zero byte in row";
	case CT_CR:
		return "carriage return in row";
	case CT_BAD_UTF8:
		return "invalid UTF-8";
	case CT_NO_NEWLINE:
		return "data does not end with a newline";
	case CT_MISPLACED_NULL:
		return "\\N inside a field";
	}
	return "unknown error";
}

const char *ct_rc_sqlstate(enum ct_rc rc)
{
	switch (rc) {
	case CT_OK:
		return "00000";
	case CT_BAD_UTF8:
		return "22021";
	default:
		return "22P04";
	}
}
