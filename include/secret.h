/* secret.h: heap strings that hold secrets (passwords, tokens): wiped before
 * free. */
#ifndef LBP_SECRET_H
#define LBP_SECRET_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* Wipes and frees s (NULL: nothing). */
static inline void secret_free(char *s)
{
	if (s != NULL)
		OPENSSL_cleanse(s, strlen(s));
	free(s);
}

/*
 * *slot becomes a copy of value (NULL: none); the old one is wiped. false
 * on OOM, and then *slot is left as it was.
 */
static inline bool secret_replace(char **slot, const char *value)
{
	char *copy = NULL;

	if (value != NULL && (copy = strdup(value)) == NULL)
		return false;
	secret_free(*slot);
	*slot = copy;
	return true;
}

/*
 * given equals want, in time that depends on neither (digests are
 * compared, so not even the length shows).
 */
static inline bool secret_equal(const char *want, const char *given)
{
	unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
	unsigned int la = 0, lb = 0;

	if (!EVP_Digest(want, strlen(want), a, &la, EVP_sha256(), NULL) ||
	    !EVP_Digest(given, strlen(given), b, &lb, EVP_sha256(), NULL))
		return false;
	return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}

#endif
