/*
 * pw_stub: a stand-in for lib/pw.c linked into the API fuzz targets only.
 * yescrypt at its default cost takes tens of milliseconds per call: with
 * the real module every login or user creation the fuzzer finds would
 * cost as much as a thousand other inputs. The stand-in keeps the
 * contract of pw.h (a hash string, verify, dummy verify) without the cost;
 * lib/pw.c itself is tested by tests/unit/test_tok_pw.c and holds no parser.
 */
#include <stdlib.h>
#include <string.h>

#include "pw.h"
#include "util.h"

char *
pw_hash(const char *password)
{
	return xasprintf("$fuzz$%s", password);
}

void
pw_hash_free(char *hash)
{
	free(hash);
}

int
pw_verify(const char *password, const char *hash)
{
	if (password == NULL || hash == NULL || strncmp(hash, "$fuzz$", 6) != 0 ||
	    strlen(password) > PW_MAX_LEN)
		return 0;
	return strcmp(hash + 6, password) == 0;
}

void
pw_dummy_verify(const char *password)
{
	(void)password;
}
