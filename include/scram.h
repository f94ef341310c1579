/* scram.h: client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) and MD5 auth. */
#ifndef LBP_SCRAM_H
#define LBP_SCRAM_H

/*
 * Pure code, no I/O: the upstream connection carries the messages. Every
 * byte from the server is treated as hostile: lengths are bounded, base64
 * is decoded with checked sizes, the server nonce must extend ours, the
 * iteration count is bounded, and the server signature is verified in
 * constant time before the login is trusted.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_MECHANISM "SCRAM-SHA-256"
/* Longest server message we accept; PostgreSQL's are under 200 bytes. */
#define SCRAM_MAX_SERVER_MESSAGE 4096
/* Most PBKDF2 iterations we run for a server (PostgreSQL's default: 4096). */
#define SCRAM_MAX_ITERATIONS 1000000u

struct scram_client;

/* password: as given in the configuration; NULL on OOM. */
struct scram_client *scram_client_new(const char *password);
/* For tests: fixed client nonce (printable ASCII, no ','). */
struct scram_client *scram_client_new_with_nonce(const char *password,
                                                 const char *nonce);
/*
 * For tests only: also a user name for client-first-message ("n=<user>"),
 * so the RFC 7677 example can be reproduced byte for byte. PostgreSQL
 * ignores this name. user must not hold ',', '=' or control characters
 * (no RFC 5802 escaping here); NULL means "". NULL on bad input or OOM.
 */
struct scram_client *scram_client_new_for_test(const char *user,
                                               const char *password,
                                               const char *nonce);
void scram_client_free(struct scram_client *sc);

/*
 * client-first-message ("n,,n=,r=<nonce>"; PostgreSQL takes the user name
 * from the startup packet). *msg stays owned by sc.
 */
bool scram_client_first(struct scram_client *sc, const char **msg, size_t *len);

/*
 * Takes server-first-message, computes the proof and gives the
 * client-final-message (owned by sc). On false, err holds the reason.
 */
bool scram_client_final(struct scram_client *sc, const uint8_t *server_first,
                        size_t server_len, const char **msg, size_t *len,
                        char *err, size_t errlen);

/* Checks server-final-message ("v=<signature>" or "e=<error>"). */
bool scram_verify_server(struct scram_client *sc, const uint8_t *server_final,
                         size_t server_len, char *err, size_t errlen);

/*
 * ---- primitives shared with the server side (scram_server.c) ----
 */
#define SCRAM_KEY_LEN 32 /* SHA-256 output */

/* RFC 5802 "printable" (0x21..0x7e but ','), and at least one byte. */
bool scram_is_nonce(const uint8_t *s, size_t len);
/*
 * Strict base64 (padded, canonical, no whitespace) into a malloc'd buffer;
 * false on anything else or OOM.
 */
bool scram_b64_decode(const uint8_t *in, size_t len, uint8_t **out,
                      size_t *out_len);
/* Base64 into a malloc'd NUL-terminated string; NULL on OOM. */
char *scram_b64_encode(const uint8_t *in, size_t len, size_t *out_len);
bool scram_hmac_sha256(const uint8_t *key, size_t key_len, const void *data,
                       size_t data_len, uint8_t out[SCRAM_KEY_LEN]);
bool scram_sha256(const uint8_t *data, size_t len, uint8_t out[SCRAM_KEY_LEN]);

/* Everything a proof and a server signature are computed from. */
struct scram_keys {
	uint8_t salted_password[SCRAM_KEY_LEN];
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};
/* PBKDF2 (1..SCRAM_MAX_ITERATIONS rounds) and the keys RFC 5802 derives. */
bool scram_derive_keys(const char *password, size_t password_len,
                       const uint8_t *salt, size_t salt_len,
                       uint32_t iterations, struct scram_keys *k);

/* "md5" + md5hex(md5hex(password + user) + salt): 35 chars and a NUL. */
#define SCRAM_MD5_LEN 36
bool scram_md5_response(const char *user, const char *password,
                        const uint8_t salt[4], char out[SCRAM_MD5_LEN]);

#endif
