/*
 * fuzz_body: validation of the request bodies, through the real handlers
 * (fcgi/h_auth.c hauth_login and hauth_users_create, h_sistemas.c
 * hsist_put, h_jobs.c hjobs_execute with its sistemas/params/
 * Idempotency-Key checks) after route_dispatch's JSON reading (js_parse).
 * Input: one selector byte, then the body bytes as is (so JSON mutations
 * are not cut by any framing). Selector bits 0-1: the route (login,
 * POST /users as admin, PUT /sistemas/{id} as admin, POST /execute as
 * operator); bits 2-3: a variant (the sistema id, an Idempotency-Key, a
 * Content-Type with parameters); bits 4-5: CONTENT_LENGTH exact, unset,
 * one too long, or not a number. The harness checks every response:
 * never a 500, JSON errors with a detail, success only with the role.
 * What a request stored is then read back (GET /api/jobs/{id} after a 202,
 * GET /api/sistemas/{id} after a PUT, GET /api/users after a 201), so a
 * value that is accepted but cannot be sent back as JSON is caught too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_harness.h"
#include "fuzz.h"
#include "tok.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	api_harness_init();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const sist_uris[] = { "/api/sistemas/amplis", "/api/sistemas/novo",
		"/api/sistemas/velho", "/api/sistemas/a_b-9" };
	static const char *const idem[] = { NULL, "k1", "k2", "\x7f" };
	struct api_call c;
	char *resp = NULL;
	int route, variant, status;

	if (size < 1 || size > 70000)
		return 0;
	api_harness_input();
	route = data[0] & 3;
	variant = (data[0] >> 2) & 3;
	memset(&c, 0, sizeof(c));
	c.body = (const char *)data + 1;
	c.body_len = size - 1;
	c.bad_length = (data[0] >> 4) & 3;
	c.ctype = variant == 3 ? "application/json; charset=utf-8" : "application/json";
	switch (route) {
	case 0:
		c.method = "POST";
		c.uri = "/api/auth/login";
		c.auth = AUTH_NONE;
		break;
	case 1:
		c.method = "POST";
		c.uri = "/api/users";
		c.auth = AUTH_ADMIN;
		break;
	case 2:
		c.method = "PUT";
		c.uri = sist_uris[variant];
		c.auth = AUTH_ADMIN;
		break;
	default:
		c.method = "POST";
		c.uri = "/api/execute";
		c.auth = AUTH_OPERATOR;
		c.idem = idem[variant];
		break;
	}
	c.response = &resp;
	status = api_request(&c);
	if (status >= 200 && status < 300) {
		struct api_call g;
		const char *id;
		char uri[128], bearer[TOK_MAX_LEN + 16];

		memset(&g, 0, sizeof(g));
		g.method = "GET";
		g.auth = AUTH_VIEWER;
		g.uri = uri;
		if (route == 3 && (id = strstr(resp, "\"job_id\":")) != NULL) {
			snprintf(uri, sizeof(uri), "/api/jobs/%lld", atoll(id + 9));
		} else if (route == 2) {
			snprintf(uri, sizeof(uri), "%s", sist_uris[variant]);
		} else if (route == 1) {
			snprintf(uri, sizeof(uri), "/api/users");
			g.auth = AUTH_ADMIN;
		} else {
			/* the token login gave must open /auth/me */
			const char *t = strstr(resp, "\"access_token\":\"");
			size_t n;
			FUZZ_CHECK(t != NULL, "login 200 without access_token");
			t += 16;
			n = strcspn(t, "\"");
			FUZZ_CHECK(n < sizeof(bearer) - 8, "token of %zu bytes", n);
			snprintf(bearer, sizeof(bearer), "Bearer %.*s", (int)n, t);
			g.auth = AUTH_RAW;
			g.raw_auth = bearer;
			g.raw_valid = 1;
			snprintf(uri, sizeof(uri), "/api/auth/me");
		}
		FUZZ_CHECK(api_request(&g) == 200, "read back of %s failed", uri);
		if (route == 3) { /* the list carries the params too */
			g.uri = "/api/jobs";
			g.query = "limit=5";
			FUZZ_CHECK(api_request(&g) == 200, "job list failed after an execute");
		}
	}
	free(resp);
	return 0;
}
