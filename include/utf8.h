/* utf8.h: UTF-8 validation, below every other module (the log, the row
 * checks and the protocol encoders all need it). Pure code. */
#ifndef LBP_UTF8_H
#define LBP_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Length of the valid UTF-8 sequence at s[0..left), or 0 if it is invalid
 * (overlong, surrogate, above U+10FFFF, stray continuation, truncated).
 */
size_t utf8_seq_len(const uint8_t *s, size_t left);
/* Is all of s[0..len) valid UTF-8? */
bool utf8_valid(const uint8_t *s, size_t len);

#endif
