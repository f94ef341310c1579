/* netaddr.c: parses listen addresses and tells loopback from the rest. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/listener.h>
#include <event2/util.h>

static bool parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

bool na_parse_listen(const char *s, struct na_listen *out, char *err,
                     size_t errlen)
{
	const char *colon;
	size_t hostlen;

	memset(out, 0, sizeof(*out));
	if (strncmp(s, "unix:", 5) == 0) {
		size_t n = strlen(s + 5);

		if (n == 0 || n >= sizeof(out->path) || s[5] != '/') {
			snprintf(err, errlen,
			         "\"%s\": unix: needs an absolute "
			         "path under 108 bytes",
			         s);
			return false;
		}
		out->is_unix = true;
		memcpy(out->path, s + 5, n + 1);
		return true;
	}
	colon = strrchr(s, ':');
	if (colon == NULL || !parse_port(colon + 1, &out->port)) {
		snprintf(err, errlen,
		         "\"%s\" is not host:port, [ipv6]:port "
		         "or unix:/path",
		         s);
		return false;
	}
	hostlen = (size_t)(colon - s);
	if (hostlen >= 2 && s[0] == '[' && s[hostlen - 1] == ']') {
		s++;
		hostlen -= 2;
	}
	if (hostlen == 0 || hostlen >= sizeof(out->host)) {
		snprintf(err, errlen, "\"%s\": missing or too long host", s);
		return false;
	}
	memcpy(out->host, s, hostlen);
	out->host[hostlen] = '\0';
	return true;
}

bool na_is_loopback(const struct na_listen *l)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (l->is_unix || strcmp(l->host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, l->host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, l->host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

static evutil_socket_t unix_socket(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	evutil_socket_t fd;

	/* A socket left by a crashed run would make bind fail: remove it. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		snprintf(err, errlen, "cannot listen on unix:%s: %s", path,
		         strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	evutil_make_socket_nonblocking(fd);
	evutil_make_socket_closeonexec(fd);
	return fd;
}

struct evconnlistener *na_listener_new(struct event_base *base,
                                       const struct na_listen *addr,
                                       na_accept_cb cb, void *arg, char *err,
                                       size_t errlen)
{
	const unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE;
	struct evutil_addrinfo hints = {0}, *ai = NULL;
	struct evconnlistener *l;
	char port[8];

	if (addr->is_unix) {
		evutil_socket_t fd = unix_socket(addr->path, err, errlen);

		if (fd < 0)
			return NULL;
		l = evconnlistener_new(base, cb, arg, flags, 512, fd);
	} else {
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = EVUTIL_AI_PASSIVE;
		snprintf(port, sizeof(port), "%u", (unsigned)addr->port);
		if (evutil_getaddrinfo(addr->host, port, &hints, &ai) != 0) {
			snprintf(err, errlen, "cannot resolve listen host %s",
			         addr->host);
			return NULL;
		}
		l = evconnlistener_new_bind(base, cb, arg, flags, 512,
		                            ai->ai_addr, (int)ai->ai_addrlen);
		evutil_freeaddrinfo(ai);
	}
	if (l == NULL && addr->is_unix)
		snprintf(err, errlen, "cannot listen on unix:%s: %s",
		         addr->path, strerror(errno));
	else if (l == NULL)
		snprintf(err, errlen, "cannot listen on %s:%u: %s", addr->host,
		         (unsigned)addr->port, strerror(errno));
	return l;
}
