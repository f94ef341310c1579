/* fuzz_invariant.h: what the libFuzzer harnesses share. */
#ifndef LBP_FUZZ_INVARIANT_H
#define LBP_FUZZ_INVARIANT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* libFuzzer reports a crash; abort() makes a broken invariant one too. */
#define INVARIANT(cond)                                                        \
	do {                                                                   \
		if (!(cond))                                                   \
			abort();                                               \
	} while (0)

/*
 * A heap copy of exactly size bytes (1 when empty), so ASan sees any read
 * past the input, which libFuzzer's own buffer may not show. NULL on OOM;
 * free() it.
 */
static inline uint8_t *fuzz_exact_copy(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size > 0 ? size : 1);

	if (copy != NULL && size > 0)
		memcpy(copy, data, size);
	return copy;
}

#endif
