/* server.h: the daemon: event loop, signals, and the wiring of its parts. */
#ifndef LBP_SERVER_H
#define LBP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct server;

/*
 * Builds everything from cfg, which must outlive the server (what is built
 * at start may keep pointers into it). SIGHUP loads path (NULL: none) and
 * envp again, as cfg was loaded, and applies what it can (reload.h); both
 * must outlive the server too. NULL + err.
 */
struct server *server_new(const struct config *cfg, const char *path,
                          char *const *envp, char *err, size_t errlen);
/*
 * Runs until SIGTERM or SIGINT. Returns the process exit code: 0 after a
 * complete drain (every client answered, no batch left), 1 when the drain
 * timed out, a second signal cut it short with work left, or the loop
 * failed.
 */
int server_run(struct server *s);
void server_free(struct server *s);

/* Upstream connection parameters derived from the configuration. */
struct up_params;
void server_up_params(const struct config *cfg, struct up_params *out);

#endif
