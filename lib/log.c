/*
 * log: one line per message to stderr or a file, with time, program, pid
 * and level; OpenBSD's log_warn/log_warnx/fatal shape. The file is opened
 * O_APPEND|O_CLOEXEC and reopened on request (SIGHUP after rotation).
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static const char *log_prog = "etl";
static enum log_level log_lvl = LOG_LEVEL_INFO;
static char *log_path;
static atomic_int log_fd = 2; /* set once by the first log_reopen, read by any thread */

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int
log_init(const char *prog, enum log_level level, const char *path)
{
	log_prog = prog;
	log_lvl = level;
	free(log_path);
	log_path = path ? xstrdup(path) : NULL;
	return log_reopen();
}

int
log_reopen(void)
{
	int fd;

	if (log_path == NULL)
		return 0;
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd == -1) {
		log_warn("cannot open log file %s", log_path);
		return -1;
	}
	/* dup3 swaps the file under the same descriptor at once: another
	 * thread (lib/ckpt.c) may be writing a line meanwhile. */
	if (atomic_load(&log_fd) == 2) {
		atomic_store(&log_fd, fd);
		return 0;
	}
	if (dup3(fd, atomic_load(&log_fd), O_CLOEXEC) == -1) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

void
log_set_level(enum log_level level)
{
	log_lvl = level;
}

int
log_parse_level(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < UTIL_ARRAY_LEN(level_names); i++)
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	if (strcasecmp(s, "warning") == 0) {
		*out = LOG_LEVEL_WARN;
		return 0;
	}
	return -1;
}

static void log_emit(enum log_level lvl, const char *err, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void
log_emit(enum log_level lvl, const char *err, const char *fmt, va_list ap)
{
	char line[4096], ts[UTIL_ISO_LEN];
	int n, saved = errno;

	if (lvl > log_lvl)
		return;
	util_iso8601(util_now_ms(), ts);
	n = snprintf(
	    line, sizeof(line), "%s %s[%d] %s: ", ts, log_prog, (int)getpid(), level_names[lvl]);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m > 0)
		n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	if (err) {
		int k = snprintf(line + n, sizeof(line) - (size_t)n, ": %s", err);
		if (k > 0)
			n += k;
		if ((size_t)n > sizeof(line) - 2)
			n = (int)sizeof(line) - 2;
	}
	line[n++] = '\n';
	/* One write per line, so lines of several processes never interleave. */
	if (write(atomic_load(&log_fd), line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}

#define LOG_BODY(lvl, err)                   \
	do {                                 \
		va_list ap;                  \
		va_start(ap, fmt);           \
		log_emit(lvl, err, fmt, ap); \
		va_end(ap);                  \
	} while (0)

void
log_warn(const char *fmt, ...)
{
	const char *e = strerror(errno);
	LOG_BODY(LOG_LEVEL_WARN, e);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_WARN, NULL);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_INFO, NULL);
}

void
log_debug(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_DEBUG, NULL);
}

void
fatal(const char *fmt, ...)
{
	const char *e = strerror(errno);
	LOG_BODY(LOG_LEVEL_ERROR, e);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERROR, NULL);
	exit(1);
}

char *
log_escape(const char *in, size_t inlen, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (outlen == 0)
		return out;
	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		size_t need = (c >= 0x20 && c < 0x7f && c != '\\') ? 1 : 4;
		if (o + need + 4 > outlen) {
			if (outlen >= 4 && o + 3 < outlen) {
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (need == 1) {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return out;
}
