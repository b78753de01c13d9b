/*
 * fuzz_lparse: the pipeline line parser (lib/lparse.h), the first code to
 * touch a pipeline's output in the worker. Input: one flags byte (bit 0:
 * the line came from stderr; bits 1-2 choose max_line among 256, 257,
 * 1000, 8192), then the line itself (any bytes, NUL included).
 * Invariants checked on every result: level is [A-Z]{1,16}, sistema is
 * [A-Za-z0-9_.-]{1,64}, progresso is -1 or 0..100, mensagem is valid UTF-8
 * with no C0 control byte but TAB, no DEL, no C1 control, at most
 * max_line bytes plus the truncation marker, NUL-terminated at len.
 */
#include <string.h>

#include "fuzz.h"
#include "js.h"
#include "lparse.h"

static const char lp_marker[] = "\xe2\x80\xa6[truncated]";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t max_lines[] = { 256, 257, 1000, 8192 };
	static struct lparse_line l; /* reused across calls, as the worker does */
	size_t max_line, n;
	const unsigned char *m;
	int is_stderr;

	if (size < 1)
		return 0;
	is_stderr = data[0] & 1;
	max_line = max_lines[(data[0] >> 1) & 3];
	lparse((const char *)data + 1, size - 1, is_stderr, max_line, &l);

	n = strlen(l.level);
	FUZZ_CHECK(n >= 1 && n <= LPARSE_LEVEL_MAX, "level length %zu", n);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(l.level[i] >= 'A' && l.level[i] <= 'Z', "level byte 0x%02x", l.level[i]);
	n = strlen(l.sistema);
	FUZZ_CHECK(n >= 1 && n <= LPARSE_SISTEMA_MAX, "sistema length %zu", n);
	for (size_t i = 0; i < n; i++) {
		char c = l.sistema[i];
		FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		               (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-',
		    "sistema byte 0x%02x", (unsigned char)c);
	}
	FUZZ_CHECK(l.progresso == -1 || (l.progresso >= 0 && l.progresso <= 100), "progresso %d",
	    l.progresso);
	FUZZ_CHECK(l.mensagem.data != NULL, "mensagem never set");
	FUZZ_CHECK(l.mensagem.data[l.mensagem.len] == '\0', "mensagem not terminated");
	FUZZ_CHECK(l.mensagem.len <= max_line + sizeof(lp_marker) - 1, "mensagem %zu bytes > %zu",
	    l.mensagem.len, max_line);
	FUZZ_CHECK(utf8_valid(l.mensagem.data, l.mensagem.len), "mensagem is not valid UTF-8");
	m = (const unsigned char *)l.mensagem.data;
	for (size_t i = 0; i < l.mensagem.len; i++) {
		FUZZ_CHECK(m[i] >= 0x20 || m[i] == '\t', "control byte 0x%02x at %zu", m[i], i);
		FUZZ_CHECK(m[i] != 0x7f, "DEL at %zu", i);
		FUZZ_CHECK(!(m[i] == 0xc2 && i + 1 < l.mensagem.len && m[i + 1] >= 0x80 &&
		               m[i + 1] <= 0x9f),
		    "C1 control at %zu", i);
	}
	if (l.truncated)
		FUZZ_CHECK(l.mensagem.len >= sizeof(lp_marker) - 1 &&
		               memcmp(l.mensagem.data + l.mensagem.len - (sizeof(lp_marker) - 1),
		                   lp_marker, sizeof(lp_marker) - 1) == 0,
		    "truncated line without the lp_marker");
	return 0;
}
