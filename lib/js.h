/*
 * js: JSON on json-c with the limits untrusted input needs (size, nesting
 * depth, UTF-8 validity, no NUL in strings), and UTF-8 sanitising so that
 * nothing we emit is ever invalid UTF-8.
 */
#ifndef ETL_JS_H
#define ETL_JS_H

#include <json-c/json.h>
#include <stddef.h>

#include "util.h"

#define JS_MAX_DEPTH 32

/*
 * Parses exactly one JSON value from buf (len bytes; trailing whitespace
 * allowed). Rejects: more than max_len bytes, nesting deeper than
 * max_depth, invalid UTF-8, a NUL byte anywhere (raw or as \u0000), trailing
 * garbage. Returns the new object (caller puts it; note a JSON null parses
 * to NULL with *ok = 1), or NULL with a short client-safe reason in err.
 */
struct json_object *js_parse(
    const char *buf, size_t len, size_t max_len, int max_depth, int *ok, char *err, size_t errlen);

/* Serialises obj compactly (no slash escaping) into a malloc'd string. */
char *js_dump(struct json_object *obj);

/* Typed getters on an object: return 0 and set *out when key exists with
 * that type, 1 when the key is absent, -1 when present with another type. */
int js_get_string(struct json_object *o, const char *key, const char **out, size_t *len);
int js_get_bool(struct json_object *o, const char *key, int *out);
int js_get_int(struct json_object *o, const char *key, int64_t *out);

/*
 * Appends s (len bytes) to b as a JSON string literal: quotes, backslash
 * and control characters escaped, invalid UTF-8 replaced by U+FFFD (so the
 * output is always valid JSON and valid UTF-8). NULL s appends null. For
 * hot paths that write JSON text directly instead of building json-c trees.
 */
void js_put_string(struct buf *b, const char *s, size_t len);

/* New json string (or json null for NULL s). */
struct json_object *js_str_or_null(const char *s);
/* ISO-8601 string for ms, or json null for ms < 0. */
struct json_object *js_time_or_null(int64_t ms);

/* Nesting js_text_is() accepts, as deep as SQLite's json_valid() went. */
#define JS_TEXT_MAX_DEPTH 1000

/*
 * 1 if s (len bytes) is exactly one JSON text (RFC 8259, whitespace around
 * it allowed) whose value is an array (want '[') or an object (want '{'),
 * nested at most JS_TEXT_MAX_DEPTH deep; else 0. Builds nothing and
 * allocates nothing: the list's hot path checks stored columns with it.
 * It does not check UTF-8 (utf8_valid does); a control byte, NUL included,
 * is never valid, in a string or outside one.
 */
int js_text_is(const char *s, size_t len, char want);

/* 1 if s (len bytes) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int utf8_valid(const char *s, size_t len);

/*
 * Appends s (len bytes) to out as valid UTF-8: invalid sequences become
 * U+FFFD; C0 control bytes other than TAB, DEL and C1 controls are written
 * as the visible escape "\xNN" (so a terminal escape sequence is shown, not
 * run). Never appends more than max_out bytes; when it had to stop, appends
 * the marker "…[truncated]" after at most max_out bytes and returns 1;
 * else returns 0.
 */
int utf8_sanitize(struct buf *out, const char *s, size_t len, size_t max_out);

#endif
