/* frontend.c: the PostgreSQL front door: listener, startup, TLS, login,
 * cancel; fe_relay.c pools and relays what logged-in clients send. */
#include "frontend_int.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "clock.h"
#include "netaddr.h"
#include "pgwire.h"
#include "scram_server.h"
#include "secret.h"
#include "timer.h"
#include "tls.h"
#include "userlist.h"

/* A login (startup, TLS, SCRAM) must finish within this. */
#define FE_LOGIN_TIMEOUT_S 60
/* A client that must go gets this long to take its last message. */
#define FE_CLOSE_TIMEOUT_S 5
#define FE_DEFAULT_PORT    6432
/* A SASL message or a password (an OAuth token is a few KiB). */
#define FE_MAX_AUTH_MESSAGE 16384

static const char *const state_names[FE_NSTATES] = {
    "startup", "tls",    "auth",       "login",  "idle",
    "waiting", "active", "coalescing", "closing"};

const char *const fe_var_names[FE_NVARS] = {"client_encoding",
                                            "DateStyle",
                                            "IntervalStyle",
                                            "TimeZone",
                                            "standard_conforming_strings",
                                            "application_name"};

const char *fe_state_name(enum fe_state s)
{
	return (unsigned)s < FE_NSTATES ? state_names[s] : "unknown";
}

int fe_var_find(const char *name)
{
	for (int i = 0; i < FE_NVARS; i++) {
		if (strcasecmp(fe_var_names[i], name) == 0)
			return i;
	}
	return -1;
}

void fe_set_state(struct fe_client *cl, enum fe_state to)
{
	if (log_get_level() <= LOG_DEBUG)
		fe_log(LOG_DEBUG, cl, "event=state from=%s to=%s",
		       state_names[cl->state], state_names[to]);
	cl->fe->stats.clients[cl->state]--;
	cl->fe->stats.clients[to]++;
	mt_set(cl->fe->m_clients[cl->state], cl->fe->stats.clients[cl->state]);
	mt_set(cl->fe->m_clients[to], cl->fe->stats.clients[to]);
	cl->state = to;
}

struct evbuffer *fe_out(struct fe_client *cl)
{
	return bufferevent_get_output(cl->bev);
}

static void arm_timer_s(struct fe_client *cl, unsigned s)
{
	if (s == 0)
		evtimer_del(cl->timer);
	else
		timer_add_ms(cl->timer, (uint64_t)s * 1000u);
}

/* Reads unless waiting for a server, closing, or the server is behind. */
void fe_update_reading(struct fe_client *cl)
{
	bool want = cl->state != FE_WAITING && cl->state != FE_LOGIN &&
	            cl->state != FE_CLOSING &&
	            (cl->state != FE_COALESCING || cl->co_reading);

	if (cl->state == FE_ACTIVE && cl->up != NULL &&
	    evbuffer_get_length(up_relay_output(cl->up)) >= FE_QUEUE_HIGH)
		want = false;
	if (want == cl->reading)
		return;
	cl->reading = want;
	if (want)
		bufferevent_enable(cl->bev, EV_READ);
	else
		bufferevent_disable(cl->bev, EV_READ);
}

/* ---- ending a client ---- */

static void free_client(struct fe_client *cl)
{
	struct frontend *fe = cl->fe;
	evutil_socket_t fd;

	fco_detach(cl);
	TAILQ_REMOVE(&fe->clients, cl, link);
	fe->stats.clients[cl->state]--;
	mt_set(fe->m_clients[cl->state], fe->stats.clients[cl->state]);
	for (int i = 0; i < FE_NVARS; i++)
		free(cl->vars[i]);
	free(cl->user);
	free(cl->database);
	secret_free(cl->password);
	scram_server_free(cl->scram);
	up_free(cl->probe);
	up_params_clear(&cl->probe_params);
	fps_client_free(cl->stmts);
	free(cl->expect);
	event_free(cl->timer);
	event_free(cl->kick);
	fd = bufferevent_getfd(cl->bev);
	bufferevent_free(cl->bev); /* a TLS one closes the socket itself */
	if (!cl->tls)
		evutil_closesocket(fd);
	free(cl);
}

void fe_close(struct fe_client *cl)
{
	if (log_get_level() <= LOG_DEBUG)
		fe_log(LOG_DEBUG, cl, "event=client_end state=%s",
		       state_names[cl->state]);
	fe_relay_detach(cl);
	if (cl->exec_running) {
		/* our SET is still running on the server connection: its
		 * callback gives the connection back and frees us */
		cl->gone = true;
		bufferevent_disable(cl->bev, EV_READ | EV_WRITE);
		return;
	}
	free_client(cl);
}

void fe_fail(struct fe_client *cl, const char *sqlstate, const char *fmt, ...)
{
	char msg[400], q[500];
	va_list ap;

	if (cl->state == FE_CLOSING)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fe_log(LOG_INFO, cl, "event=client_error sqlstate=%s error=%s",
	       sqlstate, log_quote(q, sizeof(q), msg));
	/* Before the startup packet the client can not read an error. */
	if (cl->state != FE_STARTUP || cl->user != NULL || cl->tls)
		pgw_put_error(fe_out(cl), "FATAL", sqlstate, msg);
	fe_relay_detach(cl);
	fe_set_state(cl, FE_CLOSING);
	fe_update_reading(cl);
	/* freed by write_cb once the error is out, or by the timer */
	arm_timer_s(
	    cl, evbuffer_get_length(fe_out(cl)) == 0 ? 0 : FE_CLOSE_TIMEOUT_S);
	if (evbuffer_get_length(fe_out(cl)) == 0)
		timer_add_ms(cl->timer, 0);
}

/* ---- the pools: one per database (per user too with passthrough) ---- */

static void db_free(struct fe_db *db)
{
	fco_db_free(db);
	pool_free(db->pool);
	for (size_t i = 0; i < db->nparams; i++) {
		free(db->pnames[i]);
		free(db->pvalues[i]);
	}
	free(db->name);
	free(db->user);
	secret_free(db->password);
	free(db);
}

void fe_db_params(const struct frontend *fe, const struct fe_db *db,
                  struct up_params *out)
{
	*out = fe->up;
	out->dbname = db->name;
	if (db->user != NULL) {
		out->user = db->user;
		out->password = db->password;
	}
}

/* The pool of database name (and, with passthrough, of user), or NULL. */
static struct fe_db *db_find(struct frontend *fe, const char *name,
                             const char *user)
{
	struct fe_db *db;

	TAILQ_FOREACH(db, &fe->dbs, link)
	{
		if (strcmp(db->name, name) == 0 &&
		    (db->user == NULL) == (user == NULL) &&
		    (user == NULL || strcmp(db->user, user) == 0))
			return db;
	}
	return NULL;
}

/* Passthrough: user and password are the client's, given to the pool. */
static struct fe_db *db_get(struct frontend *fe, const char *name,
                            const char *user, const char *password)
{
	struct up_params params;
	struct fe_db *db = db_find(fe, name, user);

	if (db != NULL)
		return db;
	db = calloc(1, sizeof(*db));
	if (db == NULL || (db->name = strdup(name)) == NULL ||
	    (user != NULL && ((db->user = strdup(user)) == NULL ||
	                      (db->password = strdup(password)) == NULL))) {
		if (db != NULL) {
			free(db->name);
			free(db->user);
		}
		free(db);
		return NULL;
	}
	fe_db_params(fe, db, &params);
	db->pool = pool_new(fe->base, fe->dns, &params, &fe->pool_cfg);
	if (db->pool == NULL) {
		db_free(db);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&fe->dbs, db, link);
	fe->stats.pools++;
	log_info("event=fe_pool database=%s user=%s",
	         log_quote((char[200]){0}, 200, name),
	         log_quote((char[200]){0}, 200, user ? user : ""));
	return db;
}

/* The first server connection lent for db tells what clients are told. */
void fe_db_remember_params(struct fe_db *db, struct up_conn *up)
{
	const char *n, *v;

	if (db->nparams > 0)
		return;
	for (size_t i = 0;
	     db->nparams < FE_MAX_PARAMS && up_server_param_at(up, i, &n, &v);
	     i++) {
		char *nc = strdup(n), *vc = strdup(v);

		if (nc == NULL || vc == NULL) {
			free(nc);
			free(vc);
			return;
		}
		db->pnames[db->nparams] = nc;
		db->pvalues[db->nparams++] = vc;
	}
}

/* ---- login ---- */

/*
 * The client's session parameters: what it asked for in its startup
 * packet, else what the server says by default.
 */
static void init_vars(struct fe_client *cl)
{
	const struct fe_db *db = cl->db;

	for (size_t i = 0; i < db->nparams; i++) {
		int k = fe_var_find(db->pnames[i]);

		if (k >= 0 && cl->vars[k] == NULL)
			cl->vars[k] = strdup(db->pvalues[i]);
	}
}

void fe_finish_login(struct fe_client *cl)
{
	struct evbuffer *out = fe_out(cl);
	const struct fe_db *db = cl->db;

	init_vars(cl);
	for (size_t i = 0; i < db->nparams; i++) {
		int k = fe_var_find(db->pnames[i]);
		const char *v =
		    k >= 0 && cl->vars[k] ? cl->vars[k] : db->pvalues[i];

		pgw_put_param_status(out, db->pnames[i], v);
	}
	pgw_put_backend_key(out, (uint32_t)cl->id, cl->key_secret);
	arm_timer_s(cl, 0);
	fe_log(LOG_INFO, cl, "event=login user=%s database=%s tls=%s",
	       log_quote((char[200]){0}, 200, cl->user),
	       log_quote((char[200]){0}, 200, cl->database),
	       cl->tls ? "on" : "off");
}

/* The database has a pool: on with the login. */
static void login_pool(struct fe_client *cl)
{
	struct frontend *fe = cl->fe;

	cl->stmts = fps_client_new(cl->id, FE_MAX_CLIENT_STMTS);
	if (cl->stmts == NULL) {
		fe_fail(cl, "53200", "out of memory");
		return;
	}
	/* Session mode holds a connection from the start; transaction mode
	 * needs one only to learn the server's parameters the first time. */
	if (fe->cfg.pool_mode == FE_POOL_SESSION || cl->db->nparams == 0) {
		fe_set_state(cl, FE_LOGIN);
		fe_update_reading(cl);
		fe_relay_acquire(cl);
		return;
	}
	fe_finish_login(cl);
	pgw_put_ready(fe_out(cl), 'I');
	cl->txn = 'I';
	fe_set_state(cl, FE_IDLE);
	fe_update_reading(cl);
}

static bool passthrough(const struct fe_client *cl)
{
	return cl->fe->cfg.auth == FE_AUTH_PASSTHROUGH;
}

/*
 * The server took the login: the pool exists (or is made), and with
 * passthrough its password becomes the one that just worked (a rotated
 * token: connections opened from now on use it, open ones keep theirs).
 */
static void probe_ready(struct up_conn *c, void *arg)
{
	struct fe_client *cl = arg;
	bool pt = passthrough(cl);

	up_free(c); /* from its own callback: deferred by upstream.c */
	cl->probe = NULL;
	cl->db =
	    db_get(cl->fe, cl->database, pt ? cl->user : NULL, cl->password);
	if (cl->db == NULL ||
	    (pt && (!secret_replace(&cl->db->password, cl->password) ||
	            !pool_set_password(cl->db->pool, cl->password) ||
	            (cl->db->co_pool != NULL &&
	             !pool_set_password(cl->db->co_pool, cl->password))))) {
		fe_fail(cl, "53200", "out of memory");
		return;
	}
	secret_free(cl->password);
	cl->password = NULL;
	if (pt) /* the server took the password: so do we */
		pgw_put_auth(fe_out(cl), PGW_AUTH_OK, NULL, 0);
	login_pool(cl);
}

/* The server refused the login (3D000, 28P01) or could not be reached:
 * the client gets the server's SQLSTATE and message. */
static void probe_closed(struct up_conn *c, void *arg)
{
	struct fe_client *cl = arg;
	const char *sqlstate = up_login_sqlstate(c);
	const char *msg = up_last_error(c), *colon = strstr(msg, ": ");

	cl->probe = NULL;
	if (strncmp(sqlstate, "28", 2) == 0)
		cl->fe->stats.auth_failures++;
	else
		cl->fe->stats.refused++;
	fe_fail(cl, sqlstate[0] ? sqlstate : "08006", "%s",
	        sqlstate[0] && colon ? colon + 2 : msg);
	up_free(c); /* deferred: c stays readable until we return */
	up_params_clear(&cl->probe_params);
}

/* A login to the server: the database, and with passthrough the password. */
static void start_probe(struct fe_client *cl)
{
	struct frontend *fe = cl->fe;
	struct up_events ev = {probe_ready, probe_closed, cl};
	struct fe_db probe_db = {.name = cl->database};
	struct up_params params;

	if (passthrough(cl)) {
		probe_db.user = cl->user;
		probe_db.password = cl->password;
	}
	fe_set_state(cl, FE_LOGIN);
	fe_update_reading(cl);
	fe_db_params(fe, &probe_db, &params);
	if (!up_params_copy(&cl->probe_params, &params) ||
	    (cl->probe = up_connect(fe->base, fe->dns, &cl->probe_params, 0,
	                            &ev)) == NULL)
		fe_fail(cl, "53200", "out of memory");
}

/*
 * After the password checked out (scram), or came (passthrough): the
 * database. One with a pool goes on; otherwise (and always with
 * passthrough) a login to the server decides, so that a typo gets the
 * server's 3D000 (and no pool), a wrong password the server's 28P01.
 */
static void login_database(struct fe_client *cl)
{
	struct frontend *fe = cl->fe;
	bool pt = passthrough(cl);

	if (!cfg_frontend_database_allowed(&fe->cfg, cl->database)) {
		fe->stats.refused++;
		fe_fail(cl, "3D000", "database \"%s\" does not exist",
		        cl->database);
		return;
	}
	/* passthrough: every login is checked by the server itself, so a
	 * password (token) the server no longer takes is refused */
	cl->db = pt ? NULL : db_find(fe, cl->database, NULL);
	if (cl->db != NULL) {
		login_pool(cl);
		return;
	}
	if (fe->up.host == NULL && !pt) {
		/* no credential yet ([lakebase]): the pool waits for it */
		probe_ready(NULL, cl);
		return;
	}
	if (fe->up.host == NULL) {
		fe_fail(cl, "08006", "the server's address is not known yet");
		return;
	}
	start_probe(cl);
}

/* The verifier of user: from auth_file, made from a plain password, or a
 * mock one (unknown user) that no proof matches. */
static bool user_secret(struct fe_client *cl, struct scram_secret *s,
                        bool *mock)
{
	const struct frontend *fe = cl->fe;
	const char *secret = ul_secret(fe->users, cl->user);

	*mock = false;
	if (secret != NULL && strncmp(secret, "SCRAM-SHA-256$", 14) == 0) {
		if (scram_secret_parse(secret, s))
			return true;
		fe_log(LOG_WARN, cl, "event=auth_file_bad_verifier user=%s",
		       log_quote((char[200]){0}, 200, cl->user));
	} else if (secret != NULL && secret[0] != '\0') {
		struct scram_secret salt;

		/* a salt that is stable per user, like a stored verifier's */
		return scram_secret_mock(cl->user, fe->mock_key,
		                         sizeof(fe->mock_key), &salt) &&
		       scram_secret_make(secret, salt.salt, salt.salt_len,
		                         SCRAM_DEFAULT_ITERATIONS, s);
	}
	*mock = true;
	return scram_secret_mock(cl->user, fe->mock_key, sizeof(fe->mock_key),
	                         s);
}

static void start_scram(struct fe_client *cl)
{
	struct scram_secret s;
	bool mock;

	if (!user_secret(cl, &s, &mock) ||
	    (cl->scram = scram_server_new(&s, mock)) == NULL) {
		OPENSSL_cleanse(&s, sizeof(s));
		fe_fail(cl, "53200", "out of memory");
		return;
	}
	OPENSSL_cleanse(&s, sizeof(s));
	fe_set_state(cl, FE_AUTH);
	pgw_put_auth_sasl(fe_out(cl), SCRAM_MECHANISM);
}

static void auth_failed(struct fe_client *cl)
{
	cl->fe->stats.auth_failures++;
	fe_fail(cl, "28P01", "password authentication failed for user \"%s\"",
	        cl->user);
}

static void scram_first(struct fe_client *cl, const struct pgw_frame *f)
{
	const char *mech, *msg;
	const uint8_t *data;
	size_t len, mlen;
	char err[200];

	if (pgw_parse_sasl_initial(f, &mech, &data, &len) != PGW_OK ||
	    strcmp(mech, SCRAM_MECHANISM) != 0 || data == NULL) {
		fe_fail(cl, "08P01", "expected SASLInitialResponse with %s",
		        SCRAM_MECHANISM);
		return;
	}
	if (!scram_server_first(cl->scram, data, len, &msg, &mlen, err,
	                        sizeof(err))) {
		cl->fe->stats.auth_failures++;
		fe_fail(cl, "08P01", "SCRAM: %s", err);
		return;
	}
	pgw_put_auth(fe_out(cl), PGW_AUTH_SASL_CONTINUE, msg, mlen);
}

static void scram_final(struct fe_client *cl, const struct pgw_frame *f)
{
	const uint8_t *data;
	const char *msg;
	size_t len, mlen;
	char err[200];

	if (pgw_parse_sasl_response(f, &data, &len) != PGW_OK) {
		fe_fail(cl, "08P01", "malformed SASLResponse");
		return;
	}
	switch (scram_server_final(cl->scram, data, len, &msg, &mlen, err,
	                           sizeof(err))) {
	case SCRAM_SRV_OK:
		pgw_put_auth(fe_out(cl), PGW_AUTH_SASL_FINAL, msg, mlen);
		pgw_put_auth(fe_out(cl), PGW_AUTH_OK, NULL, 0);
		scram_server_free(cl->scram);
		cl->scram = NULL;
		login_database(cl);
		return;
	case SCRAM_SRV_BAD_PROOF:
		auth_failed(cl);
		return;
	default:
		cl->fe->stats.auth_failures++;
		fe_fail(cl, "08P01", "SCRAM: %s", err);
	}
}

/* Passthrough: the client's password, for the server to judge. */
static void got_password(struct fe_client *cl, const struct pgw_frame *f)
{
	const char *pw;

	if (cl->auth_step > 1 || pgw_parse_password(f, &pw) != PGW_OK ||
	    (cl->password = strdup(pw)) == NULL) {
		fe_fail(cl, "08P01", "expected one PasswordMessage");
		return;
	}
	login_database(cl);
}

/* Passthrough sends a password in the clear: only inside TLS or a unix
 * socket, whatever [frontend] tls says. */
static void start_passthrough(struct fe_client *cl)
{
	if (!cl->tls && !cl->is_unix) {
		cl->fe->stats.auth_failures++;
		fe_fail(cl, "28000",
		        "auth = passthrough needs TLS: connect with "
		        "sslmode require or stronger");
		return;
	}
	fe_set_state(cl, FE_AUTH);
	pgw_put_auth(fe_out(cl), PGW_AUTH_CLEARTEXT, NULL, 0);
}

/* SASL messages (or the password), one at a time, until the proof. */
static void handle_auth(struct fe_client *cl)
{
	struct evbuffer *in = bufferevent_get_input(cl->bev);
	struct pgw_frame f;
	enum pgw_rc rc;
	bool first;

	while (cl->state == FE_AUTH) {
		rc = pgw_frame_next(in, FE_MAX_AUTH_MESSAGE, &f);
		if (rc == PGW_AGAIN)
			return;
		if (rc == PGW_ERROR || f.type != PGW_FE_PASSWORD) {
			fe_fail(cl, "08P01", "expected a SASL message");
			return;
		}
		first = cl->auth_step++ == 0;
		if (passthrough(cl))
			got_password(cl, &f);
		else if (first)
			scram_first(cl, &f);
		else
			scram_final(cl, &f);
		if (cl->state == FE_CLOSING)
			return;
		pgw_frame_consume(in, &f);
	}
}

/* ---- startup ---- */

static void setup_bev(struct fe_client *cl);

static void cancel_done(struct up_conn *c, void *arg)
{
	struct fe_cancel *fc = arg;

	TAILQ_REMOVE(&fc->fe->cancels, fc, link);
	up_free(c); /* from its own callback: deferred by upstream.c */
	up_params_clear(&fc->params);
	free(fc);
}

/*
 * CancelRequest: the key must be one we gave (compared in constant time)
 * to a client whose query runs now; then the server hears it from us.
 */
static void handle_cancel(struct frontend *fe, const struct pgw_startup *s)
{
	struct fe_client *cl;
	struct up_params params;
	struct fe_cancel *fc;
	uint8_t want[4];

	if (s->cancel_key_len != 4)
		return;
	TAILQ_FOREACH(cl, &fe->clients, link)
	{
		if ((uint32_t)cl->id == s->cancel_pid)
			break;
	}
	if (cl == NULL)
		return;
	for (int i = 0; i < 4; i++)
		want[i] = (uint8_t)(cl->key_secret >> (24 - 8 * i));
	if (CRYPTO_memcmp(want, s->cancel_key, 4) != 0 || cl->up == NULL ||
	    cl->state != FE_ACTIVE)
		return;
	fe_db_params(fe, cl->db, &params);
	fc = calloc(1, sizeof(*fc));
	if (fc == NULL)
		return;
	if (!up_params_copy(&fc->params, &params)) {
		free(fc);
		return;
	}
	fc->fe = fe;
	fc->c = up_cancel(fe->base, fe->dns, &fc->params, up_get_id(cl->up),
	                  up_backend_pid(cl->up), up_backend_secret(cl->up),
	                  cancel_done, fc);
	if (fc->c == NULL) {
		up_params_clear(&fc->params);
		free(fc);
		return;
	}
	TAILQ_INSERT_TAIL(&fe->cancels, fc, link);
	fe->stats.cancels++;
	fe_log(LOG_INFO, cl, "event=cancel backend_pid=%" PRIu32,
	       up_backend_pid(cl->up));
}

/* Switches the socket to TLS: 'S' goes out in the clear, then the
 * handshake. Plaintext bytes after the SSLRequest are refused (a
 * man in the middle could have put them there: CVE-2021-23222). */
static void start_tls(struct fe_client *cl)
{
	struct evbuffer *out = fe_out(cl);
	evutil_socket_t fd = bufferevent_getfd(cl->bev);
	SSL *ssl = SSL_new(cl->fe->tls_ctx);
	struct bufferevent *bev;

	if (evbuffer_get_length(bufferevent_get_input(cl->bev)) > 0) {
		SSL_free(ssl);
		fe_fail(cl, "08P01", "unencrypted data after SSLRequest");
		return;
	}
	/* The bufferevent's output can not be drained by hand: send the one
	 * byte ourselves (nothing else is queued: the client waits for it). */
	if (ssl == NULL || evbuffer_get_length(out) != 0 ||
	    send(fd, "S", 1, MSG_NOSIGNAL) != 1) {
		SSL_free(ssl);
		fe_fail(cl, "08006", "cannot answer SSLRequest");
		return;
	}
	bev = bufferevent_openssl_socket_new(cl->fe->base, fd, ssl,
	                                     BUFFEREVENT_SSL_ACCEPTING,
	                                     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		fe_fail(cl, "53200", "out of memory");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	bufferevent_free(cl->bev); /* the plain one: does not close fd */
	cl->bev = bev;
	cl->tls = true;
	fe_set_state(cl, FE_TLS);
	setup_bev(cl);
}

static void answer_ssl(struct fe_client *cl)
{
	if (cl->tls || cl->is_unix || cl->fe->tls_ctx == NULL) {
		evbuffer_add(fe_out(cl), "N", 1);
		return;
	}
	start_tls(cl);
}

static bool copy_startup(struct fe_client *cl, const struct pgw_startup *s)
{
	const char *db = s->database && s->database[0] ? s->database : s->user;

	cl->user = strdup(s->user);
	cl->database = strdup(db);
	if (cl->user == NULL || cl->database == NULL)
		return false;
	for (size_t i = 0; i < s->nparams; i++) {
		int k = fe_var_find(s->names[i]);

		if (k >= 0 && (cl->vars[k] = strdup(s->values[i])) == NULL)
			return false;
	}
	return true;
}

/* Options the client asked for that we do not know, told back to it. */
static void negotiate_down(struct fe_client *cl, const struct pgw_startup *s)
{
	const char *opts[PGW_MAX_STARTUP_PARAMS];
	size_t n = 0;

	for (size_t i = 0; i < s->nparams; i++) {
		if (strncmp(s->names[i], "_pq_.", 5) == 0)
			opts[n++] = s->names[i];
	}
	pgw_put_negotiate_version(fe_out(cl), 0, opts, n);
}

static void startup_message(struct fe_client *cl, const struct pgw_startup *s)
{
	struct frontend *fe = cl->fe;

	if (s->user == NULL || s->user[0] == '\0') {
		cl->user = strdup("");
		fe_fail(cl, "28000",
		        "no PostgreSQL user name specified in startup packet");
		return;
	}
	if (!copy_startup(cl, s)) {
		fe_fail(cl, "53200", "out of memory");
		return;
	}
	if (s->minor > 0 || s->noptions > 0)
		negotiate_down(cl, s);
	if (cl->refuse != NULL) {
		fe_fail(cl, cl->refuse,
		        "too many clients already "
		        "([frontend] max_client_conn)");
		return;
	}
	if (fe->cfg.tls == FE_TLS_REQUIRE && !cl->tls && !cl->is_unix) {
		fe->stats.auth_failures++;
		fe_fail(cl, "28000",
		        "TLS is required: connect with sslmode "
		        "require or stronger");
		return;
	}
	for (size_t i = 0; i < s->nparams; i++) {
		if (strcmp(s->names[i], "replication") == 0) {
			fe_fail(cl, "08P01",
			        "replication connections are not supported");
			return;
		}
	}
	if (passthrough(cl))
		start_passthrough(cl);
	else
		start_scram(cl);
}

static void handle_startup(struct fe_client *cl)
{
	struct evbuffer *in = bufferevent_get_input(cl->bev);
	struct pgw_startup s;
	enum pgw_rc rc;

	while (cl->state == FE_STARTUP) {
		rc = pgw_startup_next(in, &s);
		if (rc == PGW_AGAIN)
			return;
		if (rc == PGW_ERROR) {
			fe_fail(cl, "08P01", "invalid startup packet");
			return;
		}
		if (s.kind == PGW_STARTUP_CANCEL) {
			handle_cancel(cl->fe, &s);
			fe_close(cl); /* PostgreSQL answers nothing */
			return;
		}
		if (s.kind == PGW_STARTUP_PROTO) {
			startup_message(cl, &s);
			pgw_startup_consume(in, &s);
			return;
		}
		pgw_startup_consume(in, &s);
		if (s.kind == PGW_STARTUP_GSSENC)
			evbuffer_add(fe_out(cl), "N", 1);
		else
			answer_ssl(cl);
	}
}

/* ---- socket events ---- */

static void finish_close(struct fe_client *cl)
{
	if (cl->exec_running) {
		cl->gone = true;
		bufferevent_disable(cl->bev, EV_READ | EV_WRITE);
		return;
	}
	free_client(cl);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct fe_client *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	switch (cl->state) {
	case FE_STARTUP:
		handle_startup(cl);
		break;
	case FE_AUTH:
		handle_auth(cl);
		break;
	case FE_IDLE:
	case FE_ACTIVE:
		fe_relay_client_input(cl);
		break;
	case FE_COALESCING:
		fco_copy_input(cl);
		break;
	case FE_CLOSING:
		evbuffer_drain(in, evbuffer_get_length(in));
		break;
	default:
		break;
	}
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct fe_client *cl = arg;

	if (cl->state == FE_CLOSING &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		finish_close(cl);
		return;
	}
	if (cl->state == FE_ACTIVE)
		fe_relay_client_drained(cl);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct fe_client *cl = arg;

	if ((what & BEV_EVENT_CONNECTED) && cl->state == FE_TLS) {
		fe_set_state(cl, FE_STARTUP);
		fe_update_reading(cl);
		handle_startup(cl);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (cl->state == FE_CLOSING) {
		finish_close(cl);
		return;
	}
	if (cl->state == FE_ACTIVE &&
	    (cl->txn != 'I' || cl->syncs_sent != cl->syncs_done))
		fe_log(LOG_INFO, cl, "event=client_gone state=%s txn=%c",
		       state_names[cl->state], cl->txn ? cl->txn : '-');
	fe_close(cl);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fe_client *cl = arg;

	switch (cl->state) {
	case FE_CLOSING:
		finish_close(cl);
		break;
	case FE_WAITING:
	case FE_LOGIN:
		fe_relay_wait_timeout(cl);
		break;
	case FE_IDLE: /* inside a coalesced transaction */
	case FE_ACTIVE:
		fe_fail(cl, "25P03",
		        "terminating connection due to idle-in-transaction "
		        "timeout ([frontend] idle_transaction_timeout_s = %u)",
		        cl->fe->cfg.idle_transaction_timeout_s);
		break;
	default:
		fe_fail(cl, "08006", "login took longer than %d s",
		        FE_LOGIN_TIMEOUT_S);
	}
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fe_client *cl = arg;

	if (cl->state == FE_IDLE || cl->state == FE_ACTIVE)
		fe_relay_client_input(cl);
	else if (cl->state == FE_COALESCING)
		fco_copy_input(cl);
}

/* The plain bufferevent does not own fd: a TLS one may take it over. */
static struct fe_client *new_client(struct frontend *fe, evutil_socket_t fd,
                                    bool is_unix)
{
	struct fe_client *cl = calloc(1, sizeof(*cl));

	if (cl == NULL)
		return NULL;
	cl->fe = fe;
	cl->id = ++fe->next_id;
	cl->is_unix = is_unix;
	cl->state = FE_STARTUP;
	cl->reading = true;
	cl->txn = 'I';
	cl->bev = bufferevent_socket_new(fe->base, fd, 0);
	cl->timer = evtimer_new(fe->base, timer_cb, cl);
	cl->kick = event_new(fe->base, -1, 0, kick_cb, cl);
	if (cl->bev == NULL || cl->timer == NULL || cl->kick == NULL ||
	    RAND_bytes((unsigned char *)&cl->key_secret,
	               sizeof(cl->key_secret)) != 1) {
		if (cl->bev != NULL)
			bufferevent_free(cl->bev);
		if (cl->timer != NULL)
			event_free(cl->timer);
		if (cl->kick != NULL)
			event_free(cl->kick);
		free(cl);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&fe->clients, cl, link);
	fe->stats.clients[FE_STARTUP]++;
	mt_set(fe->m_clients[FE_STARTUP], fe->stats.clients[FE_STARTUP]);
	return cl;
}

/* Callbacks and limits; again after the TLS switch. */
static void setup_bev(struct fe_client *cl)
{
	bufferevent_setwatermark(cl->bev, EV_READ, 0, FE_QUEUE_HIGH);
	bufferevent_setwatermark(cl->bev, EV_WRITE, FE_QUEUE_LOW, 0);
	bufferevent_setcb(cl->bev, read_cb, write_cb, event_cb, cl);
	bufferevent_enable(cl->bev, EV_READ | EV_WRITE);
	cl->reading = true;
}

static unsigned client_count(const struct frontend *fe)
{
	unsigned n = 0;

	for (int i = 0; i < FE_NSTATES; i++)
		n += fe->stats.clients[i];
	return n;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int socklen, void *arg)
{
	struct frontend *fe = arg;
	struct fe_client *cl;
	int one = 1;

	if (sa->sa_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	evutil_make_socket_nonblocking(fd);
	cl = new_client(fe, fd, sa->sa_family == AF_UNIX);
	if (cl == NULL) {
		evutil_closesocket(fd);
		return;
	}
	fe->stats.accepted++;
	setup_bev(cl);
	arm_timer_s(cl, FE_LOGIN_TIMEOUT_S);
	if (client_count(fe) > fe->cfg.max_client_conn) {
		fe->stats.refused++;
		cl->refuse = "53300";
	}
}

/* ---- listening ---- */

/* unix:/dir is a directory: the socket is /dir/.s.PGSQL.6432, as psql
 * (host=/dir port=6432) looks for it; unix:/dir/.s.PGSQL.N names it. */
static bool unix_socket_path(struct na_listen *addr, char *err, size_t errlen)
{
	const char *base = strrchr(addr->path, '/');
	char full[sizeof(addr->path) + 32];

	if (base != NULL && strncmp(base + 1, ".s.PGSQL.", 9) == 0)
		return true;
	snprintf(full, sizeof(full), "%s/.s.PGSQL.%d", addr->path,
	         FE_DEFAULT_PORT);
	if (strlen(full) >= sizeof(addr->path)) {
		snprintf(err, errlen,
		         "[frontend] listen: unix socket path %s "
		         "is too long",
		         full);
		return false;
	}
	memcpy(addr->path, full, strlen(full) + 1);
	return true;
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	log_warn("event=fe_accept_failed error=\"%s\"",
	         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static bool start_listening(struct frontend *fe, const char *listen, char *err,
                            size_t errlen)
{
	struct na_listen addr;

	if (!na_parse_listen(listen, &addr, err, errlen) ||
	    (addr.is_unix && !unix_socket_path(&addr, err, errlen)))
		return false;
	fe->listener =
	    na_listener_new(fe->base, &addr, accept_cb, fe, err, errlen);
	if (fe->listener == NULL)
		return false;
	if (addr.is_unix)
		snprintf(fe->unix_path, sizeof(fe->unix_path), "%s", addr.path);
	evconnlistener_set_error_cb(fe->listener, accept_error_cb);
	log_info("event=fe_listening addr=%s%s auth=%s pool_mode=%s tls=%s",
	         addr.is_unix ? "unix:" : listen, addr.is_unix ? addr.path : "",
	         fe_auth_mode_name(fe->cfg.auth),
	         fe_pool_mode_name(fe->cfg.pool_mode),
	         fe_tls_mode_name(fe->cfg.tls));
	return true;
}

/* ---- settings ---- */

/* Everything [frontend] names that can fail, loaded before anything
 * changes: the userlist and the TLS context. */
struct fe_loaded {
	struct userlist *users;
	SSL_CTX *tls_ctx;
};

static bool load_frontend(const struct cfg_frontend *c, struct fe_loaded *l,
                          char *err, size_t errlen)
{
	memset(l, 0, sizeof(*l));
	if (c->auth_file != NULL &&
	    (l->users = ul_load(c->auth_file, err, errlen)) == NULL)
		return false;
	if (c->tls != FE_TLS_OFF &&
	    (l->tls_ctx = tls_server_ctx_new(c->tls_cert_file, c->tls_key_file,
	                                     err, errlen)) == NULL) {
		ul_free(l->users);
		return false;
	}
	return true;
}

static void copy_strings(struct cfg_frontend *dst,
                         const struct cfg_frontend *src)
{
	free(dst->databases);
	free(dst->coalesce_tables);
	*dst = *src;
	dst->listen = NULL;
	dst->auth_file = NULL;
	dst->tls_cert_file = NULL;
	dst->tls_key_file = NULL;
	dst->databases = strdup(src->databases ? src->databases : "*");
	/* NULL (out of memory) coalesces nothing */
	dst->coalesce_tables =
	    strdup(src->coalesce_tables ? src->coalesce_tables : "*");
}

static void apply_frontend(struct frontend *fe, const struct config *cfg,
                           struct fe_loaded *l)
{
	ul_free(fe->users);
	fe->users = l->users;
	if (fe->tls_ctx != NULL)
		SSL_CTX_free(fe->tls_ctx);
	fe->tls_ctx = l->tls_ctx;
	copy_strings(&fe->cfg, &cfg->frontend);
	fe->acquire_timeout_ms = cfg->batch.acquire_timeout_ms;
	fe_set_batch_config(fe, &cfg->batch);
}

bool fe_reconfigure(struct frontend *fe, const struct config *cfg, char *err,
                    size_t errlen)
{
	struct fe_loaded l;

	if (!load_frontend(&cfg->frontend, &l, err, errlen))
		return false;
	apply_frontend(fe, cfg, &l);
	log_info("event=fe_config users=%zu pool_mode=%s tls=%s "
	         "max_client_conn=%u",
	         ul_count(fe->users), fe_pool_mode_name(fe->cfg.pool_mode),
	         fe_tls_mode_name(fe->cfg.tls), fe->cfg.max_client_conn);
	return true;
}

void fe_set_pool_config(struct frontend *fe, const struct cfg_pool *pc)
{
	struct fe_db *db;

	fe->pool_cfg = *pc;
	TAILQ_FOREACH(db, &fe->dbs, link)
	{
		pool_reconfigure(db->pool, pc);
		if (db->co_pool != NULL)
			pool_reconfigure(db->co_pool, pc);
	}
}

void fe_set_batch_config(struct frontend *fe, const struct cfg_batch *b)
{
	fe->batch_cfg = *b;
	fco_reconfigure(fe);
}

bool fe_set_credential(struct frontend *fe, const char *host,
                       const char *password)
{
	struct fe_db *db;
	bool ok = secret_replace((char **)&fe->up.password, password);

	if (ok && host != NULL) {
		char *h = strdup(host);

		ok = h != NULL;
		if (ok) {
			free((char *)fe->up.host);
			fe->up.host = h;
		}
	}
	TAILQ_FOREACH(db, &fe->dbs, link)
	{
		/* passthrough pools log in with their clients' passwords */
		struct pool *pools[] = {db->pool, db->co_pool};

		for (size_t i = 0; i < 2 && pools[i] != NULL; i++) {
			if (db->user == NULL)
				ok =
				    pool_set_password(pools[i], password) && ok;
			if (host != NULL)
				ok = pool_set_host(pools[i], host) && ok;
		}
	}
	return ok;
}

bool fe_set_endpoint(struct frontend *fe, const struct up_params *params)
{
	struct up_params next, want = *params;
	struct fe_db *db;
	bool ok = true;

	if (want.host == NULL)
		want.host = fe->up.host;
	want.password = fe->up.password;
	if (!up_params_copy(&next, &want))
		return false;
	next.notices = true;
	up_params_clear(&fe->up);
	fe->up = next;
	TAILQ_FOREACH(db, &fe->dbs, link)
	{
		struct up_params p;

		fe_db_params(fe, db, &p);
		ok = pool_set_endpoint(db->pool, &p) && ok;
		if (db->co_pool != NULL)
			ok = pool_set_endpoint(db->co_pool, &p) && ok;
	}
	return ok;
}

struct frontend *fe_new(struct event_base *base, struct evdns_base *dns,
                        const struct config *cfg,
                        const struct up_params *upstream, char *err,
                        size_t errlen)
{
	struct frontend *fe = calloc(1, sizeof(*fe));
	struct fe_loaded l;

	if (fe == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	fe->base = base;
	fe->dns = dns;
	TAILQ_INIT(&fe->clients);
	TAILQ_INIT(&fe->dbs);
	TAILQ_INIT(&fe->cancels);
	fe_register_metrics(fe);
	fe->pool_cfg = cfg->pool;
	if (!up_params_copy(&fe->up, upstream) ||
	    RAND_bytes(fe->mock_key, sizeof(fe->mock_key)) != 1) {
		snprintf(err, errlen, "out of memory");
		fe_free(fe);
		return NULL;
	}
	if (!load_frontend(&cfg->frontend, &l, err, errlen)) {
		fe_free(fe);
		return NULL;
	}
	apply_frontend(fe, cfg, &l);
	fe->up.notices = true; /* clients see their NOTICEs */
	if (!start_listening(fe, cfg->frontend.listen, err, errlen)) {
		fe_free(fe);
		return NULL;
	}
	return fe;
}

/* What is queued for a plain client, written now without blocking. */
static void send_now(struct fe_client *cl)
{
	char buf[4096];
	ev_ssize_t n = evbuffer_copyout(fe_out(cl), buf, sizeof(buf));

	if (n > 0)
		(void)!send(bufferevent_getfd(cl->bev), buf, (size_t)n,
		            MSG_NOSIGNAL | MSG_DONTWAIT);
}

void fe_free(struct frontend *fe)
{
	struct fe_client *cl;
	struct fe_db *db;
	struct fe_cancel *fc;

	if (fe == NULL)
		return;
	if (fe->listener)
		evconnlistener_free(fe->listener);
	if (fe->unix_path[0])
		unlink(fe->unix_path);
	while ((cl = TAILQ_FIRST(&fe->clients)) != NULL) {
		if (cl->state != FE_CLOSING && cl->state >= FE_AUTH)
			pgw_put_error(fe_out(cl), "FATAL", "57P01",
			              "the proxy is shutting down");
		/* Best effort: the loop no longer runs to write it later. */
		if (!cl->tls)
			send_now(cl);
		cl->exec_running = false; /* the pools free their connections */
		fe_relay_detach(cl);
		free_client(cl);
	}
	while ((fc = TAILQ_FIRST(&fe->cancels)) != NULL) {
		TAILQ_REMOVE(&fe->cancels, fc, link);
		up_free(fc->c);
		up_params_clear(&fc->params);
		free(fc);
	}
	while ((db = TAILQ_FIRST(&fe->dbs)) != NULL) {
		TAILQ_REMOVE(&fe->dbs, db, link);
		db_free(db);
	}
	ul_free(fe->users);
	if (fe->tls_ctx != NULL)
		SSL_CTX_free(fe->tls_ctx);
	up_params_clear(&fe->up);
	free(fe->cfg.databases);
	free(fe->cfg.coalesce_tables);
	free(fe);
}

void fe_drain(struct frontend *fe)
{
	struct fe_client *cl, *next;

	fe->draining = true;
	if (fe->listener != NULL)
		evconnlistener_disable(fe->listener);
	fco_drain(fe);
	for (cl = TAILQ_FIRST(&fe->clients); cl; cl = next) {
		next = TAILQ_NEXT(cl, link);
		/* those in a transaction go when it is over (fe_relay.c) */
		if (cl->state != FE_ACTIVE && cl->state != FE_WAITING &&
		    cl->state != FE_CLOSING && cl->state != FE_COALESCING &&
		    cl->co_txn == NULL)
			fe_fail(cl, "57P01", "the proxy is shutting down");
		else if (cl->state == FE_ACTIVE && cl->txn == 'I' &&
		         cl->syncs_sent == cl->syncs_done && cl->unsynced == 0)
			fe_fail(cl, "57P01", "the proxy is shutting down");
	}
}

bool fe_is_idle(const struct frontend *fe)
{
	return TAILQ_EMPTY(&fe->clients) && fco_is_idle(fe);
}

void fe_get_stats(const struct frontend *fe, struct fe_stats *s)
{
	struct fe_db *db;
	struct pool_stats ps;

	*s = fe->stats;
	s->server_lent = 0;
	TAILQ_FOREACH(db, &fe->dbs, link)
	{
		pool_get_stats(db->pool, &ps);
		s->server_lent += ps.lent;
	}
}
