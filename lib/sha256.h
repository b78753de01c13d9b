/*
 * sha256: SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) in portable C, so
 * that signing and verifying tokens (tok.c) needs no libcrypto: OpenSSL 3's
 * HMAC() fetches the algorithm on every call, and the library is 3.4 MB of
 * each process's RSS. The HMAC key context holds the two padded-key states,
 * hashed once, so a MAC costs only the message's blocks plus one outer block.
 * Not constant-time in the message length (no need: lengths are public);
 * constant-time in the key and message bytes (no table lookups by data).
 */
#ifndef ETL_SHA256_H
#define ETL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32 /* bytes of a digest */
#define SHA256_BLOCK 64 /* bytes of a block */

/* A hash in progress. Plain data: copying it forks the hash. */
struct sha256 {
	uint32_t h[8];
	uint64_t len; /* bytes hashed so far; len % SHA256_BLOCK of them wait in buf */
	unsigned char buf[SHA256_BLOCK];
};

/* Starts a hash. Cannot fail. */
void sha256_init(struct sha256 *s);
/* Hashes n more bytes of data (data may be NULL when n is 0). */
void sha256_update(struct sha256 *s, const void *data, size_t n);
/* Writes the digest into out and wipes *s (sha256_init it to use it again). */
void sha256_final(struct sha256 *s, unsigned char out[SHA256_LEN]);
/* The digest of n bytes of data in one call. */
void sha256_digest(const void *data, size_t n, unsigned char out[SHA256_LEN]);

/* An HMAC-SHA256 key: the states after the inner (key ^ 0x36..) and outer
 * (key ^ 0x5c..) padded-key blocks. Holds key material: sha256_hmac_wipe it. */
struct sha256_hmac_key {
	struct sha256 inner, outer;
};

/* Derives k from len bytes of key (a key longer than SHA256_BLOCK is hashed
 * first, RFC 2104; key may be NULL when len is 0). Its temporaries are wiped. */
void sha256_hmac_init(struct sha256_hmac_key *k, const void *key, size_t len);
/* Writes HMAC-SHA256(key, msg) into out; *k is left as it was, for the next. */
void sha256_hmac(
    const struct sha256_hmac_key *k, const void *msg, size_t len, unsigned char out[SHA256_LEN]);
/* Wipes k (explicit_bzero): no key material left behind. */
void sha256_hmac_wipe(struct sha256_hmac_key *k);

#endif
