/* js: bounded JSON parsing and UTF-8 handling. */
#include "unit.h"

#include <sqlite3.h>

#include "js.h"

static struct json_object *
parse(const char *s, size_t len, int depth, int *ok)
{
	char err[128];
	return js_parse(s, len, 65536, depth, ok, err, sizeof(err));
}

static void
parses_objects(void **state)
{
	int ok;
	const char *s;
	int64_t i;
	int b;
	(void)state;
	struct json_object *o = parse("{\"a\":\"x\",\"n\":5,\"b\":true} \n", 26, 8, &ok);
	assert_non_null(o);
	assert_true(ok);
	assert_int_equal(js_get_string(o, "a", &s, NULL), 0);
	assert_string_equal(s, "x");
	assert_int_equal(js_get_int(o, "n", &i), 0);
	assert_int_equal(i, 5);
	assert_int_equal(js_get_bool(o, "b", &b), 0);
	assert_int_equal(js_get_string(o, "n", &s, NULL), -1);
	assert_int_equal(js_get_string(o, "zz", &s, NULL), 1);
	json_object_put(o);
}

static void
rejects_bad_input(void **state)
{
	int ok;
	(void)state;
	assert_null(parse("{\"a\":", 5, 8, &ok));
	assert_false(ok);
	assert_null(parse("{} x", 4, 8, &ok));
	assert_null(parse("{\"a\":\"\\u0000\"}", 14, 8, &ok));
	assert_null(parse("{\"a\":\"\xff\"}", 9, 8, &ok));
	assert_null(parse("{\"a\":1}\0", 8, 8, &ok));
	assert_null(parse("{'a':1}", 7, 8, &ok));
	char big[100];
	memset(big, '[', sizeof(big));
	assert_null(parse(big, sizeof(big), 32, &ok));
	char err[64];
	assert_null(js_parse("{}", 2, 1, 8, &ok, err, sizeof(err)));
	assert_non_null(strstr(err, "larger"));
}

static void
deep_nesting_rejected_not_crashing(void **state)
{
	int ok;
	size_t n = 20000;
	char *s = malloc(n * 2);
	(void)state;
	memset(s, '[', n);
	memset(s + n, ']', n);
	assert_null(parse(s, n * 2, JS_MAX_DEPTH, &ok));
	free(s);
}

static void
json_null_and_scalars(void **state)
{
	int ok;
	(void)state;
	assert_null(parse("null", 4, 8, &ok));
	assert_true(ok);
	struct json_object *o = parse("42", 2, 8, &ok);
	assert_true(ok);
	assert_int_equal(json_object_get_int(o), 42);
	json_object_put(o);
}

static void
utf8_validation(void **state)
{
	(void)state;
	assert_true(utf8_valid("a\xc3\xa7\xe2\x82\xac\xf0\x9f\x98\x80", 10));
	assert_false(utf8_valid("\xc0\x80", 2)); /* overlong NUL */
	assert_false(utf8_valid("\xed\xa0\x80", 3)); /* surrogate */
	assert_false(utf8_valid("\xf4\x90\x80\x80", 4));
	assert_false(utf8_valid("\xe2\x82", 2));
}

static void
sanitize_replaces_and_escapes(void **state)
{
	struct buf b = { 0 };
	(void)state;
	assert_int_equal(utf8_sanitize(&b, "ok \xff\x1b[31m\t\xc3\xa7", 12, 100), 0);
	assert_string_equal(b.data, "ok \xef\xbf\xbd\\x1b[31m\t\xc3\xa7");
	assert_true(utf8_valid(b.data, b.len));
	buf_reset(&b);
	assert_int_equal(utf8_sanitize(&b, "abcdefghij", 10, 4), 1);
	assert_memory_equal(b.data, "abcd", 4);
	assert_non_null(strstr(b.data, "[truncated]"));
	buf_reset(&b);
	assert_int_equal(utf8_sanitize(&b, "\x00\x7f\xc2\x85", 4, 100), 0);
	assert_string_equal(b.data, "\\x00\\x7f\\u0085");
	buf_free(&b);
}

static void
dump_does_not_escape_slash(void **state)
{
	(void)state;
	struct json_object *o = json_object_new_string("a/b");
	char *s = js_dump(o);
	assert_string_equal(s, "\"a/b\"");
	free(s);
	json_object_put(o);
}

#define ARR(s) js_text_is(s, sizeof(s) - 1, '[')
#define OBJ(s) js_text_is(s, sizeof(s) - 1, '{')

static void
text_is_checks_json(void **state)
{
	(void)state;
	assert_true(ARR("[]"));
	assert_true(ARR(" \t\r\n[ ] \n"));
	assert_true(ARR("[\"amplis\",\"maps\"]"));
	assert_true(ARR("[1,-0,0.5,1e9,-2.5E-3,true,false,null,{},[[]],{\"a\":[1,{}]}]"));
	assert_true(OBJ("{\"a\":\"\\u00e7\\\"\\\\\\/\\b\\f\\n\\r\\t\",\"b\":{\"c\":[]}}"));
	assert_true(OBJ("{ \"k\" : 1 , \"l\" : [ 2 ] }"));
	assert_false(OBJ("[]")); /* the wrong kind */
	assert_false(ARR("{}"));
	assert_false(ARR("\"[]\""));
	assert_false(ARR(""));
	assert_false(ARR("   "));
	assert_false(ARR("["));
	assert_false(ARR("[1,]"));
	assert_false(ARR("[,1]"));
	assert_false(ARR("[1 2]"));
	assert_false(ARR("[] []"));
	assert_false(ARR("[01]"));
	assert_false(ARR("[1.]"));
	assert_false(ARR("[.5]"));
	assert_false(ARR("[-]"));
	assert_false(ARR("[1e]"));
	assert_false(ARR("[+1]"));
	assert_false(ARR("[tru]"));
	assert_false(ARR("[truex]"));
	assert_false(ARR("[nul]"));
	assert_false(ARR("['a']"));
	assert_false(ARR("[\"a]"));
	assert_false(ARR("[\"\\x\"]"));
	assert_false(ARR("[\"\\u12g4\"]"));
	assert_false(ARR("[\"tab\there\"]"));
	assert_false(ARR("[1]\0"));
	assert_false(ARR("[\"a\0b\"]"));
	assert_false(OBJ("{\"a\"}"));
	assert_false(OBJ("{\"a\":}"));
	assert_false(OBJ("{a:1}"));
	assert_false(OBJ("{\"a\":1,}"));
	assert_false(OBJ("{\"a\":1]"));
	assert_false(ARR("[1}"));
	assert_false(js_text_is("[]", 2, '"'));
}

static void
text_is_nesting_is_bounded(void **state)
{
	size_t n = JS_TEXT_MAX_DEPTH + 1;
	char *s = malloc(n * 2);
	(void)state;
	memset(s, '[', n);
	memset(s + n, ']', n);
	assert_true(js_text_is(s + 1, (n - 1) * 2, '['));
	assert_false(js_text_is(s, n * 2, '['));
	assert_false(js_text_is(s, n * 2 - 1, '['));
	free(s);
}

/* What the list did before js_text_is: SQLite's own check, in SQL. */
static int
sqlite_says(sqlite3 *h, const char *s, size_t n, char want)
{
	sqlite3_stmt *st = NULL;
	int r = -1;

	assert_int_equal(
	    sqlite3_prepare_v2(h,
	        "SELECT CASE WHEN json_valid(?1) AND json_type(?1) = ?2 THEN 1 ELSE 0 END", -1, &st,
	        NULL),
	    SQLITE_OK);
	sqlite3_bind_text(st, 1, s, (int)n, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, want == '[' ? "array" : "object", -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		r = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return r;
}

/* Mutations of valid texts (a byte changed, dropped or doubled, a cut)
 * are judged the same way SQLite's json_valid judged them. No mutation
 * makes a NUL byte: SQLite reads only up to one, js_text_is refuses it. */
static void
text_is_agrees_with_sqlite(void **state)
{
	static const char *const seeds[] = {
		"[\"amplis\",\"maps\"]",
		"{\"bench\":true,\"n\":-12.5e+3,\"s\":\"a\\\"b\\u0041\",\"x\":[null,false,{}]}",
		"[ 0 , 1.25 , [ [ ] ] , { \"k\" : \"v\" } ]",
		"{\"deep\":{\"er\":{\"est\":[1,[2,[3]]]}}}",
	};
	static const char alphabet[] = "[]{}\",:\\ 0123456789.eE+-tfnulrsaxu\t\n";
	sqlite3 *h = NULL;
	unsigned seed = 12345;
	int checked = 0, valid = 0;
	(void)state;

	assert_int_equal(sqlite3_open(":memory:", &h), SQLITE_OK);
	for (size_t k = 0; k < UTIL_ARRAY_LEN(seeds); k++) {
		for (int round = 0; round < 3000; round++) {
			char t[256];
			size_t n = strlen(seeds[k]), pos;
			memcpy(t, seeds[k], n);
			for (int m = 0; m < 1 + round % 3 && n > 1; m++) {
				seed = seed * 1103515245u + 12345u;
				pos = (seed >> 8) % n;
				switch ((seed >> 4) % 4) {
				case 0:
					t[pos] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
					break;
				case 1: /* drop a byte */
					memmove(t + pos, t + pos + 1, n - pos - 1);
					n--;
					break;
				case 2: /* double a byte */
					if (n + 1 < sizeof(t)) {
						memmove(t + pos + 1, t + pos, n - pos);
						n++;
					}
					break;
				default:
					n = pos + 1;
					break;
				}
			}
			for (int w = 0; w < 2; w++) {
				char want = w ? '{' : '[';
				int ours = js_text_is(t, n, want),
				    theirs = sqlite_says(h, t, n, want);
				if (ours != theirs)
					fail_msg("js_text_is says %d, SQLite %d, for '%.*s' as %c",
					    ours, theirs, (int)n, t, want);
				checked++;
				valid += ours;
			}
		}
	}
	assert_true(checked > 20000);
	assert_true(valid > checked / 20 && valid < checked / 2); /* both kinds were tried */
	sqlite3_close(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_objects),
		cmocka_unit_test(rejects_bad_input),
		cmocka_unit_test(deep_nesting_rejected_not_crashing),
		cmocka_unit_test(json_null_and_scalars),
		cmocka_unit_test(utf8_validation),
		cmocka_unit_test(sanitize_replaces_and_escapes),
		cmocka_unit_test(dump_does_not_escape_slash),
		cmocka_unit_test(text_is_checks_json),
		cmocka_unit_test(text_is_nesting_is_bounded),
		cmocka_unit_test(text_is_agrees_with_sqlite),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
