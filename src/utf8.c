/* utf8.c: validation of UTF-8 byte sequences (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF). */
#include "utf8.h"

static bool is_cont(uint8_t b)
{
	return (b & 0xc0) == 0x80;
}

/*
 * The second byte's range depends on the lead: it is what excludes
 * overlongs (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).
 */
static bool second_ok(uint8_t lead, uint8_t b)
{
	switch (lead) {
	case 0xe0:
		return b >= 0xa0 && b <= 0xbf;
	case 0xed:
		return b >= 0x80 && b <= 0x9f;
	case 0xf0:
		return b >= 0x90 && b <= 0xbf;
	case 0xf4:
		return b >= 0x80 && b <= 0x8f;
	default:
		return is_cont(b);
	}
}

/* Sequence length announced by a lead byte; 0 for bytes that lead nothing. */
static size_t lead_len(uint8_t lead)
{
	if (lead < 0x80)
		return 1;
	if (lead >= 0xc2 && lead <= 0xdf)
		return 2;
	if (lead >= 0xe0 && lead <= 0xef)
		return 3;
	if (lead >= 0xf0 && lead <= 0xf4)
		return 4;
	return 0; /* continuation, C0/C1 overlong leads, F5..FF */
}

size_t utf8_seq_len(const uint8_t *s, size_t left)
{
	size_t n;

	if (left == 0)
		return 0;
	n = lead_len(s[0]);
	if (n <= 1 || n > left)
		return n > left ? 0 : n;
	if (!second_ok(s[0], s[1]))
		return 0;
	for (size_t i = 2; i < n; i++) {
		if (!is_cont(s[i]))
			return 0;
	}
	return n;
}

bool utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t n = utf8_seq_len(s + i, len - i);

		if (n == 0)
			return false;
		i += n;
	}
	return true;
}
