/* scram_server.h: server side of SCRAM-SHA-256, for clients logging in to the
 * proxy's PostgreSQL front door. */
#ifndef LBP_SCRAM_SERVER_H
#define LBP_SCRAM_SERVER_H

/*
 * Pure code, no I/O. Every byte from the client is hostile: message sizes
 * and nonce lengths are bounded before anything is copied or joined (two
 * 2026 PgBouncer CVEs came from an unchecked long nonce and an integer
 * overflow), base64 is strict, the channel-binding header must be the one
 * the client first sent, and the proof is compared in constant time. A
 * user the proxy does not know gets the same exchange as one it knows, with
 * a salt that is stable per name, and fails only at the proof, as
 * PostgreSQL does, so that names can not be probed.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scram.h"

/* Longest client message accepted (PostgreSQL's are under 200 bytes). */
#define SCRAM_MAX_CLIENT_MESSAGE 2048
/* Longest client nonce accepted. */
#define SCRAM_MAX_CLIENT_NONCE 256
#define SCRAM_MAX_SALT         64
/* PostgreSQL's default, used for plain passwords and made verifiers. */
#define SCRAM_DEFAULT_ITERATIONS 4096
#define SCRAM_DEFAULT_SALT_LEN   16

/* What the server must know: a pg_authid SCRAM verifier, decoded. */
struct scram_secret {
	uint32_t iterations;
	uint8_t salt[SCRAM_MAX_SALT];
	size_t salt_len;
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

/*
 * "SCRAM-SHA-256$<iter>:<salt>$<stored>:<server>" (base64 parts, keys of 32
 * bytes, iterations 1..SCRAM_MAX_ITERATIONS). false when s is not one.
 */
bool scram_secret_parse(const char *s, struct scram_secret *out);
/* A verifier of password with this salt and iteration count. */
bool scram_secret_make(const char *password, const uint8_t *salt,
                       size_t salt_len, uint32_t iterations,
                       struct scram_secret *out);
/* The verifier's text, malloc'd; NULL on OOM. */
char *scram_secret_format(const struct scram_secret *s);

/*
 * For a user the proxy does not know: a salt that is the same on every
 * attempt (HMAC of the name under key, a secret of the process), so that
 * repeated tries can not tell unknown from known names.
 */
bool scram_secret_mock(const char *user, const uint8_t *key, size_t key_len,
                       struct scram_secret *out);

struct scram_server;

/*
 * One exchange against secret (copied). mock: the user is unknown (or has
 * no usable secret): the exchange runs as usual and always ends in a wrong
 * proof. NULL on OOM.
 */
struct scram_server *scram_server_new(const struct scram_secret *secret,
                                      bool mock);
void scram_server_free(struct scram_server *ss);

/*
 * Takes client-first-message ("n,,n=<ignored>,r=<nonce>"), gives
 * server-first-message (owned by ss). false with err on a malformed
 * message, channel binding asked for, an authzid, or an extension.
 */
bool scram_server_first(struct scram_server *ss, const uint8_t *msg, size_t len,
                        const char **out, size_t *out_len, char *err,
                        size_t errlen);

enum scram_srv_rc {
	SCRAM_SRV_OK,        /* proof right: *out is server-final-message */
	SCRAM_SRV_BAD_PROOF, /* wrong password (or unknown user) */
	SCRAM_SRV_PROTOCOL   /* malformed, out of order or OOM: see err */
};

/* Takes client-final-message and checks the proof. */
enum scram_srv_rc scram_server_final(struct scram_server *ss,
                                     const uint8_t *msg, size_t len,
                                     const char **out, size_t *out_len,
                                     char *err, size_t errlen);

#endif
