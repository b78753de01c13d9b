/* util: times, integer parsing, validators, buffers. */
#include "unit.h"

#include "util.h"

static void
iso_roundtrip(void **state)
{
	char s[UTIL_ISO_LEN];
	(void)state;
	util_iso8601(1795891893123, s);
	assert_string_equal(s, "2026-11-28T18:51:33.123Z");
	assert_int_equal(util_parse_iso8601(s), 1795891893123);
}

static void
iso_legacy_forms(void **state)
{
	(void)state;
	assert_int_equal(util_parse_iso8601("2026-10-01T03:00:41"), 1790823641000);
	assert_int_equal(util_parse_iso8601("2026-10-01T03:00:41Z"), 1790823641000);
	assert_int_equal(util_parse_iso8601("2026-10-01T03:00:41.5Z"), 1790823641500);
	assert_int_equal(util_parse_iso8601("2026-13-01T03:00:41"), -1);
	assert_int_equal(util_parse_iso8601("2026-10-01T03:00:41junk"), -1);
	assert_int_equal(util_parse_iso8601(""), -1);
	assert_int_equal(util_parse_iso8601(NULL), -1);
}

static void
parse_i64_strict(void **state)
{
	int64_t v;
	(void)state;
	assert_int_equal(util_parse_i64("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(util_parse_i64("-1", 0, 100, &v), -1);
	assert_int_equal(util_parse_i64("101", 0, 100, &v), -1);
	assert_int_equal(util_parse_i64("1e3", 0, 10000, &v), -1);
	assert_int_equal(util_parse_i64(" 1", 0, 100, &v), -1);
	assert_int_equal(util_parse_i64("", 0, 100, &v), -1);
	assert_int_equal(util_parse_i64("99999999999999999999999", 0, INT64_MAX, &v), -1);
	assert_int_equal(util_parse_i64("0x10", 0, 100, &v), -1);
}

static void
validators(void **state)
{
	(void)state;
	assert_true(util_valid_username("alice.b-c_1", 11));
	assert_false(util_valid_username("", 0));
	assert_false(util_valid_username("a b", 3));
	assert_false(util_valid_username("a/../b", 6));
	assert_true(util_valid_sistema_id("amplis_2-x", 10));
	assert_false(util_valid_sistema_id("Amplis", 6));
	assert_false(util_valid_sistema_id("a;drop", 6));
	char big[70];
	memset(big, 'a', sizeof(big));
	assert_true(util_valid_sistema_id(big, 64));
	assert_false(util_valid_sistema_id(big, 65));
}

static void
buffers_grow(void **state)
{
	struct buf b = { 0 };
	(void)state;
	for (int i = 0; i < 1000; i++)
		buf_printf(&b, "%d,", i);
	assert_int_equal(strlen(b.data), b.len);
	assert_memory_equal(b.data, "0,1,2,", 6);
	char *s = buf_steal(&b);
	assert_null(b.data);
	free(s);
	buf_free(&b);
}

static void
ct_equal(void **state)
{
	(void)state;
	assert_true(util_ct_equal("abc", "abc", 3));
	assert_false(util_ct_equal("abc", "abd", 3));
}

static void
instance_id_shape(void **state)
{
	const char *id = util_instance_id();
	(void)state;
	const char *dash = strrchr(id, '-');
	assert_non_null(dash);
	assert_int_equal(strlen(dash + 1), 8);
	assert_string_equal(id, util_instance_id());
}

/* buf_put_i64 writes what "%lld" writes, at the edges too; buf_printf
 * grows the buffer when the text does not fit in the room left. */
static void
buf_numbers_and_growth(void **state)
{
	const int64_t v[] = { 0, 1, -1, 9, 10, 12345, -98765, INT64_MAX, INT64_MIN };
	struct buf a = { 0 }, b = { 0 };
	char big[300];
	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		buf_put_i64(&a, v[i]);
		buf_putc(&a, ' ');
		buf_printf(&b, "%lld ", (long long)v[i]);
	}
	assert_string_equal(a.data, b.data);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	buf_printf(&a, "<%s>", big);
	assert_int_equal(a.len, strlen(b.data) + sizeof(big) + 1);
	assert_int_equal(a.data[a.len - 1], '>');
	assert_int_equal(a.data[a.len], '\0');
	buf_free(&a);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(iso_roundtrip),
		cmocka_unit_test(buf_numbers_and_growth),
		cmocka_unit_test(iso_legacy_forms),
		cmocka_unit_test(parse_i64_strict),
		cmocka_unit_test(validators),
		cmocka_unit_test(buffers_grow),
		cmocka_unit_test(ct_equal),
		cmocka_unit_test(instance_id_shape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
