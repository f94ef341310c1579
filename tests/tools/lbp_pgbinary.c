/* lbp_pgbinary.c: runs the Bind parameter codec (pgbinary.h) on requests
 * read line by line from stdin, for tests/test_pgbinary_pg.py and for
 * people asking what a parameter becomes:
 *
 *   bin OID HEX     ->  ok FIELD | err MESSAGE   (a binary parameter)
 *   text HEX        ->  ok FIELD | err MESSAGE   (a text parameter)
 *   name TYPE TEXT  ->  TYPNAME OID              (pgb_type_from_name)
 *   fits OID OID    ->  yes | no                 (pgb_param_fits)
 *
 * FIELD is the COPY text field exactly as the codec writes it (it never
 * holds a raw tab or newline). */
#include "pgbinary.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* Decodes hex into a heap block of exactly its size (ASan sees overreads). */
static uint8_t *unhex(const char *hex, size_t *len)
{
	size_t n = strlen(hex);
	uint8_t *v = malloc(n / 2 > 0 ? n / 2 : 1);

	if (v == NULL || n % 2 != 0) {
		free(v);
		return NULL;
	}
	for (size_t i = 0; i < n / 2; i++) {
		int hi = OPENSSL_hexchar2int((unsigned char)hex[2 * i]);
		int lo = OPENSSL_hexchar2int((unsigned char)hex[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			free(v);
			return NULL;
		}
		v[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = n / 2;
	return v;
}

static void convert(const char *oid, const char *hex)
{
	struct evbuffer *out = evbuffer_new();
	char err[200] = "";
	size_t len = 0;
	uint8_t *v = unhex(hex, &len);
	bool ok;

	if (out == NULL || v == NULL) {
		printf("err bad request\n");
		goto done;
	}
	ok = oid == NULL
	         ? pgb_text_to_copy_text(v, len, out, err, sizeof(err))
	         : pgb_binary_to_copy_text(
	               pgb_type_from_oid((uint32_t)strtoul(oid, NULL, 10)), v,
	               len, out, err, sizeof(err));
	if (ok) {
		size_t n = evbuffer_get_length(out);

		printf("ok ");
		if (n > 0)
			fwrite(evbuffer_pullup(out, -1), 1, n, stdout);
		printf("\n");
	} else {
		printf("err %s\n", err);
	}
done:
	free(v);
	if (out != NULL)
		evbuffer_free(out);
}

static void request(char *line)
{
	char *arg = strchr(line, ' ');
	char *arg2;

	if (arg != NULL)
		*arg++ = '\0';
	if (arg != NULL && strcmp(line, "name") == 0) {
		enum pgb_type t = pgb_type_from_name(arg);

		printf("%s %u\n", pgb_type_name(t), pgb_type_oid(t));
	} else if (arg != NULL && strcmp(line, "fits") == 0) {
		unsigned long p = strtoul(arg, &arg2, 10);
		unsigned long c = strtoul(arg2, NULL, 10);

		printf("%s\n", pgb_param_fits(pgb_type_from_oid((uint32_t)p),
		                              pgb_type_from_oid((uint32_t)c))
		                   ? "yes"
		                   : "no");
	} else if (arg != NULL && strcmp(line, "text") == 0) {
		convert(NULL, arg);
	} else if (arg != NULL && strcmp(line, "bin") == 0 &&
	           (arg2 = strchr(arg, ' ')) != NULL) {
		*arg2++ = '\0';
		convert(arg, arg2);
	} else {
		printf("err bad request\n");
	}
}

int main(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	while ((n = getline(&line, &cap, stdin)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		request(line);
	}
	free(line);
	return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
