/* sqllex.h: a PostgreSQL SQL lexer (tokens as PostgreSQL's scan.l makes
 * them), for recognizing statements the proxy may coalesce. */
#ifndef LBP_SQLLEX_H
#define LBP_SQLLEX_H

/*
 * Pure code: bytes in, tokens out, no I/O. It lexes as a PostgreSQL server
 * with standard_conforming_strings = on and server encoding UTF8 does, and
 * refuses (an error code, never a guess) what it does not model or what
 * differs between PostgreSQL versions:
 *
 * - whitespace (space, \t, \n, \r, \f), "--" comments to the end of the
 *   line, nested slash-star comments; \v outside strings is refused
 *   (whitespace only since PostgreSQL 16);
 * - unquoted identifiers and keywords: [A-Za-z_ or any byte >= 0x80] then
 *   also digits and '$', folded to lower case in ASCII only;
 * - "quoted" identifiers ("" is one "), U&"..." identifiers;
 * - '...' strings ('' is one ', backslash literal); E'...' with \b \f \n
 *   \r \t, octal \o \oo \ooo, \xH \xHH, \uXXXX, \UXXXXXXXX (surrogate pairs
 *   combined), any other \c as c (\v is refused: its meaning changed in
 *   PostgreSQL 16); U&'...' with \XXXX, \+XXXXXX and \\ (or another escape
 *   character given by a following UESCAPE 'c'); a string followed by
 *   whitespace holding a newline and another quote continues (in the same
 *   kind, as PostgreSQL does); $tag$...$tag$ dollar quotes;
 * - B'...' and X'...' as SQLX_T_BITSTRING; N'...' as SQLX_T_NATIONAL then
 *   the string (both for the recognizer to refuse);
 * - numbers: digits, digits.digits, .digits, with an exponent e[+-]digits;
 *   a number followed by an identifier character (0x1F, 1_000, 1e, 12abc:
 *   forms PostgreSQL 16 reads one way and older versions another) is
 *   SQLX_E_NUMBER_JUNK;
 * - $1..$65535 parameters; operators (with PostgreSQL's rules: "--" and
 *   slash-star end an operator, a trailing + or - is split off unless the
 *   operator holds one of ~!@#^&|`?%), "::", punctuation ( ) , ; [ ] . :
 *   and any other single byte as SQLX_T_PUNCT.
 *
 * The whole input must be valid UTF-8 without NUL bytes and at most
 * SQLX_MAX_INPUT bytes; decoded strings and identifiers are checked again
 * (an escape can make invalid UTF-8 or a NUL: both are errors, as in
 * PostgreSQL).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longer statements are not worth recognizing: they are forwarded. */
#define SQLX_MAX_INPUT ((size_t)16 * 1024 * 1024)

enum sqlx_rc {
	SQLX_OK = 0,
	SQLX_E_NOMEM,
	SQLX_E_TOO_LONG, /* input over SQLX_MAX_INPUT */
	SQLX_E_NUL,      /* a zero byte, in the input or decoded */
	SQLX_E_BAD_UTF8, /* invalid UTF-8, in the input or decoded */
	SQLX_E_BAD_CHAR, /* \v outside a string */
	SQLX_E_UNTERMINATED_COMMENT, /* slash-star without its star-slash */
	SQLX_E_UNTERMINATED_STRING,  /* '...', E'', U&'', B'', X'' */
	SQLX_E_UNTERMINATED_QIDENT,  /* "... */
	SQLX_E_UNTERMINATED_DOLLAR,  /* $tag$... */
	SQLX_E_EMPTY_QIDENT,         /* "" */
	SQLX_E_BAD_ESCAPE,           /* \v in E'', a bad U&'' escape */
	SQLX_E_BAD_UNICODE,          /* \u with too few digits, a bad code */
	SQLX_E_BAD_UESCAPE,          /* UESCAPE without a valid 'c' */
	SQLX_E_NUMBER_JUNK,          /* 0x1F, 1_000, 1e, 12abc */
	SQLX_E_BAD_PARAM             /* $0, $65536, $1abc */
};

enum sqlx_tok {
	SQLX_T_END = 0,   /* end of input */
	SQLX_T_IDENT,     /* unquoted identifier or keyword, folded */
	SQLX_T_QIDENT,    /* "quoted" or U&"" identifier, decoded */
	SQLX_T_STRING,    /* any string constant, decoded */
	SQLX_T_BITSTRING, /* B'' or X'': text is "b" or "x" then the body */
	SQLX_T_NATIONAL,  /* N before a string (NATIONAL CHARACTER '...') */
	SQLX_T_INTEGER,   /* digits */
	SQLX_T_DECIMAL,   /* with a point or an exponent */
	SQLX_T_PARAM,     /* $n */
	SQLX_T_OP,        /* operator text, e.g. "-", "=", "<>", "||" */
	SQLX_T_TYPECAST,  /* :: */
	SQLX_T_PUNCT      /* one byte: ( ) , ; [ ] . : $ and anything else */
};

/*
 * One token. start/end are its bytes in the input (a string with its
 * continuations and any UESCAPE clause). text is its value, NUL-terminated
 * (len bytes without the NUL; never holds a NUL): folded or decoded as said
 * above, the digits of a number, the operator, the byte of a PUNCT. It
 * stays valid until the next sqlx_next or sqlx_lexer_free.
 */
struct sqlx_token {
	enum sqlx_tok kind;
	size_t start, end;
	const char *text;
	size_t len;
	uint32_t param; /* SQLX_T_PARAM: n */
};

struct sqlx_lexer;

/*
 * A lexer over src[0..len) (not copied: it must outlive the lexer). NULL
 * only when out of memory. Errors in the input (too long, NUL, invalid
 * UTF-8) come from the first sqlx_next.
 */
struct sqlx_lexer *sqlx_lexer_new(const uint8_t *src, size_t len);
void sqlx_lexer_free(struct sqlx_lexer *lx);

/*
 * The next token in *t (SQLX_T_END at the end, again on every later call).
 * On an error, the same error on every later call; sqlx_error_offset says
 * where.
 */
enum sqlx_rc sqlx_next(struct sqlx_lexer *lx, struct sqlx_token *t);
/* The byte offset of the error (0 if none). */
size_t sqlx_error_offset(const struct sqlx_lexer *lx);

/* Is word (folded) a reserved or type/function-name keyword of any
 * PostgreSQL version, i.e. not usable unquoted as a table or column name? */
bool sqlx_keyword_reserved(const char *word);

/* A short English description, e.g. "unterminated quoted string". */
const char *sqlx_rc_text(enum sqlx_rc rc);

#endif
