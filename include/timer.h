/* timer.h: arming a libevent timer in milliseconds. */
#ifndef LBP_TIMER_H
#define LBP_TIMER_H

#include <stdint.h>
#include <sys/time.h>

#include <event2/event.h>

/* (Re)arms ev to fire once, ms milliseconds from now. */
static inline void timer_add_ms(struct event *ev, uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000u),
	                     .tv_usec = (suseconds_t)(ms % 1000u) * 1000};

	evtimer_add(ev, &tv);
}

#endif
