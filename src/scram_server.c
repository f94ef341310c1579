/* scram_server.c: server side of SCRAM-SHA-256 (RFC 5802, RFC 7677). */
#include "scram_server.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "strutil.h"

#define VERIFIER_PREFIX "SCRAM-SHA-256$"
/* 18 random bytes: 24 base64 characters, as PostgreSQL's server nonce. */
#define SERVER_NONCE_RAW 18

/* Life of one exchange; any error is final. */
enum srv_state {
	SRV_WANT_FIRST, /* waiting for client-first-message */
	SRV_WANT_FINAL, /* server-first sent, waiting for client-final */
	SRV_DONE,       /* proof checked (right or wrong) */
	SRV_FAILED
};

struct scram_server {
	enum srv_state state;
	bool mock;
	struct scram_secret secret;
	char gs2_header[4]; /* "n,," or "y,," as the client sent it */
	char *client_first_bare;
	size_t client_first_bare_len;
	char *nonce; /* client nonce + ours */
	size_t nonce_len;
	char *server_first;
	size_t server_first_len;
	char *server_final;
	size_t server_final_len;
};

/* malloc'd copy of len bytes with a NUL; lengths are bounded by callers. */
static char *dup_bytes(const void *p, size_t len)
{
	char *s = malloc(len + 1);

	if (s == NULL)
		return NULL;
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

/* ---- verifiers ---- */

/* Decodes base64 of exactly want bytes (want 0: 1..cap bytes) into out. */
static bool decode_into(const char *b64, size_t len, uint8_t *out, size_t want,
                        size_t cap, size_t *got)
{
	uint8_t *buf;
	size_t n;
	bool ok;

	if (!scram_b64_decode((const uint8_t *)b64, len, &buf, &n))
		return false;
	ok = want ? n == want : (n >= 1 && n <= cap);
	if (ok)
		memcpy(out, buf, n);
	if (got != NULL)
		*got = n;
	OPENSSL_cleanse(buf, n);
	free(buf);
	return ok;
}

static bool parse_iter(const char *s, size_t len, uint32_t *out)
{
	uint32_t v = 0;

	if (len == 0 || len > 10)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (v > (SCRAM_MAX_ITERATIONS - (uint32_t)(s[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	*out = v;
	return v > 0;
}

bool scram_secret_parse(const char *s, struct scram_secret *out)
{
	const char *iter, *salt, *stored, *server, *end;

	memset(out, 0, sizeof(*out));
	if (s == NULL || strncmp(s, VERIFIER_PREFIX, 14) != 0)
		return false;
	iter = s + 14;
	end = iter + strlen(iter);
	salt = memchr(iter, ':', (size_t)(end - iter));
	stored = salt ? memchr(salt, '$', (size_t)(end - salt)) : NULL;
	server = stored ? memchr(stored, ':', (size_t)(end - stored)) : NULL;
	if (server == NULL)
		return false;
	salt++;
	stored++;
	server++;
	return parse_iter(iter, (size_t)(salt - 1 - iter), &out->iterations) &&
	       decode_into(salt, (size_t)(stored - 1 - salt), out->salt, 0,
	                   SCRAM_MAX_SALT, &out->salt_len) &&
	       decode_into(stored, (size_t)(server - 1 - stored),
	                   out->stored_key, SCRAM_KEY_LEN, 0, NULL) &&
	       decode_into(server, (size_t)(end - server), out->server_key,
	                   SCRAM_KEY_LEN, 0, NULL);
}

bool scram_secret_make(const char *password, const uint8_t *salt,
                       size_t salt_len, uint32_t iterations,
                       struct scram_secret *out)
{
	struct scram_keys k;
	bool ok;

	memset(out, 0, sizeof(*out));
	if (salt_len == 0 || salt_len > SCRAM_MAX_SALT)
		return false;
	ok = scram_derive_keys(password, strlen(password), salt, salt_len,
	                       iterations, &k);
	if (ok) {
		out->iterations = iterations;
		memcpy(out->salt, salt, salt_len);
		out->salt_len = salt_len;
		memcpy(out->stored_key, k.stored_key, SCRAM_KEY_LEN);
		memcpy(out->server_key, k.server_key, SCRAM_KEY_LEN);
	}
	OPENSSL_cleanse(&k, sizeof(k));
	return ok;
}

char *scram_secret_format(const struct scram_secret *s)
{
	size_t n1, n2, n3, cap;
	char *salt = scram_b64_encode(s->salt, s->salt_len, &n1);
	char *st = scram_b64_encode(s->stored_key, SCRAM_KEY_LEN, &n2);
	char *sv = scram_b64_encode(s->server_key, SCRAM_KEY_LEN, &n3);
	char *out = NULL;

	if (salt && st && sv) {
		cap = 14 + 11 + n1 + n2 + n3 + 4;
		out = malloc(cap);
		if (out != NULL)
			snprintf(out, cap,
			         VERIFIER_PREFIX "%" PRIu32 ":%s$%s:%s",
			         s->iterations, salt, st, sv);
	}
	free(salt);
	free(st);
	free(sv);
	return out;
}

bool scram_secret_mock(const char *user, const uint8_t *key, size_t key_len,
                       struct scram_secret *out)
{
	uint8_t mac[SCRAM_KEY_LEN];

	memset(out, 0, sizeof(*out));
	if (!scram_hmac_sha256(key, key_len, user, strlen(user), mac))
		return false;
	out->iterations = SCRAM_DEFAULT_ITERATIONS;
	memcpy(out->salt, mac, SCRAM_DEFAULT_SALT_LEN);
	out->salt_len = SCRAM_DEFAULT_SALT_LEN;
	/* No password hashes to all-zero keys; the mock flag fails it anyway */
	return true;
}

/* ---- the exchange ---- */

struct scram_server *scram_server_new(const struct scram_secret *secret,
                                      bool mock)
{
	struct scram_server *ss = calloc(1, sizeof(*ss));

	if (ss == NULL)
		return NULL;
	ss->secret = *secret;
	ss->mock = mock;
	ss->state = SRV_WANT_FIRST;
	return ss;
}

void scram_server_free(struct scram_server *ss)
{
	if (ss == NULL)
		return;
	free(ss->client_first_bare);
	free(ss->nonce);
	free(ss->server_first);
	free(ss->server_final);
	OPENSSL_cleanse(ss, sizeof(*ss));
	free(ss);
}

/*
 * gs2-header: "n,," or "y,," (the client could bind but thinks we can not:
 * true, we offer no -PLUS). "p=" (binding required) and an authzid are
 * refused, as PostgreSQL does. Returns the header's length or 0.
 */
static size_t parse_gs2(struct scram_server *ss, const uint8_t *m, size_t len,
                        char *err, size_t errlen)
{
	if (len >= 3 && (m[0] == 'n' || m[0] == 'y') && m[1] == ',' &&
	    m[2] == ',') {
		memcpy(ss->gs2_header, m, 3);
		return 3;
	}
	if (len >= 1 && m[0] == 'p')
		set_err(err, errlen, "channel binding is not supported");
	else if (len >= 3 && m[1] == ',' && m[2] == 'a')
		set_err(err, errlen,
		        "an authorization identity is not "
		        "supported");
	else
		set_err(err, errlen, "malformed SCRAM gs2 header");
	return 0;
}

/* "n=<name>,r=<nonce>" and nothing else; the nonce is returned. */
static bool parse_first_bare(const uint8_t *m, size_t len,
                             const uint8_t **nonce, size_t *nonce_len,
                             char *err, size_t errlen)
{
	const uint8_t *comma, *r;

	if (len < 2 || m[0] != 'n' || m[1] != '=' ||
	    (comma = memchr(m, ',', len)) == NULL) {
		set_err(err, errlen,
		        "client-first-message: expected n=<user>,");
		return false;
	}
	r = comma + 1;
	len -= (size_t)(r - m);
	if (len < 3 || r[0] != 'r' || r[1] != '=') {
		set_err(err, errlen,
		        "client-first-message: expected r=<nonce>");
		return false;
	}
	*nonce = r + 2;
	*nonce_len = len - 2;
	if (memchr(*nonce, ',', *nonce_len) != NULL) {
		set_err(err, errlen, "SCRAM extensions are not supported");
		return false;
	}
	if (*nonce_len > SCRAM_MAX_CLIENT_NONCE ||
	    !scram_is_nonce(*nonce, *nonce_len)) {
		set_err(err, errlen,
		        "client nonce is empty, too long or not printable");
		return false;
	}
	return true;
}

static bool make_nonce(struct scram_server *ss, const uint8_t *cnonce,
                       size_t clen)
{
	uint8_t raw[SERVER_NONCE_RAW];
	size_t slen;
	char *snonce;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return false;
	snonce = scram_b64_encode(raw, sizeof(raw), &slen);
	if (snonce == NULL)
		return false;
	/* clen <= SCRAM_MAX_CLIENT_NONCE: no overflow */
	ss->nonce = malloc(clen + slen + 1);
	if (ss->nonce != NULL) {
		memcpy(ss->nonce, cnonce, clen);
		memcpy(ss->nonce + clen, snonce, slen + 1);
		ss->nonce_len = clen + slen;
	}
	free(snonce);
	return ss->nonce != NULL;
}

static bool build_server_first(struct scram_server *ss)
{
	size_t slen, cap;
	char *salt =
	    scram_b64_encode(ss->secret.salt, ss->secret.salt_len, &slen);
	int n;

	if (salt == NULL)
		return false;
	cap = ss->nonce_len + slen + 32;
	ss->server_first = malloc(cap);
	n = ss->server_first == NULL
	        ? -1
	        : snprintf(ss->server_first, cap, "r=%s,s=%s,i=%" PRIu32,
	                   ss->nonce, salt, ss->secret.iterations);
	free(salt);
	if (n < 0 || (size_t)n >= cap)
		return false;
	ss->server_first_len = (size_t)n;
	return true;
}

bool scram_server_first(struct scram_server *ss, const uint8_t *msg, size_t len,
                        const char **out, size_t *out_len, char *err,
                        size_t errlen)
{
	const uint8_t *nonce;
	size_t gs2, nonce_len;

	if (ss->state != SRV_WANT_FIRST) {
		set_err(err, errlen, "SCRAM message out of order");
		ss->state = SRV_FAILED;
		return false;
	}
	ss->state = SRV_FAILED; /* until everything below worked */
	if (len == 0 || len > SCRAM_MAX_CLIENT_MESSAGE ||
	    memchr(msg, '\0', len) != NULL) {
		set_err(err, errlen, "client-first-message length or bytes");
		return false;
	}
	if ((gs2 = parse_gs2(ss, msg, len, err, errlen)) == 0 ||
	    !parse_first_bare(msg + gs2, len - gs2, &nonce, &nonce_len, err,
	                      errlen))
		return false;
	ss->client_first_bare = dup_bytes(msg + gs2, len - gs2);
	ss->client_first_bare_len = len - gs2;
	if (ss->client_first_bare == NULL ||
	    !make_nonce(ss, nonce, nonce_len) || !build_server_first(ss)) {
		set_err(err, errlen, "out of memory");
		return false;
	}
	*out = ss->server_first;
	*out_len = ss->server_first_len;
	ss->state = SRV_WANT_FINAL;
	return true;
}

/* "c=<base64 of our gs2 header>,r=<the whole nonce>" exactly. */
static bool check_final_head(const struct scram_server *ss, const uint8_t *m,
                             size_t len, char *err, size_t errlen)
{
	const char *cb = ss->gs2_header[0] == 'y' ? "c=eSws,r=" : "c=biws,r=";

	if (len < 9 || memcmp(m, cb, 9) != 0) {
		set_err(err, errlen,
		        "client-final-message: wrong channel "
		        "binding attribute");
		return false;
	}
	if (len - 9 != ss->nonce_len ||
	    CRYPTO_memcmp(m + 9, ss->nonce, ss->nonce_len) != 0) {
		set_err(err, errlen, "client-final-message: nonce mismatch");
		return false;
	}
	return true;
}

/* client-first-bare "," server-first "," client-final-without-proof */
static char *auth_message(const struct scram_server *ss, const uint8_t *wo,
                          size_t wo_len, size_t *len)
{
	size_t total =
	    ss->client_first_bare_len + ss->server_first_len + wo_len + 2;
	char *a = malloc(total + 1);

	if (a == NULL)
		return NULL;
	snprintf(a, total + 1, "%s,%s,", ss->client_first_bare,
	         ss->server_first);
	memcpy(a + ss->client_first_bare_len + ss->server_first_len + 2, wo,
	       wo_len);
	a[total] = '\0';
	*len = total;
	return a;
}

/* H(proof XOR HMAC(StoredKey, auth)) == StoredKey, in constant time. */
static bool proof_ok(const struct scram_server *ss, const uint8_t *proof,
                     const char *auth, size_t auth_len)
{
	uint8_t sig[SCRAM_KEY_LEN], key[SCRAM_KEY_LEN], h[SCRAM_KEY_LEN];
	bool ok;

	ok = scram_hmac_sha256(ss->secret.stored_key, SCRAM_KEY_LEN, auth,
	                       auth_len, sig);
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		key[i] = proof[i] ^ sig[i];
	ok = ok && scram_sha256(key, SCRAM_KEY_LEN, h) &&
	     CRYPTO_memcmp(h, ss->secret.stored_key, SCRAM_KEY_LEN) == 0;
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(sig, sizeof(sig));
	return ok && !ss->mock;
}

static bool build_server_final(struct scram_server *ss, const char *auth,
                               size_t auth_len)
{
	uint8_t sig[SCRAM_KEY_LEN];
	size_t n;
	char *b64;

	if (!scram_hmac_sha256(ss->secret.server_key, SCRAM_KEY_LEN, auth,
	                       auth_len, sig))
		return false;
	b64 = scram_b64_encode(sig, sizeof(sig), &n);
	if (b64 == NULL)
		return false;
	ss->server_final = malloc(n + 3);
	if (ss->server_final != NULL) {
		memcpy(ss->server_final, "v=", 2);
		memcpy(ss->server_final + 2, b64, n + 1);
		ss->server_final_len = n + 2;
	}
	free(b64);
	return ss->server_final != NULL;
}

/* The proof is the last attribute: ",p=<44 base64 characters>". */
static bool split_proof(const uint8_t *m, size_t len, size_t *wo_len,
                        uint8_t proof[SCRAM_KEY_LEN])
{
	const size_t plen = 44; /* base64 of 32 bytes */
	size_t got;

	if (len < plen + 3 || memcmp(m + len - plen - 3, ",p=", 3) != 0)
		return false;
	*wo_len = len - plen - 3;
	return decode_into((const char *)m + len - plen, plen, proof,
	                   SCRAM_KEY_LEN, 0, &got);
}

enum scram_srv_rc scram_server_final(struct scram_server *ss,
                                     const uint8_t *msg, size_t len,
                                     const char **out, size_t *out_len,
                                     char *err, size_t errlen)
{
	uint8_t proof[SCRAM_KEY_LEN];
	size_t wo_len, auth_len;
	char *auth;
	bool ok;

	if (ss->state != SRV_WANT_FINAL) {
		set_err(err, errlen, "SCRAM message out of order");
		ss->state = SRV_FAILED;
		return SCRAM_SRV_PROTOCOL;
	}
	ss->state = SRV_FAILED;
	if (len > SCRAM_MAX_CLIENT_MESSAGE ||
	    !split_proof(msg, len, &wo_len, proof)) {
		set_err(err, errlen,
		        "client-final-message: expected "
		        "c=...,r=...,p=<proof>");
		return SCRAM_SRV_PROTOCOL;
	}
	if (!check_final_head(ss, msg, wo_len, err, errlen))
		return SCRAM_SRV_PROTOCOL;
	auth = auth_message(ss, msg, wo_len, &auth_len);
	if (auth == NULL) {
		set_err(err, errlen, "out of memory");
		return SCRAM_SRV_PROTOCOL;
	}
	ok = proof_ok(ss, proof, auth, auth_len);
	if (ok && !build_server_final(ss, auth, auth_len)) {
		free(auth);
		set_err(err, errlen, "out of memory");
		return SCRAM_SRV_PROTOCOL;
	}
	free(auth);
	ss->state = SRV_DONE;
	if (!ok)
		return SCRAM_SRV_BAD_PROOF;
	*out = ss->server_final;
	*out_len = ss->server_final_len;
	return SCRAM_SRV_OK;
}
