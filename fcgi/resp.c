/*
 * resp: the one place responses are written (see resp.h). Bodies are built
 * completely before the first byte goes out, so a response is never half a
 * JSON document, and Content-Length is always exact.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "handlers.h"
#include "js.h"
#include "log.h"
#include "resp.h"
#include "route.h"

static const struct {
	int status;
	const char *text;
} status_texts[] = {
	{ 200, "OK" },
	{ 201, "Created" },
	{ 202, "Accepted" },
	{ 204, "No Content" },
	{ 400, "Bad Request" },
	{ 401, "Unauthorized" },
	{ 403, "Forbidden" },
	{ 404, "Not Found" },
	{ 405, "Method Not Allowed" },
	{ 409, "Conflict" },
	{ 413, "Payload Too Large" },
	{ 415, "Unsupported Media Type" },
	{ 422, "Unprocessable Entity" },
	{ 429, "Too Many Requests" },
	{ 500, "Internal Server Error" },
	{ 503, "Service Unavailable" },
};

const char *
resp_status_text(int status)
{
	for (size_t i = 0; i < UTIL_ARRAY_LEN(status_texts); i++)
		if (status_texts[i].status == status)
			return status_texts[i].text;
	return "Unknown";
}

void
resp_header(struct req *r, const char *name, const char *fmt, ...)
{
	va_list ap;

	buf_puts(&r->xhdr, name);
	buf_puts(&r->xhdr, ": ");
	va_start(ap, fmt);
	buf_vprintf(&r->xhdr, fmt, ap);
	va_end(ap);
	buf_puts(&r->xhdr, "\r\n");
}

void
resp_send(struct req *r, int status, const char *ctype, const char *body, size_t len)
{
	struct buf h = { 0 };
	const char *cors = r->api->conf.cors_origin;

	if (r->responded) {
		log_warnx("second response (%d) for one request ignored", status);
		return;
	}
	/* nothing is answered before the account is known: a refusal for it
	 * comes first (hauth_defer_account) */
	if (r->account_pending) {
		/* the headers meant for this answer (WWW-Authenticate, Retry-After)
		 * are not the refusal's */
		struct buf mine = r->xhdr;
		r->xhdr = (struct buf){ 0 };
		if (hauth_account(r, *r->own, r->route->min_role) != 0) {
			buf_free(&mine);
			return; /* it answered */
		}
		buf_free(&r->xhdr);
		r->xhdr = mine;
	}
	r->responded = 1;
	r->status = status;
	/* never write while holding a snapshot: a web server that stops
	 * reading would keep the WAL from starting over */
	db_read_scope_end(r->db);
	buf_printf(&h, "Status: %d %s\r\n", status, resp_status_text(status));
	if (body != NULL && status != 204)
		buf_printf(&h, "Content-Type: %s\r\nContent-Length: %zu\r\n", ctype, len);
	else
		buf_puts(&h, "Content-Length: 0\r\n");
	buf_puts(&h, "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n");
	if (cors != NULL && *cors != '\0')
		buf_printf(&h, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", cors);
	if (r->xhdr.len)
		buf_append(&h, r->xhdr.data, r->xhdr.len);
	buf_puts(&h, "\r\n");
	if (req_write(r, h.data, h.len) != 0 ||
	    (body != NULL && status != 204 && strcmp(r->method, "HEAD") != 0 &&
	        req_write(r, body, len) != 0))
		log_warnx("status=%d: client went away while answering", status);
	buf_free(&h);
}

void
resp_json(struct req *r, int status, struct json_object *obj)
{
	char *s = NULL;

	if (obj == NULL) {
		resp_send(r, status, "application/json; charset=utf-8", "null", 4);
		return;
	}
	s = js_dump(obj);
	json_object_put(obj);
	resp_send(r, status, "application/json; charset=utf-8", s, strlen(s));
	free(s);
}

void
resp_error(struct req *r, int status, const char *fmt, ...)
{
	struct json_object *o;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (status == 401)
		resp_header(r, "WWW-Authenticate", "Bearer");
	if (status == 503 && (r->xhdr.data == NULL || strstr(r->xhdr.data, "Retry-After:") == NULL))
		resp_header(r, "Retry-After", "1");
	o = json_object_new_object();
	/* msg may quote client input: keep what we emit valid UTF-8 */
	if (utf8_valid(msg, strlen(msg))) {
		json_object_object_add(o, "detail", json_object_new_string(msg));
	} else {
		struct buf b = { 0 };
		(void)utf8_sanitize(&b, msg, strlen(msg), sizeof(msg));
		json_object_object_add(o, "detail", json_object_new_string(b.data ? b.data : ""));
		buf_free(&b);
	}
	resp_json(r, status, o);
}

void
resp_db(struct req *r, enum db_rc rc, const char *what)
{
	switch (rc) {
	case DB_OK:
		log_warnx("resp_db called with DB_OK");
		resp_error(r, 500, "internal error");
		break;
	case DB_BUSY:
		resp_error(r, 503, "database busy, retry later");
		break;
	case DB_FULL:
		resp_error(r, 503, "database full");
		break;
	case DB_NOTFOUND:
		resp_error(r, 404, "%s not found", what);
		break;
	case DB_CONFLICT:
		resp_error(r, 409, "%s conflicts with the current state", what);
		break;
	case DB_INVALID:
		resp_error(r, 422, "%s is not valid", what);
		break;
	case DB_ERROR:
	default:
		resp_error(r, 500, "internal error");
		break;
	}
}
