/* fuzz_pgbinary.c: libFuzzer harness for the Bind parameter codec: any
 * bytes as any type (the first byte picks it) and as a text parameter;
 * a field is always one valid COPY text field, a refusal always leaves
 * the buffer as it was and says why. */
#include "copytext.h"
#include "pgbinary.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_invariant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What was appended after the first `before` bytes is one field. */
static void check_field(struct evbuffer *b, size_t before)
{
	size_t n = evbuffer_get_length(b) - before;
	uint8_t *row = malloc(n + 1);
	uint64_t rows;
	struct ct_error e;

	if (row == NULL)
		return;
	if (n > 0)
		memcpy(row, evbuffer_pullup(b, -1) + before, n);
	row[n] = '\n';
	INVARIANT(ct_check_rows(row, n + 1, 1, &rows, &e) == CT_OK);
	INVARIANT(rows == 1);
	free(row);
}

static void convert(enum pgb_type t, bool text, const uint8_t *v, size_t len)
{
	struct evbuffer *b = evbuffer_new();
	char err[128] = "";
	bool ok;

	if (b == NULL || evbuffer_add(b, "x", 1) != 0)
		goto out;
	ok = text ? pgb_text_to_copy_text(v, len, b, err, sizeof(err))
	          : pgb_binary_to_copy_text(t, v, len, b, err, sizeof(err));
	if (ok) {
		check_field(b, 1);
	} else {
		INVARIANT(err[0] != '\0' && strlen(err) < sizeof(err));
		INVARIANT(evbuffer_get_length(b) == 1);
	}
out:
	if (b != NULL)
		evbuffer_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	if (size == 0)
		return 0;
	copy = fuzz_exact_copy(data + 1, size - 1);
	if (copy == NULL)
		return 0;
	convert((enum pgb_type)(data[0] % (PGB_JSONB + 1)), data[0] >= 0xf0,
	        copy, size - 1);
	free(copy);
	return 0;
}
