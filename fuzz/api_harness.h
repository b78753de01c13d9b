/*
 * api_harness: runs etl-api's request path in process for the API fuzz
 * targets: fcgi/req.c, route.c, resp.c and the handlers, in plain-CGI mode
 * (CGI variables through setenv, the body through stdin, the response
 * captured from stdout), over a real SQLite database under /dev/shm seeded
 * with three users and three sistemas, and tokens signed for them. Every
 * response is checked (api_request aborts on a broken invariant).
 */
#ifndef ETL_FUZZ_API_HARNESS_H
#define ETL_FUZZ_API_HARNESS_H

#include <stddef.h>

enum api_auth { AUTH_NONE, AUTH_VIEWER, AUTH_OPERATOR, AUTH_ADMIN, AUTH_EXPIRED, AUTH_RAW };

struct api_call {
	const char *method;
	const char *uri; /* REQUEST_URI */
	const char *query; /* QUERY_STRING, NULL: unset */
	const char *ctype; /* CONTENT_TYPE, NULL: unset */
	enum api_auth auth;
	const char *raw_auth; /* the Authorization header for AUTH_RAW */
	int raw_valid; /* 1: raw_auth holds a real token (of a viewer, at least) */
	const char *idem; /* Idempotency-Key, NULL: unset */
	const char *body;
	size_t body_len;
	int bad_length; /* 1: CONTENT_LENGTH unset, 2: one more than the body, 3: "x" */
	char **response; /* when set: gets the whole response (malloc'd, caller frees) */
};

/* Sets everything up once (idempotent). */
void api_harness_init(void);
/* Starts one fuzz input: every so many inputs the database is made again,
 * never between the requests of one input (a write and its read-back). */
void api_harness_input(void);
/* Serves one request, checks the response; returns its status. */
int api_request(const struct api_call *c);

#endif
