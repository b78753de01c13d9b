/*
 * api_harness: etl-api in process, in plain-CGI mode (see api_harness.h).
 * The database lives under /dev/shm and is made again from nothing every
 * API_RESET_EVERY inputs (between two inputs, never inside one), so what
 * fuzzed requests write (jobs, users, sistemas, failed logins) cannot pile
 * up or drift far from the seed; a single input replayed alone always
 * meets the fresh seed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "api.h"
#include "api_harness.h"
#include "conn.h"
#include "db.h"
#include "fuzz.h"
#include "js.h"
#include "json_check.h"
#include "log.h"
#include "pub.h"
#include "route.h"
#include "sist.h"
#include "tok.h"
#include "users.h"
#include "wake.h"

#define API_RESET_EVERY 1000 /* inputs: 2,000 requests or so */

static const char secret[] = "fuzz-api-secret-0123456789abcdef0123456789";

static struct api api;
static char dir[128], dbpath[192];
static char *tokens[AUTH_EXPIRED + 1];
static FILE *devnull;
static int ready;
static unsigned calls;

/* A fresh database with the seed, and tokens signed after the users exist. */
static void
seed(void)
{
	static const struct {
		const char *name;
		enum role role;
	} users[] = { { "viewer", ROLE_VIEWER }, { "oper", ROLE_OPERATOR },
		{ "admin", ROLE_ADMIN } };
	char err[256];
	int created;
	int64_t now_s;

	db_close(api.db);
	api.db = NULL;
	db_remove(dbpath);
	api.db = db_open(dbpath, DB_OPEN_CREATE, api.conf.db_busy_timeout, err, sizeof(err));
	if (api.db == NULL)
		fatalx("fuzz: db_open %s: %s", dbpath, err);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(users); i++)
		if (users_create(api.db, users[i].name, "password-123", users[i].role) != DB_OK)
			fatalx("fuzz: seeding user %s", users[i].name);
	if (sist_put(api.db, "amplis", "Amplis", "posicoes", 1, &created) != DB_OK ||
	    sist_put(api.db, "maps", "Maps", NULL, 1, &created) != DB_OK ||
	    sist_put(api.db, "velho", "Velho", "inativo", 0, &created) != DB_OK)
		fatalx("fuzz: seeding sistemas");
	now_s = util_now_ms() / 1000;
	for (int i = 0; i <= AUTH_EXPIRED; i++) {
		free(tokens[i]);
		tokens[i] = NULL;
	}
	tokens[AUTH_VIEWER] = tok_sign(secret, sizeof(secret) - 1, "viewer", "viewer", now_s, 3600);
	tokens[AUTH_OPERATOR] =
	    tok_sign(secret, sizeof(secret) - 1, "oper", "operator", now_s, 3600);
	tokens[AUTH_ADMIN] = tok_sign(secret, sizeof(secret) - 1, "admin", "admin", now_s, 3600);
	tokens[AUTH_EXPIRED] =
	    tok_sign(secret, sizeof(secret) - 1, "admin", "admin", now_s - 7200, 3600);
}

/* Removes the database and the directory when the fuzzer exits normally. */
static void
cleanup(void)
{
	char wd[256];

	db_close(api.db);
	api.db = NULL;
	db_remove(dbpath);
	snprintf(wd, sizeof(wd), "%s/wake", dir);
	(void)rmdir(wd);
	(void)rmdir(dir);
}

void
api_harness_init(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	char err[512], wd[256];

	if (ready)
		return;
	snprintf(dir, sizeof(dir), "%s/etl-fuzz-api-XXXXXX", base);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		abort();
	}
	snprintf(dbpath, sizeof(dbpath), "%s/etl.db", dir);
	snprintf(wd, sizeof(wd), "%s/wake", dir);
	if (mkdir(wd, 0700) != 0 && errno != EEXIST) {
		perror("mkdir");
		abort();
	}
	unsetenv("ETL_ENV_FILE");
	setenv("ETL_DB_PATH", dbpath, 1);
	setenv("ETL_SECRET", secret, 1);
	setenv("ETL_WAKE_DIR", wd, 1);
	/* events on, to a Redis that is not there: every enqueue and cancel
	 * builds its events (the fuzzed ids and names go into them), each is
	 * dropped at once, and the wake-up after them runs too */
	char url[256];
	snprintf(url, sizeof(url), "unix://%s/no-redis.sock", dir);
	setenv("REDIS_ENABLED", "true", 1);
	setenv("REDIS_URL", url, 1);
	setenv("REDIS_SOCKET_TIMEOUT", "0.05", 1);
	setenv("ETL_API_BASE", "/api", 1);
	setenv("ETL_LOG_LEVEL", "error", 1);
	unsetenv("ETL_CORS_ORIGIN");
	unsetenv("ETL_METRICS_TOKEN");
	memset(&api, 0, sizeof(api));
	conn_init(&api);
	if (conf_load(&api.conf, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz: conf_load: %s\n", err);
		abort();
	}
	(void)log_init(
	    "fuzz-api", getenv("FUZZ_API_LOG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, NULL);
	api.secret_len = strlen(api.conf.secret);
	api.pub = pub_open(&api.conf, err, sizeof(err));
	if (api.pub == NULL) {
		fprintf(stderr, "fuzz: pub_open: %s\n", err);
		abort();
	}
	char *wake = wake_dir_for(api.conf.wake_dir, api.conf.db_path);
	api.wake = wake_sender_open(wake);
	free(wake);
	api.started_ms = util_now_ms();
	devnull = fopen("/dev/null", "r");
	if (devnull == NULL)
		abort();
	seed();
	atexit(cleanup);
	ready = 1;
}

void
api_harness_input(void)
{
	api_harness_init();
	if (++calls % API_RESET_EVERY == 0)
		seed();
}

static void
set_or_unset(const char *name, const char *value)
{
	if (value)
		setenv(name, value, 1);
	else
		unsetenv(name);
}

/* The value of header name in the header block h (NUL-terminated copy in
 * out), or NULL. */
static const char *
header(const char *h, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);

	for (const char *p = h; *p;) {
		const char *e = strstr(p, "\r\n");
		if (e == NULL || e == p)
			break;
		if ((size_t)(e - p) > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ')
				v++;
			snprintf(out, outlen, "%.*s", (int)(e - v), v);
			return out;
		}
		p = e + 2;
	}
	return NULL;
}

/* The checks every response must pass, whatever the request. */
static int
check_response(const struct api_call *c, const char *resp, size_t len, const struct route *rt)
{
	char v[512], *hdr;
	const char *sep, *body;
	size_t hlen, blen;
	int status, role, head = strcmp(c->method, "HEAD") == 0;

	FUZZ_CHECK(len > 0, "no response at all for %s %s", c->method, c->uri);
	FUZZ_CHECK(memchr(resp, '\0', len) == NULL, "NUL byte in the response");
	FUZZ_CHECK(strncmp(resp, "Status: ", 8) == 0, "response does not start with Status");
	status = atoi(resp + 8);
	sep = strstr(resp, "\r\n\r\n");
	FUZZ_CHECK(sep != NULL, "no end of headers");
	hlen = (size_t)(sep - resp) + 2;
	hdr = strndup(resp, hlen);
	body = sep + 4;
	blen = len - (size_t)(body - resp);

	/* header lines: "Name: value", no stray CR or LF (no injection) */
	for (const char *p = hdr; *p;) {
		const char *e = strstr(p, "\r\n"), *colon;
		FUZZ_CHECK(e != NULL, "header line without CRLF");
		colon = memchr(p, ':', (size_t)(e - p));
		FUZZ_CHECK(colon != NULL && colon > p, "header line without a name: %.*s",
		    (int)(e - p), p);
		for (const char *q = p; q < colon; q++)
			FUZZ_CHECK(
			    (*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || *q == '-',
			    "header name byte 0x%02x", (unsigned char)*q);
		for (const char *q = colon; q < e; q++)
			FUZZ_CHECK(*q != '\r' && *q != '\n' && (unsigned char)*q >= 0x20,
			    "control byte in a header value");
		p = e + 2;
	}
	FUZZ_CHECK(status == 200 || status == 201 || status == 202 || status == 204 ||
	               status == 401 || status == 403 || status == 404 || status == 405 ||
	               status == 409 || status == 413 || status == 415 || status == 422 ||
	               status == 429,
	    "status %d for %s %s", status, c->method, c->uri);
	/* HEAD: the headers of the GET, Content-Length included, and no body */
	FUZZ_CHECK(header(hdr, "Content-Length", v, sizeof(v)) && (head || (size_t)atol(v) == blen),
	    "Content-Length %s but %zu body bytes", v, blen);
	if (head)
		FUZZ_CHECK(blen == 0, "HEAD answered with %zu body bytes", blen);
	FUZZ_CHECK(header(hdr, "Cache-Control", v, sizeof(v)) && strcmp(v, "no-store") == 0,
	    "no Cache-Control: no-store");
	FUZZ_CHECK(header(hdr, "X-Content-Type-Options", v, sizeof(v)) && strcmp(v, "nosniff") == 0,
	    "no nosniff");
	FUZZ_CHECK(header(hdr, "Access-Control-Allow-Origin", v, sizeof(v)) == NULL,
	    "CORS header without ETL_CORS_ORIGIN");
	if (status == 401)
		FUZZ_CHECK(
		    header(hdr, "WWW-Authenticate", v, sizeof(v)) != NULL, "401 without challenge");
	if (status == 405)
		FUZZ_CHECK(header(hdr, "Allow", v, sizeof(v)) != NULL, "405 without Allow");
	if (status == 429)
		FUZZ_CHECK(
		    header(hdr, "Retry-After", v, sizeof(v)) != NULL, "429 without Retry-After");
	if (head) {
		/* nothing more to check in an absent body */
	} else if (status == 204) {
		FUZZ_CHECK(blen == 0, "204 with a body");
	} else if (header(hdr, "Content-Type", v, sizeof(v)) &&
	           strncmp(v, "application/json", 16) == 0) {
		struct json_object *o, *d;
		char err[128];
		int ok;
		FUZZ_CHECK(json_strict_valid(body, blen), "response body is not strict JSON: %.*s",
		    (int)(blen > 300 ? 300 : blen), body);
		o = js_parse(body, blen, 1u << 26, 64, &ok, err, sizeof(err));
		FUZZ_CHECK(ok, "response body is not JSON (%s): %.*s", err,
		    (int)(blen > 200 ? 200 : blen), body);
		if (status >= 400)
			FUZZ_CHECK(json_object_is_type(o, json_type_object) &&
			               json_object_object_get_ex(o, "detail", &d) &&
			               json_object_is_type(d, json_type_string),
			    "error without a string detail");
		json_object_put(o);
	} else {
		FUZZ_CHECK(
		    header(hdr, "Content-Type", v, sizeof(v)) && strncmp(v, "text/plain", 10) == 0,
		    "unexpected Content-Type %s", v);
		FUZZ_CHECK(utf8_valid(body, blen), "text body is not UTF-8");
	}
	/* authorisation: a success needs the role the route asks for */
	role = c->auth == AUTH_VIEWER                ? ROLE_VIEWER
	       : c->auth == AUTH_OPERATOR            ? ROLE_OPERATOR
	       : c->auth == AUTH_ADMIN               ? ROLE_ADMIN
	       : c->auth == AUTH_RAW && c->raw_valid ? ROLE_VIEWER
	                                             : -1;
	if (status >= 200 && status < 300) {
		FUZZ_CHECK(rt != NULL, "success without a route");
		FUZZ_CHECK(rt->min_role == ROUTE_PUBLIC || role >= rt->min_role,
		    "%s %s answered %d to role %d (route needs %d)", c->method, rt->pattern, status,
		    role, rt->min_role);
	}
	free(hdr);
	return status;
}

int
api_request(const struct api_call *c)
{
	struct req r;
	char *out = NULL, cl[32];
	size_t outlen = 0;
	FILE *in, *saved_in = stdin, *saved_out = stdout, *mem;
	const struct route *rt;
	const char *auth = NULL;
	char *auth_buf = NULL;
	int status;

	api_harness_init();
	set_or_unset("REQUEST_METHOD", c->method);
	set_or_unset("REQUEST_URI", c->uri);
	set_or_unset("QUERY_STRING", c->query);
	set_or_unset("CONTENT_TYPE", c->ctype);
	set_or_unset("HTTP_IDEMPOTENCY_KEY", c->idem);
	unsetenv("SCRIPT_NAME");
	unsetenv("REDIRECT_HTTP_AUTHORIZATION");
	switch (c->auth) {
	case AUTH_NONE:
		break;
	case AUTH_RAW:
		auth = c->raw_auth;
		break;
	default:
		auth = auth_buf = xasprintf("Bearer %s", tokens[c->auth]);
		break;
	}
	set_or_unset("HTTP_AUTHORIZATION", auth);
	free(auth_buf);
	switch (c->bad_length) {
	case 1:
		unsetenv("CONTENT_LENGTH");
		break;
	case 2:
		snprintf(cl, sizeof(cl), "%zu", c->body_len + 1);
		setenv("CONTENT_LENGTH", cl, 1);
		break;
	case 3:
		setenv("CONTENT_LENGTH", "x", 1);
		break;
	default:
		snprintf(cl, sizeof(cl), "%zu", c->body_len);
		setenv("CONTENT_LENGTH", cl, 1);
		break;
	}
	if (c->body_len > 0) {
		in = fmemopen((void *)(uintptr_t)c->body, c->body_len, "r");
		if (in == NULL)
			abort();
	} else {
		rewind(devnull);
		in = devnull;
	}
	mem = open_memstream(&out, &outlen);
	if (mem == NULL)
		abort();
	stdin = in;
	stdout = mem;
	req_init(&r, &api, 1, NULL, NULL, NULL);
	route_dispatch(&r);
	rt = r.route;
	req_free(&r);
	fflush(stdout);
	stdin = saved_in;
	stdout = saved_out;
	if (in != devnull)
		fclose(in);
	fclose(mem);
	status = check_response(c, out, outlen, rt);
	if (c->response != NULL)
		*c->response = out;
	else
		free(out);
	return status;
}
