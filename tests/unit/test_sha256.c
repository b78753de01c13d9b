/*
 * sha256: SHA-256 against the FIPS 180-4 / NIST examples, HMAC-SHA256
 * against RFC 4231's test cases, and streaming against one-shot over many
 * lengths (with Python hashlib/hmac digests of the whole run, computed when
 * the test was written, as the independent reference).
 */
#include "unit.h"

#include "sha256.h"

/* Hex of a digest, for readable failures. */
static void
hex(const unsigned char *p, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static void
assert_digest(const unsigned char *got, size_t n, const char *want_hex)
{
	char h[2 * SHA256_LEN + 1];
	hex(got, n, h);
	assert_string_equal(h, want_hex);
}

/* xorshift32 bytes: the same sequence the Python generator used */
static void
prng_fill(unsigned char *p, size_t n)
{
	uint32_t s = 0x12345678;
	for (size_t i = 0; i < n; i++) {
		s ^= s << 13;
		s ^= s >> 17;
		s ^= s << 5;
		p[i] = (unsigned char)s;
	}
}

static void
fips_short_messages(void **state)
{
	unsigned char out[SHA256_LEN];
	(void)state;

	sha256_digest("", 0, out);
	assert_digest(out, 32, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha256_digest(NULL, 0, out);
	assert_digest(out, 32, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha256_digest("abc", 3, out);
	assert_digest(out, 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* 448 bits: the padding's 0x80 fits, the length does not (two blocks) */
	sha256_digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, out);
	assert_digest(out, 32, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	/* 896 bits */
	sha256_digest("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
	              "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
	    112, out);
	assert_digest(out, 32, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

/* one million 'a', fed in uneven chunks of 1..127 bytes that straddle blocks */
static void
fips_million_a_streamed(void **state)
{
	static unsigned char a[128];
	struct sha256 s;
	unsigned char out[SHA256_LEN];
	size_t done = 0, step;
	unsigned i = 0;
	(void)state;

	memset(a, 'a', sizeof(a));
	sha256_init(&s);
	while (done < 1000000) {
		step = 1 + (i++ * 37) % 127;
		if (step > 1000000 - done)
			step = 1000000 - done;
		sha256_update(&s, a, step);
		sha256_update(&s, a, 0);
		done += step;
	}
	sha256_final(&s, out);
	assert_digest(out, 32, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* RFC 4231 section 4: test cases 1 to 7 */
static void
rfc4231_hmac(void **state)
{
	static const struct {
		const char *key;
		size_t klen;
		const char *data;
		size_t dlen;
		size_t outlen; /* case 5 is truncated to 128 bits */
		const char *mac;
	} tc[] = {
		{ "\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b"
		  "\x0b",
		    20, "Hi There", 8, 32,
		    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
		{ "Jefe", 4, "what do ya want for nothing?", 28, 32,
		    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
		{ NULL, 20, NULL, 50, 32, /* 0xaa x 20, 0xdd x 50 */
		    "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
		{ "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14"
		  "\x15\x16\x17\x18\x19",
		    25, NULL, 50, 32, /* 0xcd x 50 */
		    "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
		{ "\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c"
		  "\x0c",
		    20, "Test With Truncation", 20, 16, "a3b6167473100ee06e0c796c2955552b" },
		{ NULL, 131, "Test Using Larger Than Block-Size Key - Hash Key First", 54, 32,
		    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
		{ NULL, 131,
		    "This is a test using a larger than block-size key and a larger than "
		    "block-size data. The key needs to be hashed before being used by the HMAC "
		    "algorithm.",
		    152, 32, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
	};
	unsigned char aa[131], dd[50], cd[50], out[SHA256_LEN];
	struct sha256_hmac_key k;
	(void)state;

	memset(aa, 0xaa, sizeof(aa));
	memset(dd, 0xdd, sizeof(dd));
	memset(cd, 0xcd, sizeof(cd));
	for (size_t i = 0; i < sizeof(tc) / sizeof(tc[0]); i++) {
		const void *key = tc[i].key != NULL ? (const void *)tc[i].key : aa;
		const void *data = tc[i].data != NULL ? (const void *)tc[i].data : i == 2 ? dd : cd;
		assert_int_equal(strlen(tc[i].mac), 2 * tc[i].outlen);
		print_message("RFC 4231 test case %zu\n", i + 1);
		sha256_hmac_init(&k, key, tc[i].klen);
		sha256_hmac(&k, data, tc[i].dlen, out);
		assert_digest(out, tc[i].outlen, tc[i].mac);
		/* the key context is not consumed: the same MAC again */
		sha256_hmac(&k, data, tc[i].dlen, out);
		assert_digest(out, tc[i].outlen, tc[i].mac);
		sha256_hmac_wipe(&k);
	}
}

/* Lengths 0..300, each hashed one-shot and streamed in pseudo-random chunks
 * (and forked by copying the state halfway); the chain of all 301 digests
 * is Python's hashlib's. */
static void
streaming_equals_one_shot(void **state)
{
	unsigned char buf[512], one[SHA256_LEN], str[SHA256_LEN], forked[SHA256_LEN];
	struct sha256 chain, s, half;
	uint32_t r = 1;
	(void)state;

	prng_fill(buf, sizeof(buf));
	sha256_init(&chain);
	for (size_t len = 0; len <= 300; len++) {
		size_t at = 0, mid = len / 2;
		sha256_digest(buf, len, one);
		sha256_init(&s);
		while (at < len) {
			size_t step;
			r = r * 1103515245 + 12345;
			step = (r >> 16) % 70; /* 0..69: empty, sub-block and over-block updates */
			if (at < mid && at + step > mid)
				step = mid - at; /* stop at mid, to fork there */
			if (step > len - at)
				step = len - at;
			sha256_update(&s, buf + at, step);
			at += step;
			if (at == mid && step > 0) {
				half = s;
				sha256_update(&half, buf + mid, len - mid);
				sha256_final(&half, forked);
				assert_memory_equal(forked, one, SHA256_LEN);
			}
		}
		sha256_final(&s, str);
		assert_memory_equal(str, one, SHA256_LEN);
		sha256_update(&chain, one, sizeof(one));
	}
	sha256_final(&chain, one);
	assert_digest(one, 32, "a5fb75d81024e875ab3f9a6d3bfc6e731f43fd2755871b60cd30043f650545eb");
}

/* HMAC as RFC 2104 writes it, from the streaming hash: the reference the
 * precomputed-key path must agree with. */
static void
hmac_by_definition(const unsigned char *key, size_t klen, const unsigned char *msg, size_t n,
    unsigned char out[SHA256_LEN])
{
	unsigned char k0[SHA256_BLOCK] = { 0 }, pad[SHA256_BLOCK], ih[SHA256_LEN];
	struct sha256 s;

	if (klen > SHA256_BLOCK)
		sha256_digest(key, klen, k0);
	else
		memcpy(k0, key, klen);
	for (int i = 0; i < SHA256_BLOCK; i++)
		pad[i] = k0[i] ^ 0x36;
	sha256_init(&s);
	sha256_update(&s, pad, sizeof(pad));
	for (size_t at = 0; at < n; at += 7) /* in 7-byte pieces */
		sha256_update(&s, msg + at, n - at < 7 ? n - at : 7);
	sha256_final(&s, ih);
	for (int i = 0; i < SHA256_BLOCK; i++)
		pad[i] = k0[i] ^ 0x5c;
	sha256_init(&s);
	sha256_update(&s, pad, sizeof(pad));
	sha256_update(&s, ih, sizeof(ih));
	sha256_final(&s, out);
}

/* 2010 (key, message) pairs: every key length 0..200 (around the 64-byte
 * block where long keys start being hashed), every message length 0..300;
 * the chain of all MACs is Python's hmac module's. */
static void
hmac_many_lengths(void **state)
{
	unsigned char buf[512], mac[SHA256_LEN], ref[SHA256_LEN];
	struct sha256_hmac_key k;
	struct sha256 chain;
	(void)state;

	prng_fill(buf, sizeof(buf));
	sha256_init(&chain);
	for (size_t i = 0; i < 2010; i++) {
		size_t klen = i % 201, mlen = (i * 37) % 301;
		sha256_hmac_init(&k, buf + 301, klen);
		sha256_hmac(&k, buf, mlen, mac);
		hmac_by_definition(buf + 301, klen, buf, mlen, ref);
		assert_memory_equal(mac, ref, SHA256_LEN);
		sha256_update(&chain, mac, sizeof(mac));
	}
	sha256_hmac_wipe(&k);
	sha256_final(&chain, mac);
	assert_digest(mac, 32, "3d17eb09fc32dbc3421dbe821626139c839581a663627f5d52c321a8491b0731");
}

/* final wipes the state; init makes it usable again */
static void
final_wipes_and_init_restarts(void **state)
{
	static const struct sha256 zero;
	struct sha256 s;
	unsigned char out[SHA256_LEN];
	(void)state;

	sha256_init(&s);
	sha256_update(&s, "abc", 3);
	sha256_final(&s, out);
	assert_memory_equal(&s, &zero, sizeof(s));
	sha256_init(&s);
	sha256_update(&s, "ab", 2);
	sha256_update(&s, "c", 1);
	sha256_final(&s, out);
	assert_digest(out, 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fips_short_messages),
		cmocka_unit_test(fips_million_a_streamed),
		cmocka_unit_test(rfc4231_hmac),
		cmocka_unit_test(streaming_equals_one_shot),
		cmocka_unit_test(hmac_many_lengths),
		cmocka_unit_test(final_wipes_and_init_restarts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
