/* fuzz_frontdoor.c: libFuzzer harness for what a PostgreSQL client sends the
 * front door: startup packets, client messages, SCRAM and the userlist. */
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_invariant.h"
#include "pgwire.h"
#include "scram_server.h"
#include "userlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(const uint8_t *base, size_t len, const void *p, size_t n)
{
	uintptr_t b = (uintptr_t)base, q = (uintptr_t)p;

	return q >= b && n <= len && q - b <= len - n;
}

static void check_str(const uint8_t *base, size_t len, const char *s)
{
	if (s != NULL)
		INVARIANT(inside(base, len, s, strlen(s) + 1));
}

/* The packet flat and through a split evbuffer: the same verdict. */
static void fuzz_startup(const uint8_t *data, size_t size)
{
	struct evbuffer *in = evbuffer_new();
	struct pgw_startup s, t;
	enum pgw_rc flat = pgw_parse_startup(data, size, &s), buf;

	if (flat == PGW_OK) {
		INVARIANT(s.len >= 8 && s.len <= size);
		INVARIANT(s.nparams <= PGW_MAX_STARTUP_PARAMS);
		for (size_t i = 0; i < s.nparams; i++) {
			check_str(data, s.len, s.names[i]);
			check_str(data, s.len, s.values[i]);
		}
		if (s.kind == PGW_STARTUP_CANCEL)
			INVARIANT(inside(data, s.len, s.cancel_key,
			                 s.cancel_key_len));
	}
	if (in == NULL)
		return;
	evbuffer_add(in, data, size / 2);
	evbuffer_add_reference(in, data + size / 2, size - size / 2, NULL,
	                       NULL);
	buf = pgw_startup_next(in, &t);
	INVARIANT(buf == flat);
	if (buf == PGW_OK) {
		INVARIANT(t.len == s.len && t.kind == s.kind);
		pgw_startup_consume(in, &t);
		INVARIANT(evbuffer_get_length(in) == size - s.len);
	}
	evbuffer_free(in);
}

/* Bind's parameters: every value inside the message, formats 0 or 1. */
static void fuzz_bind_values(const uint8_t *body, size_t len,
                             const struct pgw_bind_msg *bm)
{
	struct pgw_bind_value *v;
	uint16_t n;

	if (pgw_bind_count(bm, &n) != PGW_OK)
		return;
	v = calloc(n ? n : 1, sizeof(*v));
	if (v == NULL)
		return;
	if (pgw_parse_bind_values(bm, v, n) == PGW_OK) {
		for (uint16_t i = 0; i < n; i++) {
			INVARIANT(v[i].format == 0 || v[i].format == 1);
			INVARIANT(v[i].len >= -1);
			if (v[i].len >= 0)
				INVARIANT(inside(body, len, v[i].data,
				                 (size_t)v[i].len));
		}
	}
	free(v);
}

/* Every client-message decoder on the input as one message body. */
static void fuzz_messages(const uint8_t *body, size_t len)
{
	struct pgw_frame f = {'p', body, len};
	struct pgw_parse_msg pm;
	struct pgw_bind_msg bm;
	const char *s, *mech;
	const uint8_t *d;
	size_t dl;
	char kind;

	if (pgw_parse_password(&f, &s) == PGW_OK)
		check_str(body, len, s);
	if (pgw_parse_sasl_initial(&f, &mech, &d, &dl) == PGW_OK) {
		check_str(body, len, mech);
		if (d != NULL)
			INVARIANT(inside(body, len, d, dl));
	}
	if (pgw_parse_sasl_response(&f, &d, &dl) == PGW_OK && dl > 0)
		INVARIANT(inside(body, len, d, dl));
	if (pgw_parse_parse(&f, &pm) == PGW_OK) {
		check_str(body, len, pm.name);
		check_str(body, len, pm.query);
		INVARIANT(inside(body, len, pm.rest, pm.rest_len));
		INVARIANT(inside(body, len, pm.types, 4u * pm.ntypes));
	}
	if (pgw_parse_bind(&f, &bm) == PGW_OK) {
		check_str(body, len, bm.portal);
		check_str(body, len, bm.statement);
		INVARIANT(inside(body, len, bm.rest, bm.rest_len));
		fuzz_bind_values(body, len, &bm);
	}
	if (pgw_parse_target(&f, &kind, &s) == PGW_OK) {
		INVARIANT(kind == 'S' || kind == 'P');
		check_str(body, len, s);
	}
}

/* A whole exchange: the input's first line is client-first, the rest
 * client-final. The secret is made once (1 iteration: PBKDF2's cost is
 * not what is fuzzed). */
static void fuzz_scram(const uint8_t *data, size_t size)
{
	static struct scram_secret secret;
	static bool made;
	static const uint8_t salt[16] = "fuzz-salt-16byte";
	const uint8_t *nl = memchr(data, '\n', size);
	struct scram_server *ss;
	const char *out;
	size_t out_len, first = nl ? (size_t)(nl - data) : size;
	char err[256];

	if (!made)
		made =
		    scram_secret_make("pencil", salt, sizeof(salt), 1, &secret);
	if (!made || (ss = scram_server_new(&secret, size % 2 == 1)) == NULL)
		return;
	if (scram_server_first(ss, data, first, &out, &out_len, err,
	                       sizeof(err)) &&
	    nl != NULL) {
		INVARIANT(out != NULL && out_len > 0);
		(void)scram_server_final(ss, nl + 1, size - first - 1, &out,
		                         &out_len, err, sizeof(err));
	}
	scram_server_free(ss);
}

/* Text parsers want NUL-terminated input: the verifier and the userlist. */
static void fuzz_text(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[256];
	struct scram_secret s;
	struct userlist *ul;

	if (text == NULL)
		return;
	memcpy(text, data, size);
	text[size] = '\0';
	if (scram_secret_parse(text, &s))
		INVARIANT(s.salt_len <= SCRAM_MAX_SALT && s.iterations > 0);
	ul = ul_parse(text, size, err, sizeof(err));
	if (ul != NULL) {
		(void)ul_secret(ul, "postgres");
		ul_free(ul);
	}
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = fuzz_exact_copy(data, size);

	if (copy == NULL)
		return 0;
	fuzz_startup(copy, size);
	fuzz_messages(copy, size);
	fuzz_scram(copy, size);
	fuzz_text(copy, size);
	free(copy);
	return 0;
}
