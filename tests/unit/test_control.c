/* test_control.c: the control plane's pure parts: API answers, RFC 3339,
 * Retry-After, backoff. */
#include "control_parse.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN "eyJ-secret-token-value"

static char err[512];

static bool cred(const char *json, const char *key, char **tok, int64_t *exp)
{
	err[0] = '\0';
	return ctl_parse_credential(json, strlen(json), key, tok, exp, err,
	                            sizeof(err));
}

/* The error text of a failed credential parse; it never holds the token. */
static const char *cred_error(const char *json)
{
	char *tok = NULL;
	int64_t exp;

	ck_assert_msg(!cred(json, "expiration_time", &tok, &exp), "%s", json);
	ck_assert_ptr_null(tok);
	ck_assert_ptr_null(strstr(err, "secret"));
	return err;
}

START_TEST(rfc3339_forms)
{
	int64_t ms;

	ck_assert(ctl_parse_rfc3339("1970-01-01T00:00:00Z", &ms));
	ck_assert_int_eq(ms, 0);
	ck_assert(ctl_parse_rfc3339("2026-11-24T12:00:00Z", &ms));
	ck_assert_int_eq(ms, 1795521600000LL);
	ck_assert(ctl_parse_rfc3339("2026-11-24T12:00:00.5Z", &ms));
	ck_assert_int_eq(ms, 1795521600500LL);
	ck_assert(ctl_parse_rfc3339("2026-11-24T12:00:00.123456789Z", &ms));
	ck_assert_int_eq(ms, 1795521600123LL);
	ck_assert(ctl_parse_rfc3339("2026-11-24T14:00:00+02:00", &ms));
	ck_assert_int_eq(ms, 1795521600000LL);
	ck_assert(ctl_parse_rfc3339("2026-11-24t06:30:00-05:30", &ms));
	ck_assert_int_eq(ms, 1795521600000LL);
	ck_assert(ctl_parse_rfc3339("2024-02-29T00:00:00Z", &ms));
	ck_assert(ctl_parse_rfc3339("1969-12-31T23:59:59Z", &ms));
	ck_assert_int_eq(ms, -1000);
}
END_TEST

START_TEST(rfc3339_rejects)
{
	static const char *const bad[] = {"",
	                                  "2026-11-24",
	                                  "2026-11-24T12:00:00",
	                                  "2026-11-24T12:00Z",
	                                  "2026-13-01T00:00:00Z",
	                                  "2026-02-29T00:00:00Z",
	                                  "2026-11-31T00:00:00Z",
	                                  "2026-11-24T24:00:00Z",
	                                  "2026-11-24T12:60:00Z",
	                                  "2026-11-24T12:00:61Z",
	                                  "2026-11-24T12:00:00.Z",
	                                  "2026-11-24T12:00:00+0200",
	                                  "2026-11-24T12:00:00+24:00",
	                                  "2026-11-24T12:00:00Zjunk",
	                                  "+2026-11-24T12:00:00Z",
	                                  "2026-1-24T12:00:00Z",
	                                  "1795521600"};
	int64_t ms;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!ctl_parse_rfc3339(bad[i], &ms), "%s", bad[i]);
	ck_assert(!ctl_parse_rfc3339(NULL, &ms));
}
END_TEST

START_TEST(format_time)
{
	char buf[32];

	ctl_format_time(1795521600123LL, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2026-11-24T12:00:00Z");
}
END_TEST

START_TEST(retry_after)
{
	/* Sun, 06 Nov 1994 08:49:37 GMT */
	const int64_t date = 784111777;
	unsigned d;

	ck_assert(ctl_parse_retry_after("0", 0, &d));
	ck_assert_uint_eq(d, 0);
	ck_assert(ctl_parse_retry_after("120", 0, &d));
	ck_assert_uint_eq(d, 120);
	ck_assert(ctl_parse_retry_after("99999999999999999999999", 0, &d));
	ck_assert_uint_eq(d, 86400);
	ck_assert(ctl_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT",
	                                date - 30, &d));
	ck_assert_uint_eq(d, 30);
	/* a date in the past means now */
	ck_assert(ctl_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT",
	                                date + 30, &d));
	ck_assert_uint_eq(d, 0);
	ck_assert(!ctl_parse_retry_after("", 0, &d));
	ck_assert(!ctl_parse_retry_after("-5", 0, &d));
	ck_assert(!ctl_parse_retry_after("5s", 0, &d));
	ck_assert(!ctl_parse_retry_after("1.5", 0, &d));
	ck_assert(!ctl_parse_retry_after("soon", 0, &d));
	ck_assert(!ctl_parse_retry_after("Sun, 06 Nov 1994 08:49:37", 0, &d));
	ck_assert(
	    !ctl_parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", 0, &d));
	ck_assert(
	    !ctl_parse_retry_after("Sun, 31 Nov 1994 08:49:37 GMT", 0, &d));
	ck_assert(
	    !ctl_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMTx", 0, &d));
	ck_assert(!ctl_parse_retry_after(NULL, 0, &d));
}
END_TEST

START_TEST(credential_ok)
{
	char *tok = NULL;
	int64_t exp;

	ck_assert_msg(cred("{\"token\": \"" TOKEN "\", \"expiration_time\": "
	                   "\"2026-11-24T12:00:00Z\"}",
	                   "expiration_time", &tok, &exp),
	              "%s", err);
	ck_assert_str_eq(tok, TOKEN);
	ck_assert_int_eq(exp, 1795521600000LL);
	free(tok);
	/* autoscaling names the field differently */
	ck_assert_msg(cred("{\"token\":\"t\",\"expire_time\":"
	                   "\"2026-11-24T12:00:00.250Z\",\"extra\":[1]}",
	                   "expire_time", &tok, &exp),
	              "%s", err);
	ck_assert_int_eq(exp, 1795521600250LL);
	free(tok);
}
END_TEST

START_TEST(credential_bad)
{
	ck_assert_str_eq(cred_error("{\"token\": \"" TOKEN),
	                 "malformed JSON at line 1 column 33");
	ck_assert_str_eq(cred_error("not json " TOKEN),
	                 "malformed JSON at line 1 column 3");
	ck_assert_str_eq(cred_error("[\"" TOKEN "\"]"),
	                 "the answer is not a JSON object");
	ck_assert_str_eq(cred_error("{}"), "the answer has no \"token\"");
	ck_assert_str_eq(cred_error("{\"token\": 42}"),
	                 "\"token\" is a number, not a string");
	ck_assert_str_eq(cred_error("{\"token\": null}"),
	                 "\"token\" is null, not a string");
	ck_assert_str_eq(cred_error("{\"token\": \"\"}"),
	                 "\"token\" is empty or holds a NUL");
	/* jansson refuses NUL inside strings unless asked */
	ck_assert_str_eq(cred_error("{\"token\": \"a\\u0000b\"}"),
	                 "malformed JSON at line 1 column 20");
	ck_assert_str_eq(cred_error("{\"token\": \"" TOKEN "\"}"),
	                 "the answer has no \"expiration_time\"");
	ck_assert_str_eq(
	    cred_error("{\"token\": \"" TOKEN "\", \"expiration_time\": 3600}"),
	    "\"expiration_time\" is a number, not a string");
	ck_assert_str_eq(cred_error("{\"token\": \"" TOKEN
	                            "\", \"expiration_time\": \"tomorrow\"}"),
	                 "\"expiration_time\" is not an RFC 3339 time");
	ck_assert_str_eq(cred_error("{\"token\": \"a\", \"token\": \"b\"}"),
	                 "malformed JSON at line 1 column 22");
	ck_assert_str_eq(cred_error(""), "malformed JSON at line 1 column 0");
}
END_TEST

static bool oauth(const char *json, char **tok)
{
	int64_t exp;

	return ctl_parse_oauth(json, strlen(json), 0, tok, &exp, err,
	                       sizeof(err));
}

START_TEST(oauth_answer)
{
	char *tok = NULL;
	int64_t exp;
	const char *ok = "{\"access_token\":\"" TOKEN "\",\"token_type\":"
	                 "\"Bearer\",\"expires_in\":3600}";

	ck_assert(ctl_parse_oauth(ok, strlen(ok), 1000, &tok, &exp, err,
	                          sizeof(err)));
	ck_assert_str_eq(tok, TOKEN);
	ck_assert_int_eq(exp, 3601000);
	free(tok);
	tok = NULL;
	ck_assert(
	    !oauth("{\"access_token\":\"x\",\"expires_in\":\"3600\"}", &tok));
	ck_assert_str_eq(err, "\"expires_in\" is missing or not a positive "
	                      "whole number of seconds");
	ck_assert(!oauth("{\"access_token\":\"x\",\"expires_in\":0}", &tok));
	ck_assert(!oauth("{\"expires_in\":10}", &tok));
	ck_assert_str_eq(err, "the answer has no \"access_token\"");
	ck_assert_ptr_null(tok);
}
END_TEST

static bool instance(const char *json, char **host)
{
	*host = NULL;
	return ctl_parse_instance(json, strlen(json), "inst-1", host, err,
	                          sizeof(err));
}

START_TEST(instance_answer)
{
	char *host;

	ck_assert(instance("{\"name\":\"inst-1\",\"state\":\"AVAILABLE\","
	                   "\"read_write_dns\":\"instance-1.db.example\"}",
	                   &host));
	ck_assert_str_eq(host, "instance-1.db.example");
	free(host);
	ck_assert(!instance("{\"state\":\"STOPPED\",\"read_write_dns\":\"h\"}",
	                    &host));
	ck_assert_str_eq(err, "instance inst-1 is STOPPED");
	ck_assert(!instance(
	    "{\"state\":\"we\\\"ird\",\"read_write_dns\":\"h\"}", &host));
	ck_assert_str_eq(err, "instance inst-1 is in an unknown state");
	ck_assert(!instance("{\"read_write_dns\":\"h\"}", &host));
	ck_assert_str_eq(err, "the answer has no \"state\"");
	ck_assert(!instance("{\"state\":\"AVAILABLE\"}", &host));
	ck_assert_str_eq(err, "the answer has no \"read_write_dns\"");
	ck_assert(!instance("{\"state\":\"AVAILABLE\",\"read_write_dns\":[]}",
	                    &host));
	ck_assert_str_eq(err, "\"read_write_dns\" is an array, not a string");
	ck_assert_ptr_null(host);
}
END_TEST

START_TEST(endpoint_answer)
{
	const char *ok = "{\"name\":\"projects/p/branches/b/endpoints/e\","
	                 "\"status\":{\"hosts\":{\"host\":\"ep.db.example\"}}}";
	const char *no_hosts = "{\"status\":{\"current_state\":\"ACTIVE\"}}";
	const char *bad_host = "{\"status\":{\"hosts\":{\"host\":true}}}";
	char *host = NULL;

	ck_assert(ctl_parse_endpoint(ok, strlen(ok), &host, err, sizeof(err)));
	ck_assert_str_eq(host, "ep.db.example");
	free(host);
	host = NULL;
	ck_assert(!ctl_parse_endpoint(no_hosts, strlen(no_hosts), &host, err,
	                              sizeof(err)));
	ck_assert_str_eq(err, "the answer has no object \"status.hosts\"");
	ck_assert(!ctl_parse_endpoint(bad_host, strlen(bad_host), &host, err,
	                              sizeof(err)));
	ck_assert_str_eq(err,
	                 "\"status.hosts.host\" is a boolean, not a string");
	ck_assert(
	    !ctl_parse_endpoint("{\"status\":7}", 12, &host, err, sizeof(err)));
	ck_assert_ptr_null(host);
}
END_TEST

static const char *api_error(const char *json)
{
	static char out[256];

	ctl_parse_api_error(json, strlen(json), out, sizeof(out));
	return out;
}

START_TEST(api_errors)
{
	ck_assert_str_eq(api_error("{\"error_code\":\"NOT_FOUND\",\"message\":"
	                           "\"Database instance 'x' not found\"}"),
	                 "error_code=\"NOT_FOUND\" message=\"Database instance "
	                 "'x' not found\"");
	ck_assert_str_eq(api_error("{\"error\":\"invalid_client\","
	                           "\"error_description\":\"bad \\\"id\\\"\"}"),
	                 "error=\"invalid_client\" "
	                 "error_description=\"bad \\\"id\\\"\"");
	ck_assert_str_eq(api_error("<html>502 Bad Gateway</html>"), "");
	ck_assert_str_eq(api_error("{\"error_code\":5}"), "");
	ck_assert_str_eq(api_error(""), "");
}
END_TEST

START_TEST(backoff)
{
	ck_assert_uint_eq(ctl_backoff_ms(1, 1000, 60000, 0), 500);
	ck_assert_uint_eq(ctl_backoff_ms(1, 1000, 60000, 500), 1000);
	ck_assert_uint_eq(ctl_backoff_ms(2, 1000, 60000, 0), 1000);
	ck_assert_uint_eq(ctl_backoff_ms(3, 1000, 60000, 0), 2000);
	ck_assert_uint_eq(ctl_backoff_ms(30, 1000, 60000, 0), 30000);
	ck_assert_uint_eq(ctl_backoff_ms(30, 1000, 60000, 30000), 60000);
	for (uint64_t r = 0; r < 1000; r += 7) {
		unsigned d = ctl_backoff_ms(4, 100, 60000, r * 7919);

		ck_assert(d >= 400 && d <= 800);
	}
}
END_TEST

START_TEST(uuid4)
{
	char a[37], b[37];

	ck_assert(ctl_uuid4(a));
	ck_assert(ctl_uuid4(b));
	ck_assert_uint_eq(strlen(a), 36);
	ck_assert_str_ne(a, b);
	ck_assert(a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-');
	ck_assert_int_eq(a[14], '4');
	ck_assert_ptr_nonnull(strchr("89ab", a[19]));
}
END_TEST

static Suite *control_suite(void)
{
	Suite *s = suite_create("control");
	TCase *t = tcase_create("pure");

	tcase_add_test(t, rfc3339_forms);
	tcase_add_test(t, rfc3339_rejects);
	tcase_add_test(t, format_time);
	tcase_add_test(t, retry_after);
	tcase_add_test(t, credential_ok);
	tcase_add_test(t, credential_bad);
	tcase_add_test(t, oauth_answer);
	tcase_add_test(t, instance_answer);
	tcase_add_test(t, endpoint_answer);
	tcase_add_test(t, api_errors);
	tcase_add_test(t, backoff);
	tcase_add_test(t, uuid4);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(control_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
