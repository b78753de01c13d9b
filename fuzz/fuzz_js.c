/*
 * fuzz_js: js_parse (every JSON body and message from outside goes through
 * it) and utf8_valid/utf8_sanitize (everything we emit goes through them).
 * Input: one flags byte (bits 0-1: max_depth 1, 4, 8 or JS_MAX_DEPTH; bits
 * 2-3: the sanitize limit 0, 7, 64 or unlimited), then the bytes.
 * Also js_text_is, against json_check.h's grammar.
 * Invariants: a parsed value never came from text with a NUL or invalid
 * UTF-8; what js_dump writes of it parses again to an equal value;
 * utf8_sanitize's output is valid UTF-8, free of control bytes, within its
 * limit (plus the marker), and equal to the input when the input was
 * valid, control-free and short enough.
 */
#include <string.h>

#include "fuzz.h"
#include "js.h"
#include "json_check.h"

static const char js_marker[] = "\xe2\x80\xa6[truncated]";

static void
check_sanitize(const char *s, size_t len, size_t max_out)
{
	struct buf b = { 0 };
	const unsigned char *m;
	int clean = 1, cut;

	cut = utf8_sanitize(&b, s, len, max_out);
	if (b.data == NULL)
		buf_append(&b, "", 0);
	FUZZ_CHECK(utf8_valid(b.data, b.len), "utf8_sanitize gave invalid UTF-8");
	FUZZ_CHECK(b.len <= max_out + (cut ? sizeof(js_marker) - 1 : 0), "%zu bytes > limit %zu",
	    b.len, max_out);
	m = (const unsigned char *)b.data;
	for (size_t i = 0; i < b.len; i++) {
		FUZZ_CHECK((m[i] >= 0x20 || m[i] == '\t') && m[i] != 0x7f, "control 0x%02x", m[i]);
		FUZZ_CHECK(!(m[i] == 0xc2 && i + 1 < b.len && m[i + 1] >= 0x80 && m[i + 1] <= 0x9f),
		    "C1 control at %zu", i);
	}
	if (cut)
		FUZZ_CHECK(b.len >= sizeof(js_marker) - 1 &&
		               memcmp(b.data + b.len - (sizeof(js_marker) - 1), js_marker,
		                   sizeof(js_marker) - 1) == 0,
		    "cut without the marker");
	for (size_t i = 0; i < len && clean; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f ||
		    (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
		        (unsigned char)s[i + 1] <= 0x9f))
			clean = 0;
	}
	if (clean && len <= max_out && utf8_valid(s, len))
		FUZZ_CHECK(!cut && b.len == len && memcmp(b.data, s, len) == 0,
		    "clean input changed by utf8_sanitize");
	buf_free(&b);
}

/* js_text_is (the list's check of stored JSON) against the independent
 * grammar of json_check.h: what that accepts as an array or an object
 * (it stops at 256 levels, js_text_is at 1000), js_text_is accepts too;
 * what js_text_is accepts holds no NUL byte. */
static void
check_text_is(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	for (int w = 0; w < 2; w++) {
		char want = w ? '{' : '[';
		int ours = js_text_is(s, len, want);
		if (i < len && s[i] == want && json_strict_valid(s, len))
			FUZZ_CHECK(ours, "js_text_is refused valid JSON (%c)", want);
		if (ours)
			FUZZ_CHECK(memchr(s, '\0', len) == NULL && i < len && s[i] == want,
			    "js_text_is took a NUL byte or the wrong kind (%c)", want);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int depths[] = { 1, 4, 8, JS_MAX_DEPTH };
	static const size_t limits[] = { 0, 7, 64, (size_t)-1 / 2 };
	struct json_object *o, *again;
	const char *s;
	size_t len;
	char err[128];
	int ok = -1, ok2 = -1;

	if (size < 1)
		return 0;
	s = (const char *)data + 1;
	len = size - 1;
	o = js_parse(s, len, 65536, depths[data[0] & 3], &ok, err, sizeof(err));
	FUZZ_CHECK(ok == 0 || ok == 1, "ok not set (%d)", ok);
	if (o == NULL && !ok)
		FUZZ_CHECK(err[0] != '\0', "rejected without a reason");
	if (ok) {
		char *dump;
		FUZZ_CHECK(memchr(s, '\0', len) == NULL, "accepted a raw NUL");
		FUZZ_CHECK(utf8_valid(s, len), "accepted invalid UTF-8");
		FUZZ_CHECK(len <= 65536, "accepted %zu bytes over the limit", len);
		dump = js_dump(o);
		FUZZ_CHECK(utf8_valid(dump, strlen(dump)), "js_dump wrote invalid UTF-8");
		FUZZ_CHECK(json_strict_valid(dump, strlen(dump)),
		    "js_dump wrote what is not JSON: %s", dump);
		again =
		    js_parse(dump, strlen(dump), 1u << 20, JS_MAX_DEPTH, &ok2, err, sizeof(err));
		FUZZ_CHECK(ok2 == 1, "js_dump output does not parse again: %s: %s", err, dump);
		FUZZ_CHECK(json_object_equal(o, again), "round trip changed the value: %s", dump);
		json_object_put(again);
		free(dump);
	}
	json_object_put(o);
	check_text_is(s, len);
	check_sanitize(s, len, limits[(data[0] >> 2) & 3]);
	return 0;
}
