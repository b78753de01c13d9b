/*
 * json_check.h: a strict RFC 8259 JSON syntax check for the fuzz oracles,
 * written apart from json-c and lib/js.c on purpose: what we send must be
 * JSON by the standard, not by the parser that produced it (json-c takes
 * NaN, Infinity and raw control characters). Grammar only: builds nothing,
 * checks UTF-8 separately (js.h utf8_valid). Header-only (static) so every
 * target can use it without a link rule.
 */
#ifndef ETL_FUZZ_JSON_CHECK_H
#define ETL_FUZZ_JSON_CHECK_H

#include <stddef.h>

struct jc {
	const char *s;
	size_t n, i;
	int depth;
};

static int jc_value(struct jc *j);

static void
jc_ws(struct jc *j)
{
	while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' ||
	                          j->s[j->i] == '\r'))
		j->i++;
}

static int
jc_lit(struct jc *j, const char *w)
{
	size_t k = 0;

	while (w[k]) {
		if (j->i + k >= j->n || j->s[j->i + k] != w[k])
			return 0;
		k++;
	}
	j->i += k;
	return 1;
}

static int
jc_digits(struct jc *j)
{
	size_t st = j->i;

	while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9')
		j->i++;
	return j->i > st;
}

static int
jc_number(struct jc *j)
{
	if (j->i < j->n && j->s[j->i] == '-')
		j->i++;
	if (j->i < j->n && j->s[j->i] == '0')
		j->i++;
	else if (!jc_digits(j))
		return 0;
	if (j->i < j->n && j->s[j->i] == '.') {
		j->i++;
		if (!jc_digits(j))
			return 0;
	}
	if (j->i < j->n && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
		j->i++;
		if (j->i < j->n && (j->s[j->i] == '+' || j->s[j->i] == '-'))
			j->i++;
		if (!jc_digits(j))
			return 0;
	}
	return 1;
}

static int
jc_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int
jc_string(struct jc *j)
{
	if (j->i >= j->n || j->s[j->i] != '"')
		return 0;
	j->i++;
	while (j->i < j->n) {
		unsigned char c = (unsigned char)j->s[j->i];
		if (c == '"') {
			j->i++;
			return 1;
		}
		if (c < 0x20)
			return 0; /* raw control character */
		if (c == '\\') {
			char e;
			if (++j->i >= j->n)
				return 0;
			e = j->s[j->i];
			if (e == 'u') {
				for (int k = 1; k <= 4; k++)
					if (j->i + k >= j->n || !jc_hex(j->s[j->i + k]))
						return 0;
				j->i += 4;
			} else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' &&
			           e != 'n' && e != 'r' && e != 't') {
				return 0;
			}
		}
		j->i++;
	}
	return 0;
}

static int
jc_container(struct jc *j, char close, int object)
{
	if (++j->depth > 256)
		return 0;
	j->i++;
	jc_ws(j);
	if (j->i < j->n && j->s[j->i] == close) {
		j->i++;
		j->depth--;
		return 1;
	}
	for (;;) {
		if (object) {
			jc_ws(j);
			if (!jc_string(j))
				return 0;
			jc_ws(j);
			if (j->i >= j->n || j->s[j->i] != ':')
				return 0;
			j->i++;
		}
		if (!jc_value(j))
			return 0;
		jc_ws(j);
		if (j->i < j->n && j->s[j->i] == ',') {
			j->i++;
			continue;
		}
		if (j->i < j->n && j->s[j->i] == close) {
			j->i++;
			j->depth--;
			return 1;
		}
		return 0;
	}
}

static int
jc_value(struct jc *j)
{
	jc_ws(j);
	if (j->i >= j->n)
		return 0;
	switch (j->s[j->i]) {
	case '{':
		return jc_container(j, '}', 1);
	case '[':
		return jc_container(j, ']', 0);
	case '"':
		return jc_string(j);
	case 't':
		return jc_lit(j, "true");
	case 'f':
		return jc_lit(j, "false");
	case 'n':
		return jc_lit(j, "null");
	default:
		return jc_number(j);
	}
}

/* 1 if s[0..n) is exactly one JSON value (surrounding whitespace allowed). */
static inline int
json_strict_valid(const char *s, size_t n)
{
	struct jc j = { s, n, 0, 0 };

	if (!jc_value(&j))
		return 0;
	jc_ws(&j);
	return j.i == n;
}

#endif
