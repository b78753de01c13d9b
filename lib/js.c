/*
 * js: JSON at the boundary. js_parse() is the one door untrusted JSON comes
 * in through (size, depth, UTF-8 and NUL checks); utf8_sanitize() is how
 * untrusted bytes become text we can store and send.
 */
#include "js.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		if (n >= 2 && (s[1] & 0xc0) == 0x80)
			return 2;
		return 0;
	}
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && s[1] < 0xa0)
			return 0; /* overlong */
		if (c == 0xed && s[1] >= 0xa0)
			return 0; /* surrogate */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && s[1] < 0x90)
			return 0; /* overlong */
		if (c == 0xf4 && s[1] >= 0x90)
			return 0; /* > U+10FFFF */
		return 4;
	}
	return 0;
}

int
utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = utf8_seq(p + i, len - i);
		if (k == 0)
			return 0;
		i += k;
	}
	return 1;
}

static size_t
skip_ws(const char *s, size_t i, size_t n)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The string at s[i] (an opening quote): returns the index after its
 * closing quote, or 0 when it is not a valid string. */
static size_t
string_end(const char *s, size_t i, size_t n)
{
	for (i++; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"')
			return i + 1;
		if (c < 0x20)
			return 0;
		if (c != '\\')
			continue;
		if (++i == n)
			return 0;
		if (s[i] == 'u') {
			for (int k = 0; k < 4; k++)
				if (++i == n || !is_hex(s[i]))
					return 0;
		} else if (strchr("\"\\/bfnrt", s[i]) == NULL || s[i] == '\0') {
			return 0;
		}
	}
	return 0;
}

/* The number at s[i]: returns the index after it, or 0. */
static size_t
number_end(const char *s, size_t i, size_t n)
{
	if (s[i] == '-')
		i++;
	if (i == n || !is_digit(s[i]))
		return 0;
	if (s[i++] != '0')
		while (i < n && is_digit(s[i]))
			i++;
	if (i < n && s[i] == '.') {
		if (++i == n || !is_digit(s[i]))
			return 0;
		while (i < n && is_digit(s[i]))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		if (++i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i == n || !is_digit(s[i]))
			return 0;
		while (i < n && is_digit(s[i]))
			i++;
	}
	return i;
}

/* The scalar (string, number, true, false, null) at s[i]: returns the
 * index after it, or 0. */
static size_t
scalar_end(const char *s, size_t i, size_t n)
{
	static const char *const words[] = { "true", "false", "null" };

	if (s[i] == '"')
		return string_end(s, i, n);
	if (s[i] == '-' || is_digit(s[i]))
		return number_end(s, i, n);
	for (size_t w = 0; w < UTIL_ARRAY_LEN(words); w++) {
		size_t k = strlen(words[w]);
		if (n - i >= k && memcmp(s + i, words[w], k) == 0)
			return i + k; /* what follows is checked by the caller */
	}
	return 0;
}

/*
 * An iterative recogniser: the only state is the position and, per open
 * container, one bit saying whether it is an object. After a value comes
 * a comma, the container's closing bracket, or (at depth 0) the end.
 */
int
js_text_is(const char *s, size_t len, char want)
{
	unsigned char in_object[JS_TEXT_MAX_DEPTH / 8 + 1];
	size_t i = skip_ws(s, 0, len), depth = 0;
	int need_key = 0; /* an object member starts: a key, then ':' */

	if (i == len || s[i] != want || (want != '[' && want != '{'))
		return 0;
	for (;;) {
		/* a value (or, after '{' or ',' in an object, a member) */
		i = skip_ws(s, i, len);
		if (i == len)
			return 0;
		if (need_key) {
			if (s[i] != '"' || (i = string_end(s, i, len)) == 0)
				return 0;
			i = skip_ws(s, i, len);
			if (i == len || s[i] != ':')
				return 0;
			i = skip_ws(s, i + 1, len);
			if (i == len)
				return 0;
			need_key = 0;
		}
		if (s[i] == '[' || s[i] == '{') {
			int obj = s[i] == '{';
			if (depth == JS_TEXT_MAX_DEPTH)
				return 0;
			if (obj)
				in_object[depth / 8] |= (unsigned char)(1u << (depth % 8));
			else
				in_object[depth / 8] &= (unsigned char)~(1u << (depth % 8));
			depth++;
			i = skip_ws(s, i + 1, len);
			if (i < len && s[i] == (obj ? '}' : ']')) {
				depth--; /* empty: a complete value */
				i++;
			} else {
				need_key = obj;
				continue;
			}
		} else if ((i = scalar_end(s, i, len)) == 0) {
			return 0;
		}
		/* after a complete value: close containers, or go on after a comma */
		for (;;) {
			i = skip_ws(s, i, len);
			if (depth == 0)
				return i == len;
			if (i == len)
				return 0;
			int obj = (in_object[(depth - 1) / 8] >> ((depth - 1) % 8)) & 1;
			if (s[i] == ',') {
				need_key = obj;
				i++;
				break;
			}
			if (s[i] != (obj ? '}' : ']'))
				return 0;
			depth--;
			i++;
		}
	}
}

int
utf8_sanitize(struct buf *out, const char *s, size_t len, size_t max_out)
{
	static const char hex[] = "0123456789abcdef";
	static const char marker[] = "\xe2\x80\xa6[truncated]";
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, start = out->len;

	while (i < len) {
		char tmp[8];
		size_t k, tl;
		unsigned char c = p[i];

		/* Fast path: a run of printable ASCII (most log text) in one append. */
		if (c >= 0x20 && c < 0x7f) {
			size_t run = 1, room = max_out - (out->len - start);
			while (i + run < len && p[i + run] >= 0x20 && p[i + run] < 0x7f)
				run++;
			if (out->len - start >= max_out)
				room = 0;
			if (run > room) {
				buf_append(out, p + i, room);
				buf_append(out, marker, sizeof(marker) - 1);
				return 1;
			}
			buf_append(out, p + i, run);
			i += run;
			continue;
		}
		if (c >= 0x20 && c < 0x7f) {
			tmp[0] = (char)c;
			tl = 1;
			k = 1;
		} else if (c == '\t') {
			tmp[0] = '\t';
			tl = 1;
			k = 1;
		} else if (c < 0x20 || c == 0x7f) {
			tmp[0] = '\\';
			tmp[1] = 'x';
			tmp[2] = hex[c >> 4];
			tmp[3] = hex[c & 15];
			tl = 4;
			k = 1;
		} else if ((k = utf8_seq(p + i, len - i)) != 0) {
			/* C1 controls (U+0080..U+009F) are shown, not passed on. */
			if (k == 2 && c == 0xc2 && p[i + 1] < 0xa0) {
				tmp[0] = '\\';
				tmp[1] = 'u';
				tmp[2] = '0';
				tmp[3] = '0';
				tmp[4] = hex[p[i + 1] >> 4];
				tmp[5] = hex[p[i + 1] & 15];
				tl = 6;
			} else {
				memcpy(tmp, p + i, k);
				tl = k;
			}
		} else {
			memcpy(tmp, "\xef\xbf\xbd", 3); /* U+FFFD */
			tl = 3;
			k = 1;
		}
		if (out->len - start + tl > max_out) {
			buf_append(out, marker, sizeof(marker) - 1);
			return 1;
		}
		buf_append(out, tmp, tl);
		i += k;
	}
	if (out->data == NULL)
		buf_append(out, "", 0);
	return 0;
}

/* 1 if t is a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int
number_text_ok(const char *t)
{
	if (*t == '-')
		t++;
	if (*t == '0')
		t++;
	else if (*t >= '1' && *t <= '9')
		while (*t >= '0' && *t <= '9')
			t++;
	else
		return 0;
	if (*t == '.') {
		if (!(*++t >= '0' && *t <= '9'))
			return 0;
		while (*t >= '0' && *t <= '9')
			t++;
	}
	if (*t == 'e' || *t == 'E') {
		t++;
		if (*t == '+' || *t == '-')
			t++;
		if (!(*t >= '0' && *t <= '9'))
			return 0;
		while (*t >= '0' && *t <= '9')
			t++;
	}
	return *t == '\0';
}

/* Checks every string (keys too) for NUL and UTF-8 validity, and every
 * number for being one JSON can carry: json-c takes NaN, Infinity and
 * -Infinity even in strict mode (and 1e999 overflows to inf), "1.", "1.e5"
 * and "007.5", and writes a double back as its source text: not JSON
 * (found by fuzz/fuzz_relay.c and fuzz_js.c). */
static int
strings_ok(struct json_object *o, int depth)
{
	if (depth > JS_MAX_DEPTH * 4)
		return 0;
	switch (json_object_get_type(o)) {
	case json_type_double:
		return isfinite(json_object_get_double(o)) &&
		       number_text_ok(json_object_to_json_string(o));
	case json_type_string: {
		const char *s = json_object_get_string(o);
		size_t n = (size_t)json_object_get_string_len(o);
		return memchr(s, '\0', n) == NULL && utf8_valid(s, n);
	}
	case json_type_object: {
		json_object_object_foreach(o, k, v)
		{
			if (!utf8_valid(k, strlen(k)) || !strings_ok(v, depth + 1))
				return 0;
		}
		return 1;
	}
	case json_type_array: {
		size_t n = json_object_array_length(o);
		for (size_t i = 0; i < n; i++)
			if (!strings_ok(json_object_array_get_idx(o, i), depth + 1))
				return 0;
		return 1;
	}
	default:
		return 1;
	}
}

/* json-c accepts 'single-quoted' strings even in strict mode; JSON does
 * not. A quote outside a double-quoted string is the tell. */
static int
quotes_ok(const char *s, size_t len)
{
	int in_str = 0;

	for (size_t i = 0; i < len; i++) {
		if (in_str) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				in_str = 0;
		} else if (s[i] == '"') {
			in_str = 1;
		} else if (s[i] == '\'') {
			return 0;
		}
	}
	return 1;
}

struct json_object *
js_parse(
    const char *buf, size_t len, size_t max_len, int max_depth, int *ok, char *err, size_t errlen)
{
	struct json_tokener *tok = NULL;
	struct json_object *o = NULL;
	enum json_tokener_error jerr;
	size_t end;

	*ok = 0;
	if (len > max_len) {
		snprintf(err, errlen, "JSON larger than %zu bytes", max_len);
		return NULL;
	}
	if (memchr(buf, '\0', len)) {
		snprintf(err, errlen, "NUL byte in JSON");
		return NULL;
	}
	if (!utf8_valid(buf, len)) {
		snprintf(err, errlen, "invalid UTF-8 in JSON");
		return NULL;
	}
	if (!quotes_ok(buf, len)) {
		snprintf(err, errlen, "malformed JSON: single-quoted string");
		return NULL;
	}
	if ((tok = json_tokener_new_ex(max_depth)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (jerr == json_tokener_continue) {
		/* A bare number or literal at the very end needs a terminator to
		 * finish; the whole input was consumed by then. */
		o = json_tokener_parse_ex(tok, " ", 1);
		jerr = json_tokener_get_error(tok);
		end = len;
	}
	if (jerr != json_tokener_success) {
		if (jerr == json_tokener_error_depth)
			snprintf(err, errlen, "JSON nested deeper than %d levels", max_depth);
		else
			snprintf(err, errlen, "malformed JSON: %s", json_tokener_error_desc(jerr));
		goto fail;
	}
	for (; end < len; end++)
		if (!strchr(" \t\r\n", buf[end])) {
			snprintf(err, errlen, "malformed JSON: trailing characters");
			goto fail;
		}
	if (o && !strings_ok(o, 0)) {
		snprintf(err, errlen,
		    "JSON string with NUL or invalid UTF-8, or a number JSON cannot carry");
		goto fail;
	}
	json_tokener_free(tok);
	*ok = 1;
	return o;
fail:
	json_object_put(o);
	json_tokener_free(tok);
	return NULL;
}

char *
js_dump(struct json_object *obj)
{
	size_t n;
	const char *s = json_object_to_json_string_length(
	    obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);

	if (s == NULL)
		fatalx("json: cannot serialise");
	return xstrndup(s, n);
}

int
js_get_string(struct json_object *o, const char *key, const char **out, size_t *len)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return 1;
	if (!json_object_is_type(v, json_type_string))
		return -1;
	*out = json_object_get_string(v);
	if (len)
		*len = (size_t)json_object_get_string_len(v);
	return 0;
}

int
js_get_bool(struct json_object *o, const char *key, int *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return 1;
	if (!json_object_is_type(v, json_type_boolean))
		return -1;
	*out = json_object_get_boolean(v);
	return 0;
}

int
js_get_int(struct json_object *o, const char *key, int64_t *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return 1;
	if (!json_object_is_type(v, json_type_int))
		return -1;
	*out = json_object_get_int64(v);
	return 0;
}

struct json_object *
js_str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

struct json_object *
js_time_or_null(int64_t ms)
{
	char iso[UTIL_ISO_LEN];

	if (ms < 0)
		return NULL;
	util_iso8601(ms, iso);
	return json_object_new_string(iso);
}

void
js_put_string(struct buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;

	if (s == NULL) {
		buf_append(b, "null", 4);
		return;
	}
	buf_putc(b, '"');
	while (i < len) {
		unsigned char c = p[i];
		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			run++;
			continue;
		}
		buf_append(b, p + i - run, run);
		run = 0;
		if (c >= 0x80) {
			size_t k = utf8_seq(p + i, len - i);
			if (k) {
				buf_append(b, p + i, k);
				i += k;
			} else {
				buf_append(b, "\xef\xbf\xbd", 3); /* U+FFFD */
				i++;
			}
			continue;
		}
		switch (c) {
		case '"':
			buf_append(b, "\\\"", 2);
			break;
		case '\\':
			buf_append(b, "\\\\", 2);
			break;
		case '\n':
			buf_append(b, "\\n", 2);
			break;
		case '\t':
			buf_append(b, "\\t", 2);
			break;
		case '\r':
			buf_append(b, "\\r", 2);
			break;
		default: {
			char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			buf_append(b, u, 6);
		}
		}
		i++;
	}
	buf_append(b, p + i - run, run);
	buf_putc(b, '"');
}
