/*
 * sha256: SHA-256 as FIPS 180-4 section 6.2 describes it, and HMAC over it as
 * RFC 2104 does. Words are read and written big-endian with shifts, so the
 * code is the same on any byte order and needs no alignment. The compression
 * function expands the 64-word schedule first, then runs the rounds eight at a
 * time with the working variables renamed instead of moved (the usual way to
 * let the compiler keep all eight in registers).
 */
#include "sha256.h"

#include <string.h>

/* FIPS 180-4 4.2.2: the first 32 bits of the fractional parts of the cube
 * roots of the first 64 primes. */
static const uint32_t sha256_k[64] = {
	0x428a2f98,
	0x71374491,
	0xb5c0fbcf,
	0xe9b5dba5,
	0x3956c25b,
	0x59f111f1,
	0x923f82a4,
	0xab1c5ed5,
	0xd807aa98,
	0x12835b01,
	0x243185be,
	0x550c7dc3,
	0x72be5d74,
	0x80deb1fe,
	0x9bdc06a7,
	0xc19bf174,
	0xe49b69c1,
	0xefbe4786,
	0x0fc19dc6,
	0x240ca1cc,
	0x2de92c6f,
	0x4a7484aa,
	0x5cb0a9dc,
	0x76f988da,
	0x983e5152,
	0xa831c66d,
	0xb00327c8,
	0xbf597fc7,
	0xc6e00bf3,
	0xd5a79147,
	0x06ca6351,
	0x14292967,
	0x27b70a85,
	0x2e1b2138,
	0x4d2c6dfc,
	0x53380d13,
	0x650a7354,
	0x766a0abb,
	0x81c2c92e,
	0x92722c85,
	0xa2bfe8a1,
	0xa81a664b,
	0xc24b8b70,
	0xc76c51a3,
	0xd192e819,
	0xd6990624,
	0xf40e3585,
	0x106aa070,
	0x19a4c116,
	0x1e376c08,
	0x2748774c,
	0x34b0bcb5,
	0x391c0cb3,
	0x4ed8aa4a,
	0x5b9cca4f,
	0x682e6ff3,
	0x748f82ee,
	0x78a5636f,
	0x84c87814,
	0x8cc70208,
	0x90befffa,
	0xa4506ceb,
	0xbef9a3f7,
	0xc67178f2,
};

/* FIPS 180-4 5.3.3: the first 32 bits of the fractional parts of the square
 * roots of the first 8 primes. */
static const uint32_t sha256_h0[8] = {
	0x6a09e667,
	0xbb67ae85,
	0x3c6ef372,
	0xa54ff53a,
	0x510e527f,
	0x9b05688c,
	0x1f83d9ab,
	0x5be0cd19,
};

/* FIPS 180-4 4.1.2 (n is never 0 or 32 here) */
#define ROTR(x, n) ((x) >> (n) | (x) << (32 - (n)))
#define BSIG0(x) (ROTR(x, 2) ^ ROTR(x, 13) ^ ROTR(x, 22))
#define BSIG1(x) (ROTR(x, 6) ^ ROTR(x, 11) ^ ROTR(x, 25))
#define SSIG0(x) (ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))
#define CH(x, y, z) ((z) ^ ((x) & ((y) ^ (z)))) /* (x & y) ^ (~x & z) */
#define MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y)))) /* (x&y) ^ (x&z) ^ (y&z) */

/* One round t of 6.2.2 step 3, with the eight variables passed in their
 * current roles: the caller rotates the names, so only d and h change. */
#define ROUND(a, b, c, d, e, f, g, h, t)                                          \
	do {                                                                      \
		uint32_t t1_ = (h) + BSIG1(e) + CH(e, f, g) + sha256_k[t] + w[t]; \
		(d) += t1_;                                                       \
		(h) = t1_ + BSIG0(a) + MAJ(a, b, c);                              \
	} while (0)

static uint32_t
load32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void
store32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* Runs one 64-byte block through the state h (FIPS 180-4 6.2.2). */
static void
compress(uint32_t h[8], const unsigned char *block)
{
	uint32_t w[64];
	uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
	int t;

	for (t = 0; t < 16; t++)
		w[t] = load32(block + 4 * t);
	for (; t < 64; t++)
		w[t] = SSIG1(w[t - 2]) + w[t - 7] + SSIG0(w[t - 15]) + w[t - 16];
	for (t = 0; t < 64; t += 8) {
		ROUND(a, b, c, d, e, f, g, hh, t);
		ROUND(hh, a, b, c, d, e, f, g, t + 1);
		ROUND(g, hh, a, b, c, d, e, f, t + 2);
		ROUND(f, g, hh, a, b, c, d, e, t + 3);
		ROUND(e, f, g, hh, a, b, c, d, t + 4);
		ROUND(d, e, f, g, hh, a, b, c, t + 5);
		ROUND(c, d, e, f, g, hh, a, b, t + 6);
		ROUND(b, c, d, e, f, g, hh, a, t + 7);
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
	h[5] += f;
	h[6] += g;
	h[7] += hh;
}

void
sha256_init(struct sha256 *s)
{
	memset(s, 0, sizeof(*s));
	memcpy(s->h, sha256_h0, sizeof(s->h));
}

void
sha256_update(struct sha256 *s, const void *data, size_t n)
{
	const unsigned char *p = data;
	size_t used = (size_t)(s->len % SHA256_BLOCK);

	if (n == 0)
		return;
	s->len += n;
	if (used > 0) {
		size_t take = SHA256_BLOCK - used < n ? SHA256_BLOCK - used : n;
		memcpy(s->buf + used, p, take);
		p += take;
		n -= take;
		if (used + take < SHA256_BLOCK)
			return;
		compress(s->h, s->buf);
	}
	/* whole blocks straight from the caller's bytes, no copy */
	for (; n >= SHA256_BLOCK; p += SHA256_BLOCK, n -= SHA256_BLOCK)
		compress(s->h, p);
	if (n > 0)
		memcpy(s->buf, p, n);
}

void
sha256_final(struct sha256 *s, unsigned char out[SHA256_LEN])
{
	size_t used = (size_t)(s->len % SHA256_BLOCK);
	uint64_t bits = s->len << 3; /* FIPS 180-4 5.1.1: the length in bits, mod 2^64 */
	int i;

	s->buf[used++] = 0x80;
	if (used > SHA256_BLOCK - 8) { /* no room for the length: one more block */
		memset(s->buf + used, 0, SHA256_BLOCK - used);
		compress(s->h, s->buf);
		used = 0;
	}
	memset(s->buf + used, 0, SHA256_BLOCK - 8 - used);
	store32(s->buf + SHA256_BLOCK - 8, (uint32_t)(bits >> 32));
	store32(s->buf + SHA256_BLOCK - 4, (uint32_t)bits);
	compress(s->h, s->buf);
	for (i = 0; i < 8; i++)
		store32(out + 4 * i, s->h[i]);
	explicit_bzero(s, sizeof(*s));
}

void
sha256_digest(const void *data, size_t n, unsigned char out[SHA256_LEN])
{
	struct sha256 s;

	sha256_init(&s);
	sha256_update(&s, data, n);
	sha256_final(&s, out);
}

void
sha256_hmac_init(struct sha256_hmac_key *k, const void *key, size_t len)
{
	unsigned char k0[SHA256_BLOCK] = { 0 }, pad[SHA256_BLOCK];
	int i;

	/* RFC 2104 section 2: K zero-padded to B bytes, or H(K) when longer */
	if (len > SHA256_BLOCK)
		sha256_digest(key, len, k0);
	else if (len > 0)
		memcpy(k0, key, len);
	for (i = 0; i < SHA256_BLOCK; i++)
		pad[i] = k0[i] ^ 0x36;
	sha256_init(&k->inner);
	sha256_update(&k->inner, pad, sizeof(pad));
	for (i = 0; i < SHA256_BLOCK; i++)
		pad[i] = k0[i] ^ 0x5c;
	sha256_init(&k->outer);
	sha256_update(&k->outer, pad, sizeof(pad));
	explicit_bzero(k0, sizeof(k0));
	explicit_bzero(pad, sizeof(pad));
}

void
sha256_hmac(
    const struct sha256_hmac_key *k, const void *msg, size_t len, unsigned char out[SHA256_LEN])
{
	struct sha256 s = k->inner;
	unsigned char ih[SHA256_LEN];

	sha256_update(&s, msg, len);
	sha256_final(&s, ih); /* wipes s */
	s = k->outer;
	sha256_update(&s, ih, sizeof(ih));
	sha256_final(&s, out);
	explicit_bzero(ih, sizeof(ih));
}

void
sha256_hmac_wipe(struct sha256_hmac_key *k)
{
	explicit_bzero(k, sizeof(*k));
}
