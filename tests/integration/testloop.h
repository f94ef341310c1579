/* testloop.h: runs a libevent loop in tests until a condition holds or time is
 * up. */
#ifndef LBP_TESTLOOP_H
#define LBP_TESTLOOP_H

#include <stdbool.h>
#include <time.h>

#include <event2/event.h>

static void testloop_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static inline double testloop_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs base until pred(arg) is true or timeout_s passes; returns pred's value.
 */
static inline bool testloop_until(struct event_base *base,
                                  bool (*pred)(void *arg), void *arg,
                                  double timeout_s)
{
	struct timeval tick = {0, 20000};
	struct event *ev = event_new(base, -1, EV_PERSIST, testloop_tick, NULL);
	double end = testloop_now() + timeout_s;
	bool ok;

	event_add(ev, &tick);
	while (!(ok = pred(arg)) && testloop_now() < end)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(ev);
	return ok;
}

/* Runs base for s seconds. */
static inline void testloop_run_for(struct event_base *base, double s)
{
	double end = testloop_now() + s;
	struct timeval tick = {0, 20000};
	struct event *ev = event_new(base, -1, EV_PERSIST, testloop_tick, NULL);

	event_add(ev, &tick);
	while (testloop_now() < end)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(ev);
}

static inline bool testloop_flag(void *arg)
{
	return *(bool *)arg;
}

#endif
