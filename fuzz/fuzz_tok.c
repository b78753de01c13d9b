/*
 * fuzz_tok: token verification (lib/tok.h tok_verify), which every API
 * request and websocket handshake runs on attacker bytes. A random input
 * cannot carry a valid HMAC, so the input is used three ways:
 *   1. as a token, verified as is: must never be TOK_OK (no forgery), and
 *      the answer must not depend on anything but the bytes;
 *   2. as a claims payload: the harness signs header.base64url(input)
 *      with the secret, so the claim parsing after the MAC check (JSON,
 *      sub/role lengths, iat/exp) is reached; a TOK_OK result must carry
 *      NUL-terminated sub and role within their sizes;
 *   3. flipped: a valid token for sub=input (when it is a plausible name)
 *      is signed, verified (must be TOK_OK), then one byte chosen by the
 *      input is changed: must no longer verify as TOK_OK with the same claims.
 * Also the base64url codec: decode(encode(x)) == x.
 */
#include <string.h>

#include "fuzz.h"
#include "tok.h"
#include "util.h"

static const char tk_secret[] = "fuzz-secret-0123456789abcdef0123456789";
static const char tk_header[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/* Signs "header.b64(payload)" as tok.c would; writes the token into out. */
static size_t sign_payload(const uint8_t *p, size_t n, char *out, size_t outlen);

#include <openssl/evp.h>
#include <openssl/hmac.h>

static size_t
sign_payload(const uint8_t *p, size_t n, char *out, size_t outlen)
{
	unsigned char sig[32];
	unsigned int slen = 32;
	size_t o = sizeof(tk_header) - 1;

	if (o + 1 + 4 * ((n + 2) / 3) + 1 + 44 + 1 > outlen)
		return 0;
	memcpy(out, tk_header, o);
	out[o++] = '.';
	o += tok_b64url_encode(p, n, out + o);
	if (HMAC(EVP_sha256(), tk_secret, (int)(sizeof(tk_secret) - 1), (const unsigned char *)out,
	        o, sig, &slen) == NULL)
		abort();
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

	/* 1: as a token */
	rc = tok_verify(tk_secret, slen, (const char *)data, size, 1700000000, &c);
	FUZZ_CHECK(rc != TOK_OK && rc != TOK_EXPIRED, "unsigned input verified (rc %d)", (int)rc);
	FUZZ_CHECK(rc == TOK_MALFORMED || rc == TOK_BAD_SIGNATURE, "rc %d", (int)rc);

	/* 2: as claims, signed by us */
	n = sign_payload(data, size, tok, sizeof(tok));
	if (n > 0) {
		rc = tok_verify(tk_secret, slen, tok, n, 1700000000, &c);
		if (n > TOK_MAX_LEN)
			FUZZ_CHECK(rc == TOK_MALFORMED, "over-long token read (rc %d)", (int)rc);
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
