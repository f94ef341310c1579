/* testutil.h: helpers shared by the Check unit tests of the codecs. */
#ifndef LBP_TESTUTIL_H
#define LBP_TESTUTIL_H

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "pgwire.h"

/*
 * ck_assert writes a record per passing check to the runner; in loops of
 * hundreds of thousands of iterations that costs seconds. This one only
 * reports failures.
 */
#define REQUIRE(cond)                                                          \
	do {                                                                   \
		if (!(cond))                                                   \
			ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond);  \
	} while (0)

/* b holds exactly the len bytes of want. */
static inline void expect_buf(struct evbuffer *b, const uint8_t *want,
                              size_t len)
{
	ck_assert_uint_eq(evbuffer_get_length(b), len);
	if (len > 0)
		ck_assert_mem_eq(evbuffer_pullup(b, -1), want, len);
}

/*
 * A frame whose body lives in a heap block of exactly its size, so that
 * AddressSanitizer reports any read past the end of the frame.
 */
static inline struct pgw_frame frame_of(uint8_t type, const uint8_t *body,
                                        size_t len)
{
	uint8_t *mem = malloc(len > 0 ? len : 1);

	REQUIRE(mem != NULL);
	if (len > 0)
		memcpy(mem, body, len);
	return (struct pgw_frame){.type = type, .body = mem, .len = len};
}

static inline void frame_free(struct pgw_frame *f)
{
	free((void *)f->body);
	f->body = NULL;
}

/* Runs every test of s; the exit status main() returns. */
static inline int run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
