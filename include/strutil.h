/* strutil.h: small string helpers shared by the modules. */
#ifndef LBP_STRUTIL_H
#define LBP_STRUTIL_H

#include <stdbool.h>
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

#endif
