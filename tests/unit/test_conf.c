/* conf: defaults, ranges, booleans, env file, precedence. */
#include "unit.h"

#include "conf.h"

static void
clear_env(void)
{
	unsetenv("ETL_MAX_CONCURRENT_JOBS");
	unsetenv("ETL_ENV_FILE");
	unsetenv("REDIS_ENABLED");
	unsetenv("ETL_POLL_INTERVAL");
	unsetenv("ETL_SECRET");
}

static void
defaults(void **state)
{
	struct conf c;
	char err[256];
	(void)state;
	clear_env();
	assert_int_equal(conf_load(&c, err, sizeof(err)), 0);
	assert_int_equal(c.max_concurrent_jobs, 1);
	assert_int_equal(c.job_slot_timeout, 7200);
	assert_int_equal(c.job_cleanup_interval, 300);
	assert_int_equal(c.job_timeout, 3600);
	assert_true(c.poll_interval > 1.99 && c.poll_interval < 2.01);
	assert_int_equal(c.sistema_exclusive, 1);
	assert_string_equal(c.db_path, "./var/etl.db");
	assert_null(c.pipeline_cmd);
	assert_null(c.secret);
	assert_int_equal(c.redis_enabled, 0);
	assert_string_equal(c.redis_url, "redis://localhost:6379/0");
	assert_string_equal(c.redis_channel_prefix, "etl");
	assert_int_equal(c.kill_grace, 10);
	assert_int_equal(c.shutdown_grace, 30);
	assert_int_equal(c.max_line, 8192);
	assert_int_equal(c.max_body, 65536);
	conf_free(&c);
}

static void
range_error_names_variable(void **state)
{
	struct conf c;
	char err[256];
	(void)state;
	clear_env();
	setenv("ETL_MAX_CONCURRENT_JOBS", "0", 1);
	assert_int_equal(conf_load(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "ETL_MAX_CONCURRENT_JOBS"));
	assert_non_null(strstr(err, "1 to 256"));
	setenv("ETL_MAX_CONCURRENT_JOBS", "abc", 1);
	assert_int_equal(conf_load(&c, err, sizeof(err)), -1);
	setenv("ETL_MAX_CONCURRENT_JOBS", "3", 1);
	setenv("ETL_POLL_INTERVAL", "nan", 1);
	assert_int_equal(conf_load(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "ETL_POLL_INTERVAL"));
	setenv("ETL_SECRET", "short", 1);
	setenv("ETL_POLL_INTERVAL", "0.5", 1);
	assert_int_equal(conf_load(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "ETL_SECRET"));
	clear_env();
}

static void
booleans(void **state)
{
	int v;
	(void)state;
	const char *t[] = { "true", "TRUE", "1", "yes", "on" },
	           *f[] = { "false", "0", "no", "No", "off" };
	for (int i = 0; i < 5; i++) {
		assert_int_equal(conf_parse_bool(t[i], &v), 0);
		assert_int_equal(v, 1);
		assert_int_equal(conf_parse_bool(f[i], &v), 0);
		assert_int_equal(v, 0);
	}
	assert_int_equal(conf_parse_bool("maybe", &v), -1);
	assert_int_equal(conf_parse_bool("", &v), -1);
}

static void
env_file_and_precedence(void **state)
{
	struct conf c;
	char err[256], path[] = "/tmp/etl-unit-envXXXXXX";
	int fd = mkstemp(path);
	(void)state;
	const char *text = "# comment\n\nexport ETL_MAX_CONCURRENT_JOBS=4\nREDIS_ENABLED = yes\n"
	                   "ETL_PIPELINE_CMD=\"/bin/echo a b\"\nUNKNOWN_KEY=x\r\n";
	assert_true(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	clear_env();
	setenv("ETL_ENV_FILE", path, 1);
	assert_int_equal(conf_load(&c, err, sizeof(err)), 0);
	assert_int_equal(c.max_concurrent_jobs, 4);
	assert_int_equal(c.redis_enabled, 1);
	assert_string_equal(c.pipeline_cmd, "/bin/echo a b");
	conf_free(&c);
	/* The environment wins over the file. */
	setenv("ETL_MAX_CONCURRENT_JOBS", "2", 1);
	assert_int_equal(conf_load(&c, err, sizeof(err)), 0);
	assert_int_equal(c.max_concurrent_jobs, 2);
	conf_free(&c);
	unlink(path);
	clear_env();
}

static int
count_pair(const char *k, const char *v, void *arg)
{
	(void)k;
	(void)v;
	(*(int *)arg)++;
	return 0;
}

static void
env_text_errors(void **state)
{
	char err[128];
	int n = 0;
	(void)state;
	assert_int_equal(
	    conf_parse_env_text("A=1\nnoequals\n", 13, count_pair, &n, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "line 2"));
	assert_int_equal(conf_parse_env_text("1A=1\n", 5, count_pair, &n, err, sizeof(err)), -1);
	assert_int_equal(
	    conf_parse_env_text("A=\"open\n", 8, count_pair, &n, err, sizeof(err)), -1);
	assert_int_equal(
	    conf_parse_env_text("A=1\0B=2\n", 8, count_pair, &n, err, sizeof(err)), -1);
	n = 0;
	assert_int_equal(
	    conf_parse_env_text("A=1\nB='x y'\n#C=3\n", 17, count_pair, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
}

static void
bad_env_file_value_names_it(void **state)
{
	struct conf c;
	char err[256], path[] = "/tmp/etl-unit-envXXXXXX";
	int fd = mkstemp(path);
	(void)state;
	assert_true(write(fd, "ETL_JOB_TIMEOUT=-5\n", 19) == 19);
	close(fd);
	clear_env();
	setenv("ETL_ENV_FILE", path, 1);
	assert_int_equal(conf_load(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "ETL_JOB_TIMEOUT"));
	unlink(path);
	setenv("ETL_ENV_FILE", "/nonexistent/etl.env", 1);
	assert_int_equal(conf_load(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "ETL_ENV_FILE"));
	clear_env();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults),
		cmocka_unit_test(range_error_names_variable),
		cmocka_unit_test(booleans),
		cmocka_unit_test(env_file_and_precedence),
		cmocka_unit_test(env_text_errors),
		cmocka_unit_test(bad_env_file_value_names_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
