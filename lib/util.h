/*
 * util: the few helpers every module needs: allocation that aborts on failure
 * (callers never check), a growable byte buffer, clocks and ISO-8601 time
 * strings, and small string checks. Nothing here does I/O.
 */
#ifndef ETL_UTIL_H
#define ETL_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation: abort the process (through fatalx) when memory is exhausted. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a malloc'd formatted string; aborts on failure. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A growable byte buffer, always NUL-terminated (data[len] == 0) once
 * something was appended. Zero-initialise ({0}) before use; buf_free() it.
 */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};
/* Makes room for extra more bytes and the NUL (the slow path of the three
 * appenders below, which are inline: the list's JSON is written with
 * hundreds of short appends per page, and inlined, a literal's strlen and
 * memcpy are worked out at compile time). */
void buf_reserve(struct buf *b, size_t extra);

static inline void
buf_append(struct buf *b, const void *p, size_t n)
{
	if (b->len + n >= b->cap)
		buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static inline void
buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

static inline void
buf_putc(struct buf *b, char c)
{
	buf_append(b, &c, 1);
}

/* Appends v in decimal (what "%lld" gives, without printf's cost). */
void buf_put_i64(struct buf *b, int64_t v);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void buf_reset(struct buf *b); /* len = 0, keeps the memory */
void buf_free(struct buf *b);
/* Hands the data to the caller (malloc'd, NUL-terminated, never NULL) and resets b. */
char *buf_steal(struct buf *b);

/* Wall clock in ms since the epoch (CLOCK_REALTIME). */
int64_t util_now_ms(void);
/* Monotonic clock in ms (CLOCK_MONOTONIC): use for timeouts and intervals. */
int64_t util_mono_ms(void);
/* The CLOCK_REALTIME time (what pthread's timed waits take) at which the
 * monotonic deadline (util_mono_ms() ms) falls; now when it has passed. */
struct timespec util_abstime(int64_t deadline_mono_ms);

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" + NUL */
#define UTIL_ISO_LEN 25
/* Writes ms-since-epoch as ISO-8601 UTC with milliseconds and Z into out. */
void util_iso8601(int64_t ms, char out[UTIL_ISO_LEN]);
/* Parses what util_iso8601 writes (also without ms, and without Z, as the
 * legacy database has it). Returns ms since the epoch, or -1 if malformed. */
int64_t util_parse_iso8601(const char *s);

/* Writes ms as seconds with at most 3 decimals and no float noise
 * ("1.235", "12.0"): the one spelling of a duration in responses and events. */
void util_fmt_seconds(int64_t ms, char out[32]);

/* Strict decimal integer parse of the whole string into [min, max]. Returns 0 or -1. */
int util_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/* 1 if s (len bytes) matches ^[A-Za-z0-9_.-]{1,64}$ */
int util_valid_username(const char *s, size_t len);
/* 1 if s (len bytes) matches ^[a-z0-9_-]{1,64}$ */
int util_valid_sistema_id(const char *s, size_t len);

/* Constant-time comparison of n bytes. Returns 1 when equal. */
int util_ct_equal(const void *a, const void *b, size_t n);

/* Fills buf with n cryptographically random bytes (getrandom). Returns 0 or -1. */
int util_random(void *buf, size_t n);

/* "<hostname>-<8 hex>": this process's instance id, made once. */
const char *util_instance_id(void);

#endif
