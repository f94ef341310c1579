/* copytext.h: checks rows in PostgreSQL COPY text format before they are
 * coalesced. */
#ifndef LBP_COPYTEXT_H
#define LBP_COPYTEXT_H

/*
 * Pure code. The proxy passes rows through to COPY without re-encoding, so
 * it must be sure of their framing first: that every row has exactly the
 * stream's number of fields and ends with '\n', so that the line number in a
 * server error points at one client's row; and that no row can end another
 * client's data early (a raw CR, the "\." end marker) or smuggle bytes the
 * server would refuse for the whole batch (NUL, invalid UTF-8).
 *
 * Accepted in a field: any UTF-8 text without NUL, CR, LF or TAB; the
 * escapes \\ \t \n \r \b \f \v; and \N alone as NULL. Everything else after
 * a backslash (octal, \x, \.) is refused: see docs/ingest-protocol.md.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum ct_rc {
	CT_OK = 0,
	CT_FIELD_COUNT,   /* a row with too few or too many fields */
	CT_BAD_ESCAPE,    /* backslash followed by something not allowed */
	CT_NUL,           /* a zero byte */
	CT_CR,            /* a raw carriage return */
	CT_BAD_UTF8,      /* bytes that are not valid UTF-8 */
	CT_NO_NEWLINE,    /* the data does not end with '\n' (or is empty) */
	CT_MISPLACED_NULL /* \N inside a field with other bytes */
};

/*
 * offset is the byte that is wrong: the backslash of a bad escape or of a
 * misplaced \N, the tab or newline that makes the field count wrong, the
 * first byte of an invalid UTF-8 sequence, and len for CT_NO_NEWLINE.
 */
struct ct_error {
	enum ct_rc rc;
	uint64_t row;  /* 1-based row of the problem within the data given */
	size_t offset; /* byte offset of the problem within the data given */
};

/*
 * Checks data[0..len): one or more whole rows of ncols fields each. On
 * CT_OK, *rows is the number of rows. On anything else, err says what and
 * where (and *rows is the number of good rows before it).
 */
enum ct_rc ct_check_rows(const uint8_t *data, size_t len, unsigned ncols,
                         uint64_t *rows, struct ct_error *err);

/*
 * In rows that passed ct_check_rows: the 1-based number of the first row
 * in which a field whose 0-based index has mask[index] set is NULL (\N
 * alone), with *field set to that index; 0 when there is none. mask has
 * ncols entries.
 */
uint64_t ct_find_null(const uint8_t *data, size_t len, const bool *mask,
                      unsigned ncols, unsigned *field);

/*
 * Appends s[0..len) to out as the content of one COPY text field (default
 * delimiter): backslash, tab, newline and carriage return become \\ \t \n
 * \r, every other byte stays as is. Whether the bytes are valid UTF-8
 * without NUL is the caller's to check. false on out of memory.
 */
bool ct_escape(const uint8_t *s, size_t len, struct evbuffer *out);

/*
 * COPY's CSV format with its defaults (delimiter ',', quote and escape '"',
 * NULL the unquoted empty field) into COPY text rows: every whole record of
 * data[0..len) (one that ends with '\n' outside quotes) is appended to out
 * as a text row (fields escaped as ct_escape does, NULL as \N), and *used
 * is the bytes they took (what follows is a partial record). Quotes may
 * open anywhere in a field, as PostgreSQL reads them; a quoted field is
 * never NULL. CT_CR for a carriage return outside quotes (PostgreSQL's
 * \r\n line ends: its call), CT_BAD_ESCAPE for a record that is "\."
 * alone (PostgreSQL's end-of-data marker): the caller leaves those to the
 * server. The field count is not checked here (ct_check_rows on out).
 */
enum ct_rc ct_csv_to_text(const uint8_t *data, size_t len, struct evbuffer *out,
                          size_t *used);

/* A short English description, e.g. "wrong number of fields". */
const char *ct_rc_text(enum ct_rc rc);
/* The SQLSTATE a client gets for it: 22021 for UTF-8, else 22P04. */
const char *ct_rc_sqlstate(enum ct_rc rc);

#endif
