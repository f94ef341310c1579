/* netaddr.c: parses listen addresses and tells loopback from the rest. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
