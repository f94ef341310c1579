/* fuzz_invariant.h: what the libFuzzer harnesses share. */
#ifndef LBP_FUZZ_INVARIANT_H
#define LBP_FUZZ_INVARIANT_H

#include <stdlib.h>

/* libFuzzer reports a crash; abort() makes a broken invariant one too. */
#define INVARIANT(cond)                                                        \
	do {                                                                   \
		if (!(cond))                                                   \
			abort();                                               \
	} while (0)

#endif
