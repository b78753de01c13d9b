/* js: bounded JSON parsing and UTF-8 handling. */
#include "unit.h"

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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
