/*
 * fuzz_route: etl-api's request path from the CGI variables on: REQUEST_URI
 * made relative to the base, split and percent-decoded (fcgi/req.c
 * parse_path), QUERY_STRING split and decoded (parse_query), the route
 * table match with its 404/405 (fcgi/route.c find/match), the common
 * checks of route_dispatch (413, token and role, 415, 422) and then the
 * handler the request reaches, against a seeded database (api_harness.c).
 * Input: newline-separated fields
 *     METHOD \n REQUEST_URI \n QUERY_STRING \n AUTH \n CONTENT_TYPE \n BODY...
 * AUTH is one letter (a admin, o operator, v viewer, x expired, n or empty
 * none) or else the literal Authorization header; a missing field is unset.
 * Every response is checked by the harness (status set, headers, JSON,
 * role needed for a success).
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
	char *copy, *f[5] = { NULL, NULL, NULL, NULL, NULL };
	const char *body = NULL;
	size_t body_len = 0, nf = 0;
	struct api_call c;
	char *p, *end;

	if (size > 70000)
		return 0;
	api_harness_input();
	copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	p = copy;
	end = copy + size;
	while (nf < 5 && p <= end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		f[nf++] = p;
		if (nl == NULL) {
			p = end + 1;
			break;
		}
		*nl = '\0';
		p = nl + 1;
	}
	if (nf == 5 && p <= end) {
		body = p;
		body_len = (size_t)(end - p);
	}
	memset(&c, 0, sizeof(c));
	c.method = f[0] && *f[0] ? f[0] : "GET";
	c.uri = f[1];
	c.query = f[2];
	c.ctype = f[4];
	c.body = body;
	c.body_len = body_len;
	if (f[3] == NULL || f[3][0] == '\0' || strcmp(f[3], "n") == 0)
		c.auth = AUTH_NONE;
	else if (strcmp(f[3], "a") == 0)
		c.auth = AUTH_ADMIN;
	else if (strcmp(f[3], "o") == 0)
		c.auth = AUTH_OPERATOR;
	else if (strcmp(f[3], "v") == 0)
		c.auth = AUTH_VIEWER;
	else if (strcmp(f[3], "x") == 0)
		c.auth = AUTH_EXPIRED;
	else {
		c.auth = AUTH_RAW;
		c.raw_auth = f[3];
	}
	(void)api_request(&c);
	free(copy);
	return 0;
}
