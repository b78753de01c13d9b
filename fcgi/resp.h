/*
 * resp: writing responses. Every response carries Status, Content-Length,
 * Cache-Control: no-store and X-Content-Type-Options: nosniff; every error
 * is {"detail": "..."} with the extra headers its status needs
 * (WWW-Authenticate on 401, Retry-After on 503). A request gets exactly one
 * response: later calls are ignored (and logged).
 */
#ifndef ETL_RESP_H
#define ETL_RESP_H

#include <stddef.h>

#include "api.h"
#include "db.h"

struct json_object;

/* Adds "Name: value" to the response's headers (value must be trusted or
 * validated: no CR/LF). */
void resp_header(struct req *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sends status, body (len bytes, may be NULL for none) with ctype. */
void resp_send(struct req *r, int status, const char *ctype, const char *body, size_t len);
/* Sends obj as JSON and puts it (takes ownership; obj may be NULL for JSON null). */
void resp_json(struct req *r, int status, struct json_object *obj);
/* Sends {"detail": printf(fmt)}. */
void resp_error(struct req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Maps a database result that is not DB_OK to its error response
 * (what names the thing for 404/409 texts). */
void resp_db(struct req *r, enum db_rc rc, const char *what);

/* "OK", "Not Found", ... */
const char *resp_status_text(int status);

#endif
