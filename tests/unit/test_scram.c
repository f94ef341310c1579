/* test_scram.c: SCRAM-SHA-256 client and MD5 response, incl. hostile input. */
#include "scram.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define RFC_NONCE        "rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_NONCE RFC_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SALT         "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_SERVER_FIRST "r=" RFC_SERVER_NONCE ",s=" RFC_SALT ",i=4096"
#define RFC_CLIENT_FINAL                                                       \
	"c=biws,r=" RFC_SERVER_NONCE                                           \
	",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
/*
 * ServerSignature recomputed with Python's hashlib/hmac. The brief quoted
 * "v=6rriTRBi23WpRR/wanBssD5XLvTBY2/NOhQkbBr1O7NE": 44 characters without
 * padding decode to 33 bytes, which no SHA-256 signature is (a transcription
 * slip); test_server_final_malformed checks that it is refused.
 */
#define RFC_SERVER_FINAL     "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
#define GARBLED_SERVER_FINAL "v=6rriTRBi23WpRR/wanBssD5XLvTBY2/NOhQkbBr1O7NE"

/* Big enough for any message a test builds (the limit is 4096). */
#define BUF 8192

/*
 * Calls scram_client_final on an exact-size heap copy: no NUL after the
 * message, so ASan catches any read past the given length.
 */
static bool final_raw(struct scram_client *sc, const void *msg, size_t len,
                      const char **out, size_t *out_len, char *err,
                      size_t errlen)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	bool ok;

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, msg, len);
	ok = scram_client_final(sc, copy, len, out, out_len, err, errlen);
	free(copy);
	return ok;
}

static bool verify_raw(struct scram_client *sc, const void *msg, size_t len,
                       char *err, size_t errlen)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	bool ok;

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, msg, len);
	ok = scram_verify_server(sc, copy, len, err, errlen);
	free(copy);
	return ok;
}

/* A client with the RFC nonce, client-first already taken. */
static struct scram_client *started_client(const char *password)
{
	struct scram_client *sc =
	    scram_client_new_with_nonce(password, RFC_NONCE);
	const char *msg;
	size_t len;

	ck_assert_ptr_nonnull(sc);
	ck_assert(scram_client_first(sc, &msg, &len));
	return sc;
}

/* Runs server-first (a C string) through a fresh client; err gets why. */
static bool try_server_first(const char *server_first, char *err, size_t errlen)
{
	struct scram_client *sc = started_client("pencil");
	const char *out;
	size_t out_len;
	bool ok;

	err[0] = '\0';
	ok = final_raw(sc, server_first, strlen(server_first), &out, &out_len,
	               err, errlen);
	if (!ok)
		ck_assert_msg(err[0] != '\0', "no reason for rejecting %s",
		              server_first);
	scram_client_free(sc);
	return ok;
}

static void b64(const uint8_t *in, size_t len, char *out, size_t cap)
{
	ck_assert_uint_ge(cap, (len + 2) / 3 * 4 + 1);
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* ---- an independent SCRAM server, written straight from RFC 5802 ---- */

struct test_server {
	const uint8_t *salt;
	size_t salt_len;
	int iterations;
	uint8_t stored_key[32];
	uint8_t server_key[32];
};

static void hmac32(const uint8_t *key, const void *data, size_t len,
                   uint8_t out[32])
{
	unsigned int n = 0;

	ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, 32, data, len, out, &n));
	ck_assert_uint_eq(n, 32);
}

/* What PostgreSQL keeps in pg_authid: StoredKey and ServerKey. */
static void server_make_secret(struct test_server *ts, const char *password,
                               const uint8_t *salt, size_t salt_len,
                               int iterations)
{
	uint8_t salted[32], client_key[32];
	unsigned int n = 0;

	ts->salt = salt;
	ts->salt_len = salt_len;
	ts->iterations = iterations;
	ck_assert(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt,
	                            (int)salt_len, iterations, EVP_sha256(), 32,
	                            salted));
	hmac32(salted, "Client Key", 10, client_key);
	ck_assert(
	    EVP_Digest(client_key, 32, ts->stored_key, &n, EVP_sha256(), NULL));
	hmac32(salted, "Server Key", 10, ts->server_key);
}

/* Checks a client-final proof like a server would; *sig gets v=... */
static bool server_check_proof(const struct test_server *ts,
                               const char *client_first,
                               const char *server_first,
                               const char *client_final, char *server_final,
                               size_t cap)
{
	char auth[3 * BUF];
	uint8_t proof[33], client_sig[32], client_key[32], stored[32],
	    server_sig[32];
	const char *p = strstr(client_final, ",p=");
	unsigned int n = 0;

	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(strlen(p + 3), 44);
	ck_assert_int_eq(EVP_DecodeBlock(proof, (const uint8_t *)p + 3, 44),
	                 33);
	/* bare client-first, server-first, client-final without proof */
	snprintf(auth, sizeof(auth), "%s,%s,%.*s", client_first + 3,
	         server_first, (int)(p - client_final), client_final);
	hmac32(ts->stored_key, auth, strlen(auth), client_sig);
	for (int i = 0; i < 32; i++)
		client_key[i] = proof[i] ^ client_sig[i];
	ck_assert(EVP_Digest(client_key, 32, stored, &n, EVP_sha256(), NULL));
	if (memcmp(stored, ts->stored_key, 32) != 0) {
		snprintf(server_final, cap, "e=invalid-proof");
		return false;
	}
	hmac32(ts->server_key, auth, strlen(auth), server_sig);
	memcpy(server_final, "v=", 3);
	b64(server_sig, 32, server_final + 2, cap - 2);
	return true;
}

/*
 * Full exchange of a real client (random nonce) against the test server.
 * Returns whether the client accepted the server's final message;
 * *server_ok says whether the server accepted the client's proof.
 */
static bool run_exchange(const struct test_server *ts,
                         const char *client_password, bool *server_ok)
{
	struct scram_client *sc = scram_client_new(client_password);
	char server_first[BUF], salt_b64[BUF], server_final[BUF], err[256];
	char client_first[BUF], client_final[BUF];
	const char *msg;
	size_t len;
	bool ok;
	int n;

	ck_assert_ptr_nonnull(sc);
	ck_assert(scram_client_first(sc, &msg, &len));
	ck_assert_uint_lt(len, sizeof(client_first));
	memcpy(client_first, msg, len);
	client_first[len] = '\0';
	ck_assert_int_eq(strncmp(client_first, "n,,n=,r=", 8), 0);
	b64(ts->salt, ts->salt_len, salt_b64, sizeof(salt_b64));
	n = snprintf(server_first, sizeof(server_first), "r=%s%s,s=%s,i=%d",
	             client_first + 8, "3rfcNHYJY1ZVvWVs7j", salt_b64,
	             ts->iterations);
	ck_assert(n > 0 && (size_t)n < sizeof(server_first));
	ck_assert_msg(final_raw(sc, server_first, strlen(server_first), &msg,
	                        &len, err, sizeof(err)),
	              "client-final failed: %s", err);
	ck_assert_uint_lt(len, sizeof(client_final));
	memcpy(client_final, msg, len);
	client_final[len] = '\0';
	*server_ok =
	    server_check_proof(ts, client_first, server_first, client_final,
	                       server_final, sizeof(server_final));
	ok = verify_raw(sc, server_final, strlen(server_final), err,
	                sizeof(err));
	scram_client_free(sc);
	return ok;
}

/* ---- the RFC 7677 example ---- */

START_TEST(test_rfc7677_vector)
{
	struct scram_client *sc =
	    scram_client_new_for_test("user", "pencil", RFC_NONCE);
	const char *msg;
	size_t len;
	char err[256] = "";

	ck_assert_ptr_nonnull(sc);
	ck_assert(scram_client_first(sc, &msg, &len));
	ck_assert_uint_eq(len, strlen("n,,n=user,r=" RFC_NONCE));
	ck_assert_int_eq(memcmp(msg, "n,,n=user,r=" RFC_NONCE, len), 0);
	ck_assert(final_raw(sc, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST),
	                    &msg, &len, err, sizeof(err)));
	ck_assert_uint_eq(len, strlen(RFC_CLIENT_FINAL));
	ck_assert_int_eq(memcmp(msg, RFC_CLIENT_FINAL, len), 0);
	ck_assert_msg(verify_raw(sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL),
	                         err, sizeof(err)),
	              "%s", err);
	/* Done: nothing more is accepted. */
	ck_assert(!verify_raw(sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL),
	                      err, sizeof(err)));
	scram_client_free(sc);
}
END_TEST

START_TEST(test_client_first_postgres_form)
{
	struct scram_client *a = scram_client_new("secret");
	struct scram_client *b = scram_client_new("secret");
	const char *ma, *mb;
	size_t la, lb;

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert(scram_client_first(a, &ma, &la));
	ck_assert(scram_client_first(b, &mb, &lb));
	/* 18 random bytes are 24 base64 characters. */
	ck_assert_uint_eq(la, 8 + 24);
	ck_assert_uint_eq(lb, 8 + 24);
	ck_assert_int_eq(memcmp(ma, "n,,n=,r=", 8), 0);
	ck_assert_int_ne(memcmp(ma + 8, mb + 8, 24), 0);
	for (size_t i = 8; i < la; i++)
		ck_assert(ma[i] > 0x20 && ma[i] < 0x7f && ma[i] != ',');
	/* Only once. */
	ck_assert(!scram_client_first(a, &ma, &la));
	scram_client_free(a);
	scram_client_free(b);
}
END_TEST

START_TEST(test_constructor_rejects_bad_input)
{
	ck_assert_ptr_null(scram_client_new(NULL));
	ck_assert_ptr_null(scram_client_new_with_nonce("pw", NULL));
	ck_assert_ptr_null(scram_client_new_with_nonce("pw", ""));
	ck_assert_ptr_null(scram_client_new_with_nonce("pw", "a,b"));
	ck_assert_ptr_null(scram_client_new_with_nonce("pw", "a b"));
	ck_assert_ptr_null(scram_client_new_for_test("a,b", "pw", "n"));
	ck_assert_ptr_null(scram_client_new_for_test("a=b", "pw", "n"));
	scram_client_free(NULL);
}
END_TEST

/* ---- server-final ---- */

START_TEST(test_wrong_server_signature)
{
	struct scram_client *sc =
	    scram_client_new_for_test("user", "pencil", RFC_NONCE);
	char bad[] = RFC_SERVER_FINAL;
	const char *msg;
	size_t len;
	char err[256] = "";

	ck_assert(scram_client_first(sc, &msg, &len));
	ck_assert(final_raw(sc, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST),
	                    &msg, &len, err, sizeof(err)));
	bad[5] = bad[5] == 'A' ? 'B' : 'A';
	ck_assert(!verify_raw(sc, bad, strlen(bad), err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "does not match"));
	/* A failed exchange stays failed, even given the right answer. */
	ck_assert(!verify_raw(sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL),
	                      err, sizeof(err)));
	scram_client_free(sc);
}
END_TEST

/* Each bad server-final on a client that just sent the RFC client-final. */
static void check_server_final_rejected(const char *server_final,
                                        const char *reason)
{
	struct scram_client *sc =
	    scram_client_new_for_test("user", "pencil", RFC_NONCE);
	const char *msg;
	size_t len;
	char err[256] = "";

	ck_assert(scram_client_first(sc, &msg, &len));
	ck_assert(final_raw(sc, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST),
	                    &msg, &len, err, sizeof(err)));
	err[0] = '\0';
	ck_assert_msg(!verify_raw(sc, server_final, strlen(server_final), err,
	                          sizeof(err)),
	              "accepted %s", server_final);
	ck_assert_msg(strstr(err, reason) != NULL, "%s: got '%s'", server_final,
	              err);
	scram_client_free(sc);
}

START_TEST(test_server_final_malformed)
{
	check_server_final_rejected("", "length");
	check_server_final_rejected("v", "length");
	check_server_final_rejected("v=", "base64");
	check_server_final_rejected("x=abc", "expected v= or e=");
	check_server_final_rejected("V=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl9"
	                            "5G4=",
	                            "expected");
	check_server_final_rejected(RFC_SERVER_FINAL ",x=1", "extensions");
	/* 32 bytes are exactly 44 characters with one '='. */
	check_server_final_rejected(GARBLED_SERVER_FINAL, "32 bytes");
	check_server_final_rejected("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl9"
	                            "5G4",
	                            "32 bytes");
	check_server_final_rejected("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl9"
	                            "5G4=AAAA",
	                            "32 bytes");
	check_server_final_rejected("v= 6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl"
	                            "95G4=",
	                            "32 bytes");
	check_server_final_rejected("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl9"
	                            "5G4=\n",
	                            "32 bytes");
}
END_TEST

START_TEST(test_server_error_reported)
{
	check_server_final_rejected("e=invalid-proof",
	                            "server rejected SCRAM: invalid-proof");
	check_server_final_rejected("e=", "server rejected SCRAM: ");
	/* Control characters from the server never reach the logs. */
	check_server_final_rejected("e=bad\nlog\x1b[0m", "bad?log?[0m");
}
END_TEST

START_TEST(test_order_enforced)
{
	struct scram_client *sc = scram_client_new_with_nonce("pw", RFC_NONCE);
	const char *msg;
	size_t len;
	char err[256] = "";

	/* server-final and client-final before client-first */
	ck_assert(!verify_raw(sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL),
	                      err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "before client-final"));
	scram_client_free(sc);

	sc = scram_client_new_with_nonce("pw", RFC_NONCE);
	ck_assert(!final_raw(sc, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST),
	                     &msg, &len, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "out of order"));
	scram_client_free(sc);

	/* server-final right after client-first */
	sc = started_client("pw");
	ck_assert(!verify_raw(sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL),
	                      err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "before client-final"));
	scram_client_free(sc);

	/* client-final twice */
	sc = started_client("pw");
	ck_assert(final_raw(sc, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST),
	                    &msg, &len, err, sizeof(err)));
	ck_assert(!final_raw(sc, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST),
	                     &msg, &len, err, sizeof(err)));
	scram_client_free(sc);

	/* NULL client */
	ck_assert(!scram_verify_server(NULL, (const uint8_t *)"v=", 2, err,
	                               sizeof(err)));
	ck_assert(!scram_client_final(NULL, (const uint8_t *)"r=", 2, &msg,
	                              &len, NULL, 0));
}
END_TEST

/* ---- server-first ---- */

START_TEST(test_truncated_server_first)
{
	const char *full = RFC_SERVER_FIRST;
	size_t full_len = strlen(full);
	/* A prefix ending inside "4096" is a valid message with i=4..409. */
	size_t digits_at = full_len - 4;
	char err[256];

	for (size_t n = 0; n < full_len; n++) {
		struct scram_client *sc = started_client("pencil");
		const char *msg;
		size_t len;
		bool ok;

		err[0] = '\0';
		ok = final_raw(sc, full, n, &msg, &len, err, sizeof(err));
		if (n <= digits_at) {
			ck_assert_msg(!ok, "accepted prefix of %zu bytes", n);
			ck_assert(err[0] != '\0');
		} else {
			ck_assert_msg(ok, "prefix %zu: %s", n, err);
			ck_assert_int_ne(memcmp(msg, RFC_CLIENT_FINAL, len), 0);
		}
		scram_client_free(sc);
	}
}
END_TEST

START_TEST(test_server_nonce_checks)
{
	char err[256];

	ck_assert(try_server_first(RFC_SERVER_FIRST, err, sizeof(err)));
	ck_assert(!try_server_first("r=" RFC_NONCE ",s=" RFC_SALT ",i=4096",
	                            err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "does not extend"));
	ck_assert(!try_server_first("r=xOprNGfwEbeRWgbNEkqOabc,s=" RFC_SALT
	                            ",i=4096",
	                            err, sizeof(err)));
	ck_assert_str_eq(err, "server nonce does not start with client nonce");
	ck_assert(!try_server_first("r=rOprNG,s=" RFC_SALT ",i=4096", err,
	                            sizeof(err)));
	ck_assert_str_eq(err, "server nonce does not start with client nonce");
	ck_assert(
	    !try_server_first("r=,s=" RFC_SALT ",i=4096", err, sizeof(err)));
	ck_assert(!try_server_first(
	    "r=" RFC_NONCE "ab cd,s=" RFC_SALT ",i=4096", err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "non-printable"));
	ck_assert(!try_server_first("r=" RFC_NONCE "\x7f,s=" RFC_SALT ",i=1",
	                            err, sizeof(err)));
	ck_assert(!try_server_first("r=" RFC_NONCE "\x80,s=" RFC_SALT ",i=1",
	                            err, sizeof(err)));
	ck_assert(!try_server_first("r=" RFC_NONCE "\x01,s=" RFC_SALT ",i=1",
	                            err, sizeof(err)));
}
END_TEST

START_TEST(test_server_first_nul_inside)
{
	static const char msg[] = "r=" RFC_NONCE "ab\0c,s=" RFC_SALT ",i=1";
	struct scram_client *sc = started_client("pencil");
	const char *out;
	size_t out_len;
	char err[256];

	ck_assert(!final_raw(sc, msg, sizeof(msg) - 1, &out, &out_len, err,
	                     sizeof(err)));
	scram_client_free(sc);
}
END_TEST

START_TEST(test_server_first_structure)
{
	char err[256];

	ck_assert(!try_server_first("m=ext,r=" RFC_SERVER_NONCE ",s=" RFC_SALT
	                            ",i=4096",
	                            err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "extension"));
	ck_assert(!try_server_first(RFC_SERVER_FIRST ",x=1", err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "extensions are not supported"));
	ck_assert(!try_server_first(RFC_SERVER_FIRST ",", err, sizeof(err)));
	ck_assert(!try_server_first(
	    "s=" RFC_SALT ",r=" RFC_SERVER_NONCE ",i=4096", err, sizeof(err)));
	ck_assert(!try_server_first("r=" RFC_SERVER_NONCE ",i=4096,s=" RFC_SALT,
	                            err, sizeof(err)));
	ck_assert(!try_server_first("r=" RFC_SERVER_NONCE ",s=" RFC_SALT, err,
	                            sizeof(err)));
	ck_assert(!try_server_first(
	    "r=" RFC_SERVER_NONCE ",s=" RFC_SALT ",,i=4096", err, sizeof(err)));
	ck_assert(!try_server_first(
	    "R=" RFC_SERVER_NONCE ",s=" RFC_SALT ",i=4096", err, sizeof(err)));
	ck_assert(!try_server_first(
	    "r" RFC_SERVER_NONCE ",s=" RFC_SALT ",i=4096", err, sizeof(err)));
}
END_TEST

static void check_iterations(const char *count, bool accept)
{
	char msg[BUF], err[256];

	snprintf(msg, sizeof(msg), "r=%s,s=%s,i=%s", RFC_SERVER_NONCE, RFC_SALT,
	         count);
	ck_assert_msg(try_server_first(msg, err, sizeof(err)) == accept,
	              "i=%s: %s", count, err);
	if (!accept)
		ck_assert_ptr_nonnull(strstr(err, "iteration"));
}

START_TEST(test_iteration_count)
{
	check_iterations("1", true);
	check_iterations("4096", true);
	check_iterations("0", false);
	check_iterations("00", false);
	check_iterations("-1", false);
	check_iterations("-4096", false);
	check_iterations("+4096", false);
	check_iterations("", false);
	check_iterations("abc", false);
	check_iterations("4096x", false);
	check_iterations("40 96", false);
	check_iterations(" 4096", false);
	check_iterations("0x10", false);
	check_iterations("1000001", false);
	check_iterations("2147483648", false);
	check_iterations("4294967296", false);
	check_iterations("4294967297", false);
	check_iterations("18446744073709551617", false);
	check_iterations("99999999999999999999999999999999999999999", false);
}
END_TEST

/* The largest count we allow still works (about a second of PBKDF2). */
START_TEST(test_iteration_count_max)
{
	check_iterations("1000000", true);
}
END_TEST

START_TEST(test_bad_salt)
{
	static const char *const salts[] = {
	    "",
	    "abc",
	    "ab!d",
	    "A=AA",
	    "====",
	    "a===",
	    "AA=A",
	    " AAA",
	    "AAAA ",
	    "AAAA\n",
	    "AA\nAA",
	    "AAAAA",
	    "AA-_",
	    "AAA=A",
	    /* non-canonical: unused low bits set (canonical: "AQ==", "AAE=") */
	    "AR==",
	    "AAF=",
	};
	char msg[BUF], err[256];

	for (size_t i = 0; i < sizeof(salts) / sizeof(salts[0]); i++) {
		snprintf(msg, sizeof(msg), "r=%s,s=%s,i=4096", RFC_SERVER_NONCE,
		         salts[i]);
		ck_assert_msg(!try_server_first(msg, err, sizeof(err)),
		              "accepted salt '%s'", salts[i]);
		ck_assert_str_eq(err, "server salt is not valid base64");
	}
}
END_TEST

/*
 * Salts of many lengths (so all three padding cases): the client decodes
 * them to the right bytes only if an independent server agrees on the proof.
 */
START_TEST(test_salt_lengths_against_server)
{
	static const size_t lengths[] = {1, 2, 3, 16, 100, 1000};
	uint8_t salt[1000];
	struct test_server ts;
	bool server_ok;

	for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
		ck_assert_int_eq(RAND_bytes(salt, (int)lengths[i]), 1);
		server_make_secret(&ts, "pencil", salt, lengths[i], 16);
		ck_assert_msg(run_exchange(&ts, "pencil", &server_ok),
		              "salt of %zu bytes", lengths[i]);
		ck_assert(server_ok);
	}
}
END_TEST

START_TEST(test_independent_server)
{
	static const uint8_t salt[16] = "0123456789abcdef";
	struct test_server ts;
	bool server_ok;

	server_make_secret(&ts, "correct horse", salt, sizeof(salt), 4096);
	ck_assert(run_exchange(&ts, "correct horse", &server_ok));
	ck_assert(server_ok);
	/* Wrong password: the server refuses the proof, the client sees e=. */
	ck_assert(!run_exchange(&ts, "wrong horse", &server_ok));
	ck_assert(!server_ok);
	/* Empty and long (token-sized) passwords. */
	server_make_secret(&ts, "", salt, sizeof(salt), 4096);
	ck_assert(run_exchange(&ts, "", &server_ok));
	ck_assert(server_ok);
	{
		char token[2049];

		memset(token, 'x', sizeof(token) - 1);
		token[sizeof(token) - 1] = '\0';
		server_make_secret(&ts, token, salt, sizeof(salt), 4096);
		ck_assert(run_exchange(&ts, token, &server_ok));
		ck_assert(server_ok);
	}
}
END_TEST

/* A server that knows the wrong key: its v= must be refused. */
START_TEST(test_impostor_server)
{
	static const uint8_t salt[16] = "0123456789abcdef";
	struct test_server real, impostor;
	struct scram_client *sc = scram_client_new_with_nonce("pw", "nonce");
	char client_final[BUF], server_final[BUF], err[256];
	const char *first = "r=nonceXYZ,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096";
	const char *msg;
	size_t len;

	server_make_secret(&real, "pw", salt, sizeof(salt), 4096);
	server_make_secret(&impostor, "pw", salt, sizeof(salt), 4096);
	memset(impostor.server_key, 0x5a, sizeof(impostor.server_key));
	ck_assert(scram_client_first(sc, &msg, &len));
	ck_assert(
	    final_raw(sc, first, strlen(first), &msg, &len, err, sizeof(err)));
	memcpy(client_final, msg, len);
	client_final[len] = '\0';
	ck_assert(server_check_proof(&impostor, "n,,n=,r=nonce", first,
	                             client_final, server_final,
	                             sizeof(server_final)));
	ck_assert(!verify_raw(sc, server_final, strlen(server_final), err,
	                      sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "does not match"));
	scram_client_free(sc);
}
END_TEST

static void fill_nonce_chars(char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (char)('!' + (i * 7) % 11); /* '!'..'+', no ',' */
}

/* A server-first whose nonce is padded to make it exactly total bytes. */
static size_t long_nonce_message(char *msg, size_t cap, size_t total)
{
	const char *tail = ",s=" RFC_SALT ",i=1";
	size_t head = 2 + strlen(RFC_NONCE), fill;

	ck_assert_uint_gt(total, head + strlen(tail) + 1);
	ck_assert_uint_le(total, cap);
	fill = total - head - strlen(tail);
	memcpy(msg, "r=" RFC_NONCE, head);
	fill_nonce_chars(msg + head, fill);
	memcpy(msg + head + fill, tail, strlen(tail));
	return total;
}

START_TEST(test_long_server_nonce)
{
	static char msg[BUF];
	struct scram_client *sc;
	const char *out;
	size_t len, out_len;
	char err[256] = "";

	/* A 3000-character nonce: fine, and it is echoed in client-final. */
	sc = started_client("pencil");
	len = long_nonce_message(msg, sizeof(msg),
	                         3000 + 2 + strlen(",s=" RFC_SALT ",i=1"));
	ck_assert_msg(final_raw(sc, msg, len, &out, &out_len, err, sizeof(err)),
	              "%s", err);
	ck_assert_uint_eq(out_len, strlen("c=biws,r=") + 3000 + 3 + 44);
	scram_client_free(sc);

	/* Exactly at the limit: accepted; one byte over: rejected. */
	sc = started_client("pencil");
	len = long_nonce_message(msg, sizeof(msg), SCRAM_MAX_SERVER_MESSAGE);
	ck_assert(final_raw(sc, msg, len, &out, &out_len, err, sizeof(err)));
	scram_client_free(sc);
	sc = started_client("pencil");
	len =
	    long_nonce_message(msg, sizeof(msg), SCRAM_MAX_SERVER_MESSAGE + 1);
	ck_assert(!final_raw(sc, msg, len, &out, &out_len, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "length"));
	scram_client_free(sc);
	sc = started_client("pencil");
	len = long_nonce_message(msg, sizeof(msg), BUF);
	ck_assert(!final_raw(sc, msg, len, &out, &out_len, err, sizeof(err)));
	scram_client_free(sc);
}
END_TEST

/* ---- pseudo-random fuzzing with a fixed seed ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	/* xorshift64: reproducible across platforms, unlike rand(). */
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Mutates buf[0..*len) in place; keeps *len <= cap. */
static void mutate(uint8_t *buf, size_t *len, size_t cap)
{
	static const char interesting[] = ",=rsiepmv0123456789+/A\0\xff-";
	unsigned ops = 1 + (unsigned)(rng() % 4);

	for (unsigned k = 0; k < ops; k++) {
		size_t at = *len > 0 ? (size_t)(rng() % *len) : 0;

		switch (rng() % 6) {
		case 0: /* random byte */
			if (*len > 0)
				buf[at] = (uint8_t)rng();
			break;
		case 1: /* structural byte */
			if (*len > 0)
				buf[at] = (uint8_t)
				    interesting[rng() %
				                (sizeof(interesting) - 1)];
			break;
		case 2: /* truncate */
			*len = at;
			break;
		case 3: /* delete one byte */
			if (*len > 0) {
				memmove(buf + at, buf + at + 1, *len - at - 1);
				(*len)--;
			}
			break;
		case 4: /* insert one byte */
			if (*len < cap) {
				memmove(buf + at + 1, buf + at, *len - at);
				buf[at] = (uint8_t)
				    interesting[rng() %
				                (sizeof(interesting) - 1)];
				(*len)++;
			}
			break;
		default: /* grow with a run of nonce characters */
			while (*len < cap && rng() % 64 != 0)
				buf[(*len)++] = (uint8_t)('a' + rng() % 26);
			break;
		}
	}
}

START_TEST(test_fuzz_server_first)
{
	static const char base[] = "r=" RFC_SERVER_NONCE ",s=" RFC_SALT ",i=1";
	static uint8_t buf[SCRAM_MAX_SERVER_MESSAGE + 512];
	unsigned accepted = 0;
	char err[256];

	for (int iter = 0; iter < 20000; iter++) {
		struct scram_client *sc = started_client("pencil");
		size_t len = sizeof(base) - 1;
		const char *out;
		size_t out_len;

		memcpy(buf, base, len);
		mutate(buf, &len, sizeof(buf));
		if (final_raw(sc, buf, len, &out, &out_len, err, sizeof(err))) {
			accepted++;
			ck_assert_int_eq(memcmp(out, "c=biws,r=" RFC_NONCE,
			                        9 + strlen(RFC_NONCE)),
			                 0);
			ck_assert_uint_le(len, SCRAM_MAX_SERVER_MESSAGE);
		}
		scram_client_free(sc);
	}
	/* The mutator must reach both paths to mean anything. */
	ck_assert_uint_gt(accepted, 100);
}
END_TEST

START_TEST(test_fuzz_server_final)
{
	static const char first[] = "r=" RFC_SERVER_NONCE ",s=" RFC_SALT ",i=1";
	static uint8_t buf[SCRAM_MAX_SERVER_MESSAGE + 512];
	struct test_server ts;
	uint8_t salt[16];
	char good[BUF], err[256], client_final[BUF];

	ck_assert_int_eq(EVP_DecodeBlock(salt, (const uint8_t *)RFC_SALT, 24),
	                 18);
	server_make_secret(&ts, "pencil", salt, 16, 1);
	for (int iter = 0; iter < 20000; iter++) {
		struct scram_client *sc = started_client("pencil");
		const char *out;
		size_t out_len, len;

		ck_assert(final_raw(sc, first, strlen(first), &out, &out_len,
		                    err, sizeof(err)));
		if (iter == 0) {
			memcpy(client_final, out, out_len);
			client_final[out_len] = '\0';
			ck_assert(server_check_proof(&ts, "n,,n=,r=" RFC_NONCE,
			                             first, client_final, good,
			                             sizeof(good)));
		}
		len = strlen(good);
		memcpy(buf, iter % 2 ? good : "e=invalid-proof",
		       iter % 2 ? len : (len = 15));
		mutate(buf, &len, sizeof(buf));
		if (verify_raw(sc, buf, len, err, sizeof(err))) {
			/* Only the untouched signature may pass. */
			ck_assert_uint_eq(len, strlen(good));
			ck_assert_int_eq(memcmp(buf, good, len), 0);
		}
		scram_client_free(sc);
	}
	/* And the untouched one does pass. */
	{
		struct scram_client *sc = started_client("pencil");
		const char *out;
		size_t out_len;

		ck_assert(final_raw(sc, first, strlen(first), &out, &out_len,
		                    err, sizeof(err)));
		ck_assert(verify_raw(sc, good, strlen(good), err, sizeof(err)));
		scram_client_free(sc);
	}
}
END_TEST

/* ---- MD5 ---- */

START_TEST(test_md5_response)
{
	static const uint8_t salt1[4] = {0x01, 0x02, 0x03, 0x04};
	static const uint8_t salt2[4] = {0xde, 0xad, 0xbe, 0xef};
	char out[SCRAM_MD5_LEN];

	/* Expected values computed with Python's hashlib. */
	ck_assert(scram_md5_response("postgres", "postgres", salt1, out));
	ck_assert_str_eq(out, "md568be9ed08db75f318087ab337aaea044");
	ck_assert(scram_md5_response("user", "pencil", salt2, out));
	ck_assert_str_eq(out, "md50f5b636d891e9860623ac8ca91fc9dfc");
	ck_assert(!scram_md5_response(NULL, "pw", salt1, out));
	ck_assert(!scram_md5_response("u", NULL, salt1, out));
}
END_TEST

static Suite *scram_suite(void)
{
	Suite *s = suite_create("scram");
	TCase *tc = tcase_create("core");
	TCase *hostile = tcase_create("hostile");

	tcase_add_test(tc, test_rfc7677_vector);
	tcase_add_test(tc, test_client_first_postgres_form);
	tcase_add_test(tc, test_constructor_rejects_bad_input);
	tcase_add_test(tc, test_independent_server);
	tcase_add_test(tc, test_impostor_server);
	tcase_add_test(tc, test_salt_lengths_against_server);
	tcase_add_test(tc, test_iteration_count_max);
	tcase_add_test(tc, test_md5_response);
	suite_add_tcase(s, tc);

	tcase_add_test(hostile, test_wrong_server_signature);
	tcase_add_test(hostile, test_server_final_malformed);
	tcase_add_test(hostile, test_server_error_reported);
	tcase_add_test(hostile, test_order_enforced);
	tcase_add_test(hostile, test_truncated_server_first);
	tcase_add_test(hostile, test_server_nonce_checks);
	tcase_add_test(hostile, test_server_first_nul_inside);
	tcase_add_test(hostile, test_server_first_structure);
	tcase_add_test(hostile, test_iteration_count);
	tcase_add_test(hostile, test_bad_salt);
	tcase_add_test(hostile, test_long_server_nonce);
	tcase_add_test(hostile, test_fuzz_server_first);
	tcase_add_test(hostile, test_fuzz_server_final);
	suite_add_tcase(s, hostile);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(scram_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
