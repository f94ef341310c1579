/* sqlfit.h: where a coalesced INSERT's value reads back as the INSERT would
 * store it, and which statements open and end a transaction. */
#ifndef LBP_SQLFIT_H
#define LBP_SQLFIT_H

/*
 * Pure code for the front door's coalescing (docs/frontend.md, docs/sql-
 * recognizer.md). An INSERT converts each value to its column's type; COPY
 * calls the column type's input function on the text. The two store the
 * same value only for the pairs sqlf_value_fits allows; for the others the
 * statement is relayed to the server unchanged.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgbinary.h"
#include "sqlrec.h"

/* Parse's "unspecified" parameter types. */
#define SQLF_OID_UNSPECIFIED 0u
#define SQLF_OID_UNKNOWN     705u

/*
 * A cast's type name in sqlrec's canonical spelling ("int4", "varchar(10)",
 * "timestamp(3)", "pg_catalog.int8") as format_type() writes it ("integer",
 * "character varying(10)", "timestamp(3) without time zone", "bigint") into
 * out, so that it compares with a column's type. false for any other name
 * (arrays, domains, user types, "char", float(p)...) or when out is short.
 */
bool sqlf_cast_type_name(const char *rec, char *out, size_t size);

/*
 * May literal v go into a column of type t (format_type() text) as a COPY
 * field? An untyped string or NULL: any column; a typed one (a cast): only
 * a column of exactly that type (same modifier too); TRUE/FALSE: boolean;
 * an integer: integer, numeric, floating point; a decimal: numeric and
 * floating point. A parameter ($n) needs its Bind value to decide (see
 * sqlf_int_text_in_range, pgb_param_fits): true here unless it has a cast,
 * which must name t exactly and declared (its Parse type) be unspecified.
 */
bool sqlf_value_fits(const struct sqlr_value *v, uint32_t declared,
                     const char *t);

/*
 * A text parameter declared int2, int4 or int8 going into a wider integer
 * or numeric column: the server reads the text as the declared type, COPY
 * as the column's; they agree when it is a plain integer ([-]digits, no
 * spaces or '+') within the declared type's range.
 */
bool sqlf_int_text_in_range(enum pgb_type declared, const uint8_t *text,
                            size_t len);

enum sqlf_txc {
	SQLF_TXC_NONE,
	SQLF_TXC_BEGIN,
	SQLF_TXC_COMMIT,
	SQLF_TXC_ROLLBACK
};
/*
 * Is sql exactly one BEGIN / START TRANSACTION, COMMIT / END, or ROLLBACK /
 * ABORT (each with an optional WORK or TRANSACTION, START only with
 * TRANSACTION, then an optional ';'), in any case, with comments and
 * whitespace? Options (ISOLATION LEVEL, AND CHAIN...) make it NONE.
 */
enum sqlf_txc sqlf_txn_control(const uint8_t *sql, size_t len);

#endif
