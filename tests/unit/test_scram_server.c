/* test_scram_server.c: the server side of SCRAM-SHA-256 against our client,
 * a verifier computed independently (Python hashlib), and hostile input. */
#include "scram_server.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scram.h"
#include "rng.h"
#include "testutil.h"

/* RFC 7677's password and salt; keys from hashlib.pbkdf2_hmac. */
#define PENCIL_VERIFIER                                                        \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"                         \
	"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"                        \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static const uint8_t salt16[16] = "0123456789abcdef";

/* A whole exchange of our client (password) against secret. */
static enum scram_srv_rc exchange(const struct scram_secret *secret, bool mock,
                                  const char *password, bool *client_ok)
{
	struct scram_client *sc = scram_client_new(password);
	struct scram_server *ss = scram_server_new(secret, mock);
	const char *m;
	size_t n;
	char err[256];
	enum scram_srv_rc rc;

	ck_assert(scram_client_first(sc, &m, &n));
	ck_assert_msg(scram_server_first(ss, (const uint8_t *)m, n, &m, &n, err,
	                                 sizeof(err)),
	              "%s", err);
	ck_assert(scram_client_final(sc, (const uint8_t *)m, n, &m, &n, err,
	                             sizeof(err)));
	rc = scram_server_final(ss, (const uint8_t *)m, n, &m, &n, err,
	                        sizeof(err));
	*client_ok =
	    rc == SCRAM_SRV_OK &&
	    scram_verify_server(sc, (const uint8_t *)m, n, err, sizeof(err));
	scram_client_free(sc);
	scram_server_free(ss);
	return rc;
}

START_TEST(test_verifier_parse_known)
{
	struct scram_secret s;
	bool client_ok;
	char *text;

	ck_assert(scram_secret_parse(PENCIL_VERIFIER, &s));
	ck_assert_uint_eq(s.iterations, 4096);
	ck_assert_uint_eq(s.salt_len, 16);
	ck_assert_int_eq(exchange(&s, false, "pencil", &client_ok),
	                 SCRAM_SRV_OK);
	ck_assert(client_ok); /* our client checked the server's signature */
	ck_assert_int_eq(exchange(&s, false, "pencil2", &client_ok),
	                 SCRAM_SRV_BAD_PROOF);
	text = scram_secret_format(&s);
	ck_assert_str_eq(text, PENCIL_VERIFIER);
	free(text);
}
END_TEST

START_TEST(test_make_matches_known)
{
	struct scram_secret s, known;
	char *text;

	ck_assert(scram_secret_parse(PENCIL_VERIFIER, &known));
	ck_assert(
	    scram_secret_make("pencil", known.salt, known.salt_len, 4096, &s));
	text = scram_secret_format(&s);
	ck_assert_str_eq(text, PENCIL_VERIFIER);
	free(text);
	ck_assert(!scram_secret_make("x", salt16, 0, 4096, &s));
	ck_assert(!scram_secret_make("x", salt16, 16, 0, &s));
}
END_TEST

START_TEST(test_mock_always_fails)
{
	static const uint8_t key[32] = {1, 2, 3};
	struct scram_secret a, b;
	bool client_ok;

	ck_assert(scram_secret_mock("ghost", key, sizeof(key), &a));
	ck_assert(scram_secret_mock("ghost", key, sizeof(key), &b));
	ck_assert_mem_eq(a.salt, b.salt, a.salt_len); /* stable per name */
	ck_assert(scram_secret_mock("other", key, sizeof(key), &b));
	ck_assert(memcmp(a.salt, b.salt, a.salt_len) != 0);
	ck_assert_int_eq(exchange(&a, true, "", &client_ok),
	                 SCRAM_SRV_BAD_PROOF);
	/* even the right password of a real secret fails when mocked */
	ck_assert(scram_secret_make("pw", salt16, 16, 4096, &a));
	ck_assert_int_eq(exchange(&a, true, "pw", &client_ok),
	                 SCRAM_SRV_BAD_PROOF);
	ck_assert_int_eq(exchange(&a, false, "pw", &client_ok), SCRAM_SRV_OK);
}
END_TEST

START_TEST(test_verifier_rejected)
{
	static const char *const bad[] = {
	    "",
	    "md5abcdef",
	    "SCRAM-SHA-256$",
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$",
	    "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$99999999999:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$4294967297:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$-1:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$4096:$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6g===$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    /* a 31-byte stored key */
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4g==:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    /* trailing garbage */
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=x",
	    "scram-sha-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	};
	struct scram_secret s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!scram_secret_parse(bad[i], &s), "case %zu", i);
	ck_assert(!scram_secret_parse(NULL, &s));
}
END_TEST

/* client-first-messages the server must refuse. */
START_TEST(test_client_first_rejected)
{
	char longnonce[300 + 16];
	static const char *const bad[] = {
	    "",
	    "n,,",
	    "p=tls-server-end-point,,n=,r=abc", /* channel binding */
	    "n,a=admin,n=,r=abc",               /* authzid */
	    "x,,n=,r=abc",
	    "n,,n=,r=",          /* empty nonce */
	    "n,,n=,r=a b",       /* space in nonce */
	    "n,,n=,r=abc,ext=1", /* extension */
	    "n,,m=ext,n=,r=abc", /* reserved m= */
	    "n,,r=abc",          /* no n= */
	    "n,,n=user",         /* no r= */
	    "n,,n=,s=abc",
	};
	struct scram_secret secret;
	char err[128];
	const char *out;
	size_t n;

	ck_assert(scram_secret_make("pw", salt16, 16, 1, &secret));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct scram_server *ss = scram_server_new(&secret, false);

		ck_assert_msg(!scram_server_first(ss, (const uint8_t *)bad[i],
		                                  strlen(bad[i]), &out, &n, err,
		                                  sizeof(err)),
		              "case %zu accepted", i);
		scram_server_free(ss);
	}
	/* a nonce of 257 bytes: refused; of 256: fine */
	for (size_t len = 256; len <= 257; len++) {
		struct scram_server *ss = scram_server_new(&secret, false);

		memcpy(longnonce, "n,,n=,r=", 8);
		memset(longnonce + 8, 'x', len);
		ck_assert_int_eq(scram_server_first(ss, (uint8_t *)longnonce,
		                                    8 + len, &out, &n, err,
		                                    sizeof(err)),
		                 len == 256);
		scram_server_free(ss);
	}
}
END_TEST

/*
 * Runs client-first, then feeds head + nonce + tail as client-final, where
 * nonce is the server's whole nonce (full) or the client's part ("abc").
 */
static enum scram_srv_rc final_with(const char *head, bool full,
                                    const char *tail)
{
	struct scram_secret secret;
	struct scram_server *ss;
	const char *out, *nonce;
	size_t n, nlen;
	char err[128], final[512];
	enum scram_srv_rc rc;

	ck_assert(scram_secret_make("pw", salt16, 16, 1, &secret));
	ss = scram_server_new(&secret, false);
	ck_assert(scram_server_first(ss, (const uint8_t *)"n,,n=,r=abc", 11,
	                             &out, &n, err, sizeof(err)));
	nonce = full ? out + 2 : "abc,";
	nlen = (size_t)(strchr(nonce, ',') - nonce);
	snprintf(final, sizeof(final), "%s%.*s%s", head, (int)nlen, nonce,
	         tail);
	rc = scram_server_final(ss, (const uint8_t *) final, strlen(final),
	                        &out, &n, err, sizeof(err));
	scram_server_free(ss);
	return rc;
}

#define P44 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

START_TEST(test_client_final_rejected)
{
	/* well-formed but a wrong proof */
	ck_assert_int_eq(final_with("c=biws,r=", true, ",p=" P44),
	                 SCRAM_SRV_BAD_PROOF);
	/* not the gs2 header the client sent first */
	ck_assert_int_eq(final_with("c=eSws,r=", true, ",p=" P44),
	                 SCRAM_SRV_PROTOCOL);
	/* nonce extended, or only the client's part */
	ck_assert_int_eq(final_with("c=biws,r=", true, "X,p=" P44),
	                 SCRAM_SRV_PROTOCOL);
	ck_assert_int_eq(final_with("c=biws,r=", false, ",p=" P44),
	                 SCRAM_SRV_PROTOCOL);
	/* short, long or non-base64 proof; an extension */
	ck_assert_int_eq(final_with("c=biws,r=", true, ",p=AAAA"),
	                 SCRAM_SRV_PROTOCOL);
	ck_assert_int_eq(final_with("c=biws,r=", true, ",p=" P44 "A"),
	                 SCRAM_SRV_PROTOCOL);
	ck_assert_int_eq(final_with("c=biws,r=", true,
	                            ",p=!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	                            "AAAAAA="),
	                 SCRAM_SRV_PROTOCOL);
	ck_assert_int_eq(final_with("c=biws,r=", true, ",x=1,p=" P44),
	                 SCRAM_SRV_PROTOCOL);
	ck_assert_int_eq(final_with("", true, ""), SCRAM_SRV_PROTOCOL);
}
END_TEST

START_TEST(test_out_of_order)
{
	struct scram_secret secret;
	struct scram_server *ss;
	const char *out;
	size_t n;
	char err[128];

	ck_assert(scram_secret_make("pw", salt16, 16, 1, &secret));
	ss = scram_server_new(&secret, false);
	ck_assert_int_eq(scram_server_final(ss, (const uint8_t *)"c=biws", 6,
	                                    &out, &n, err, sizeof(err)),
	                 SCRAM_SRV_PROTOCOL);
	/* a failed exchange stays failed */
	ck_assert(!scram_server_first(ss, (const uint8_t *)"n,,n=,r=abc", 11,
	                              &out, &n, err, sizeof(err)));
	scram_server_free(ss);
}
END_TEST

static uint64_t rng_state = 0x243f6a8885a308d3ull;

/* fixed seed: a failure reproduces exactly */
static uint64_t rng(void)
{
	return rng_next(&rng_state);
}

/* Mutated real client messages: never a crash, never a wrong yes. */
START_TEST(test_mutated_exchanges)
{
	struct scram_secret secret;

	ck_assert(scram_secret_make("pw", salt16, 16, 1, &secret));
	for (int it = 0; it < 3000; it++) {
		struct scram_client *sc = scram_client_new("pw");
		struct scram_server *ss = scram_server_new(&secret, false);
		const char *m;
		size_t n;
		char err[256], buf[1024];
		bool first = it % 2 == 0;

		ck_assert(scram_client_first(sc, &m, &n));
		memcpy(buf, m, n);
		if (first) {
			buf[rng() % n] = (char)rng();
			n = rng() % 3 == 0 ? rng() % (n + 1) : n;
		}
		if (scram_server_first(ss, (uint8_t *)buf, n, &m, &n, err,
		                       sizeof(err)) &&
		    scram_client_final(sc, (const uint8_t *)m, n, &m, &n, err,
		                       sizeof(err))) {
			memcpy(buf, m, n);
			if (!first) {
				size_t pos = rng() % n;
				char was = buf[pos];

				buf[pos] = (char)rng();
				if (buf[pos] == was)
					buf[pos] ^= 1;
			}
			REQUIRE(scram_server_final(ss, (uint8_t *)buf, n, &m,
			                           &n, err, sizeof(err)) !=
			            SCRAM_SRV_OK ||
			        first);
		}
		scram_client_free(sc);
		scram_server_free(ss);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("scram_server");
	TCase *tc = tcase_create("server");

	tcase_add_test(tc, test_verifier_parse_known);
	tcase_add_test(tc, test_make_matches_known);
	tcase_add_test(tc, test_mock_always_fails);
	tcase_add_test(tc, test_verifier_rejected);
	tcase_add_test(tc, test_client_first_rejected);
	tcase_add_test(tc, test_client_final_rejected);
	tcase_add_test(tc, test_out_of_order);
	tcase_add_test(tc, test_mutated_exchanges);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(suite());
}
