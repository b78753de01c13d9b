/*
 * tok: access tokens, HMAC-SHA256 signed JWTs (header fixed to
 * {"alg":"HS256","typ":"JWT"}: any other header is rejected, never read for
 * an algorithm). Claims: sub (username), role, iat, exp. Verified without
 * the database, so etl-wsd needs only the secret.
 */
#ifndef ETL_TOK_H
#define ETL_TOK_H

#include <stddef.h>
#include <stdint.h>

#define TOK_MAX_LEN 1024 /* longer tokens are rejected unread */
#define TOK_MIN_SECRET 32 /* bytes: programs refuse a shorter ETL_SECRET */

struct tok_claims {
	char sub[65];
	char role[16];
	int64_t iat; /* s since epoch */
	int64_t exp; /* s since epoch */
};

/* Makes a token for sub/role valid from now for ttl_s seconds. Returns a
 * malloc'd string. */
char *tok_sign(const char *secret, size_t secret_len, const char *sub, const char *role,
    int64_t now_s, int ttl_s);

enum tok_rc { TOK_OK = 0, TOK_MALFORMED = -1, TOK_BAD_SIGNATURE = -2, TOK_EXPIRED = -3 };
/* Verifies token (len bytes) at now_s; constant-time signature comparison.
 * Fills *c on TOK_OK (and on TOK_EXPIRED). */
enum tok_rc tok_verify(const char *secret, size_t secret_len, const char *token, size_t len,
    int64_t now_s, struct tok_claims *c);

/*
 * A thread's last few verified tokens: a client sends the same token with
 * every request, and a hit costs a constant-time comparison instead of an
 * HMAC and a JSON parse. Only valid tokens are kept, the whole token is
 * compared (a cached signature with another payload is a miss), and the
 * expiry is checked on every hit. A cache serves one secret (etl-api's,
 * fixed for the process's life). Zero it to start (calloc).
 */
#define TOK_CACHE_N 4
struct tok_cache {
	struct {
		size_t len; /* 0: empty */
		char token[TOK_MAX_LEN];
		struct tok_claims c;
	} e[TOK_CACHE_N];
	unsigned next; /* the entry replaced next */
};
/* tok_verify through cache (NULL: none). */
enum tok_rc tok_verify_cached(struct tok_cache *cache, const char *secret, size_t secret_len,
    const char *token, size_t len, int64_t now_s, struct tok_claims *c);

/* base64url without padding; out must hold 4*((n+2)/3)+1 bytes. Returns the length. */
size_t tok_b64url_encode(const unsigned char *in, size_t n, char *out);
/* Returns decoded length, or -1 if malformed; out must hold len*3/4+3 bytes. */
long tok_b64url_decode(const char *in, size_t len, unsigned char *out);

#endif
