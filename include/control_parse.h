/* control_parse.h: pure parsing for the control plane: API answers, RFC 3339,
 * Retry-After. */
#ifndef LBP_CONTROL_PARSE_H
#define LBP_CONTROL_PARSE_H

/*
 * No I/O here, so every function is unit-tested with hostile input
 * (tests/unit/test_control.c). Answers come from the network: a field of
 * the wrong type, a missing field or bad JSON is an error, never a crash.
 * Error texts name fields and JSON positions, never field values: a
 * half-received credential must not end up in a log line.
 *
 * Times are milliseconds since the Unix epoch (wall clock).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "2026-11-24T12:00:00.123Z", "...+02:00"; false if not RFC 3339. */
bool ctl_parse_rfc3339(const char *s, int64_t *ms);
/* The inverse for log lines, UTC with seconds: "2026-11-24T12:00:00Z". */
void ctl_format_time(int64_t ms, char *buf, size_t size);

/*
 * A Retry-After header value: delta-seconds ("120") or an HTTP date
 * ("Sun, 06 Nov 1994 08:49:37 GMT", relative to now_s, never negative).
 */
bool ctl_parse_retry_after(const char *value, int64_t now_s, unsigned *delay_s);

/* The OIDC token answer: access_token and expires_in (seconds from now). */
bool ctl_parse_oauth(const char *body, size_t len, int64_t now_ms, char **token,
                     int64_t *expires_ms, char *err, size_t errlen);

/*
 * GET /api/2.0/database/instances/{name}: read_write_dns, but only when
 * state is AVAILABLE ("instance \"x\" is STOPPED" otherwise).
 */
bool ctl_parse_instance(const char *body, size_t len, const char *name,
                        char **host, char *err, size_t errlen);

/* GET /api/2.0/postgres/{endpoint}: status.hosts.host. */
bool ctl_parse_endpoint(const char *body, size_t len, char **host, char *err,
                        size_t errlen);

/*
 * A database credential: token and expiry_key (expiration_time for
 * provisioned instances, expire_time for autoscaling endpoints).
 */
bool ctl_parse_credential(const char *body, size_t len, const char *expiry_key,
                          char **token, int64_t *expires_ms, char *err,
                          size_t errlen);

/*
 * What an error answer says, for its log line: error_code and message
 * (Databricks API) or error and error_description (OAuth), quoted; ""
 * when the body is not such JSON.
 */
void ctl_parse_api_error(const char *body, size_t len, char *out,
                         size_t outlen);

/*
 * Equal-jitter exponential backoff: attempt 1 waits about base_ms, each
 * further one twice as long, up to max_ms; half of it is random.
 */
unsigned ctl_backoff_ms(unsigned attempt, unsigned base_ms, unsigned max_ms,
                        uint64_t random);

/* A random (version 4) UUID from RAND_bytes; false if OpenSSL fails. */
bool ctl_uuid4(char out[37]);

#endif
