/* strutil.h: small string helpers shared by the modules. */
#ifndef LBP_STRUTIL_H
#define LBP_STRUTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A copy of s, or NULL for NULL; clears *ok when the copy fails. */
static inline char *dup_or_null(const char *s, bool *ok)
{
	char *copy = s != NULL ? strdup(s) : NULL;

	if (s != NULL && copy == NULL)
		*ok = false;
	return copy;
}

/* Formats into err (errlen bytes) when there is one: NULL or 0 is fine. */
static inline void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

#endif
