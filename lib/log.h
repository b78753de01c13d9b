/*
 * log: the one logging module (OpenBSD shape). Lines go to stderr or to a
 * file, as "2026-11-28T17:41:23.120Z etl-worker[123] warn: job=12 slot=1 ...".
 * Messages carry ids, never pointers; untrusted bytes pass through
 * log_escape() first.
 */
#ifndef ETL_LOG_H
#define ETL_LOG_H

#include <stddef.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* prog: name shown in each line. path: NULL for stderr, else a file opened for
 * append (O_CLOEXEC). Returns 0, or -1 if the file cannot be opened (then
 * stderr is used). */
int log_init(const char *prog, enum log_level level, const char *path);
/* Reopens the log file (after rotation, on SIGHUP). Returns 0 or -1. */
int log_reopen(void);
void log_set_level(enum log_level level);
/* Parses "error|warn|info|debug"; returns 0 or -1. */
int log_parse_level(const char *s, enum log_level *out);

void log_warn(const char *fmt, ...)
    __attribute__((format(printf, 1, 2))); /* adds strerror(errno) */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn)); /* strerror, exit 1 */
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn)); /* exit 1 */

/* Escapes untrusted bytes for a log line: printable ASCII kept, everything
 * else as \xNN, at most outlen-1 bytes written (truncated with "..."),
 * always NUL-terminated. Returns out. */
char *log_escape(const char *in, size_t inlen, char *out, size_t outlen);

#endif
