/* netaddr.h: listen addresses ("host:port", "[v6]:port", "unix:/path"). */
#ifndef LBP_NETADDR_H
#define LBP_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct na_listen {
	bool is_unix;
	char path[108]; /* sun_path */
	char host[256]; /* without brackets */
	uint16_t port;
};

/* false with err filled when s is not one of the three forms. */
bool na_parse_listen(const char *s, struct na_listen *out, char *err,
                     size_t errlen);
/* Unix sockets, localhost, 127.0.0.0/8 and ::1 are loopback. */
bool na_is_loopback(const struct na_listen *l);

/*
 * A listening socket on addr, driven by base: TCP (the host resolved now,
 * blocking: call it at start), or a unix socket (a stale socket file at
 * the path is removed first). NULL with err filled.
 */
struct event_base;
struct evconnlistener;
struct sockaddr;
typedef void (*na_accept_cb)(struct evconnlistener *l, int fd,
                             struct sockaddr *sa, int socklen, void *arg);
struct evconnlistener *na_listener_new(struct event_base *base,
                                       const struct na_listen *addr,
                                       na_accept_cb cb, void *arg, char *err,
                                       size_t errlen);

#endif
