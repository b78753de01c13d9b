/*
 * tok: HS256 JWTs with a fixed header. Verification recomputes the MAC over
 * "header.payload" and compares in constant time before reading any claim;
 * the header must be byte-for-byte ours, so no token chooses its algorithm.
 */
#include "tok.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "js.h"
#include "log.h"
#include "sha256.h"
#include "util.h"

/* base64url of {"alg":"HS256","typ":"JWT"} */
static const char tok_header[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t
tok_b64url_encode(const unsigned char *in, size_t n, char *out)
{
	size_t o = 0, i = 0;

	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
	}
	out[o] = '\0';
	return o;
}

static int
b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

long
tok_b64url_decode(const char *in, size_t len, unsigned char *out)
{
	size_t o = 0, i = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (len % 4 == 1)
		return -1;
	for (; i < len; i++) {
		int v = b64val(in[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -1; /* non-canonical trailing bits */
	return (long)o;
}

/*
 * The HMAC key derived from the last secret seen. tok_sign and tok_verify are
 * given the secret on every call, but it is process configuration (the same
 * bytes every time), so its two padded-key blocks are hashed once, not per
 * token. The key is re-derived whenever the secret's length or bytes differ
 * from the cached copy (tests, the fuzzer and etlctl pass others).
 *
 * Guarded by a mutex. Today one thread per process signs or verifies
 * (etl-api's request loop, etl-wsd's lws loop; the relay and checkpoint
 * threads never do), but this is library code and an unguarded static would
 * be a silent race for the next caller; uncontended, the lock costs tens of
 * ns against about a microsecond of HMAC. It is held only to compare the
 * secret and copy the key state out (or in, after a miss): the hashing runs
 * outside it, on the caller's copy.
 */
static struct {
	pthread_mutex_t mu;
	char *secret; /* malloc'd copy of the bytes key was derived from; NULL: none */
	size_t len;
	struct sha256_hmac_key key;
} tok_cache = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void
cache_lock(void)
{
	int rc = pthread_mutex_lock(&tok_cache.mu);
	if (rc != 0)
		fatalx("tok: pthread_mutex_lock: %s", strerror(rc));
}

static void
cache_unlock(void)
{
	int rc = pthread_mutex_unlock(&tok_cache.mu);
	if (rc != 0)
		fatalx("tok: pthread_mutex_unlock: %s", strerror(rc));
}

/* Copies the key for secret into *k, deriving (and caching) it on a miss.
 * The secret is ours, not an attacker's, so memcmp's timing is no leak. */
static void
key_for(const char *secret, size_t secret_len, struct sha256_hmac_key *k)
{
	char *copy;
	int hit;

	cache_lock();
	hit = tok_cache.secret != NULL && tok_cache.len == secret_len &&
	      (secret_len == 0 || memcmp(tok_cache.secret, secret, secret_len) == 0);
	if (hit)
		*k = tok_cache.key;
	cache_unlock();
	if (hit)
		return;

	sha256_hmac_init(k, secret, secret_len);
	copy = xmalloc(secret_len + 1);
	if (secret_len > 0)
		memcpy(copy, secret, secret_len);
	cache_lock();
	if (tok_cache.secret != NULL) {
		explicit_bzero(tok_cache.secret, tok_cache.len);
		free(tok_cache.secret);
	}
	tok_cache.secret = copy;
	tok_cache.len = secret_len;
	tok_cache.key = *k;
	cache_unlock();
}

static void
mac(const char *secret, size_t secret_len, const char *data, size_t n, unsigned char out[32])
{
	struct sha256_hmac_key k;

	key_for(secret, secret_len, &k);
	sha256_hmac(&k, data, n, out);
	sha256_hmac_wipe(&k);
}

char *
tok_sign(const char *secret, size_t secret_len, const char *sub, const char *role, int64_t now_s,
    int ttl_s)
{
	struct json_object *o = json_object_new_object();
	struct buf b = { 0 };
	unsigned char sig[32];
	char *payload, *enc;

	json_object_object_add(o, "sub", json_object_new_string(sub));
	json_object_object_add(o, "role", json_object_new_string(role));
	json_object_object_add(o, "iat", json_object_new_int64(now_s));
	json_object_object_add(o, "exp", json_object_new_int64(now_s + ttl_s));
	payload = js_dump(o);
	json_object_put(o);

	enc = xmalloc(4 * ((strlen(payload) + 2) / 3) + 1);
	tok_b64url_encode((const unsigned char *)payload, strlen(payload), enc);
	buf_printf(&b, "%s.%s", tok_header, enc);
	free(payload);
	free(enc);
	mac(secret, secret_len, b.data, b.len, sig);
	char s64[48];
	tok_b64url_encode(sig, sizeof(sig), s64);
	buf_printf(&b, ".%s", s64);
	return buf_steal(&b);
}

enum tok_rc
tok_verify(const char *secret, size_t secret_len, const char *token, size_t len, int64_t now_s,
    struct tok_claims *c)
{
	const char *dot1, *dot2;
	unsigned char sig[32], want[32], payload[TOK_MAX_LEN];
	long plen;
	struct json_object *o = NULL;
	const char *s;
	size_t n;
	int64_t iat, exp;
	int ok;
	char err[64];
	enum tok_rc rc = TOK_MALFORMED;

	memset(c, 0, sizeof(*c));
	if (token == NULL || len == 0 || len > TOK_MAX_LEN)
		return TOK_MALFORMED;
	if ((dot1 = memchr(token, '.', len)) == NULL)
		return TOK_MALFORMED;
	if ((dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token))) == NULL)
		return TOK_MALFORMED;
	if ((size_t)(dot1 - token) != sizeof(tok_header) - 1 ||
	    memcmp(token, tok_header, sizeof(tok_header) - 1) != 0)
		return TOK_MALFORMED;
	if (len - (size_t)(dot2 + 1 - token) != 43 || tok_b64url_decode(dot2 + 1, 43, sig) != 32)
		return TOK_MALFORMED;
	mac(secret, secret_len, token, (size_t)(dot2 - token), want);
	if (!util_ct_equal(sig, want, 32))
		return TOK_BAD_SIGNATURE;

	/* Signed by us from here on; still parse defensively. */
	plen = tok_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload);
	if (plen <= 0)
		return TOK_MALFORMED;
	o = js_parse((const char *)payload, (size_t)plen, TOK_MAX_LEN, 4, &ok, err, sizeof(err));
	if (o == NULL || !json_object_is_type(o, json_type_object))
		goto out;
	if (js_get_string(o, "sub", &s, &n) != 0 || n == 0 || n >= sizeof(c->sub))
		goto out;
	memcpy(c->sub, s, n + 1);
	if (js_get_string(o, "role", &s, &n) != 0 || n == 0 || n >= sizeof(c->role))
		goto out;
	memcpy(c->role, s, n + 1);
	if (js_get_int(o, "iat", &iat) != 0 || js_get_int(o, "exp", &exp) != 0)
		goto out;
	c->iat = iat;
	c->exp = exp;
	rc = now_s >= exp ? TOK_EXPIRED : TOK_OK;
out:
	json_object_put(o);
	return rc;
}

enum tok_rc
tok_verify_cached(struct tok_cache *cache, const char *secret, size_t secret_len, const char *token,
    size_t len, int64_t now_s, struct tok_claims *c)
{
	enum tok_rc rc;

	if (cache == NULL || len == 0 || len > TOK_MAX_LEN)
		return tok_verify(secret, secret_len, token, len, now_s, c);
	for (unsigned i = 0; i < TOK_CACHE_N; i++)
		if (cache->e[i].len == len && util_ct_equal(cache->e[i].token, token, len)) {
			*c = cache->e[i].c;
			return now_s >= c->exp ? TOK_EXPIRED : TOK_OK;
		}
	rc = tok_verify(secret, secret_len, token, len, now_s, c);
	if (rc == TOK_OK) {
		unsigned i = cache->next++ % TOK_CACHE_N;
		memcpy(cache->e[i].token, token, len);
		cache->e[i].len = len;
		cache->e[i].c = *c;
	}
	return rc;
}
