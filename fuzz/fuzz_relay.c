/*
 * fuzz_relay: the Redis message validator of etl-wsd (wsd/relay.h
 * relay_validate), the one check between whatever is published on
 * "<prefix>:ws" and every browser. Input: the message bytes. Invariants:
 * a message is accepted only when it is valid UTF-8 JSON, an object, with
 * a string "type" of 1..64 bytes and an object "payload"; the frame built
 * for it is a single unmasked FIN text frame whose length field matches,
 * whose JSON parses and holds exactly {"type","payload"} with the same
 * type and payload (source_instance and anything else stripped); a drop
 * reason is always one of the known ones.
 */
#include <string.h>

#include <libwebsockets.h>

#include "fuzz.h"
#include "js.h"
#include "json_check.h"
#include "relay.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum relay_drop why = RELAY_DROP__MAX;
	struct relay_msg *m;
	struct json_object *in, *out, *t, *p, *pin;
	const unsigned char *f;
	size_t hl, flen;
	char err[128];
	int ok;

	m = relay_validate((const char *)data, size, &why);
	if (m == NULL) {
		FUZZ_CHECK(why < RELAY_DROP_OVERFLOW, "drop reason %d", (int)why);
		return 0;
	}
	FUZZ_CHECK(size <= RELAY_MSG_MAX, "accepted %zu bytes", size);
	in = js_parse((const char *)data, size, RELAY_MSG_MAX, JS_MAX_DEPTH, &ok, err, sizeof(err));
	FUZZ_CHECK(in != NULL && json_object_is_type(in, json_type_object),
	    "accepted what js_parse refuses: %s", err);

	/* the frame: header then exactly the JSON text */
	f = m->frame;
	FUZZ_CHECK(f[0] == 0x81, "frame byte 0 is 0x%02x", f[0]);
	FUZZ_CHECK((f[1] & 0x80) == 0, "server frame masked");
	if ((f[1] & 0x7f) < 126) {
		hl = 2;
		flen = f[1] & 0x7f;
	} else if ((f[1] & 0x7f) == 126) {
		hl = 4;
		flen = (size_t)f[2] << 8 | f[3];
		FUZZ_CHECK(flen >= 126, "non-minimal 16-bit length %zu", flen);
	} else {
		hl = 10;
		flen = 0;
		for (int i = 0; i < 8; i++)
			flen = flen << 8 | f[2 + i];
		FUZZ_CHECK(flen >= 65536, "non-minimal 64-bit length %zu", flen);
	}
	FUZZ_CHECK(
	    flen == m->len && m->frame_len == hl + m->len, "frame length %zu vs %zu", flen, m->len);
	FUZZ_CHECK(f + hl == m->data + LWS_PRE, "JSON not right after the header");
	FUZZ_CHECK(m->len <= RELAY_FRAME_MAX, "frame of %zu bytes", m->len);

	FUZZ_CHECK(json_strict_valid((const char *)f + hl, m->len),
	    "frame is not strict JSON: %.*s", (int)(m->len > 300 ? 300 : m->len),
	    (const char *)f + hl);
	out = js_parse(
	    (const char *)f + hl, m->len, RELAY_FRAME_MAX, JS_MAX_DEPTH + 2, &ok, err, sizeof(err));
	FUZZ_CHECK(out != NULL && json_object_is_type(out, json_type_object),
	    "frame is not a JSON object: %s", err);
	FUZZ_CHECK(json_object_object_length(out) == 2, "frame has %d keys",
	    json_object_object_length(out));
	FUZZ_CHECK(
	    json_object_object_get_ex(out, "type", &t) && json_object_is_type(t, json_type_string),
	    "frame without a string type");
	FUZZ_CHECK(strcmp(json_object_get_string(t), m->type) == 0, "type differs");
	FUZZ_CHECK(strlen(m->type) >= 1 && strlen(m->type) <= RELAY_TYPE_MAX, "type length");
	FUZZ_CHECK(json_object_object_get_ex(out, "payload", &p) &&
	               json_object_object_get_ex(in, "payload", &pin) && json_object_equal(p, pin),
	    "payload changed on the way");
	json_object_put(out);
	json_object_put(in);
	relay_msg_free(m);
	return 0;
}
