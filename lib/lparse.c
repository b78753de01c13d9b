/*
 * lparse: one line of pipeline output -> level, sistema, message, progress.
 * Three shapes, tried in order: a JSON object, "[LEVEL] [sistema] text"
 * (or "[LEVEL] text"), anything else. The line is cut to max_line bytes
 * first, so no shape can make us hold more than that.
 */
#include "lparse.h"

#include <math.h>
#include <string.h>

#include "js.h"

static const char truncated_marker[] = "\xe2\x80\xa6[truncated]";

static int
is_level_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
is_sistema_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

static void
set_level(struct lparse_line *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		o->level[i] = (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 32) : s[i];
	o->level[n] = '\0';
	if (strcmp(o->level, "WARN") == 0)
		strcpy(o->level, "WARNING");
}

static int
valid_level(const char *s, size_t n)
{
	if (n < 1 || n > LPARSE_LEVEL_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_level_char(s[i]))
			return 0;
	return 1;
}

static int
valid_sistema(const char *s, size_t n)
{
	if (n < 1 || n > LPARSE_SISTEMA_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_sistema_char(s[i]))
			return 0;
	return 1;
}

static void
set_sistema(struct lparse_line *o, const char *s, size_t n)
{
	memcpy(o->sistema, s, n);
	o->sistema[n] = '\0';
}

static void
set_text(struct lparse_line *o, const char *s, size_t n, size_t max_line)
{
	if (utf8_sanitize(&o->mensagem, s, n, max_line))
		o->truncated = 1;
}

static int
try_json(const char *line, size_t len, size_t max_line, struct lparse_line *o)
{
	struct json_object *obj, *v;
	const char *s;
	size_t n;
	int ok;
	char err[64];

	obj = js_parse(line, len, len, 8, &ok, err, sizeof(err));
	if (obj == NULL || !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return 0;
	}
	if (js_get_string(obj, "level", &s, &n) == 0 && valid_level(s, n))
		set_level(o, s, n);
	if (js_get_string(obj, "sistema", &s, &n) == 0 && valid_sistema(s, n))
		set_sistema(o, s, n);
	if (json_object_object_get_ex(obj, "mensagem", &v) && v != NULL) {
		if (json_object_is_type(v, json_type_string)) {
			set_text(o, json_object_get_string(v),
			    (size_t)json_object_get_string_len(v), max_line);
		} else {
			const char *t = json_object_to_json_string_ext(
			    v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
			set_text(o, t, strlen(t), max_line);
		}
	}
	if (json_object_object_get_ex(obj, "progresso", &v) &&
	    (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double))) {
		double d = json_object_get_double(v);
		if (isfinite(d) && d >= 0 && d <= 100)
			o->progresso = (int)d;
	}
	json_object_put(obj);
	return 1;
}

static int
try_brackets(const char *line, size_t len, size_t max_line, struct lparse_line *o)
{
	size_t i = 0, ls, le, ss, se;

	if (len < 3 || line[0] != '[')
		return 0;
	ls = i = 1;
	while (i < len && is_level_char(line[i]))
		i++;
	le = i;
	if (i >= len || line[i] != ']' || !valid_level(line + ls, le - ls))
		return 0;
	i++;
	while (i < len && line[i] == ' ')
		i++;
	set_level(o, line + ls, le - ls);
	if (i < len && line[i] == '[') {
		ss = ++i;
		while (i < len && is_sistema_char(line[i]))
			i++;
		se = i;
		if (i < len && line[i] == ']' && valid_sistema(line + ss, se - ss)) {
			set_sistema(o, line + ss, se - ss);
			i++;
			if (i < len && line[i] == ' ')
				i++;
		} else {
			i = ss - 1; /* not a sistema: part of the message */
		}
	}
	set_text(o, line + i, len - i, max_line);
	return 1;
}

void
lparse(const char *line, size_t len, int is_stderr, size_t max_line, struct lparse_line *o)
{
	size_t i = 0;

	buf_reset(&o->mensagem);
	strcpy(o->level, is_stderr ? "ERROR" : "INFO");
	strcpy(o->sistema, is_stderr ? "stderr" : "stdout");
	o->progresso = -1;
	o->truncated = 0;
	if (len > max_line) {
		len = max_line;
		o->truncated = 1;
	}
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (!(i < len && line[i] == '{' && !o->truncated &&
	        try_json(line + i, len - i, max_line, o)) &&
	    !try_brackets(line, len, max_line, o))
		set_text(o, line, len, max_line);
	if (o->truncated &&
	    (o->mensagem.len < sizeof(truncated_marker) - 1 ||
	        memcmp(o->mensagem.data + o->mensagem.len - (sizeof(truncated_marker) - 1),
	            truncated_marker, sizeof(truncated_marker) - 1) != 0))
		buf_append(&o->mensagem, truncated_marker, sizeof(truncated_marker) - 1);
	if (o->mensagem.data == NULL)
		buf_append(&o->mensagem, "", 0);
}

void
lparse_free(struct lparse_line *l)
{
	if (l)
		buf_free(&l->mensagem);
}
