/* loadgen.c: load generator for the ingest port, one JSON line of results. */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "ingest_proto.h"
#include "netaddr.h"
#include "pgwire.h"

/* Latency histogram in microseconds: exact below 1024 us, then 512 steps
 * per power of two (0.2 % resolution) up to 2^40 us. */
#define HIST_LINEAR  1024u
#define HIST_STEPS   512u
#define HIST_MAX_EXP 40u
#define HIST_BUCKETS (HIST_LINEAR + (HIST_MAX_EXP - 10u + 1u) * HIST_STEPS)
/* Longest row we format: 5 columns, well under this. */
#define ROW_MAX 160u

struct hist {
	uint64_t counts[HIST_BUCKETS];
	uint64_t n, sum_us, max_us;
};

enum lg_mode { MODE_INSERT, MODE_UPSERT, MODE_IDLE };

struct opts {
	const char *addr, *schema, *table, *token, *key_col;
	enum lg_mode mode;
	unsigned clients, rows_per_msg, flush_every, window;
	double duration_s,
	    rate; /* rate: rows/s per client, 0 = as fast as acked */
	uint64_t total_rows, keyspace;
};

/* A client's life, top to bottom; FAILED and DONE are final. */
enum cl_state {
	CL_CONNECTING, /* TCP connect under way */
	CL_HELLO,      /* Hello sent, waiting for HelloOk */
	CL_OPENING,    /* Open sent, waiting for OpenOk */
	CL_READY,      /* opened, waiting for every other client */
	CL_RUNNING,    /* sending units, reading acks */
	CL_CLOSING,    /* Close sent, waiting for CloseOk */
	CL_DONE,
	CL_FAILED
};

/* One flushed unit waiting for its answer. */
struct unit {
	uint64_t sent_us, first_seq;
	uint32_t rows;
};

struct lg;

struct client {
	struct lg *lg;
	unsigned idx;
	enum cl_state state;
	struct bufferevent *bev;
	struct event *pace; /* rate limit timer */
	uint64_t next_seq;  /* rows this client generated */
	uint64_t flush_id;  /* last flush id sent */
	struct unit *ring;  /* window outstanding units */
	unsigned head, count;
};

struct lg {
	struct opts o;
	struct event_base *base;
	struct event *stop_timer;
	struct sockaddr_storage ss;
	int sslen;
	struct client *cl;
	unsigned opened, finished, failed;
	bool started, stopping;
	uint64_t t_start_us, t_last_us;
	uint64_t rows_reserved, rows_acked, flushes_acked, flush_errors;
	uint8_t *keyseen;
	uint64_t distinct_keys;
	char *rowbuf;
	char first_error[256];
	struct hist h;
};

static uint64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* ---- histogram ---- */

static size_t hist_index(uint64_t v)
{
	unsigned e;

	if (v < HIST_LINEAR)
		return (size_t)v;
	if (v >= (1ull << (HIST_MAX_EXP + 1)))
		v = (1ull << (HIST_MAX_EXP + 1)) - 1;
	e = 63u - (unsigned)__builtin_clzll(v);
	return HIST_LINEAR + (size_t)(e - 10u) * HIST_STEPS +
	       (size_t)((v >> (e - 9u)) - HIST_STEPS);
}

static uint64_t hist_value(size_t i)
{
	size_t e, m;

	if (i < HIST_LINEAR)
		return i;
	e = (i - HIST_LINEAR) / HIST_STEPS + 10u;
	m = (i - HIST_LINEAR) % HIST_STEPS + HIST_STEPS;
	return (uint64_t)m << (e - 9u);
}

static void hist_add(struct hist *h, uint64_t us)
{
	h->counts[hist_index(us)]++;
	h->n++;
	h->sum_us += us;
	if (us > h->max_us)
		h->max_us = us;
}

/* The value below which a fraction p of the samples lie, in ms. */
static double hist_pct_ms(const struct hist *h, double p)
{
	uint64_t want = (uint64_t)(p * (double)h->n + 0.999999), seen = 0;

	if (h->n == 0)
		return 0;
	for (size_t i = 0; i < HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= want)
			return (double)hist_value(i) / 1000.0;
	}
	return (double)h->max_us / 1000.0;
}

/* ---- rows: the same content as bench/copy_bench.py's make_rows ---- */

/* Row number g (1-based) of client idx's seq-th row, unique over clients. */
static uint64_t row_number(const struct lg *lg, unsigned idx, uint64_t seq)
{
	return seq * lg->o.clients + idx + 1;
}

static uint64_t row_key(const struct lg *lg, uint64_t g)
{
	return lg->o.mode == MODE_UPSERT ? (g - 1) % lg->o.keyspace + 1 : g;
}

static size_t format_row(const struct lg *lg, uint64_t g, char *out)
{
	int n = snprintf(out, ROW_MAX,
	                 "%" PRIu64 "\t2026-11-24 12:%02u:%02u.%06u+00\t"
	                 "device-%u\t%.6f\t%c\n",
	                 row_key(lg, g), (unsigned)(g / 60 % 60),
	                 (unsigned)(g % 60), (unsigned)(g % 1000000),
	                 (unsigned)(g % 9973), (double)(g % 100000) / 7.0,
	                 g % 3 ? 't' : 'f');

	return n > 0 && (size_t)n < ROW_MAX ? (size_t)n : 0;
}

/* ---- failures and the end ---- */

static void note_error(struct lg *lg, const char *what, const char *detail)
{
	if (lg->first_error[0] == '\0')
		snprintf(lg->first_error, sizeof(lg->first_error), "%s: %s",
		         what, detail ? detail : "");
}

static void start_all(struct lg *lg);

static void client_finished(struct client *c, enum cl_state final)
{
	struct lg *lg = c->lg;

	if (c->state == CL_DONE || c->state == CL_FAILED)
		return;
	c->state = final;
	if (c->pace)
		event_del(c->pace);
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (final == CL_FAILED)
		lg->failed++;
	else
		lg->finished++;
	if (lg->finished + lg->failed == lg->o.clients)
		event_base_loopexit(lg->base, NULL);
	else if (!lg->started && lg->opened + lg->failed == lg->o.clients)
		start_all(lg); /* the others go ahead without the failed */
}

static void client_fail(struct client *c, const char *what, const char *detail)
{
	note_error(c->lg, what, detail);
	client_finished(c, CL_FAILED);
}

static void client_close(struct client *c)
{
	if (!igp_put_close(bufferevent_get_output(c->bev))) {
		client_fail(c, "close", "out of memory");
		return;
	}
	c->state = CL_CLOSING;
}

/* ---- sending units ---- */

/* Rows this client may put into its next unit: 0 when it is done. */
static uint32_t reserve_rows(struct lg *lg)
{
	uint64_t n = lg->o.flush_every;

	if (lg->stopping)
		return 0;
	if (lg->o.total_rows) {
		if (lg->rows_reserved >= lg->o.total_rows)
			return 0;
		if (n > lg->o.total_rows - lg->rows_reserved)
			n = lg->o.total_rows - lg->rows_reserved;
	}
	lg->rows_reserved += n;
	return (uint32_t)n;
}

static bool put_unit_rows(struct client *c, uint32_t rows)
{
	struct lg *lg = c->lg;
	struct evbuffer *out = bufferevent_get_output(c->bev);

	for (uint32_t done = 0; done < rows;) {
		size_t len = 0;
		uint32_t k;

		for (k = 0; k < lg->o.rows_per_msg && done + k < rows; k++)
			len += format_row(lg,
			                  row_number(lg, c->idx, c->next_seq++),
			                  lg->rowbuf + len);
		if (!igp_put_rows(out, lg->rowbuf, len))
			return false;
		done += k;
	}
	return true;
}

static bool send_unit(struct client *c, uint32_t rows)
{
	struct unit *u = &c->ring[(c->head + c->count) % c->lg->o.window];

	u->first_seq = c->next_seq;
	u->rows = rows;
	if (!put_unit_rows(c, rows) ||
	    !igp_put_flush(bufferevent_get_output(c->bev), ++c->flush_id))
		return false;
	u->sent_us = now_us();
	c->count++;
	return true;
}

/* Microseconds until this client may send its next unit under --rate. */
static uint64_t pace_wait_us(const struct client *c)
{
	const struct lg *lg = c->lg;
	uint64_t due, now;
	double phase;

	if (lg->o.rate <= 0)
		return 0;
	/* Clients are spread over one unit's period, not in step. */
	phase = (double)c->idx / lg->o.clients * lg->o.flush_every;
	due = lg->t_start_us +
	      (uint64_t)(((double)c->next_seq + phase) * 1e6 / lg->o.rate);
	now = now_us();
	return due > now ? due - now : 0;
}

static void pump(struct client *c);

static void pace_fired(evutil_socket_t fd, short what, void *arg)
{
	pump(arg);
}

static void schedule_pace(struct client *c, uint64_t wait)
{
	struct timeval tv = {(time_t)(wait / 1000000u),
	                     (suseconds_t)(wait % 1000000u)};

	if (c->pace == NULL)
		c->pace = evtimer_new(c->lg->base, pace_fired, c);
	if (c->pace == NULL || evtimer_add(c->pace, &tv) != 0)
		client_fail(c, "timer", "out of memory");
}

/* Sends units while the window has room; closes once done and drained. */
static void pump(struct client *c)
{
	while (c->state == CL_RUNNING && c->count < c->lg->o.window) {
		uint64_t wait = pace_wait_us(c);
		uint32_t rows;

		if (wait > 0 && !c->lg->stopping) {
			schedule_pace(c, wait);
			return;
		}
		rows = reserve_rows(c->lg);
		if (rows == 0)
			break;
		if (!send_unit(c, rows)) {
			client_fail(c, "send", "out of memory");
			return;
		}
	}
	if (c->state == CL_RUNNING && c->count == 0 &&
	    (c->lg->stopping || reserve_rows(c->lg) == 0))
		client_close(c);
}

/* ---- answers ---- */

static void mark_keys(struct lg *lg, const struct client *c,
                      const struct unit *u)
{
	if (lg->keyseen == NULL)
		return;
	for (uint32_t i = 0; i < u->rows; i++) {
		uint64_t k =
		    row_key(lg, row_number(lg, c->idx, u->first_seq + i));

		if (!lg->keyseen[k - 1]) {
			lg->keyseen[k - 1] = 1;
			lg->distinct_keys++;
		}
	}
}

static void on_flush_answer(struct client *c, const struct igp_answer *a)
{
	struct lg *lg = c->lg;
	struct unit *u = &c->ring[c->head];
	uint64_t t = now_us();

	if (c->count == 0 || a->flush_id != c->flush_id - c->count + 1) {
		client_fail(c, "protocol", "answer to an unexpected flush id");
		return;
	}
	hist_add(&lg->h, t - u->sent_us);
	lg->t_last_us = t;
	if (a->type == IGP_MSG_ACK && a->rows == u->rows) {
		lg->rows_acked += u->rows;
		lg->flushes_acked++;
		mark_keys(lg, c, u);
	} else {
		lg->flush_errors++;
		note_error(lg,
		           a->type == IGP_MSG_ACK ? "ack with wrong row count"
		                                  : a->sqlstate,
		           a->message);
	}
	c->head = (c->head + 1) % lg->o.window;
	c->count--;
	pump(c);
}

static void send_open(struct client *c)
{
	const struct opts *o = &c->lg->o;
	const char *cols[] = {o->key_col, "ts", "name", "value", "flag"};
	const char *keys[] = {o->key_col};
	struct igp_open op = {
	    .schema = o->schema,
	    .table = o->table,
	    .mode = o->mode == MODE_UPSERT ? IGP_MODE_UPSERT : IGP_MODE_INSERT,
	    .ncols = 5,
	    .cols = cols,
	    .nkeys = o->mode == MODE_UPSERT ? 1 : 0,
	    .keys = keys,
	    .version_col = "",
	};

	if (!igp_put_open(bufferevent_get_output(c->bev), &op))
		client_fail(c, "open", "out of memory");
	else
		c->state = CL_OPENING;
}

static void on_answer(struct client *c, const struct igp_answer *a)
{
	switch (a->type) {
	case IGP_MSG_HELLO_OK:
		if (c->state == CL_HELLO)
			send_open(c);
		return;
	case IGP_MSG_OPEN_OK:
		c->state = CL_READY;
		if (++c->lg->opened + c->lg->failed == c->lg->o.clients)
			start_all(c->lg);
		return;
	case IGP_MSG_ACK:
	case IGP_MSG_FLUSH_ERROR:
		on_flush_answer(c, a);
		return;
	case IGP_MSG_CLOSE_OK:
		client_finished(c, CL_DONE);
		return;
	case IGP_MSG_ERROR:
		client_fail(c, a->sqlstate, a->message);
		return;
	default:
		client_fail(c, "protocol", "unexpected message type");
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct pgw_frame f;
	struct igp_answer a;
	enum pgw_rc rc;

	while ((rc = pgw_frame_next(in, PGW_MAX_BACKEND_MESSAGE, &f)) ==
	       PGW_OK) {
		if (igp_parse_answer(&f, &a) != PGW_OK) {
			client_fail(c, "protocol", "malformed answer");
			return;
		}
		on_answer(c, &a);
		/* Ended (and its buffers freed) by that answer? */
		if (c->bev == NULL)
			return;
		pgw_frame_consume(in, &f);
	}
	if (rc == PGW_ERROR)
		client_fail(c, "protocol", "bad frame");
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (!igp_put_hello(bufferevent_get_output(bev), "loadgen",
		                   c->lg->o.token))
			client_fail(c, "hello", "out of memory");
		else
			c->state = CL_HELLO;
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		client_fail(
		    c, "connection",
		    what & BEV_EVENT_EOF
		        ? "closed by the proxy"
		        : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* ---- the run ---- */

static void stop_fired(evutil_socket_t fd, short what, void *arg)
{
	struct lg *lg = arg;

	lg->stopping = true;
	if (lg->o.mode == MODE_IDLE)
		lg->t_last_us = now_us(); /* seconds = time held */
	for (unsigned i = 0; i < lg->o.clients; i++) {
		struct client *c = &lg->cl[i];

		if (c->state == CL_READY)
			c->state = CL_RUNNING;
		if (c->state == CL_RUNNING) {
			if (c->pace)
				event_del(c->pace);
			pump(c);
		}
	}
}

static bool arm_stop(struct lg *lg)
{
	double s = lg->o.duration_s;
	struct timeval tv = {(time_t)s,
	                     (suseconds_t)((s - (double)(time_t)s) * 1e6)};

	lg->stop_timer = evtimer_new(lg->base, stop_fired, lg);
	return lg->stop_timer != NULL && evtimer_add(lg->stop_timer, &tv) == 0;
}

/* Every client is open: start the clock (idle clients just hold on). */
static void start_all(struct lg *lg)
{
	lg->started = true;
	lg->t_start_us = lg->t_last_us = now_us();
	if (lg->o.duration_s > 0 && !arm_stop(lg)) {
		note_error(lg, "timer", "out of memory");
		event_base_loopexit(lg->base, NULL);
		return;
	}
	if (lg->o.mode == MODE_IDLE)
		return;
	for (unsigned i = 0; i < lg->o.clients; i++) {
		if (lg->cl[i].state != CL_READY)
			continue;
		lg->cl[i].state = CL_RUNNING;
		pump(&lg->cl[i]);
	}
}

static bool connect_client(struct lg *lg, unsigned idx)
{
	struct client *c = &lg->cl[idx];

	c->lg = lg;
	c->idx = idx;
	c->ring = calloc(lg->o.window, sizeof(*c->ring));
	c->bev = bufferevent_socket_new(lg->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->ring == NULL || c->bev == NULL)
		return false;
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) != 0)
		return false;
	c->state = CL_CONNECTING;
	/* A refused connect is reported through on_event. */
	bufferevent_socket_connect(c->bev, (struct sockaddr *)&lg->ss,
	                           lg->sslen);
	return true;
}

static bool resolve_addr(struct lg *lg)
{
	struct na_listen l;
	char err[200];
	struct sockaddr_un *un = (struct sockaddr_un *)&lg->ss;

	if (!na_parse_listen(lg->o.addr, &l, err, sizeof(err))) {
		fprintf(stderr, "loadgen: --addr: %s\n", err);
		return false;
	}
	if (l.is_unix) {
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, l.path, sizeof(l.path));
		lg->sslen = (int)sizeof(*un);
		return true;
	}
	lg->sslen = (int)sizeof(lg->ss);
	if (evutil_parse_sockaddr_port(lg->o.addr, (struct sockaddr *)&lg->ss,
	                               &lg->sslen) != 0) {
		fprintf(stderr, "loadgen: --addr must be a numeric address\n");
		return false;
	}
	return true;
}

/* ---- options and output ---- */

static void usage(void)
{
	fprintf(stderr, "usage: loadgen --addr HOST:PORT|unix:PATH --table T "
	                "[--schema S]\n"
	                "  [--mode insert|upsert|idle] [--clients N] "
	                "[--rows-per-msg R] [--flush-every F]\n"
	                "  [--window W] [--duration S] [--total-rows N] "
	                "[--keyspace K] [--rate ROWS_PER_S_PER_CLIENT]\n"
	                "  [--key-col NAME] [--token T]   (token also from "
	                "LBP_INGEST_TOKEN)\n");
	exit(2);
}

static enum lg_mode parse_mode(const char *s)
{
	if (strcmp(s, "insert") == 0)
		return MODE_INSERT;
	if (strcmp(s, "upsert") == 0)
		return MODE_UPSERT;
	if (strcmp(s, "idle") == 0)
		return MODE_IDLE;
	usage();
	return MODE_INSERT;
}

static uint64_t parse_num(const char *s, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < min || v > max)
		usage();
	return v;
}

static double parse_real(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (*s == '\0' || *end != '\0' || v < 0)
		usage();
	return v;
}

static void set_opt(struct opts *o, int ch, const char *v)
{
	switch (ch) {
	case 'a':
		o->addr = v;
		break;
	case 's':
		o->schema = v;
		break;
	case 't':
		o->table = v;
		break;
	case 'm':
		o->mode = parse_mode(v);
		break;
	case 'c':
		o->clients = (unsigned)parse_num(v, 1, 100000);
		break;
	case 'r':
		o->rows_per_msg = (unsigned)parse_num(v, 1, 5000);
		break;
	case 'f':
		o->flush_every = (unsigned)parse_num(v, 1, 1000000);
		break;
	case 'w':
		o->window = (unsigned)parse_num(v, 1, 100000);
		break;
	case 'd':
		o->duration_s = parse_real(v);
		break;
	case 'n':
		o->total_rows = parse_num(v, 1, UINT64_MAX);
		break;
	case 'k':
		o->keyspace = parse_num(v, 1, 1000000000);
		break;
	case 'R':
		o->rate = parse_real(v);
		break;
	case 'K':
		o->key_col = v;
		break;
	case 'T':
		o->token = v;
		break;
	default:
		usage();
	}
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {{"addr", 1, NULL, 'a'},
	                                      {"schema", 1, NULL, 's'},
	                                      {"table", 1, NULL, 't'},
	                                      {"mode", 1, NULL, 'm'},
	                                      {"clients", 1, NULL, 'c'},
	                                      {"rows-per-msg", 1, NULL, 'r'},
	                                      {"flush-every", 1, NULL, 'f'},
	                                      {"window", 1, NULL, 'w'},
	                                      {"duration", 1, NULL, 'd'},
	                                      {"total-rows", 1, NULL, 'n'},
	                                      {"keyspace", 1, NULL, 'k'},
	                                      {"rate", 1, NULL, 'R'},
	                                      {"key-col", 1, NULL, 'K'},
	                                      {"token", 1, NULL, 'T'},
	                                      {NULL, 0, NULL, 0}};
	int ch;

	*o = (struct opts){.schema = "public",
	                   .key_col = "id",
	                   .mode = MODE_INSERT,
	                   .clients = 1,
	                   .rows_per_msg = 1,
	                   .flush_every = 10,
	                   .window = 1,
	                   .keyspace = 100000};
	o->token = getenv("LBP_INGEST_TOKEN") ? getenv("LBP_INGEST_TOKEN") : "";
	while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1)
		set_opt(o, ch, optarg);
	if (o->addr == NULL || o->table == NULL || optind != argc ||
	    (o->duration_s <= 0 &&
	     (o->total_rows == 0 || o->mode == MODE_IDLE)))
		usage();
}

static const char *mode_name(enum lg_mode m)
{
	return m == MODE_INSERT   ? "insert"
	       : m == MODE_UPSERT ? "upsert"
	                          : "idle";
}

/* The text with quotes, backslashes and control bytes made harmless. */
static void json_clean(char *s)
{
	for (; *s; s++)
		if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
			*s = '\'';
}

static void print_result(struct lg *lg)
{
	const struct opts *o = &lg->o;
	double secs = (double)(lg->t_last_us - lg->t_start_us) / 1e6;

	json_clean(lg->first_error);
	printf("{\"mode\":\"%s\",\"clients\":%u,\"opened\":%u,\"failed\":%u,"
	       "\"rows_per_msg\":%u,\"flush_every\":%u,\"window\":%u,"
	       "\"rate_per_client\":%.1f,\"seconds\":%.3f,"
	       "\"rows_acked\":%" PRIu64 ",\"flushes_acked\":%" PRIu64
	       ",\"flush_errors\":%" PRIu64 ",\"rows_per_s\":%.1f,"
	       "\"lat_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f,"
	       "\"mean\":%.3f},\"keyspace\":%" PRIu64
	       ",\"distinct_keys\":%" PRIu64 ",\"first_error\":\"%s\"}\n",
	       mode_name(o->mode), o->clients, lg->opened, lg->failed,
	       o->rows_per_msg, o->flush_every, o->window, o->rate, secs,
	       lg->rows_acked, lg->flushes_acked, lg->flush_errors,
	       secs > 0 ? (double)lg->rows_acked / secs : 0.0,
	       hist_pct_ms(&lg->h, 0.50), hist_pct_ms(&lg->h, 0.99),
	       (double)lg->h.max_us / 1000.0,
	       lg->h.n ? (double)lg->h.sum_us / (double)lg->h.n / 1000.0 : 0.0,
	       o->mode == MODE_UPSERT ? o->keyspace : 0, lg->distinct_keys,
	       lg->first_error);
}

/* 1,000 clients need more descriptors than the usual soft limit. */
static void raise_fd_limit(void)
{
	struct rlimit r;

	if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
		r.rlim_cur = r.rlim_max;
		setrlimit(RLIMIT_NOFILE, &r);
	}
}

static bool setup(struct lg *lg)
{
	const struct opts *o = &lg->o;

	lg->base = event_base_new();
	lg->cl = calloc(o->clients, sizeof(*lg->cl));
	lg->rowbuf = malloc((size_t)o->rows_per_msg * ROW_MAX);
	if (o->mode == MODE_UPSERT)
		lg->keyseen = calloc(o->keyspace, 1);
	if (lg->base == NULL || lg->cl == NULL || lg->rowbuf == NULL ||
	    (o->mode == MODE_UPSERT && lg->keyseen == NULL))
		return false;
	for (unsigned i = 0; i < o->clients; i++)
		if (!connect_client(lg, i))
			return false;
	return true;
}

int main(int argc, char **argv)
{
	static struct lg lg; /* the histogram is big: not on the stack */

	parse_opts(argc, argv, &lg.o);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	if (!resolve_addr(&lg))
		return 2;
	if (!setup(&lg)) {
		fprintf(stderr, "loadgen: out of memory\n");
		return 1;
	}
	event_base_dispatch(lg.base);
	print_result(&lg);
	return lg.failed || lg.flush_errors || lg.opened < lg.o.clients;
}
