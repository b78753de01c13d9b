/*
 * lines: a pipe's bytes -> lines (see lines.c). Used by ingest.c.
 */
#ifndef ETL_WORKER_LINES_H
#define ETL_WORKER_LINES_H

#include <stddef.h>

#include "util.h"

/* One output pipe's line state (part of struct slot). */
struct stream {
	int fd; /* read end, non-blocking; -1 once closed */
	int is_stderr;
	struct buf line; /* the line being assembled: at most max_line + 1 bytes kept */
	int overflow; /* bytes of the current line were dropped (line too long) */
	int after_cr; /* the last byte seen was CR: a following LF ends nothing */
};

/* Called once per complete, non-empty line: len bytes (at most
 * max_line + 1; more means the line was longer), not NUL-terminated. */
typedef void (*lines_fn)(void *arg, const char *line, size_t len);

/* Feeds n bytes; calls fn for each line they complete. */
void lines_feed(
    struct stream *st, size_t max_line, const char *p, size_t n, lines_fn fn, void *arg);
/* End of the stream: a last line without its end counts. */
void lines_end(struct stream *st, lines_fn fn, void *arg);

#endif
