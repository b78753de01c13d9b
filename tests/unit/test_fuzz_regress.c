/*
 * fuzz regressions: every input under fuzz/regress/NAME/ (inputs that once
 * crashed or broke an invariant) and the seed corpus fuzz/corpus/NAME/,
 * replayed through the very checks of the fuzz targets (fuzz/fuzz_NAME.c,
 * included here with their entry point renamed) for the targets that need
 * only the library: lparse, js, tok, conf_env. A failed check aborts, so
 * the program fails. The API and relay targets (route, body, relay) link
 * program sources and are replayed by `make fuzz` instead.
 * Files are looked up from the current directory (make runs tests from the
 * top of the tree), else from two levels above the program.
 */
#include "unit.h"

#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>

int fuzz_lparse_one(const uint8_t *data, size_t size);
int fuzz_js_one(const uint8_t *data, size_t size);
int fuzz_tok_one(const uint8_t *data, size_t size);
int fuzz_conf_env_one(const uint8_t *data, size_t size);
int fuzz_conf_env_init(int *argc, char ***argv);

#define LLVMFuzzerTestOneInput fuzz_lparse_one
#include "../../fuzz/fuzz_lparse.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_js_one
#include "../../fuzz/fuzz_js.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tok_one
#include "../../fuzz/fuzz_tok.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_conf_env_one
#define LLVMFuzzerInitialize fuzz_conf_env_init
#include "../../fuzz/fuzz_conf_env.c"
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize

static char root[PATH_MAX];

/* Replays every regular file of dir through fn; returns how many. */
static int
replay_dir(const char *dir, int (*fn)(const uint8_t *, size_t))
{
	char path[PATH_MAX + 512];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", root, dir);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		FILE *f;
		uint8_t *data;
		size_t got;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", root, dir, e->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		f = fopen(path, "rb");
		assert_non_null(f);
		data = malloc((size_t)st.st_size + 1);
		assert_non_null(data);
		got = fread(data, 1, (size_t)st.st_size, f);
		fclose(f);
		assert_int_equal(got, (size_t)st.st_size);
		fn(data, got);
		free(data);
		n++;
	}
	closedir(d);
	return n;
}

static void
replay(const char *name, int (*fn)(const uint8_t *, size_t))
{
	char dir[128];
	int n;

	snprintf(dir, sizeof(dir), "fuzz/corpus/%s", name);
	n = replay_dir(dir, fn);
	assert_true(n > 0); /* the seeds are checked in: finding none is a setup error */
	snprintf(dir, sizeof(dir), "fuzz/regress/%s", name);
	n += replay_dir(dir, fn);
	print_message("fuzz %s: %d input(s) replayed\n", name, n);
}

static void
lparse_inputs(void **state)
{
	(void)state;
	replay("lparse", fuzz_lparse_one);
}

static void
js_inputs(void **state)
{
	(void)state;
	replay("js", fuzz_js_one);
}

static void
tok_inputs(void **state)
{
	(void)state;
	replay("tok", fuzz_tok_one);
}

static void
conf_env_inputs(void **state)
{
	(void)state;
	fuzz_conf_env_init(NULL, NULL);
	replay("conf_env", fuzz_conf_env_one);
	unlink(env_path);
}

/*
 * Found by fuzz_relay (fuzz/regress/relay/nan-in-payload): json-c accepts
 * NaN, Infinity and -Infinity even in strict mode, and 1e999 overflows to
 * inf; js_dump then wrote bare NaN/Infinity, which is not JSON. Then by
 * fuzz_js and fuzz_relay (fuzz/regress/js/trailing-dot, leading-zeros):
 * "0.", "1.e5" and "007.5" too, since json-c writes a double back as the
 * text it came as. Through
 * POST /api/execute params it reached GET /api/jobs and broke the job list
 * for every browser; through Redis it reached every websocket client.
 */
static void
js_rejects_numbers_json_cannot_carry(void **state)
{
	static const char *const bad[] = { "{\"a\":NaN}", "[Infinity]", "-Infinity", "1e999",
		"{\"params\":{\"x\":[1,-1e999]}}", "{\"type\":\"log\",\"payload\":{\"p\":NaN}}",
		"[0.]", "1.e5", "{\"p\":-0.}", "[00000924949406.5807]", "-00.5" };
	static const char *const good[] = { "1e308", "-0", "[0.5, -2.5e-300]",
		"123456789012345678901", "[0e0, 10.25e-3, -0.5]" };
	char err[128];
	int ok;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct json_object *o =
		    js_parse(bad[i], strlen(bad[i]), 1024, JS_MAX_DEPTH, &ok, err, sizeof(err));
		assert_null(o);
		assert_int_equal(ok, 0);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct json_object *o =
		    js_parse(good[i], strlen(good[i]), 1024, JS_MAX_DEPTH, &ok, err, sizeof(err));
		assert_int_equal(ok, 1);
		json_object_put(o);
	}
}

/* Finds the top of the tree: the current directory, or two above argv[0]. */
static void
find_root(const char *argv0)
{
	struct stat st;
	char *slash;

	if (stat("fuzz/corpus", &st) == 0) {
		snprintf(root, sizeof(root), ".");
		return;
	}
	snprintf(root, sizeof(root), "%s", argv0);
	for (int up = 0; up < 3; up++) {
		slash = strrchr(root, '/');
		if (slash == NULL) {
			snprintf(root, sizeof(root), ".");
			return;
		}
		*slash = '\0';
	}
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lparse_inputs),
		cmocka_unit_test(js_inputs),
		cmocka_unit_test(tok_inputs),
		cmocka_unit_test(conf_env_inputs),
		cmocka_unit_test(js_rejects_numbers_json_cannot_carry),
	};

	(void)argc;
	find_root(argv[0]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
