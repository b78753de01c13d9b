/*
 * api: the state etl-api keeps per process (configuration, database handle,
 * event publisher) and per request (the CGI variables, the matched route,
 * the authenticated user, the body), and the request-reading functions of
 * req.c. A struct req belongs to one request thread and lives from accept
 * to finish; it owns everything allocated for it (req_free releases it
 * all, so nothing leaks from one request to the next).
 */
#ifndef ETL_API_H
#define ETL_API_H

#include <fcgiapp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "tok.h"
#include "users.h"
#include "util.h"

struct db;
struct pub;
struct json_object;
struct route;
struct wake_sender;

struct conn_member;

/* One etl-api process: made once (after fork), used by every request of
 * its threads. conf, secret_len, long_lived and started_ms are read-only
 * once serving; db is used only by the thread holding the connection
 * (conn.h), which also guards the batch fields; pub only under pub_mu,
 * after the connection is given back (Redis may be slow); wake only under
 * wake_mu (conn_wake). */
struct api {
	struct conf conf;
	size_t secret_len;
	struct db *db; /* NULL until opened; reopened lazily when it failed */
	int long_lived; /* FastCGI, not CGI: run the WAL checkpointer */
	struct ckpt *ckpt; /* lib/ckpt.h, beside db; NULL in CGI mode */
	struct pub *pub; /* used under pub_mu only (h_misc.c), not the connection */
	pthread_mutex_t pub_mu;
	struct wake_sender *wake; /* to the workers' wake-up sockets (wake.h) */
	pthread_mutex_t wake_mu;
	int64_t started_ms;
	atomic_llong requests; /* served by this process */

	pthread_mutex_t mu; /* the connection (conn.h) */
	atomic_int waiting; /* threads about to take it */
	/* the open write transaction of enqueues: its members, waiting for
	 * the commit (NULL: none open) */
	struct conn_member *batch;
	int batch_size;
};

#define REQ_MAX_SEGS 8
#define REQ_MAX_QUERY 16

struct req_kv {
	char *key;
	char *val;
};

struct req {
	struct api *api;
	/* I/O: FastCGI streams, or stdin/stdout when cgi is set */
	int cgi;
	FCGX_Stream *in;
	FCGX_Stream *out;
	FCGX_ParamArray envp;

	const char *method; /* REQUEST_METHOD */
	char *segs[REQ_MAX_SEGS]; /* decoded path segments below the base */
	size_t nsegs;
	int path_ok; /* 0: outside the base, or undecodable: 404 */
	struct req_kv query[REQ_MAX_QUERY];
	size_t nquery;
	int query_ok; /* 0: malformed query string: 422 */

	const struct route *route;
	const char *params[REQ_MAX_SEGS]; /* the {x} segments, in order */
	size_t nparams;

	/* The connection the request uses: the thread's own read connection
	 * *own (opened on first use; own is NULL in CGI mode) for the token's
	 * user and a ROUTE_READ route's handler, else the shared one (api->db,
	 * taken with conn_take). */
	struct db *db;
	struct db **own;
	int held; /* holds the shared connection (conn_take) */
	struct tok_cache *tokc; /* the thread's verified tokens (NULL in CGI mode) */

	struct tok_claims claims; /* the verified token's (hauth_token) */
	int authed;
	struct user user; /* when authed: role from the database */
	/* r->user is the token's, its account not yet read (hauth_defer_account) */
	int account_pending;

	char *body; /* NUL-terminated, body_len bytes */
	size_t body_len;
	struct json_object *json; /* parsed body (routes that take one) */

	char **events; /* to publish once the request is answered (hmisc_event) */
	size_t nevents;
	int wake; /* wake the workers once the events are out (hmisc_wake_after) */
	struct buf xhdr; /* extra response headers, "Name: value\r\n" each */
	int responded;
	int status;
	int64_t t0; /* mono ms at accept */
};

/* Sets up r from the request's CGI variables (method, path relative to the
 * configured base, query). Never fails: an unusable path or query is
 * recorded in path_ok / query_ok for the dispatcher. */
void req_init(struct req *r, struct api *api, int cgi, FCGX_Stream *in, FCGX_Stream *out,
    FCGX_ParamArray envp);
/* Releases everything r owns. Safe on a zeroed r. */
void req_free(struct req *r);

/* A CGI variable ("CONTENT_TYPE", "HTTP_AUTHORIZATION"), or NULL. */
const char *req_env(const struct req *r, const char *name);
/* The decoded value of a query parameter (the last one of that name), or NULL. */
const char *req_query(const struct req *r, const char *key);

/*
 * Reads the body into r->body (at most max bytes). Returns 0, or 413 when
 * the body (declared or actual) is longer than max; the rest is then read
 * and discarded so the web server's connection stays in step.
 */
int req_read_body(struct req *r, size_t max);
/* Reads and discards whatever body is left (bounded). */
void req_drain(struct req *r);
/* CONTENT_LENGTH as a number (0 when absent; -1 when malformed). */
int64_t req_content_length(const struct req *r);
/* 1 if CONTENT_TYPE is application/json (any parameters). */
int req_is_json(const struct req *r);

/* Writes n bytes of the response. Returns 0 or -1. */
int req_write(struct req *r, const char *p, size_t n);
/* Sends what is written so far to the web server now (the rest, and the
 * end of the request, go at its finish). */
void req_flush(struct req *r);

#endif
