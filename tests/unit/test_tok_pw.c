/* tok and pw: signing, verification, tampering, expiry, the cached HMAC key;
 * hashing. */
#include "unit.h"

#include "pw.h"
#include "tok.h"

static const char secret[] = "0123456789abcdef0123456789abcdef";

static void
sign_verify(void **state)
{
	struct tok_claims c;
	(void)state;
	char *t = tok_sign(secret, 32, "alice", "admin", 1000, 3600);
	assert_int_equal(tok_verify(secret, 32, t, strlen(t), 1001, &c), TOK_OK);
	assert_string_equal(c.sub, "alice");
	assert_string_equal(c.role, "admin");
	assert_int_equal(c.exp, 4600);
	assert_int_equal(tok_verify(secret, 32, t, strlen(t), 4600, &c), TOK_EXPIRED);
	assert_int_equal(
	    tok_verify("another-secret-0123456789abcdef!!", 32, t, strlen(t), 1001, &c),
	    TOK_BAD_SIGNATURE);
	free(t);
}

static void
tampering(void **state)
{
	struct tok_claims c;
	(void)state;
	char *t = tok_sign(secret, 32, "bob", "viewer", 1000, 3600);
	size_t n = strlen(t);
	char *dot = strchr(t, '.');
	/* flip a payload byte */
	dot[2] = dot[2] == 'A' ? 'B' : 'A';
	assert_true(tok_verify(secret, 32, t, n, 1001, &c) < 0);
	free(t);
	/* alg:none header is refused whatever follows */
	const char *none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4In0.";
	assert_int_equal(tok_verify(secret, 32, none, strlen(none), 1, &c), TOK_MALFORMED);
	assert_int_equal(tok_verify(secret, 32, "", 0, 1, &c), TOK_MALFORMED);
	assert_int_equal(tok_verify(secret, 32, "a.b.c", 5, 1, &c), TOK_MALFORMED);
	char big[TOK_MAX_LEN + 10];
	memset(big, 'a', sizeof(big));
	assert_int_equal(tok_verify(secret, 32, big, sizeof(big), 1, &c), TOK_MALFORMED);
}

/* Every byte of the signature matters: one flipped bit anywhere in it (the
 * last character's spare bits too) and the token is refused. */
static void
flipped_signature_byte(void **state)
{
	struct tok_claims c;
	(void)state;
	char *t = tok_sign(secret, 32, "dave", "viewer", 1000, 3600);
	size_t n = strlen(t);
	const char *sig = strrchr(t, '.') + 1;

	assert_int_equal(n - (size_t)(sig - t), 43);
	for (size_t at = (size_t)(sig - t); at < n; at++) {
		for (int bit = 0; bit < 6; bit++) {
			char saved = t[at];
			t[at] = (char)(saved ^ (1 << bit));
			assert_int_not_equal(tok_verify(secret, 32, t, n, 1001, &c), TOK_OK);
			t[at] = saved;
		}
	}
	assert_int_equal(tok_verify(secret, 32, t, n, 1001, &c), TOK_OK);
	/* another valid base64url character: a wrong MAC, not a malformed token */
	size_t first = (size_t)(sig - t);
	t[first] = t[first] == 'A' ? 'B' : 'A';
	assert_int_equal(tok_verify(secret, 32, t, n, 1001, &c), TOK_BAD_SIGNATURE);
	free(t);
}

/* Tokens signed before lib/sha256.c (by OpenSSL; these by Python's hmac)
 * still verify: the same HS256, byte for byte. The second secret is longer
 * than a SHA-256 block, so the key is hashed first. */
static void
verifies_tokens_signed_elsewhere(void **state)
{
	static const char body[] =
	    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
	    "eyJzdWIiOiJjYXJvbCIsInJvbGUiOiJvcGVyYXRvciIsImlhdCI6MTAwMCwiZXhwIjo0NjAwfQ.";
	char t[256], long_secret[100];
	struct tok_claims c;
	(void)state;

	snprintf(t, sizeof(t), "%sfzyrJDZskBgENrjls6jeUI7I_XvrpvjYRz2XEIMYSIE", body);
	assert_int_equal(tok_verify(secret, 32, t, strlen(t), 1001, &c), TOK_OK);
	assert_string_equal(c.sub, "carol");
	assert_string_equal(c.role, "operator");
	memset(long_secret, 'L', sizeof(long_secret));
	assert_int_equal(tok_verify(long_secret, sizeof(long_secret), t, strlen(t), 1001, &c),
	    TOK_BAD_SIGNATURE);
	snprintf(t, sizeof(t), "%sW_gJnD8W8PooCaFFup1R9_svIRstVaBIFzdKzkHvfSQ", body);
	assert_int_equal(
	    tok_verify(long_secret, sizeof(long_secret), t, strlen(t), 1001, &c), TOK_OK);
	assert_int_equal(tok_verify(secret, 32, t, strlen(t), 1001, &c), TOK_BAD_SIGNATURE);
}

/* tok.c caches the key of the last secret: a secret of the same length but
 * other bytes, or a prefix of it, must not reuse it. */
static void
secret_changes_are_seen(void **state)
{
	char other[33], longer[40];
	struct tok_claims c;
	(void)state;

	memcpy(other, secret, sizeof(other));
	other[31] ^= 1; /* same length, last byte differs */
	memcpy(longer, secret, 32);
	memcpy(longer + 32, "-longer", 8);
	char *t = tok_sign(secret, 32, "erin", "admin", 1000, 3600);
	for (int round = 0; round < 3; round++) {
		assert_int_equal(tok_verify(secret, 32, t, strlen(t), 1001, &c), TOK_OK);
		assert_int_equal(tok_verify(other, 32, t, strlen(t), 1001, &c), TOK_BAD_SIGNATURE);
		assert_int_equal(tok_verify(secret, 32, t, strlen(t), 1001, &c), TOK_OK);
		assert_int_equal(tok_verify(longer, 39, t, strlen(t), 1001, &c), TOK_BAD_SIGNATURE);
		assert_int_equal(tok_verify(secret, 31, t, strlen(t), 1001, &c), TOK_BAD_SIGNATURE);
	}
	free(t);
	t = tok_sign(other, 32, "erin", "admin", 1000, 3600);
	assert_int_equal(tok_verify(other, 32, t, strlen(t), 1001, &c), TOK_OK);
	assert_int_equal(tok_verify(secret, 32, t, strlen(t), 1001, &c), TOK_BAD_SIGNATURE);
	free(t);
}

static void
b64url(void **state)
{
	char out[16];
	unsigned char back[16];
	(void)state;
	assert_int_equal(tok_b64url_encode((const unsigned char *)"\xfb\xff", 2, out), 3);
	assert_string_equal(out, "-_8");
	assert_int_equal(tok_b64url_decode(out, 3, back), 2);
	assert_memory_equal(back, "\xfb\xff", 2);
	assert_int_equal(tok_b64url_decode("a", 1, back), -1);
	assert_int_equal(tok_b64url_decode("a+==", 4, back), -1);
}

static void
passwords(void **state)
{
	(void)state;
	char *h = pw_hash("correct horse");
	assert_non_null(h);
	assert_memory_equal(h, "$y$", 3);
	assert_true(pw_verify("correct horse", h));
	assert_false(pw_verify("wrong horse", h));
	assert_false(pw_verify("correct horse", "plaintext"));
	assert_false(pw_verify("correct horse", ""));
	free(h);
}

static void
legacy_bcrypt(void **state)
{
	(void)state;
	const char *h = "$2b$10$UztPNfLp.MHlbO6LdhOCWuM26mht86rl6/1mD6Ql8/VqtFj5wtTiS";
	assert_true(pw_verify("legacy-pass-1", h));
	assert_false(pw_verify("legacy-pass-2", h));
}

/* The cache answers as tok_verify would: a forged token is refused however
 * often it comes and whatever is cached (a cached token's signature with
 * another payload too), a cached token expires on time, and eviction
 * loses nothing. */
static void
cached_verification(void **state)
{
	struct tok_cache *tc = calloc(1, sizeof(*tc));
	struct tok_claims c;
	char *t[TOK_CACHE_N + 2];
	(void)state;

	for (int i = 0; i < TOK_CACHE_N + 2; i++) {
		char sub[16];
		snprintf(sub, sizeof(sub), "user%d", i);
		t[i] = tok_sign(secret, 32, sub, "operator", 1000 + i, 3600);
	}
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < TOK_CACHE_N + 2; i++) {
			char sub[16];
			snprintf(sub, sizeof(sub), "user%d", i);
			assert_int_equal(
			    tok_verify_cached(tc, secret, 32, t[i], strlen(t[i]), 2000, &c),
			    TOK_OK);
			assert_string_equal(c.sub, sub);
			assert_int_equal(c.iat, 1000 + i);
		}
	/* a hit still expires */
	size_t n = strlen(t[0]);
	assert_int_equal(tok_verify_cached(tc, secret, 32, t[0], n, 1500, &c), TOK_OK);
	assert_int_equal(tok_verify_cached(tc, secret, 32, t[0], n, 4600, &c), TOK_EXPIRED);
	/* t[0]'s signature on t[1]'s header and payload: refused, twice */
	const char *sig0 = strrchr(t[0], '.'), *sig1 = strrchr(t[1], '.');
	char forged[TOK_MAX_LEN];
	snprintf(forged, sizeof(forged), "%.*s%s", (int)(sig1 - t[1]), t[1], sig0);
	for (int k = 0; k < 2; k++)
		assert_int_equal(
		    tok_verify_cached(tc, secret, 32, forged, strlen(forged), 1500, &c),
		    TOK_BAD_SIGNATURE);
	/* a token one byte longer or shorter than a cached one is not a hit */
	assert_int_equal(tok_verify_cached(tc, secret, 32, t[0], n - 1, 1500, &c), TOK_MALFORMED);
	/* no cache: plain tok_verify */
	assert_int_equal(tok_verify_cached(NULL, secret, 32, t[2], strlen(t[2]), 1500, &c), TOK_OK);
	for (int i = 0; i < TOK_CACHE_N + 2; i++)
		free(t[i]);
	free(tc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sign_verify),
		cmocka_unit_test(tampering),
		cmocka_unit_test(flipped_signature_byte),
		cmocka_unit_test(verifies_tokens_signed_elsewhere),
		cmocka_unit_test(secret_changes_are_seen),
		cmocka_unit_test(cached_verification),
		cmocka_unit_test(b64url),
		cmocka_unit_test(passwords),
		cmocka_unit_test(legacy_bcrypt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
