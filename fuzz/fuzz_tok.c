/*
 * fuzz_tok: token verification (lib/tok.h tok_verify), which every API
 * request and websocket handshake runs on attacker bytes, and the SHA-256
 * and HMAC under it (lib/sha256.h), checked against OpenSSL's as an oracle:
 * this target (and tests/unit/test_fuzz_regress.c, which replays its
 * inputs) is the only code that links libcrypto. The input is used five
 * ways:
 *   0. split into key (length: the first byte) and message: our HMAC must
 *      equal OpenSSL's, our SHA-256 of the message (one-shot and streamed
 *      in chunks the key bytes choose) must equal OpenSSL's;
 *   1. as a token, verified as is: must never be TOK_OK (no forgery), and
 *      the answer must not depend on anything but the bytes;
 *   2. as a claims payload: the harness signs header.base64url(input)
 *      with the secret through OpenSSL, so the claim parsing after the MAC
 *      check (JSON, sub/role lengths, iat/exp) is reached, and tok_verify
 *      must never call that signature bad; a TOK_OK result must carry
 *      NUL-terminated sub and role within their sizes;
 *   3. flipped: a valid token for sub=input (when it is a plausible name)
 *      is signed, its signature checked against OpenSSL's, verified (must
 *      be TOK_OK), then one byte chosen by the input is changed: must no
 *      longer verify as TOK_OK with the same claims.
 * Also the base64url codec: decode(encode(x)) == x.
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "fuzz.h"
#include "sha256.h"
#include "tok.h"
#include "util.h"

static const char tk_secret[] = "fuzz-secret-0123456789abcdef0123456789";
static const char tk_header[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/* OpenSSL's HMAC-SHA256 of msg under key, as tok.c computed it before
 * lib/sha256.c: the oracle. key is never NULL (OpenSSL 3 refuses a NULL
 * key even of length 0). */
static void
ossl_hmac(const void *key, size_t klen, const void *msg, size_t n, unsigned char out[32])
{
	unsigned int len = 32;

	if (HMAC(EVP_sha256(), key, (int)klen, msg, n, out, &len) == NULL || len != 32)
		abort();
}

/* 0: lib/sha256.c against OpenSSL */
static void
check_sha256(const uint8_t *data, size_t size)
{
	static const uint8_t none[1];
	const uint8_t *key = size > 0 ? data + 1 : none, *msg;
	size_t rest = size > 0 ? size - 1 : 0, klen = size > 0 ? data[0] : 0, n, at, step, i;
	struct sha256_hmac_key k;
	struct sha256 s;
	unsigned char ours[32], theirs[32];

	if (klen > rest)
		klen = rest;
	msg = key + klen;
	n = rest - klen;

	sha256_hmac_init(&k, key, klen);
	sha256_hmac(&k, msg, n, ours);
	ossl_hmac(key, klen, msg, n, theirs);
	FUZZ_CHECK(memcmp(ours, theirs, 32) == 0, "HMAC differs from OpenSSL's (key %zu, msg %zu)",
	    klen, n);
	/* the key context is reusable: the same MAC again */
	sha256_hmac(&k, msg, n, ours);
	FUZZ_CHECK(memcmp(ours, theirs, 32) == 0, "second HMAC with the same key differs");
	sha256_hmac_wipe(&k);

	if (SHA256(msg, n, theirs) == NULL)
		abort();
	sha256_digest(msg, n, ours);
	FUZZ_CHECK(memcmp(ours, theirs, 32) == 0, "SHA-256 differs from OpenSSL's (%zu bytes)", n);
	sha256_init(&s);
	for (at = 0, i = 0; at < n; at += step, i++) {
		/* chunk lengths from the key bytes; a 0 is an empty update */
		step = klen > 0 ? key[i % klen] : 1 + i % 67;
		if (step > n - at)
			step = n - at;
		sha256_update(&s, msg + at, step);
		if (step == 0) {
			sha256_update(&s, msg + at, 1);
			step = 1;
		}
	}
	sha256_final(&s, ours);
	FUZZ_CHECK(memcmp(ours, theirs, 32) == 0, "streamed SHA-256 differs (%zu bytes)", n);
}

/* Signs "header.b64(payload)" as tok.c would, through OpenSSL; writes the
 * token into out. Returns its length, 0 if out is too small. */
static size_t
sign_payload(const uint8_t *p, size_t n, char *out, size_t outlen)
{
	unsigned char sig[32];
	size_t o = sizeof(tk_header) - 1;

	if (o + 1 + 4 * ((n + 2) / 3) + 1 + 44 + 1 > outlen)
		return 0;
	memcpy(out, tk_header, o);
	out[o++] = '.';
	o += tok_b64url_encode(p, n, out + o);
	ossl_hmac(tk_secret, sizeof(tk_secret) - 1, out, o, sig);
	out[o++] = '.';
	o += tok_b64url_encode(sig, 32, out + o);
	return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const size_t slen = sizeof(tk_secret) - 1;
	struct tok_claims c, c2;
	enum tok_rc rc;
	char tok[4 * TOK_MAX_LEN];
	unsigned char dec[3 * TOK_MAX_LEN];
	char enc[4 * TOK_MAX_LEN];
	size_t n;
	long dl;

	check_sha256(data, size);

	/* 1: as a token */
	rc = tok_verify(tk_secret, slen, (const char *)data, size, 1700000000, &c);
	FUZZ_CHECK(rc != TOK_OK && rc != TOK_EXPIRED, "unsigned input verified (rc %d)", (int)rc);
	FUZZ_CHECK(rc == TOK_MALFORMED || rc == TOK_BAD_SIGNATURE, "rc %d", (int)rc);

	/* 2: as claims, signed through OpenSSL */
	n = sign_payload(data, size, tok, sizeof(tok));
	if (n > 0) {
		rc = tok_verify(tk_secret, slen, tok, n, 1700000000, &c);
		if (n > TOK_MAX_LEN)
			FUZZ_CHECK(rc == TOK_MALFORMED, "over-long token read (rc %d)", (int)rc);
		/* OpenSSL's signature is ours: whatever the claims, never a bad one */
		FUZZ_CHECK(rc != TOK_BAD_SIGNATURE, "OpenSSL-signed token: bad signature");
		if (rc == TOK_OK || rc == TOK_EXPIRED) {
			FUZZ_CHECK(
			    memchr(c.sub, '\0', sizeof(c.sub)) != NULL, "sub not terminated");
			FUZZ_CHECK(
			    memchr(c.role, '\0', sizeof(c.role)) != NULL, "role not terminated");
			FUZZ_CHECK(
			    c.sub[0] != '\0' && c.role[0] != '\0', "empty sub or role accepted");
			FUZZ_CHECK((rc == TOK_OK) == (1700000000 < c.exp), "expiry: exp %lld rc %d",
			    (long long)c.exp, (int)rc);
		}
		/* a different secret never accepts it */
		rc = tok_verify(
		    "another-tk_secret-0123456789abcdef0123456789", 41, tok, n, 1700000000, &c2);
		FUZZ_CHECK(
		    rc == TOK_BAD_SIGNATURE || rc == TOK_MALFORMED, "wrong secret: rc %d", (int)rc);
	}

	/* 3: a real token for a name, then one byte changed */
	if (size >= 2 && size <= 64 && util_valid_username((const char *)data + 1, size - 1)) {
		char name[65], *t;
		size_t tl, at;
		memcpy(name, data + 1, size - 1);
		name[size - 1] = '\0';
		t = tok_sign(tk_secret, slen, name, "admin", 1700000000, 3600);
		tl = strlen(t);
		/* tok_sign's signature is OpenSSL's HMAC of header.payload */
		const char *dot2 = strrchr(t, '.');
		unsigned char sig[32], want[32];
		FUZZ_CHECK(dot2 != NULL && tok_b64url_decode(dot2 + 1, strlen(dot2 + 1), sig) == 32,
		    "tok_sign: no signature");
		ossl_hmac(tk_secret, slen, t, (size_t)(dot2 - t), want);
		FUZZ_CHECK(
		    memcmp(sig, want, 32) == 0, "tok_sign's signature is not OpenSSL's HMAC");
		rc = tok_verify(tk_secret, slen, t, tl, 1700000001, &c);
		FUZZ_CHECK(rc == TOK_OK && strcmp(c.sub, name) == 0 && strcmp(c.role, "admin") == 0,
		    "round trip failed (rc %d)", (int)rc);
		rc = tok_verify(tk_secret, slen, t, tl, 1700003600, &c);
		FUZZ_CHECK(rc == TOK_EXPIRED, "not expired at exp (rc %d)", (int)rc);
		at = data[0] % tl;
		for (int d = 1; d < 256; d += 37) {
			char saved = t[at];
			t[at] = (char)((unsigned char)saved ^ (unsigned char)d);
			rc = tok_verify(tk_secret, slen, t, tl, 1700000001, &c2);
			/* base64url's last character carries spare bits that must be zero,
			 * so any change there is caught too */
			FUZZ_CHECK(rc != TOK_OK, "token with byte %zu changed still verifies", at);
			t[at] = saved;
		}
		free(t);
	}

	/* base64url round trip */
	if (size <= TOK_MAX_LEN) {
		size_t el = tok_b64url_encode(data, size, enc);
		FUZZ_CHECK(el == strlen(enc), "encode length");
		dl = tok_b64url_decode(enc, el, dec);
		FUZZ_CHECK(dl == (long)size && memcmp(dec, data, size) == 0, "b64url round trip");
		dl = tok_b64url_decode((const char *)data, size, dec);
		FUZZ_CHECK(dl >= -1 && dl <= (long)(size * 3 / 4 + 2), "decode length %ld", dl);
	}
	return 0;
}
