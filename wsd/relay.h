/*
 * relay: the Redis side of etl-wsd. A reader thread subscribes to
 * "<prefix>:ws", validates each message once (size, UTF-8, JSON, a string
 * "type", an object "payload"), serialises the frame clients get
 * ({"type","payload"}, source_instance stripped) once, and hands it to the
 * lws loop through a bounded list plus lws_cancel_service(). It watches the
 * subscription (PING every 500 ms, dead after 2 s of silence), reconnects
 * with jittered backoff (100 ms .. 5 s) and queues a {"type":"resync"} after
 * every resubscription.
 */
#ifndef WSD_RELAY_H
#define WSD_RELAY_H

#include <stddef.h>
#include <stdint.h>

struct conf;
struct lws_context;
struct relay;

#define RELAY_MSG_MAX 65536 /* bytes of one Redis message; larger ones are dropped */
#define RELAY_TYPE_MAX 64 /* bytes of an event type */
#define RELAY_FRAME_MAX (2 * RELAY_MSG_MAX) /* bytes of the frame we send (escapes grow it) */

/*
 * One validated event, ready to send: data[LWS_PRE .. LWS_PRE+len) is the
 * JSON text, and frame[0 .. frame_len) the complete websocket text frame
 * (server frames are unmasked, so the same bytes go to every client). Made
 * by the relay thread, owned by the loop once taken (the ring frees it).
 */
struct relay_msg {
	struct relay_msg *next; /* handoff list */
	uint64_t seq; /* position in the clients' ring */
	int64_t job_id; /* payload.job_id, -1 when absent */
	int64_t recv_us; /* monotonic us when read from Redis */
	int broadcast; /* 1: passes every filter (resync) */
	char type[RELAY_TYPE_MAX + 1];
	size_t len;
	unsigned char *frame; /* inside data: header just before the JSON */
	size_t frame_len;
	unsigned char data[];
};

/* Why a Redis message was dropped (metrics label order). */
enum relay_drop {
	RELAY_DROP_TOO_BIG,
	RELAY_DROP_INVALID_UTF8,
	RELAY_DROP_NOT_JSON,
	RELAY_DROP_NOT_OBJECT,
	RELAY_DROP_NO_TYPE,
	RELAY_DROP_BAD_PAYLOAD,
	RELAY_DROP_OVERFLOW, /* the loop fell behind the handoff bound */
	RELAY_DROP__MAX
};
extern const char *const relay_drop_names[RELAY_DROP__MAX];

enum relay_state { RELAY_DISABLED, RELAY_DOWN, RELAY_UP };

struct relay_stats {
	uint64_t messages_in; /* valid messages read from Redis */
	uint64_t dropped[RELAY_DROP__MAX];
	uint64_t reconnects; /* subscriptions made again after a loss */
	enum relay_state state;
};

/*
 * Starts the reader thread for conf's REDIS_URL and channel prefix; it wakes
 * ctx's loop (lws_cancel_service) whenever messages wait. With Redis disabled
 * returns a relay in RELAY_DISABLED that never delivers. Returns NULL with a
 * reason in err for an unusable REDIS_URL or when the thread cannot start.
 * Call from the loop thread before the loop runs; stop with relay_stop().
 */
struct relay *relay_start(const struct conf *c, struct lws_context *ctx, char *err, size_t errlen);

/* Stops and joins the thread, frees what was never taken. NULL is safe. */
void relay_stop(struct relay *r);

/*
 * Takes at most max messages handed over so far, oldest first, as a list
 * linked by ->next (NULL when none); *more says whether others wait. The
 * caller owns them (free with relay_msg_free). Any thread may call it; the
 * loop does.
 */
struct relay_msg *relay_take(struct relay *r, size_t max, int *more);

/* Snapshot of the counters and state (any thread). */
void relay_get_stats(struct relay *r, struct relay_stats *out);

/* "ok", "down" or "disabled". */
const char *relay_state_name(enum relay_state s);

/*
 * Validates one Redis message (len bytes) and builds the client frame.
 * Returns a new message (free with relay_msg_free), or NULL with *why set.
 * Pure function: exported for tests and fuzzing.
 */
struct relay_msg *relay_validate(const char *data, size_t len, enum relay_drop *why);

/* Builds the {"type":"resync"} control message (broadcast). */
struct relay_msg *relay_msg_resync(void);

void relay_msg_free(struct relay_msg *m);

#endif
