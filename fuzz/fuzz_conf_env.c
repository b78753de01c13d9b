/*
 * fuzz_conf_env: the env-file parser (lib/conf.h conf_parse_env_text) and,
 * behind it, the typed checks conf_load applies to each value (numbers,
 * ranges, booleans). Input: the file's text. Every input goes through
 * conf_parse_env_text with a callback that checks each pair (the key is
 * [A-Za-z_][A-Za-z0-9_]*, neither key nor value holds a newline or NUL);
 * an input that parses is then written to a file under /dev/shm (or $TMPDIR)
 * and loaded with conf_load through ETL_ENV_FILE, whose result must be a
 * configuration within every documented range, or an error message.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "fuzz.h"

static char env_path[256];

static void
remove_env_file(void)
{
	(void)unlink(env_path);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	extern char **environ;
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	(void)argc;
	(void)argv;
	/* the file, not the environment, must decide every value */
	for (int again = 1; again;) {
		again = 0;
		for (char **e = environ; *e; e++)
			if (strncmp(*e, "ETL_", 4) == 0 || strncmp(*e, "REDIS_", 6) == 0 ||
			    strncmp(*e, "WSD_", 4) == 0) {
				char name[256];
				size_t n = strcspn(*e, "=");
				if (n >= sizeof(name))
					continue;
				memcpy(name, *e, n);
				name[n] = '\0';
				unsetenv(name);
				again = 1;
				break;
			}
	}
	snprintf(env_path, sizeof(env_path), "%s/etl-fuzz-env-%d", dir, (int)getpid());
	atexit(remove_env_file);
	return 0;
}

static int
pair(const char *key, const char *value, void *arg)
{
	size_t kl = strlen(key);
	int *n = arg;

	FUZZ_CHECK(kl >= 1, "empty key");
	FUZZ_CHECK(
	    (key[0] >= 'A' && key[0] <= 'Z') || (key[0] >= 'a' && key[0] <= 'z') || key[0] == '_',
	    "key starts with 0x%02x", (unsigned char)key[0]);
	for (size_t i = 1; i < kl; i++)
		FUZZ_CHECK((key[i] >= 'A' && key[i] <= 'Z') || (key[i] >= 'a' && key[i] <= 'z') ||
		               (key[i] >= '0' && key[i] <= '9') || key[i] == '_',
		    "key byte 0x%02x", (unsigned char)key[i]);
	FUZZ_CHECK(strchr(value, '\n') == NULL, "newline in a value");
	FUZZ_CHECK(strlen(value) <= 4096, "value longer than a line");
	(*n)++;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf c;
	char err[512] = "";
	int n = 0, fd, rc;

	rc = conf_parse_env_text((const char *)data, size, pair, &n, err, sizeof(err));
	if (rc != 0) {
		FUZZ_CHECK(strncmp(err, "line ", 5) == 0, "error without its line: %s", err);
		return 0;
	}
	if (size > 65536)
		return 0;
	fd = open(env_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	close(fd);
	setenv("ETL_ENV_FILE", env_path, 1);
	err[0] = '\0';
	rc = conf_load(&c, err, sizeof(err));
	unsetenv("ETL_ENV_FILE");
	if (rc != 0) {
		FUZZ_CHECK(err[0] != '\0', "conf_load failed without a message");
		return 0;
	}
	FUZZ_CHECK(c.max_concurrent_jobs >= 1 && c.max_concurrent_jobs <= 256, "slots %d",
	    c.max_concurrent_jobs);
	FUZZ_CHECK(c.poll_interval >= 0.05 && c.poll_interval <= 3600, "poll %g", c.poll_interval);
	FUZZ_CHECK(
	    c.sistema_exclusive == 0 || c.sistema_exclusive == 1, "bool %d", c.sistema_exclusive);
	FUZZ_CHECK(c.token_ttl >= 60 && c.token_ttl <= 604800, "ttl %d", c.token_ttl);
	FUZZ_CHECK(c.max_body >= 1024 && c.max_body <= 16777216, "max_body %d", c.max_body);
	FUZZ_CHECK(c.max_line >= 256 && c.max_line <= 1048576, "max_line %d", c.max_line);
	FUZZ_CHECK(c.redis_socket_timeout >= 0.01 && c.redis_socket_timeout <= 60, "timeout %g",
	    c.redis_socket_timeout);
	FUZZ_CHECK(c.db_path != NULL && c.db_path[0] != '\0', "no db path");
	FUZZ_CHECK(c.secret == NULL || strlen(c.secret) >= 32, "secret of %zu bytes accepted",
	    strlen(c.secret));
	conf_free(&c);
	return 0;
}
