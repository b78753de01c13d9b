/*
 * lparse: turns one line of pipeline output into a log line (API.md, "The
 * pipeline"): a JSON object {"level","sistema","mensagem","progresso"}, or
 * "[LEVEL] [sistema] mensagem", or anything else as INFO/stdout or
 * ERROR/stderr. Used by the worker for live output and by the migration for
 * the legacy text logs. Input is untrusted bytes; output is bounded, valid
 * UTF-8 with control bytes made visible.
 */
#ifndef ETL_LPARSE_H
#define ETL_LPARSE_H

#include <stddef.h>

#include "util.h"

#define LPARSE_LEVEL_MAX 16
#define LPARSE_SISTEMA_MAX 64

struct lparse_line {
	char level[LPARSE_LEVEL_MAX + 1]; /* upper case, [A-Z]{1,16} */
	char sistema[LPARSE_SISTEMA_MAX + 1]; /* [A-Za-z0-9_.-]{1,64} */
	struct buf mensagem; /* valid UTF-8 */
	int progresso; /* 0..100, or -1 when the line has none */
	int truncated; /* the line was longer than max_line */
};

/*
 * Parses line (len bytes, without its terminator; may contain anything,
 * NUL included). is_stderr chooses the default level and sistema. Keeps at
 * most max_line bytes of the message (then marked truncated). out->mensagem
 * is reset and reused across calls; lparse_free() releases it.
 */
void lparse(const char *line, size_t len, int is_stderr, size_t max_line, struct lparse_line *out);
void lparse_free(struct lparse_line *l);

#endif
