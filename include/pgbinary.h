/* pgbinary.h: turns a Bind parameter (binary or text format) of a common
 * type into the COPY text field that makes PostgreSQL store the same
 * value, so that a coalesced INSERT can travel in a COPY batch. */
#ifndef LBP_PGBINARY_H
#define LBP_PGBINARY_H

/*
 * Pure code. Assumptions, which the caller must ensure: client and server
 * encoding UTF8 (text is checked as UTF-8 and passed through as is), and
 * the field is COPYed into a column of exactly the parameter's type, or of
 * a type pgb_param_fits() allows (INSERT casts a parameter to the column's
 * type, COPY calls the column type's input function; the two agree only
 * for those pairs).
 *
 * A field is one COPY text-format field, already escaped (backslash, tab,
 * newline, CR: copytext.h's ct_escape), without delimiter or newline. A
 * SQL NULL parameter (length -1 in Bind) is the caller's: "\N".
 *
 * The codec refuses (returns false with an English message in err) every
 * value PostgreSQL's receive function would refuse, and a few it accepts
 * but whose value no text field reproduces exactly (see
 * docs/sql-recognizer.md, "Binary parameters"): the caller then forwards
 * the statement unchanged and the server answers as it always would.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum pgb_type {
	PGB_UNKNOWN = 0, /* anything else: not converted */
	PGB_BOOL,        /* 16 */
	PGB_INT2,        /* 21 */
	PGB_INT4,        /* 23 */
	PGB_INT8,        /* 20 */
	PGB_FLOAT4,      /* 700 */
	PGB_FLOAT8,      /* 701 */
	PGB_NUMERIC,     /* 1700 */
	PGB_TEXT,        /* 25 */
	PGB_VARCHAR,     /* 1043 */
	PGB_BPCHAR,      /* 1042 */
	PGB_BYTEA,       /* 17 */
	PGB_DATE,        /* 1082 */
	PGB_TIMESTAMP,   /* 1114 */
	PGB_TIMESTAMPTZ, /* 1184 */
	PGB_UUID,        /* 2950 */
	PGB_JSON,        /* 114 */
	PGB_JSONB        /* 3802 */
};

/* The type of a pg_type OID; PGB_UNKNOWN for any other (arrays too). */
enum pgb_type pgb_type_from_oid(uint32_t oid);
/* The OID of t; 0 for PGB_UNKNOWN. */
uint32_t pgb_type_oid(enum pgb_type t);
/* pg_type's typname of t ("int4", "timestamptz"), "unknown" for others. */
const char *pgb_type_name(enum pgb_type t);

/*
 * The type of a column from the catalog's format_type() text: "integer",
 * "character varying(20)", "numeric(10,2)", "timestamp(3) with time
 * zone"... A typmod "(n)" or "(n,m)" is accepted only where format_type
 * writes one (numeric, character varying, character, the timestamps) and
 * dropped. PGB_UNKNOWN for anything else (arrays, domains, other types).
 */
enum pgb_type pgb_type_from_name(const char *format_type_text);

/*
 * May a parameter of type param be COPYed into a column of type column?
 * True when they are the same type, and for the pairs where the COPY
 * field reads back as the INSERT's cast would store it: a smaller integer
 * into a wider integer or numeric, and text/varchar into text, varchar or
 * character (not character into the others: its cast drops trailing
 * spaces). False for anything with PGB_UNKNOWN.
 */
bool pgb_param_fits(enum pgb_type param, enum pgb_type column);

/*
 * Appends the binary-format value v[0..len) of type t (as in a Bind
 * message) to out as one COPY text field. false, with out unchanged and a
 * message in err (errlen bytes; NULL is fine), when the value is malformed
 * (wrong length, bad digits, out of range, invalid UTF-8 or NUL in text,
 * jsonb version not 1...), t is PGB_UNKNOWN, or out of memory (then out
 * may hold part of the field).
 */
bool pgb_binary_to_copy_text(enum pgb_type t, const uint8_t *v, size_t len,
                             struct evbuffer *out, char *err, size_t errlen);

/*
 * Appends a text-format parameter v[0..len) as one COPY text field: the
 * same text, escaped; the column type's input function reads it as the
 * server would have read the parameter. false (out unchanged) when it is
 * not valid UTF-8 or holds a NUL, which the server refuses in a Bind too.
 */
bool pgb_text_to_copy_text(const uint8_t *v, size_t len, struct evbuffer *out,
                           char *err, size_t errlen);

#endif
