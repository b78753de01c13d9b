/*
 * route: the static route table ({method, pattern, handler, min role,
 * flags}) and the dispatcher that takes a request through the common
 * steps in a fixed order: route (404/405), body size (413), token and role
 * (401/403), content type and JSON (415/422), database (503), handler.
 * (An enqueue's account is read in its batch, hauth_defer_account; its
 * answers keep this order all the same.)
 * Patterns are relative to the configured base; "{name}" matches one
 * non-empty path segment, handed to the handler in r->params.
 */
#ifndef ETL_ROUTE_H
#define ETL_ROUTE_H

#include <stdio.h>

#include "api.h"

typedef void (*route_fn)(struct req *r);

#define ROUTE_PUBLIC (-1) /* min_role of routes that need no token */
#define ROUTE_BODY 0x1 /* takes a JSON body (read, typed and parsed before the handler) */
#define ROUTE_NODB 0x2 /* the handler copes without a database (health, metrics) */
/* reads only: the token's user and the handler read one snapshot, in one
 * read transaction (db_read_scope), ended before the answer is written */
#define ROUTE_READ 0x4
/* joins the enqueue batch (conn.h) where any other route commits it first */
#define ROUTE_BATCH 0x8

struct route {
	const char *method;
	const char *pattern;
	route_fn fn;
	int min_role; /* ROUTE_PUBLIC or enum role */
	int flags;
};

/* Serves one request completely (exactly one response is written). */
void route_dispatch(struct req *r);
/* Prints the table, one "METHOD BASE+PATTERN ROLE" line per route. */
void route_print(FILE *f, const char *base);

/* Opens the database when the process has none yet (first use, or after a
 * failure). Returns 0, or -1 (logged) when it cannot be opened. */
int route_db_ensure(struct api *api);

#endif
