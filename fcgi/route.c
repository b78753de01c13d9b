/*
 * route: the route table and the dispatcher (see route.h). The table is
 * the single list of what the API answers: `etl-api --routes` prints it,
 * and the openapi.yaml test checks the document against that output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "ckpt.h"
#include "conn.h"
#include "db.h"
#include "handlers.h"
#include "js.h"
#include "log.h"
#include "resp.h"
#include "route.h"

static const struct route routes[] = {
	{ "POST", "/auth/login", hauth_login, ROUTE_PUBLIC, ROUTE_BODY },
	{ "GET", "/auth/me", hauth_me, ROLE_VIEWER, ROUTE_READ },
	{ "GET", "/users", hauth_users_list, ROLE_ADMIN, ROUTE_READ },
	{ "POST", "/users", hauth_users_create, ROLE_ADMIN, ROUTE_BODY },
	{ "DELETE", "/users/{username}", hauth_users_delete, ROLE_ADMIN, 0 },
	{ "GET", "/sistemas", hsist_list, ROLE_VIEWER, ROUTE_READ },
	{ "GET", "/sistemas/{id}", hsist_get, ROLE_VIEWER, ROUTE_READ },
	{ "PUT", "/sistemas/{id}", hsist_put, ROLE_ADMIN, ROUTE_BODY },
	{ "POST", "/execute", hjobs_execute, ROLE_OPERATOR, ROUTE_BODY | ROUTE_BATCH },
	{ "GET", "/jobs", hjobs_list, ROLE_VIEWER, ROUTE_READ },
	{ "GET", "/jobs/{id}", hjobs_get, ROLE_VIEWER, ROUTE_READ },
	{ "GET", "/jobs/{id}/logs", hjobs_logs, ROLE_VIEWER, ROUTE_READ },
	{ "POST", "/jobs/{id}/cancel", hjobs_cancel, ROLE_OPERATOR, 0 },
	{ "GET", "/pool/status", hmisc_pool, ROLE_VIEWER, ROUTE_READ },
	{ "GET", "/health", hmisc_health, ROUTE_PUBLIC, ROUTE_NODB },
	{ "GET", "/metrics", hmisc_metrics, ROUTE_PUBLIC, ROUTE_NODB },
};

void
route_print(FILE *f, const char *base)
{
	size_t blen = strlen(base);

	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(routes); i++)
		fprintf(f, "%s %.*s%s %s\n", routes[i].method, (int)blen, base, routes[i].pattern,
		    routes[i].min_role == ROUTE_PUBLIC ? "public"
		                                       : users_role_name(routes[i].min_role));
}

/*
 * Matches the request's segments against a pattern. Returns 1 and fills
 * params (pointers into r->segs) when every segment matches.
 */
static int
match(const struct req *r, const char *pattern, const char **params, size_t *nparams)
{
	const char *p = pattern;
	size_t i = 0, np = 0;

	while (*p == '/') {
		const char *s = p + 1;
		size_t n = strcspn(s, "/");

		if (i == r->nsegs)
			return 0;
		if (n >= 2 && s[0] == '{' && s[n - 1] == '}')
			params[np++] = r->segs[i];
		else if (strlen(r->segs[i]) != n || memcmp(r->segs[i], s, n) != 0)
			return 0;
		i++;
		p = s + n;
	}
	if (i != r->nsegs)
		return 0;
	*nparams = np;
	return 1;
}

/* Finds the route; on a path match with the wrong method, answers 405 with
 * Allow. Returns the route or NULL (response written). */
static const struct route *
find(struct req *r)
{
	const char *params[REQ_MAX_SEGS];
	struct buf allow = { 0 };
	size_t np = 0;

	if (!r->path_ok) {
		resp_error(r, 404, "not found");
		return NULL;
	}
	for (size_t i = 0; i < UTIL_ARRAY_LEN(routes); i++) {
		if (!match(r, routes[i].pattern, params, &np))
			continue;
		/* HEAD is GET without the body (resp_send drops it) */
		if (strcmp(routes[i].method, r->method) == 0 ||
		    (strcmp(r->method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0)) {
			memcpy(r->params, params, np * sizeof(params[0]));
			r->nparams = np;
			buf_free(&allow);
			return &routes[i];
		}
		if (allow.len)
			buf_puts(&allow, ", ");
		buf_puts(&allow, routes[i].method);
	}
	if (allow.len == 0) {
		resp_error(r, 404, "not found");
	} else if (strcmp(r->method, "OPTIONS") == 0 && r->api->conf.cors_origin != NULL &&
	           *r->api->conf.cors_origin != '\0') {
		/* a browser's CORS preflight (only when ETL_CORS_ORIGIN is set) */
		resp_header(r, "Access-Control-Allow-Methods", "%s", allow.data);
		resp_header(r, "Access-Control-Allow-Headers",
		    "Authorization, Content-Type, Idempotency-Key");
		resp_header(r, "Access-Control-Max-Age", "600");
		resp_send(r, 204, NULL, NULL, 0);
	} else {
		resp_header(r, "Allow", "%s", allow.data);
		resp_error(r, 405, "method not allowed");
	}
	buf_free(&allow);
	return NULL;
}

int
route_db_ensure(struct api *api)
{
	char err[256];

	if (api->db != NULL)
		return 0;
	api->db = db_open(api->conf.db_path, DB_OPEN_CREATE | DB_OPEN_SMALL_CACHE,
	    api->conf.db_busy_timeout, err, sizeof(err));
	if (api->db == NULL) {
		log_warnx("database %s: %s", api->conf.db_path, err);
		return -1;
	}
	/* A serving process checkpoints the WAL on its own thread, so that no
	 * request pays for it (lib/db.h), also when no etl-worker runs. */
	if (api->long_lived && api->ckpt == NULL &&
	    (api->ckpt = ckpt_start(api->conf.db_path, api->conf.db_busy_timeout,
	         DB_CHECKPOINT_INTERVAL_MS, err, sizeof(err))) == NULL)
		log_warnx("%s (requests will checkpoint the WAL themselves)", err);
	db_autocheckpoint(api->db, api->ckpt == NULL, ckpt_nudge, api->ckpt);
	return 0;
}

/* The request thread's own read connection, opened on first use: reads
 * run in parallel with each other and with the shared connection's
 * writes (SQLite's WAL: readers never wait for the writer). NULL when it
 * cannot be opened (no database yet): the request then takes the shared
 * connection, which creates and migrates it. */
static struct db *
own_db(struct req *r)
{
	char err[256];

	if (*r->own == NULL) {
		*r->own = db_open(r->api->conf.db_path, DB_OPEN_SMALL_CACHE,
		    r->api->conf.db_busy_timeout, err, sizeof(err));
		if (*r->own == NULL)
			log_debug("read connection: %s", err);
	}
	return *r->own;
}

/* Types and parses the body of a ROUTE_BODY route, read earlier (st: what
 * req_read_body returned, 0 or 413). Returns 0, or -1 after an error
 * response. */
static int
parse_json(struct req *r, int st)
{
	size_t max = (size_t)r->api->conf.max_body;
	char err[128] = "";
	int ok = 0;

	if (!req_is_json(r)) {
		const char *ct = req_env(r, "CONTENT_TYPE");
		if (ct == NULL || *ct == '\0')
			if (req_content_length(r) == 0) {
				resp_error(r, 422, "a JSON body is required");
				return -1;
			}
		resp_error(r, 415, "the body must be application/json");
		return -1;
	}
	if (st != 0) {
		resp_error(r, st, "request body larger than %zu bytes", max);
		return -1;
	}
	r->json = js_parse(r->body, r->body_len, max, JS_MAX_DEPTH, &ok, err, sizeof(err));
	if (r->json == NULL) {
		resp_error(r, 422, "%s", ok ? "the body must be a JSON object" : err);
		return -1;
	}
	if (!json_object_is_type(r->json, json_type_object)) {
		resp_error(r, 422, "the body must be a JSON object");
		return -1;
	}
	return 0;
}

/* Takes the shared connection for rt (committing an open enqueue batch
 * unless rt joins it) and opens the database if need be. Returns 0, or -1
 * after a 503. */
static int
take_shared(struct req *r, const struct route *rt)
{
	conn_take(r->api);
	r->held = 1;
	if (!(rt->flags & ROUTE_BATCH))
		conn_settle(r->api);
	if (!(rt->flags & ROUTE_NODB) && route_db_ensure(r->api) != 0) {
		resp_error(r, 503, "database unavailable");
		return -1;
	}
	r->db = r->api->db;
	return 0;
}

/*
 * Everything that waits on the client (the body) or reads (the token's
 * user) happens before the shared connection is taken, on the thread's
 * own read connection: a slow body must not hold the connection, which
 * may hold an open batch and with it SQLite's write lock for every
 * process. A read-only route never takes it.
 */
void
route_dispatch(struct req *r)
{
	const struct route *rt;
	char meth[24];
	int64_t cl;
	int body_st = 0;

	rt = find(r);
	if (rt == NULL) {
		req_drain(r); /* keep the connection in step with the web server */
		goto out;
	}
	r->route = rt;
	cl = req_content_length(r);
	if (cl < 0 || cl > r->api->conf.max_body) {
		req_drain(r);
		resp_error(r, 413, "request body larger than %d bytes", r->api->conf.max_body);
		goto out;
	}
	if ((rt->flags & ROUTE_BODY) && req_is_json(r))
		body_st = req_read_body(r, (size_t)r->api->conf.max_body);
	else
		req_drain(r);
	if (r->own != NULL && !(rt->flags & ROUTE_NODB))
		r->db = own_db(r);
	if (r->db == NULL && take_shared(r, rt) != 0) /* CGI, or no database yet */
		goto out;
	if ((rt->flags & ROUTE_READ) && db_read_scope(r->db) != DB_OK)
		log_warnx("%s %s: no read scope: %s", rt->method, rt->pattern,
		    db_errmsg(r->db)); /* each step reads on its own */
	if (rt->min_role != ROUTE_PUBLIC) {
		if (hauth_token(r) != 0)
			goto out;
		/* an enqueue on the thread's own connection: its account is read
		 * in the batch (handlers.h) */
		if (!((rt->flags & ROUTE_BATCH) && r->own != NULL && r->db == *r->own &&
		        hauth_defer_account(r, rt->min_role)) &&
		    hauth_account(r, r->db, rt->min_role) != 0)
			goto out;
	}
	if ((rt->flags & ROUTE_BODY) && parse_json(r, body_st) != 0)
		goto out;
	if (!r->query_ok) {
		resp_error(r, 422, "malformed query string");
		goto out;
	}
	if (!(rt->flags & ROUTE_READ) && !r->held && take_shared(r, rt) != 0)
		goto out;
	rt->fn(r);
	if (!r->responded) {
		log_warnx("%s %s: handler gave no response", rt->method, rt->pattern);
		resp_error(r, 500, "internal error");
	}
out:
	db_read_scope_end(r->db); /* normally resp_send ended it */
	if (r->held)
		conn_give(r->api);
	r->held = 0;
	hmisc_send_events(r); /* with the connection free: Redis may be slow */
	log_escape(r->method, strlen(r->method), meth, sizeof(meth));
	log_debug("%s %s -> %d (%lld ms)%s%s", meth, rt ? rt->pattern : "(no route)", r->status,
	    (long long)(util_mono_ms() - r->t0), r->authed ? " user=" : "",
	    r->authed ? r->user.username : "");
}
