/* fe_stmt.c: which prepared statements clients named and servers hold. */
#include "fe_stmt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct client_entry {
	char *name;
	struct fps_stmt stmt;
};

struct fps_client {
	uint64_t id;
	uint64_t seq;
	size_t max;
	struct client_entry *v;
	size_t n, cap;
};

struct server_entry {
	char name[FPS_NAME_LEN];
	uint64_t used; /* LRU clock */
};

struct fps_server {
	struct server_entry *v;
	size_t n, cap;
	uint64_t clock;
};

/* Doubles *cap (from 8) so that n + 1 elements of size fit. */
static bool grow(void **v, size_t *cap, size_t n, size_t size)
{
	size_t c = *cap ? *cap * 2 : 8;
	void *nv;

	if (n < *cap)
		return true;
	nv = realloc(*v, c * size);
	if (nv == NULL)
		return false;
	*v = nv;
	*cap = c;
	return true;
}

struct fps_client *fps_client_new(uint64_t client_id, size_t max)
{
	struct fps_client *fc = calloc(1, sizeof(*fc));

	if (fc != NULL) {
		fc->id = client_id;
		fc->max = max;
	}
	return fc;
}

static void entry_clear(struct client_entry *e)
{
	free(e->name);
	free(e->stmt.parse_rest);
}

void fps_client_free(struct fps_client *fc)
{
	if (fc == NULL)
		return;
	for (size_t i = 0; i < fc->n; i++)
		entry_clear(&fc->v[i]);
	free(fc->v);
	free(fc);
}

static struct client_entry *find_entry(const struct fps_client *fc,
                                       const char *name)
{
	for (size_t i = 0; i < fc->n; i++) {
		if (strcmp(fc->v[i].name, name) == 0)
			return &fc->v[i];
	}
	return NULL;
}

const struct fps_stmt *fps_client_parse(struct fps_client *fc, const char *name,
                                        const uint8_t *rest, size_t rest_len)
{
	struct client_entry e = {0}, *old = find_entry(fc, name);

	if (old == NULL && (fc->n >= fc->max || !grow((void **)&fc->v, &fc->cap,
	                                              fc->n, sizeof(*fc->v))))
		return NULL;
	e.name = strdup(name);
	e.stmt.parse_rest = malloc(rest_len ? rest_len : 1);
	if (e.name == NULL || e.stmt.parse_rest == NULL) {
		entry_clear(&e);
		return NULL;
	}
	if (rest_len > 0)
		memcpy(e.stmt.parse_rest, rest, rest_len);
	e.stmt.parse_rest_len = rest_len;
	snprintf(e.stmt.server_name, sizeof(e.stmt.server_name),
	         "lbp_%" PRIu64 "_%" PRIu64, fc->id, ++fc->seq);
	if (old != NULL) {
		entry_clear(old);
		*old = e;
		return &old->stmt;
	}
	fc->v[fc->n] = e;
	return &fc->v[fc->n++].stmt;
}

const struct fps_stmt *fps_client_find(const struct fps_client *fc,
                                       const char *name)
{
	struct client_entry *e = find_entry(fc, name);

	return e != NULL ? &e->stmt : NULL;
}

void fps_client_close(struct fps_client *fc, const char *name)
{
	struct client_entry *e = find_entry(fc, name);

	if (e == NULL)
		return;
	entry_clear(e);
	*e = fc->v[--fc->n];
}

size_t fps_client_count(const struct fps_client *fc)
{
	return fc->n;
}

struct fps_server *fps_server_new(void)
{
	return calloc(1, sizeof(struct fps_server));
}

void fps_server_free(void *p)
{
	struct fps_server *fs = p;

	if (fs == NULL)
		return;
	free(fs->v);
	free(fs);
}

static struct server_entry *server_find(struct fps_server *fs, const char *name)
{
	for (size_t i = 0; i < fs->n; i++) {
		if (strcmp(fs->v[i].name, name) == 0)
			return &fs->v[i];
	}
	return NULL;
}

bool fps_server_has(struct fps_server *fs, const char *name)
{
	struct server_entry *e = server_find(fs, name);

	if (e != NULL)
		e->used = ++fs->clock;
	return e != NULL;
}

static void evict_lru(struct fps_server *fs, char evicted[FPS_NAME_LEN])
{
	size_t lru = 0;

	for (size_t i = 1; i < fs->n; i++) {
		if (fs->v[i].used < fs->v[lru].used)
			lru = i;
	}
	memcpy(evicted, fs->v[lru].name, FPS_NAME_LEN);
	fs->v[lru] = fs->v[--fs->n];
}

bool fps_server_add(struct fps_server *fs, const char *name, size_t max,
                    char evicted[FPS_NAME_LEN])
{
	struct server_entry *e;

	evicted[0] = '\0';
	if (strlen(name) >= FPS_NAME_LEN)
		return false;
	if (fps_server_has(fs, name))
		return true;
	if (max > 0 && fs->n >= max)
		evict_lru(fs, evicted);
	if (!grow((void **)&fs->v, &fs->cap, fs->n, sizeof(*fs->v)))
		return false;
	e = &fs->v[fs->n++];
	memcpy(e->name, name, strlen(name) + 1);
	e->used = ++fs->clock;
	return true;
}

void fps_server_remove(struct fps_server *fs, const char *name)
{
	struct server_entry *e = server_find(fs, name);

	if (e != NULL)
		*e = fs->v[--fs->n];
}

size_t fps_server_count(const struct fps_server *fs)
{
	return fs->n;
}
