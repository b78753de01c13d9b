/* lparse: the three line shapes, limits and hostile bytes. */
#include "unit.h"

#include "js.h"
#include "lparse.h"

static struct lparse_line l;

static void
P(const char *s, int err)
{
	lparse(s, strlen(s), err, 8192, &l);
}

static void
brackets(void **state)
{
	(void)state;
	P("[INFO] [amplis] Extraindo posicoes", 0);
	assert_string_equal(l.level, "INFO");
	assert_string_equal(l.sistema, "amplis");
	assert_string_equal(l.mensagem.data, "Extraindo posicoes");
	assert_int_equal(l.progresso, -1);
	P("[success] [maps] ok", 1);
	assert_string_equal(l.level, "SUCCESS");
	P("[WARN] sem sistema", 0);
	assert_string_equal(l.level, "WARNING");
	assert_string_equal(l.sistema, "stdout");
	assert_string_equal(l.mensagem.data, "sem sistema");
	P("[ERROR] [bad sistema] x", 0);
	assert_string_equal(l.sistema, "stdout");
	assert_string_equal(l.mensagem.data, "[bad sistema] x");
}

static void
json_lines(void **state)
{
	(void)state;
	P("{\"level\": \"info\", \"sistema\": \"amplis\", \"mensagem\": \"etapa 1\", "
	  "\"progresso\": 33}",
	    0);
	assert_string_equal(l.level, "INFO");
	assert_string_equal(l.sistema, "amplis");
	assert_string_equal(l.mensagem.data, "etapa 1");
	assert_int_equal(l.progresso, 33);
	P("{\"progresso\": 150}", 0);
	assert_int_equal(l.progresso, -1);
	P("{\"mensagem\": 12}", 1);
	assert_string_equal(l.level, "ERROR");
	assert_string_equal(l.sistema, "stderr");
	assert_string_equal(l.mensagem.data, "12");
	P("{\"sistema\": \"../../etc\", \"mensagem\": \"x\"}", 0);
	assert_string_equal(l.sistema, "stdout");
	P("{not json", 0);
	assert_string_equal(l.mensagem.data, "{not json");
	P("{\"mensagem\": \"a\\u001b[31mb\"}", 0);
	assert_string_equal(l.mensagem.data, "a\\x1b[31mb");
}

static void
plain_lines(void **state)
{
	(void)state;
	P("just text", 0);
	assert_string_equal(l.level, "INFO");
	assert_string_equal(l.sistema, "stdout");
	P("Traceback", 1);
	assert_string_equal(l.level, "ERROR");
	assert_string_equal(l.sistema, "stderr");
}

static void
truncation_and_binary(void **state)
{
	char big[20000];
	(void)state;
	memset(big, 'x', sizeof(big));
	lparse(big, sizeof(big), 0, 8192, &l);
	assert_true(l.truncated);
	assert_true(l.mensagem.len < 8192 + 32);
	assert_non_null(strstr(l.mensagem.data, "[truncated]"));
	const char bin[] = "bad \xff\xfe bytes \x00\x1b[31m here";
	lparse(bin, sizeof(bin) - 1, 0, 8192, &l);
	assert_true(utf8_valid(l.mensagem.data, l.mensagem.len));
	assert_null(memchr(l.mensagem.data, '\0', l.mensagem.len));
	assert_non_null(strstr(l.mensagem.data, "\\x00\\x1b[31m"));
	lparse("", 0, 0, 8192, &l);
	assert_string_equal(l.mensagem.data, "");
}

static int
teardown(void **state)
{
	(void)state;
	lparse_free(&l);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(brackets),
		cmocka_unit_test(json_lines),
		cmocka_unit_test(plain_lines),
		cmocka_unit_test(truncation_and_binary),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
