/* tls.h: OpenSSL client contexts for upstream connections, per sslmode. */
#ifndef LBP_TLS_H
#define LBP_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "config.h"

/*
 * A context for one sslmode: verify-ca and verify-full load the trust
 * anchors from rootcert (a PEM file), or from the OS store when rootcert
 * is NULL or "system"; require verifies nothing (encryption only), as in
 * libpq. TLS 1.2 is the floor. NULL with err filled on failure.
 */
SSL_CTX *tls_client_ctx_new(enum sslmode mode, const char *rootcert, char *err,
                            size_t errlen);

/*
 * A new SSL object for a connection to host: sets SNI (always, unless host
 * is an IP literal, which SNI may not carry) and, for verify-full, the name
 * or address the certificate must match. NULL on failure.
 */
SSL *tls_client_ssl_new(SSL_CTX *ctx, enum sslmode mode, const char *host,
                        char *err, size_t errlen);

/*
 * A server context for clients of the front door: the PEM certificate
 * chain and its key, TLS 1.2 at least, no compression or renegotiation.
 * NULL with err filled when a file does not load or they do not match.
 */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file,
                            char *err, size_t errlen);

/* Most recent OpenSSL error (or verify result of ssl) as one line. */
void tls_error_text(SSL *ssl, char *buf, size_t size);

#endif
