/*
 * pw: passwords through libxcrypt. New hashes use yescrypt with the
 * library's default cost; bcrypt hashes from the Python dashboard verify
 * because crypt(3) reads the method from the hash itself.
 */
#include "pw.h"

#include <crypt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

char *
pw_hash(const char *password)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	char *out = NULL;

	if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) == NULL) {
		log_warn("pw: crypt_gensalt");
		return NULL;
	}
	cd = xcalloc(1, sizeof(*cd));
	const char *h = crypt_rn(password, salt, cd, sizeof(*cd));
	if (h == NULL || h[0] == '*')
		log_warn("pw: crypt");
	else
		out = xstrdup(h);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return out;
}

void
pw_hash_free(char *hash)
{
	if (hash == NULL)
		return;
	explicit_bzero(hash, strlen(hash));
	free(hash);
}

int
pw_verify(const char *password, const char *hash)
{
	struct crypt_data *cd;
	int ok = 0;
	size_t n;

	if (password == NULL || hash == NULL || hash[0] != '$' || strlen(password) > PW_MAX_LEN)
		return 0;
	n = strlen(hash);
	cd = xcalloc(1, sizeof(*cd));
	const char *h = crypt_rn(password, hash, cd, sizeof(*cd));
	if (h != NULL && h[0] != '*' && strlen(h) == n)
		ok = util_ct_equal(h, hash, n);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

static char *dummy; /* a hash of nobody's password, made once */

static void
make_dummy(void)
{
	dummy = pw_hash("dummy-password-for-timing");
}

void
pw_dummy_verify(const char *password)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	(void)pthread_once(&once, make_dummy);
	if (dummy != NULL)
		(void)pw_verify(password, dummy);
}
