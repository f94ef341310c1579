/* rng.h: xorshift64*, for jitter: spread, not secrecy. */
#ifndef LBP_RNG_H
#define LBP_RNG_H

#include <stdint.h>
#include <unistd.h>

#include "clock.h"

/* A seed that differs between processes and starts. */
static inline uint64_t rng_seed(void)
{
	return clock_now_ms() ^ ((uint64_t)getpid() << 32) ^
	       0x9e3779b97f4a7c15ull;
}

static inline uint64_t rng_next(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 2685821657736338717ull;
}

#endif
