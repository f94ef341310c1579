/* scram.c: client side of SCRAM-SHA-256 (RFC 5802/7677) and MD5 auth. */
#include "scram.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "strutil.h"

/* 18 random bytes: 144 bits, 24 base64 characters, no padding. */
#define SCRAM_NONCE_RAW_LEN 18
/* Bound for a caller-supplied (test) nonce or user name. */
#define SCRAM_MAX_NAME_LEN 255

/* Life of one exchange; every error is final (a login is not retried). */
enum scram_state {
	SCRAM_INIT,       /* client-first built, not yet handed out */
	SCRAM_FIRST_SENT, /* waiting for server-first-message */
	SCRAM_FINAL_SENT, /* client-final handed out, waiting for server-final
	                   */
	SCRAM_DONE,       /* server signature verified */
	SCRAM_FAILED,     /* any error: the exchange cannot continue */
};

struct scram_client {
	enum scram_state state;
	/* Password bytes as hashed (see prepare_password); cleansed on free. */
	char *password;
	size_t password_len;
	char *client_nonce;
	size_t client_nonce_len;
	/* "n,,n=<user>,r=<nonce>"; the bare part starts after the gs2 header.
	 */
	char *client_first;
	size_t client_first_len;
	char *client_final;
	size_t client_final_len;
	/* What the server must send in "v=" once client_final has run. */
	uint8_t server_signature[SCRAM_KEY_LEN];
};

/* gs2 header: no channel binding, no authzid. "biws" is its base64. */
static const char gs2_header[] = "n,,";
static const char gs2_header_b64[] = "biws";

/* A piece of a message being joined (see join_pieces). */
struct piece {
	const void *data;
	size_t len;
};

/* The parts of a server-first-message, pointing into the caller's bytes. */
struct server_first {
	const uint8_t *nonce;
	size_t nonce_len;
	uint8_t *salt; /* malloc'd */
	size_t salt_len;
	uint32_t iterations;
};

/* Cursor over "a=value,b=value" attributes of a server message. */
struct attr_cursor {
	const uint8_t *p;
	size_t left;
};

static bool size_add(size_t a, size_t b, size_t *out)
{
	if (a > SIZE_MAX - b)
		return false;
	*out = a + b;
	return true;
}

/*
 * Concatenates pieces into one NUL-terminated malloc'd string. The total is
 * computed with overflow checks: pieces may hold server-chosen lengths.
 */
static char *join_pieces(const struct piece *pieces, size_t n, size_t *len)
{
	size_t total = 0, off = 0, i;
	char *buf;

	for (i = 0; i < n; i++) {
		if (!size_add(total, pieces[i].len, &total))
			return NULL;
	}
	if (!size_add(total, 1, &total))
		return NULL;
	buf = malloc(total);
	if (buf == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		memcpy(buf + off, pieces[i].data, pieces[i].len);
		off += pieces[i].len;
	}
	buf[off] = '\0';
	*len = off;
	return buf;
}

/* Frees a buffer that held secret bytes, wiping it first. */
static void free_secret(void *p, size_t len)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

/* RFC 5802 "printable": 0x21..0x7e except ','. */
static bool is_nonce_char(uint8_t c)
{
	return c >= 0x21 && c <= 0x7e && c != ',';
}

bool scram_is_nonce(const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (!is_nonce_char(s[i]))
			return false;
	}
	return len > 0;
}

/* Value of a base64 digit, or -1. */
static int b64_value(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Alphabet only, and canonical: the bits of the last digit that padding
 * leaves unused must be zero (RFC 4648, 3.5), so one value has one text.
 */
static bool is_b64_text(const uint8_t *in, size_t len, size_t pad)
{
	static const int unused_mask[] = {0, 0x03, 0x0f};

	for (size_t i = 0; i < len - pad; i++) {
		if (b64_value(in[i]) < 0)
			return false;
	}
	return (b64_value(in[len - pad - 1]) & unused_mask[pad]) == 0;
}

/*
 * Strict base64 (RFC 4648: padded, canonical, no whitespace) into a malloc'd
 * buffer.
 * EVP_DecodeBlock alone is too lenient (it skips whitespace and reads '='
 * anywhere as zero bits) and counts pad characters as decoded zero bytes,
 * so the alphabet is checked here and the real length is computed from
 * the padding.
 */
bool scram_b64_decode(const uint8_t *in, size_t len, uint8_t **out,
                      size_t *out_len)
{
	size_t pad = 0, cap;
	uint8_t *buf;
	int n;

	if (len == 0 || len % 4 != 0 || len > INT_MAX)
		return false;
	if (in[len - 1] == '=')
		pad = in[len - 2] == '=' ? 2 : 1;
	if (!is_b64_text(in, len, pad))
		return false;
	cap = len / 4 * 3;
	buf = malloc(cap);
	if (buf == NULL)
		return false;
	n = EVP_DecodeBlock(buf, in, (int)len);
	if (n < 0 || (size_t)n != cap) {
		free(buf);
		return false;
	}
	*out = buf;
	*out_len = cap - pad;
	return true;
}

/* Base64 of len bytes into a malloc'd NUL-terminated string. */
char *scram_b64_encode(const uint8_t *in, size_t len, size_t *out_len)
{
	size_t cap;
	char *buf;
	int n;

	/* 4 output characters per started 3 bytes, plus the NUL. */
	if (len > (size_t)INT_MAX / 4 * 3 - 3)
		return NULL;
	cap = (len + 2) / 3 * 4 + 1;
	buf = malloc(cap);
	if (buf == NULL)
		return NULL;
	n = EVP_EncodeBlock((unsigned char *)buf, in, (int)len);
	if (n < 0 || (size_t)n != cap - 1) {
		free(buf);
		return NULL;
	}
	*out_len = (size_t)n;
	return buf;
}

bool scram_hmac_sha256(const uint8_t *key, size_t key_len, const void *data,
                       size_t data_len, uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int n = 0;

	if (key_len > INT_MAX)
		return false;
	if (HMAC(EVP_sha256(), key, (int)key_len, data, data_len, out, &n) ==
	    NULL)
		return false;
	return n == SCRAM_KEY_LEN;
}

bool scram_sha256(const uint8_t *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int n = 0;

	if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL))
		return false;
	return n == SCRAM_KEY_LEN;
}

/*
 * PostgreSQL runs SASLprep (RFC 4013) over the password and falls back to
 * the raw bytes when that fails; the server's stored verifier was made the
 * same way. For pure ASCII (tokens, generated passwords) the result is the
 * raw bytes either way: SASLprep leaves ASCII unchanged, and it rejects
 * control characters, which sends PostgreSQL to the raw bytes too.
 * Full SASLprep (NFKC, mapping non-ASCII spaces, prohibited code points) is
 * out of scope: a non-ASCII password is used raw, which matches the server
 * only if it is already in SASLprep form (or SASLprep rejects it).
 */
static bool prepare_password(struct scram_client *sc, const char *password)
{
	size_t len = strlen(password);

	/* PKCS5_PBKDF2_HMAC takes an int length. */
	if (len > INT_MAX)
		return false;
	sc->password = malloc(len + 1);
	if (sc->password == NULL)
		return false;
	memcpy(sc->password, password, len + 1);
	sc->password_len = len;
	return true;
}

static bool set_random_nonce(struct scram_client *sc)
{
	uint8_t raw[SCRAM_NONCE_RAW_LEN];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return false;
	sc->client_nonce =
	    scram_b64_encode(raw, sizeof(raw), &sc->client_nonce_len);
	return sc->client_nonce != NULL;
}

static bool set_fixed_nonce(struct scram_client *sc, const char *nonce)
{
	size_t len = strnlen(nonce, SCRAM_MAX_NAME_LEN + 1);

	if (len > SCRAM_MAX_NAME_LEN ||
	    !scram_is_nonce((const uint8_t *)nonce, len))
		return false;
	sc->client_nonce = strdup(nonce);
	sc->client_nonce_len = len;
	return sc->client_nonce != NULL;
}

/* A test user name: printable ASCII, and nothing that needs escaping. */
static bool is_plain_user(const char *user, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (!is_nonce_char((uint8_t)user[i]) || user[i] == '=')
			return false;
	}
	return true;
}

static bool build_client_first(struct scram_client *sc, const char *user)
{
	size_t user_len = strnlen(user, SCRAM_MAX_NAME_LEN + 1);
	struct piece pieces[] = {
	    {gs2_header, sizeof(gs2_header) - 1},
	    {"n=", 2},
	    {user, user_len},
	    {",r=", 3},
	    {sc->client_nonce, sc->client_nonce_len},
	};

	if (user_len > SCRAM_MAX_NAME_LEN || !is_plain_user(user, user_len))
		return false;
	sc->client_first = join_pieces(
	    pieces, sizeof(pieces) / sizeof(pieces[0]), &sc->client_first_len);
	return sc->client_first != NULL;
}

static struct scram_client *
client_create(const char *user, const char *password, const char *nonce)
{
	struct scram_client *sc;

	if (password == NULL)
		return NULL;
	sc = calloc(1, sizeof(*sc));
	if (sc == NULL)
		return NULL;
	sc->state = SCRAM_INIT;
	if (!prepare_password(sc, password))
		goto fail;
	if (nonce != NULL ? !set_fixed_nonce(sc, nonce) : !set_random_nonce(sc))
		goto fail;
	if (!build_client_first(sc, user != NULL ? user : ""))
		goto fail;
	return sc;
fail:
	scram_client_free(sc);
	return NULL;
}

struct scram_client *scram_client_new(const char *password)
{
	return client_create(NULL, password, NULL);
}

struct scram_client *scram_client_new_with_nonce(const char *password,
                                                 const char *nonce)
{
	if (nonce == NULL)
		return NULL;
	return client_create(NULL, password, nonce);
}

struct scram_client *scram_client_new_for_test(const char *user,
                                               const char *password,
                                               const char *nonce)
{
	if (nonce == NULL)
		return NULL;
	return client_create(user, password, nonce);
}

void scram_client_free(struct scram_client *sc)
{
	if (sc == NULL)
		return;
	free_secret(sc->password, sc->password_len);
	free(sc->client_nonce);
	free(sc->client_first);
	/* The proof is not the password, but no reason to leave it around. */
	free_secret(sc->client_final, sc->client_final_len);
	OPENSSL_cleanse(sc, sizeof(*sc));
	free(sc);
}

bool scram_client_first(struct scram_client *sc, const char **msg, size_t *len)
{
	if (sc == NULL || sc->state != SCRAM_INIT)
		return false;
	*msg = sc->client_first;
	*len = sc->client_first_len;
	sc->state = SCRAM_FIRST_SENT;
	return true;
}

/*
 * Takes "<name>=<value>" and the ',' after it, if any (*more says so). The
 * value runs to the next ',' or the end of the message.
 */
static bool take_attr(struct attr_cursor *c, char name, const uint8_t **val,
                      size_t *val_len, bool *more)
{
	const uint8_t *comma;
	size_t n;

	if (c->left < 2 || c->p[0] != (uint8_t)name || c->p[1] != '=')
		return false;
	c->p += 2;
	c->left -= 2;
	comma = c->left > 0 ? memchr(c->p, ',', c->left) : NULL;
	n = comma != NULL ? (size_t)(comma - c->p) : c->left;
	*val = c->p;
	*val_len = n;
	*more = comma != NULL;
	c->p += n;
	c->left -= n;
	if (*more) {
		c->p++;
		c->left--;
	}
	return true;
}

/* Decimal digits only, no sign or space; 1..SCRAM_MAX_ITERATIONS. */
static bool parse_iterations(const uint8_t *s, size_t len, uint32_t *out)
{
	uint32_t v = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		uint32_t d;

		if (s[i] < '0' || s[i] > '9')
			return false;
		d = (uint32_t)(s[i] - '0');
		/* v * 10 + d <= MAX, checked before it can wrap. */
		if (v > (SCRAM_MAX_ITERATIONS - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (v == 0)
		return false;
	*out = v;
	return true;
}

static bool parse_nonce(const struct scram_client *sc, const uint8_t *val,
                        size_t len, struct server_first *sf, char *err,
                        size_t errlen)
{
	if (len < sc->client_nonce_len ||
	    memcmp(val, sc->client_nonce, sc->client_nonce_len) != 0) {
		set_err(err, errlen,
		        "server nonce does not start with client nonce");
		return false;
	}
	/* The server must add its own part, else it could replay ours. */
	if (len == sc->client_nonce_len) {
		set_err(err, errlen,
		        "server nonce does not extend client "
		        "nonce");
		return false;
	}
	if (!scram_is_nonce(val, len)) {
		set_err(err, errlen, "server nonce has non-printable bytes");
		return false;
	}
	sf->nonce = val;
	sf->nonce_len = len;
	return true;
}

/* "r=<nonce>,": the first attribute, unless the server wants extensions. */
static bool parse_first_nonce(const struct scram_client *sc,
                              struct attr_cursor *c, struct server_first *sf,
                              char *err, size_t errlen)
{
	const uint8_t *val;
	size_t len;
	bool more;

	if (c->left >= 2 && c->p[0] == 'm' && c->p[1] == '=') {
		set_err(err, errlen,
		        "server requires an unsupported SCRAM "
		        "extension (m=)");
		return false;
	}
	if (!take_attr(c, 'r', &val, &len, &more) || !more) {
		set_err(err, errlen,
		        "server-first-message: expected r=<nonce>,");
		return false;
	}
	return parse_nonce(sc, val, len, sf, err, errlen);
}

/* "s=<salt>,i=<iterations>" and nothing after it. */
static bool parse_salt_iterations(struct attr_cursor *c,
                                  struct server_first *sf, char *err,
                                  size_t errlen)
{
	const uint8_t *val;
	size_t len;
	bool more;

	if (!take_attr(c, 's', &val, &len, &more) || !more) {
		set_err(err, errlen,
		        "server-first-message: expected s=<salt>,");
		return false;
	}
	if (!scram_b64_decode(val, len, &sf->salt, &sf->salt_len)) {
		set_err(err, errlen, "server salt is not valid base64");
		return false;
	}
	if (!take_attr(c, 'i', &val, &len, &more)) {
		set_err(err, errlen,
		        "server-first-message: expected i=<count>");
		return false;
	}
	if (more) {
		set_err(err, errlen,
		        "server-first-message has attributes after "
		        "i= (extensions are not supported)");
		return false;
	}
	if (!parse_iterations(val, len, &sf->iterations)) {
		set_err(err, errlen,
		        "server iteration count is not a number in 1..%u",
		        SCRAM_MAX_ITERATIONS);
		return false;
	}
	return true;
}

/* Strictly "r=<nonce>,s=<salt>,i=<count>"; sf->salt is malloc'd on success. */
static bool parse_server_first(const struct scram_client *sc,
                               const uint8_t *msg, size_t len,
                               struct server_first *sf, char *err,
                               size_t errlen)
{
	struct attr_cursor c = {msg, len};

	memset(sf, 0, sizeof(*sf));
	if (len == 0 || len > SCRAM_MAX_SERVER_MESSAGE) {
		set_err(err, errlen,
		        "server-first-message length %zu not in 1..%d", len,
		        SCRAM_MAX_SERVER_MESSAGE);
		return false;
	}
	if (!parse_first_nonce(sc, &c, sf, err, errlen))
		return false;
	if (!parse_salt_iterations(&c, sf, err, errlen)) {
		free(sf->salt);
		sf->salt = NULL;
		return false;
	}
	return true;
}

bool scram_derive_keys(const char *password, size_t password_len,
                       const uint8_t *salt, size_t salt_len,
                       uint32_t iterations, struct scram_keys *k)
{
	static const char client_key[] = "Client Key";
	static const char server_key[] = "Server Key";

	if (password_len > INT_MAX || salt_len > INT_MAX || iterations == 0 ||
	    iterations > SCRAM_MAX_ITERATIONS)
		return false;
	if (!PKCS5_PBKDF2_HMAC(password, (int)password_len, salt, (int)salt_len,
	                       (int)iterations, EVP_sha256(), SCRAM_KEY_LEN,
	                       k->salted_password))
		return false;
	if (!scram_hmac_sha256(k->salted_password, SCRAM_KEY_LEN, client_key,
	                       sizeof(client_key) - 1, k->client_key))
		return false;
	if (!scram_sha256(k->client_key, SCRAM_KEY_LEN, k->stored_key))
		return false;
	return scram_hmac_sha256(k->salted_password, SCRAM_KEY_LEN, server_key,
	                         sizeof(server_key) - 1, k->server_key);
}

static bool derive_keys(const struct scram_client *sc,
                        const struct server_first *sf, struct scram_keys *k)
{
	return scram_derive_keys(sc->password, sc->password_len, sf->salt,
	                         sf->salt_len, sf->iterations, k);
}

/*
 * ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage); also keeps the
 * ServerSignature the server has to send back.
 */
static bool compute_proof(struct scram_client *sc, const struct scram_keys *k,
                          const char *auth, size_t auth_len,
                          uint8_t proof[SCRAM_KEY_LEN])
{
	uint8_t client_sig[SCRAM_KEY_LEN];
	bool ok = false;

	if (!scram_hmac_sha256(k->stored_key, SCRAM_KEY_LEN, auth, auth_len,
	                       client_sig))
		goto out;
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] = k->client_key[i] ^ client_sig[i];
	ok = scram_hmac_sha256(k->server_key, SCRAM_KEY_LEN, auth, auth_len,
	                       sc->server_signature);
out:
	OPENSSL_cleanse(client_sig, sizeof(client_sig));
	return ok;
}

/* "c=biws,r=<server nonce>": the client-final-message without its proof. */
static char *build_final_without_proof(const struct server_first *sf,
                                       size_t *len)
{
	struct piece pieces[] = {
	    {"c=", 2},
	    {gs2_header_b64, sizeof(gs2_header_b64) - 1},
	    {",r=", 3},
	    {sf->nonce, sf->nonce_len},
	};

	return join_pieces(pieces, sizeof(pieces) / sizeof(pieces[0]), len);
}

/* client-first-bare "," server-first "," client-final-without-proof */
static char *build_auth_message(const struct scram_client *sc,
                                const uint8_t *server_first, size_t server_len,
                                const char *final_wo, size_t final_wo_len,
                                size_t *len)
{
	size_t gs2_len = sizeof(gs2_header) - 1;
	struct piece pieces[] = {
	    {sc->client_first + gs2_len, sc->client_first_len - gs2_len},
	    {",", 1},
	    {server_first, server_len},
	    {",", 1},
	    {final_wo, final_wo_len},
	};

	return join_pieces(pieces, sizeof(pieces) / sizeof(pieces[0]), len);
}

/* client-final-message = without-proof ",p=" base64(ClientProof) */
static bool store_client_final(struct scram_client *sc, const char *final_wo,
                               size_t final_wo_len, const char *proof_b64,
                               size_t proof_b64_len)
{
	struct piece pieces[] = {
	    {final_wo, final_wo_len},
	    {",p=", 3},
	    {proof_b64, proof_b64_len},
	};

	sc->client_final = join_pieces(
	    pieces, sizeof(pieces) / sizeof(pieces[0]), &sc->client_final_len);
	return sc->client_final != NULL;
}

/* Computes the proof over auth and stores the full client-final-message. */
static bool finish_client_final(struct scram_client *sc,
                                const struct server_first *sf,
                                const char *final_wo, size_t final_wo_len,
                                const char *auth, size_t auth_len)
{
	struct scram_keys keys;
	uint8_t proof[SCRAM_KEY_LEN];
	char *proof_b64 = NULL;
	size_t proof_b64_len = 0;
	bool ok = false;

	if (!derive_keys(sc, sf, &keys) ||
	    !compute_proof(sc, &keys, auth, auth_len, proof))
		goto out;
	proof_b64 = scram_b64_encode(proof, sizeof(proof), &proof_b64_len);
	if (proof_b64 == NULL)
		goto out;
	ok = store_client_final(sc, final_wo, final_wo_len, proof_b64,
	                        proof_b64_len);
out:
	OPENSSL_cleanse(&keys, sizeof(keys));
	OPENSSL_cleanse(proof, sizeof(proof));
	free_secret(proof_b64, proof_b64_len);
	return ok;
}

bool scram_client_final(struct scram_client *sc, const uint8_t *server_first,
                        size_t server_len, const char **msg, size_t *len,
                        char *err, size_t errlen)
{
	struct server_first sf;
	char *final_wo = NULL, *auth = NULL;
	size_t final_wo_len = 0, auth_len = 0;
	bool ok = false;

	if (sc == NULL || sc->state != SCRAM_FIRST_SENT) {
		set_err(err, errlen, "SCRAM client-final out of order");
		if (sc != NULL)
			sc->state = SCRAM_FAILED;
		return false;
	}
	sc->state = SCRAM_FAILED; /* until everything below succeeds */
	if (!parse_server_first(sc, server_first, server_len, &sf, err, errlen))
		return false;
	final_wo = build_final_without_proof(&sf, &final_wo_len);
	if (final_wo != NULL)
		auth = build_auth_message(sc, server_first, server_len,
		                          final_wo, final_wo_len, &auth_len);
	if (auth == NULL ||
	    !finish_client_final(sc, &sf, final_wo, final_wo_len, auth,
	                         auth_len)) {
		set_err(err, errlen, "SCRAM proof computation failed");
		goto out;
	}
	*msg = sc->client_final;
	*len = sc->client_final_len;
	sc->state = SCRAM_FINAL_SENT;
	ok = true;
out:
	free(sf.salt);
	free(final_wo);
	free(auth);
	return ok;
}

/* "e=<text>": report the server's reason, with unprintable bytes masked. */
static void report_server_error(const uint8_t *text, size_t len, char *err,
                                size_t errlen)
{
	set_err(err, errlen, "server rejected SCRAM: %.*s", (int)len,
	        (const char *)text);
	if (err == NULL)
		return;
	/* The text goes to logs: no control characters from the server. */
	for (char *p = err; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	}
}

/* "v=<base64 ServerSignature>", compared in constant time. */
static bool check_verifier(const struct scram_client *sc, const uint8_t *val,
                           size_t len, char *err, size_t errlen)
{
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	bool ok = false;

	if (memchr(val, ',', len) != NULL) {
		set_err(err, errlen,
		        "server-final-message has attributes "
		        "after v= (extensions are not supported)");
		return false;
	}
	if (!scram_b64_decode(val, len, &sig, &sig_len) ||
	    sig_len != SCRAM_KEY_LEN) {
		set_err(err, errlen,
		        "server signature is not 32 bytes of "
		        "base64");
		goto out;
	}
	if (CRYPTO_memcmp(sig, sc->server_signature, SCRAM_KEY_LEN) != 0) {
		set_err(err, errlen,
		        "server signature does not match: the "
		        "server does not know the password");
		goto out;
	}
	ok = true;
out:
	free(sig);
	return ok;
}

bool scram_verify_server(struct scram_client *sc, const uint8_t *server_final,
                         size_t server_len, char *err, size_t errlen)
{
	bool ok = false;

	if (sc == NULL || sc->state != SCRAM_FINAL_SENT) {
		set_err(err, errlen,
		        "server-final-message before "
		        "client-final-message");
		if (sc != NULL)
			sc->state = SCRAM_FAILED;
		return false;
	}
	sc->state = SCRAM_FAILED;
	if (server_len < 2 || server_len > SCRAM_MAX_SERVER_MESSAGE) {
		set_err(err, errlen,
		        "server-final-message length %zu not in 2..%d",
		        server_len, SCRAM_MAX_SERVER_MESSAGE);
		return false;
	}
	if (server_final[0] == 'e' && server_final[1] == '=') {
		report_server_error(server_final + 2, server_len - 2, err,
		                    errlen);
		return false;
	}
	if (server_final[0] != 'v' || server_final[1] != '=') {
		set_err(err, errlen, "server-final-message: expected v= or e=");
		return false;
	}
	ok = check_verifier(sc, server_final + 2, server_len - 2, err, errlen);
	if (ok)
		sc->state = SCRAM_DONE;
	return ok;
}

static void hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

/* md5 over two byte strings, as 32 hex digits and a NUL. */
static bool md5_hex2(const void *a, size_t a_len, const void *b, size_t b_len,
                     char out[33])
{
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = false;

	if (ctx == NULL)
		return false;
	/* MD5 may be missing (FIPS provider): that is a failure, not a crash.
	 */
	if (!EVP_DigestInit_ex(ctx, EVP_md5(), NULL) ||
	    !EVP_DigestUpdate(ctx, a, a_len) ||
	    !EVP_DigestUpdate(ctx, b, b_len) ||
	    !EVP_DigestFinal_ex(ctx, digest, &n) || n != 16)
		goto out;
	hex_encode(digest, 16, out);
	ok = true;
out:
	OPENSSL_cleanse(digest, sizeof(digest));
	EVP_MD_CTX_free(ctx);
	return ok;
}

bool scram_md5_response(const char *user, const char *password,
                        const uint8_t salt[4], char out[SCRAM_MD5_LEN])
{
	/* md5(password + user) is what the server stores: a secret too. */
	char inner[33];
	bool ok = false;

	if (user == NULL || password == NULL || salt == NULL)
		return false;
	if (!md5_hex2(password, strlen(password), user, strlen(user), inner))
		goto out;
	memcpy(out, "md5", 3);
	ok = md5_hex2(inner, 32, salt, 4, out + 3);
out:
	OPENSSL_cleanse(inner, sizeof(inner));
	return ok;
}
