/* worker/lines.c: bytes of a pipe -> lines, fed in every possible split. */
#include "unit.h"

/* lines.c is part of etl-worker, not of the library: compiled in here. */
#include "../../worker/lines.c"

#define MAXL 16

struct got {
	char lines[64][64];
	size_t len[64];
	int n;
};

static void
collect(void *arg, const char *line, size_t len)
{
	struct got *g = arg;

	assert_true(g->n < 64 && len < 64);
	memcpy(g->lines[g->n], line, len);
	g->lines[g->n][len] = '\0';
	g->len[g->n++] = len;
}

/* Feeds in as chunks of size step (0: all at once), then ends the stream. */
static void
run(const char *in, size_t n, size_t step, struct got *g)
{
	struct stream st = { .fd = -1 };

	memset(g, 0, sizeof(*g));
	if (step == 0)
		step = n ? n : 1;
	for (size_t i = 0; i < n; i += step)
		lines_feed(&st, MAXL, in + i, n - i < step ? n - i : step, collect, g);
	lines_end(&st, collect, g);
	buf_free(&st.line);
}

/* The same lines whatever the read boundaries are. */
static void
expect_all_splits(const char *in, size_t n, const char *const *want, int nwant)
{
	struct got g;

	for (size_t step = 0; step <= n; step++) {
		run(in, n, step, &g);
		assert_int_equal(g.n, nwant);
		for (int k = 0; k < nwant; k++) {
			assert_int_equal(g.len[k], strlen(want[k]));
			assert_memory_equal(g.lines[k], want[k], g.len[k]);
		}
	}
}

static void
lf_crlf_and_bare_cr(void **state)
{
	static const char in[] = "a\nbb\r\ncc\rd\r\r\ne";
	static const char *const want[] = { "a", "bb", "cc", "d", "e" };
	(void)state;
	expect_all_splits(in, sizeof(in) - 1, want, 5);
}

static void
crlf_split_across_reads_is_one_end(void **state)
{
	struct stream st = { .fd = -1 };
	struct got g;
	(void)state;
	memset(&g, 0, sizeof(g));
	lines_feed(&st, MAXL, "one\r", 4, collect, &g);
	lines_feed(&st, MAXL, "\ntwo\r", 5, collect, &g);
	lines_feed(&st, MAXL, "three", 5, collect, &g);
	lines_end(&st, collect, &g);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.lines[0], "one");
	assert_string_equal(g.lines[1], "two");
	assert_string_equal(g.lines[2], "three");
	buf_free(&st.line);
}

static void
empty_lines_skipped_partial_last_line_kept(void **state)
{
	static const char in[] = "\n\n\r\n\rx\n\nlast";
	static const char *const want[] = { "x", "last" };
	(void)state;
	expect_all_splits(in, sizeof(in) - 1, want, 2);
}

static void
nothing_in_nothing_out(void **state)
{
	struct got g;
	(void)state;
	run("", 0, 0, &g);
	assert_int_equal(g.n, 0);
}

static void
long_lines_keep_max_plus_one(void **state)
{
	/* 40 bytes, then a short line: the long one is cut to MAXL + 1 (so the
	 * parser knows it was longer), the next line is intact. */
	static const char in[] = "0123456789abcdefghijklmnopqrstuvwxyzABCD\nok\n";
	static const char *const want[] = { "0123456789abcdefg", "ok" };
	(void)state;
	expect_all_splits(in, sizeof(in) - 1, want, 2);
}

static void
exactly_max_is_not_cut(void **state)
{
	static const char in[] = "0123456789abcdef\n";
	static const char *const want[] = { "0123456789abcdef" };
	(void)state;
	expect_all_splits(in, sizeof(in) - 1, want, 1);
}

static void
nul_bytes_pass_through(void **state)
{
	static const char in[] = "a\0b\nc";
	struct got g;
	(void)state;
	for (size_t step = 0; step <= sizeof(in) - 1; step++) {
		run(in, sizeof(in) - 1, step, &g);
		assert_int_equal(g.n, 2);
		assert_int_equal(g.len[0], 3);
		assert_memory_equal(g.lines[0], "a\0b", 3);
		assert_string_equal(g.lines[1], "c");
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lf_crlf_and_bare_cr),
		cmocka_unit_test(crlf_split_across_reads_is_one_end),
		cmocka_unit_test(empty_lines_skipped_partial_last_line_kept),
		cmocka_unit_test(nothing_in_nothing_out),
		cmocka_unit_test(long_lines_keep_max_plus_one),
		cmocka_unit_test(exactly_max_is_not_cut),
		cmocka_unit_test(nul_bytes_pass_through),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
