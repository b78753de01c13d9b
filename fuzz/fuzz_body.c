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
 */
#include <string.h>

#include "api_harness.h"
#include "fuzz.h"

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
	int route, variant;

	if (size < 1 || size > 70000)
		return 0;
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
	(void)api_request(&c);
	return 0;
}
