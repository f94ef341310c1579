/* userlist.h: PgBouncer's auth_file format: "user" "secret" per line. */
#ifndef LBP_USERLIST_H
#define LBP_USERLIST_H

/*
 * Pure code but for ul_load reading the file. Each line holds two fields,
 * each in double quotes, a quote inside written twice (""), separated by
 * spaces or tabs; nothing may follow the second field but spaces. Empty
 * lines and lines starting with ';' or '#' are comments. A secret is a
 * SCRAM verifier as in pg_authid ("SCRAM-SHA-256$<iter>:<salt>$<stored>:
 * <server>") or a plain password. An empty user name, a name given twice,
 * a control character, a NUL byte or a line that is not two quoted fields
 * is an error naming the line.
 */

#include <stdbool.h>
#include <stddef.h>

#define UL_MAX_FILE_BYTES (16u * 1024 * 1024)
#define UL_MAX_FIELD      4096

struct userlist;

struct userlist *ul_parse(const char *text, size_t len, char *err,
                          size_t errlen);
/* Reads and parses path; err starts with the path. */
struct userlist *ul_load(const char *path, char *err, size_t errlen);
/* Wipes the secrets. NULL is fine. */
void ul_free(struct userlist *ul);

/* The secret of user (exact, case-sensitive), or NULL. */
const char *ul_secret(const struct userlist *ul, const char *user);
size_t ul_count(const struct userlist *ul);

/* "user" "secret" with quotes doubled, and a newline; malloc'd. */
char *ul_format_line(const char *user, const char *secret);

#endif
