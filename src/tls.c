/* tls.c: OpenSSL client contexts and per-connection SSL objects. */
#include "tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

static void openssl_error_text(char *buf, size_t size, const char *what)
{
	unsigned long e = ERR_get_error();
	char reason[256];

	if (e == 0) {
		snprintf(buf, size, "%s", what);
		return;
	}
	ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	snprintf(buf, size, "%s: %s", what, reason);
}

static bool is_ip_literal(const char *host)
{
	unsigned char tmp[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, tmp) == 1 ||
	       inet_pton(AF_INET6, host, tmp) == 1;
}

static bool load_trust(SSL_CTX *ctx, const char *rootcert, char *err,
                       size_t errlen)
{
	if (rootcert == NULL || strcmp(rootcert, "system") == 0) {
		if (SSL_CTX_set_default_verify_paths(ctx) == 1)
			return true;
		openssl_error_text(err, errlen,
		                   "cannot load the system trust store");
		return false;
	}
	if (SSL_CTX_load_verify_locations(ctx, rootcert, NULL) == 1)
		return true;
	char what[1200];
	snprintf(what, sizeof(what), "cannot load sslrootcert %s", rootcert);
	openssl_error_text(err, errlen, what);
	return false;
}

SSL_CTX *tls_client_ctx_new(enum sslmode mode, const char *rootcert, char *err,
                            size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		openssl_error_text(err, errlen, "SSL_CTX_new failed");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Renegotiation and compression buy nothing here and cost CVEs. */
	SSL_CTX_set_options(ctx,
	                    SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	if (mode == SSLMODE_VERIFY_CA || mode == SSLMODE_VERIFY_FULL) {
		if (!load_trust(ctx, rootcert, err, errlen)) {
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
}

static bool set_expected_peer(SSL *ssl, const char *host, bool ip, char *err,
                              size_t errlen)
{
	X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
	int ok;

	/* No wildcard partial labels ("f*.example.com"), as RFC 6125 advises.
	 */
	X509_VERIFY_PARAM_set_hostflags(param,
	                                X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (ip)
		ok = X509_VERIFY_PARAM_set1_ip_asc(param, host);
	else
		ok = X509_VERIFY_PARAM_set1_host(param, host, 0);
	if (ok != 1) {
		openssl_error_text(err, errlen,
		                   "cannot set expected host name");
		return false;
	}
	return true;
}

SSL *tls_client_ssl_new(SSL_CTX *ctx, enum sslmode mode, const char *host,
                        char *err, size_t errlen)
{
	bool ip = is_ip_literal(host);
	SSL *ssl = SSL_new(ctx);

	if (ssl == NULL) {
		openssl_error_text(err, errlen, "SSL_new failed");
		return NULL;
	}
	/* Lakebase routes connections by SNI, so it is never optional. */
	if (!ip && SSL_set_tlsext_host_name(ssl, host) != 1) {
		openssl_error_text(err, errlen, "cannot set SNI");
		goto fail;
	}
	if (mode == SSLMODE_VERIFY_FULL &&
	    !set_expected_peer(ssl, host, ip, err, errlen))
		goto fail;
	return ssl;
fail:
	SSL_free(ssl);
	return NULL;
}

SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file,
                            char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char what[1200];

	if (ctx == NULL) {
		openssl_error_text(err, errlen, "SSL_CTX_new failed");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	                             SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		snprintf(what, sizeof(what), "cannot load tls_cert_file %s",
		         cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(what, sizeof(what),
		         "cannot load tls_key_file %s (or it does not match "
		         "the certificate)",
		         key_file);
		goto fail;
	}
	return ctx;
fail:
	openssl_error_text(err, errlen, what);
	SSL_CTX_free(ctx);
	return NULL;
}

void tls_error_text(SSL *ssl, char *buf, size_t size)
{
	long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

	if (vr != X509_V_OK) {
		ERR_clear_error();
		snprintf(buf, size, "certificate verify failed: %s",
		         X509_verify_cert_error_string(vr));
		return;
	}
	openssl_error_text(buf, size, "TLS error");
}
