/* log.h: key=value log lines on stderr (or a file), filtered by level. */
#ifndef LBP_LOG_H
#define LBP_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
bool log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

/*
 * Sends every line from now on to path, appended (created 0640 if
 * missing), or back to stderr when path is NULL. Calling it again with the
 * same path reopens the file: logrotate moves the file away, then sends
 * SIGHUP, and the lines after it go to a new file at the path. On failure
 * err says why (the path quoted) and lines keep going where they went.
 */
bool log_set_file(const char *path, char *err, size_t errlen);
/* Can path be opened for appending? (--check-config; creates the file.) */
bool log_check_file(const char *path, char *err, size_t errlen);

/*
 * Writes one line: "ts=... level=... " followed by the formatted text, which
 * should itself be key=value pairs. Values that may hold spaces, quotes or
 * control characters (server messages, paths) must go through log_quote().
 */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Quotes and escapes s into buf so it is one safe log value, e.g.
 * msg="relation \"t\" does not exist". Control bytes, DEL and bytes that are
 * not valid UTF-8 become \xNN, so a line is UTF-8 whatever s holds. Never
 * fails: truncates with "..." (never inside a UTF-8 sequence).
 * Returns buf.
 */
const char *log_quote(char *buf, size_t size, const char *s);

#define log_debug(...)                                                         \
	do {                                                                   \
		if (log_get_level() <= LOG_DEBUG)                              \
			log_msg(LOG_DEBUG, __VA_ARGS__);                       \
	} while (0)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
