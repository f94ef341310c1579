/* log.c: key=value log lines with a timestamp and a level. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "utf8.h"

static enum log_level current_level = LOG_INFO;
static int log_fd = -1; /* [log] file, or -1: stderr */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level log_get_level(void)
{
	return current_level;
}

const char *log_level_name(enum log_level level)
{
	if ((unsigned)level > LOG_ERROR)
		return "unknown";
	return level_names[level];
}

bool log_level_parse(const char *name, enum log_level *out)
{
	for (unsigned i = 0; i <= LOG_ERROR; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return true;
		}
	}
	if (strcmp(name, "warning") == 0) {
		*out = LOG_WARN;
		return true;
	}
	return false;
}

static int open_log_file(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	char quoted[300];

	if (fd < 0)
		snprintf(err, errlen, "[log] file %s: cannot open: %s",
		         log_quote(quoted, sizeof(quoted), path),
		         strerror(errno));
	return fd;
}

bool log_set_file(const char *path, char *err, size_t errlen)
{
	int fd = -1;

	if (path != NULL && (fd = open_log_file(path, err, errlen)) < 0)
		return false;
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	return true;
}

bool log_check_file(const char *path, char *err, size_t errlen)
{
	int fd = open_log_file(path, err, errlen);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* One write per line: with O_APPEND, lines of several writers stay whole. */
static void write_line(const char *line, size_t len)
{
	while (len > 0) {
		ssize_t n = write(log_fd, line, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* a full disk: nowhere to say so */
		line += n;
		len -= (size_t)n;
	}
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[4096];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;

	if (level < current_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ level=%s ",
	                      (long)(tv.tv_usec / 1000), log_level_name(level));
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	/* One fputs per line keeps lines whole when several processes share
	 * stderr. */
	n = strlen(line);
	if (n >= sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n] = '\n';
	line[n + 1] = '\0';
	if (log_fd >= 0)
		write_line(line, n + 1);
	else
		fputs(line, stderr);
}

const char *log_quote(char *buf, size_t size, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (size < 8) {
		if (size > 0)
			buf[0] = '\0';
		return buf;
	}
	if (s == NULL)
		s = "";
	buf[o++] = '"';
	/* Valid UTF-8 sequences stay whole; a byte of an invalid one is
	 * escaped, so every line is UTF-8 whatever a client sent. */
	for (const unsigned char *p = (const unsigned char *)s,
	                         *end = p + strlen(s);
	     p < end; p++) {
		size_t seq = utf8_seq_len(p, (size_t)(end - p));
		char esc[5];
		size_t elen;

		if (seq > 1) {
			memcpy(esc, p, seq); /* at most 4 bytes */
			elen = seq;
			p += seq - 1;
		} else if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			elen = 2;
		} else if (seq == 0 || *p < 0x20 || *p == 0x7f) {
			esc[0] = '\\';
			esc[1] = 'x';
			esc[2] = hex[*p >> 4];
			esc[3] = hex[*p & 15];
			elen = 4;
		} else {
			esc[0] = (char)*p;
			elen = 1;
		}
		/* keep room for '...', the closing quote and the NUL */
		if (o + elen + 5 > size) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(buf + o, esc, elen);
		o += elen;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}
