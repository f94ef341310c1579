/* fe_stmt.h: named prepared statements of front-door clients in transaction
 * pooling: which client name means which statement, and which statements
 * each server connection holds. */
#ifndef LBP_FE_STMT_H
#define LBP_FE_STMT_H

/*
 * Pure bookkeeping, no I/O. In transaction mode a client's transactions
 * land on whichever server connection is free, but its named statements
 * must be there. So every named Parse gets a server-side name of the
 * proxy's ("lbp_<client>_<n>"), kept with the Parse's query and parameter
 * types; before a Bind or Describe uses the statement on a server
 * connection that lacks it, the proxy prepares it there first. Each server
 * connection remembers what it holds, at most max names, the least
 * recently used going first (the caller closes it on the server).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A server-side name: "lbp_" + 20 + "_" + 20 digits. */
#define FPS_NAME_LEN 48

/* One client statement: what the server must be told to prepare it. */
struct fps_stmt {
	char server_name[FPS_NAME_LEN];
	uint8_t *parse_rest; /* Parse body after the name: query, types */
	size_t parse_rest_len;
};

struct fps_client;
/* At most max named statements (more is the client's error). */
struct fps_client *fps_client_new(uint64_t client_id, size_t max);
void fps_client_free(struct fps_client *fc);
/*
 * Records a Parse of name (non-empty) with its rest (copied); an older
 * statement of the same name is replaced. NULL on OOM or past max.
 */
const struct fps_stmt *fps_client_parse(struct fps_client *fc, const char *name,
                                        const uint8_t *rest, size_t rest_len);
const struct fps_stmt *fps_client_find(const struct fps_client *fc,
                                       const char *name);
/* Forgets name (a Close); nothing if unknown. */
void fps_client_close(struct fps_client *fc, const char *name);
size_t fps_client_count(const struct fps_client *fc);

struct fps_server;
struct fps_server *fps_server_new(void);
void fps_server_free(void *fs); /* void *: an up_conn's user data */
/* Holds name; marks it most recently used. */
bool fps_server_has(struct fps_server *fs, const char *name);
/*
 * Adds name. When that makes more than max, the least recently used is
 * removed and copied to evicted (the caller closes it); else evicted[0] is
 * '\0'. false on OOM.
 */
bool fps_server_add(struct fps_server *fs, const char *name, size_t max,
                    char evicted[FPS_NAME_LEN]);
void fps_server_remove(struct fps_server *fs, const char *name);
size_t fps_server_count(const struct fps_server *fs);

#endif
