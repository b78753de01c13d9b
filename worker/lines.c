/*
 * lines: splits a pipe's byte stream into lines, for ingest.c. LF, CRLF
 * and bare CR end a line (a CRLF split across two reads is one end); a
 * line's first max_line + 1 bytes are kept, the rest dropped, so lparse
 * sees it is too long, cuts it to max_line and marks it; empty lines are
 * skipped; NUL and every other byte pass through (lparse escapes them).
 * A whole line inside one read is handed over where it lies, without a
 * copy. Pure: no I/O, no globals; unit-tested in tests/unit/test_worker_lines.c.
 */
#include "lines.h"

/* Keeps at most max_line + 1 bytes of the line being assembled. */
static void
line_append(struct stream *st, size_t max_line, const char *p, size_t n)
{
	size_t keep = max_line + 1;

	if (st->line.len + n > keep) {
		n = st->line.len < keep ? keep - st->line.len : 0;
		st->overflow = 1;
	}
	if (n > 0)
		buf_append(&st->line, p, n);
}

/* The line assembled in st is complete. */
static void
line_done(struct stream *st, lines_fn fn, void *arg)
{
	if (st->line.len > 0 || st->overflow)
		fn(arg, st->line.data, st->line.len);
	buf_reset(&st->line);
	st->overflow = 0;
}

void
lines_feed(struct stream *st, size_t max_line, const char *p, size_t n, lines_fn fn, void *arg)
{
	size_t i = 0, j;

	while (i < n) {
		if (st->after_cr) {
			st->after_cr = 0;
			if (p[i] == '\n') {
				i++;
				continue;
			}
		}
		for (j = i; j < n && p[j] != '\n' && p[j] != '\r'; j++)
			;
		if (j < n && st->line.len == 0 && !st->overflow) {
			/* A whole line inside this chunk: hand it over where it is. */
			if (j > i)
				fn(arg, p + i, j - i > max_line + 1 ? max_line + 1 : j - i);
		} else {
			line_append(st, max_line, p + i, j - i);
			if (j == n)
				break;
			line_done(st, fn, arg);
		}
		st->after_cr = p[j] == '\r';
		i = j + 1;
	}
}

void
lines_end(struct stream *st, lines_fn fn, void *arg)
{
	line_done(st, fn, arg);
	st->after_cr = 0;
}
