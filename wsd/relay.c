/*
 * relay: the Redis subscription of etl-wsd, run by one reader thread.
 *
 * Why a thread and not hiredis' async API inside the lws loop: hiredis 0.14
 * has no async timeout, so a silent (stopped, partitioned) Redis would only
 * be noticed by TCP; lws 4.1 in Debian only reaches libev/libuv through
 * dlopen'd event-lib plugins, one more moving part at run time. A thread
 * with the sync API and its own poll() can send PING on the subscribed
 * connection and time the answers exactly, and it takes the JSON
 * validation and the one-per-message serialisation off the fan-out loop
 * (a second core). The only lws call it makes is lws_cancel_service(), the
 * one lws documents as thread-safe; everything else crosses through a
 * mutex-protected list, bounded in bytes so that a stuck loop makes the
 * reader drop (counted), never block or grow.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libwebsockets.h>

#include "conf.h"
#include "js.h"
#include "log.h"
#include "pub.h"
#include "relay.h"
#include "util.h"

#define RELAY_PING_MS 500 /* PING period on the subscribed connection */
#define RELAY_DEAD_MS 2000 /* silence after which the subscription is dead */
#define RELAY_IO_TIMEOUT_MS 1000 /* connect, AUTH, SUBSCRIBE, PING writes */
#define RELAY_BACKOFF_MIN_MS 100
#define RELAY_BACKOFF_MAX_MS 5000
#define RELAY_READER_MAX (2 * RELAY_MSG_MAX + 4096) /* bytes of one reply in progress */
#define RELAY_QUEUE_BYTES (32u << 20) /* handed-over bytes the loop has not taken */

const char *const relay_drop_names[RELAY_DROP__MAX] = {
	[RELAY_DROP_TOO_BIG] = "too_big",
	[RELAY_DROP_INVALID_UTF8] = "invalid_utf8",
	[RELAY_DROP_NOT_JSON] = "not_json",
	[RELAY_DROP_NOT_OBJECT] = "not_object",
	[RELAY_DROP_NO_TYPE] = "no_type",
	[RELAY_DROP_BAD_PAYLOAD] = "bad_payload",
	[RELAY_DROP_OVERFLOW] = "overflow",
};

struct relay {
	struct lws_context *ctx;
	struct pub_url url;
	char *channel;
	int enabled;
	pthread_t thread;
	int started;
	int stop_pipe[2]; /* written once by relay_stop() */

	pthread_mutex_t mu; /* guards the handoff list */
	struct relay_msg *head, *tail;
	size_t queued_bytes;

	_Atomic uint64_t messages_in;
	_Atomic uint64_t dropped[RELAY_DROP__MAX];
	_Atomic uint64_t reconnects;
	_Atomic int state; /* enum relay_state */
};

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Copies the JSON text behind LWS_PRE bytes and writes the text frame's
 * header (2, 4 or 10 bytes; LWS_PRE is larger) just before it. */
static struct relay_msg *
msg_new(const char *json, size_t len)
{
	struct relay_msg *m;
	unsigned char *p;
	size_t h;

	m = xcalloc(1, sizeof(*m) + LWS_PRE + len + 1);
	p = m->data + LWS_PRE;
	memcpy(p, json, len);
	m->len = len;
	m->job_id = -1;
	m->recv_us = mono_us();
	h = len < 126 ? 2 : len < 65536 ? 4 : 10;
	m->frame = p - h;
	m->frame_len = h + len;
	m->frame[0] = 0x81; /* FIN, text */
	if (h == 2)
		m->frame[1] = (unsigned char)len;
	else if (h == 4) {
		m->frame[1] = 126;
		m->frame[2] = (unsigned char)(len >> 8);
		m->frame[3] = (unsigned char)len;
	} else {
		m->frame[1] = 127;
		for (int i = 0; i < 8; i++)
			m->frame[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
	}
	return m;
}

void
relay_msg_free(struct relay_msg *m)
{
	free(m);
}

struct relay_msg *
relay_msg_resync(void)
{
	static const char frame[] = "{\"type\":\"resync\"}";
	struct relay_msg *m;

	m = msg_new(frame, sizeof(frame) - 1);
	m->broadcast = 1;
	memcpy(m->type, "resync", sizeof("resync"));
	return m;
}

struct relay_msg *
relay_validate(const char *data, size_t len, enum relay_drop *why)
{
	struct json_object *o = NULL, *payload = NULL, *out = NULL;
	struct relay_msg *m = NULL;
	const char *type;
	size_t tlen;
	int64_t job_id;
	char *frame = NULL;
	char err[64];
	int ok;

	if (len > RELAY_MSG_MAX) {
		*why = RELAY_DROP_TOO_BIG;
		goto out;
	}
	if (!utf8_valid(data, len)) {
		*why = RELAY_DROP_INVALID_UTF8;
		goto out;
	}
	o = js_parse(data, len, RELAY_MSG_MAX, JS_MAX_DEPTH, &ok, err, sizeof(err));
	if (o == NULL) {
		*why = ok ? RELAY_DROP_NOT_OBJECT : RELAY_DROP_NOT_JSON;
		goto out;
	}
	if (!json_object_is_type(o, json_type_object)) {
		*why = RELAY_DROP_NOT_OBJECT;
		goto out;
	}
	if (js_get_string(o, "type", &type, &tlen) != 0 || tlen == 0 || tlen > RELAY_TYPE_MAX ||
	    memchr(type, '\0', tlen) != NULL) {
		*why = RELAY_DROP_NO_TYPE;
		goto out;
	}
	if (!json_object_object_get_ex(o, "payload", &payload) ||
	    !json_object_is_type(payload, json_type_object)) {
		*why = RELAY_DROP_BAD_PAYLOAD;
		goto out;
	}
	out = json_object_new_object();
	if (out == NULL)
		fatalx("json_object_new_object: out of memory");
	if (json_object_object_add(out, "type", json_object_new_string_len(type, (int)tlen)) != 0 ||
	    json_object_object_add(out, "payload", json_object_get(payload)) != 0)
		fatalx("json_object_object_add: out of memory");
	frame = js_dump(out);
	if (strlen(frame) > RELAY_FRAME_MAX - 10) {
		*why = RELAY_DROP_TOO_BIG; /* control characters, escaped, grew it */
		goto out;
	}
	m = msg_new(frame, strlen(frame));
	memcpy(m->type, type, tlen);
	m->type[tlen] = '\0';
	if (js_get_int(payload, "job_id", &job_id) == 0 && job_id >= 0)
		m->job_id = job_id;
out:
	free(frame);
	json_object_put(out);
	json_object_put(o);
	return m;
}

/* ---- handoff (relay thread -> loop) ------------------------------------ */

/* Appends m, or drops it (counted) past the byte bound. Wakes the loop when
 * the list was empty: the loop takes everything at once. */
static void
handoff(struct relay *r, struct relay_msg *m)
{
	int wake = 0;

	pthread_mutex_lock(&r->mu);
	if (r->queued_bytes + m->len > RELAY_QUEUE_BYTES) {
		pthread_mutex_unlock(&r->mu);
		atomic_fetch_add_explicit(
		    &r->dropped[RELAY_DROP_OVERFLOW], 1, memory_order_relaxed);
		relay_msg_free(m);
		return;
	}
	m->next = NULL;
	if (r->tail)
		r->tail->next = m;
	else {
		r->head = m;
		wake = 1;
	}
	r->tail = m;
	r->queued_bytes += m->len;
	pthread_mutex_unlock(&r->mu);
	if (wake)
		lws_cancel_service(r->ctx);
}

struct relay_msg *
relay_take(struct relay *r, size_t max, int *more)
{
	struct relay_msg *list, *last = NULL, *m;
	size_t n = 0;

	*more = 0;
	if (r == NULL || max == 0)
		return NULL;
	pthread_mutex_lock(&r->mu);
	list = r->head;
	for (m = r->head; m != NULL && n < max; m = m->next) {
		r->queued_bytes -= m->len;
		last = m;
		n++;
	}
	if (last != NULL) {
		r->head = last->next;
		last->next = NULL;
		if (r->head == NULL)
			r->tail = NULL;
	}
	*more = r->head != NULL;
	pthread_mutex_unlock(&r->mu);
	return list;
}

/* ---- the reader thread ------------------------------------------------- */

/* Sleeps ms, or less when asked to stop. Returns 1 when stopping. */
static int
nap(struct relay *r, int ms)
{
	struct pollfd pfd = { .fd = r->stop_pipe[0], .events = POLLIN };
	int n;

	do
		n = poll(&pfd, 1, ms);
	while (n < 0 && errno == EINTR);
	return n != 0;
}

/* Next backoff delay in ms: doubled from 100 ms, plus up to half again as
 * jitter (several etl-wsd must not reconnect in step), never over 5 s. */
static int
backoff_next(int *base)
{
	uint32_t rnd = 0;
	int d;

	*base = *base ? *base * 2 : RELAY_BACKOFF_MIN_MS;
	if (*base > RELAY_BACKOFF_MAX_MS)
		*base = RELAY_BACKOFF_MAX_MS;
	if (util_random(&rnd, sizeof(rnd)) != 0)
		rnd = (uint32_t)mono_us();
	d = *base + (int)(rnd % (uint32_t)(*base / 2 + 1));
	return d > RELAY_BACKOFF_MAX_MS ? RELAY_BACKOFF_MAX_MS : d;
}

static int
expect_ok(redisContext *c, redisReply *rep, const char *what)
{
	if (rep == NULL) {
		log_warnx("redis %s: %s", what, c->errstr[0] ? c->errstr : "no reply");
		return -1;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		char esc[128];

		log_warnx("redis %s: %s", what, log_escape(rep->str, rep->len, esc, sizeof(esc)));
		freeReplyObject(rep);
		return -1;
	}
	freeReplyObject(rep);
	return 0;
}

/* Connects, authenticates and subscribes. Returns the context or NULL. */
static redisContext *
subscribe(struct relay *r, int loud)
{
	struct timeval tv = { RELAY_IO_TIMEOUT_MS / 1000, (RELAY_IO_TIMEOUT_MS % 1000) * 1000 };
	redisContext *c;
	int fl;

	if (r->url.path[0])
		c = redisConnectUnixWithTimeout(r->url.path, tv);
	else
		c = redisConnectWithTimeout(r->url.host, r->url.port, tv);
	if (c == NULL) {
		log_warnx("redis connect: out of memory");
		return NULL;
	}
	if (c->err) {
		if (loud)
			log_warnx("redis connect: %s (retrying with backoff)", c->errstr);
		else
			log_debug("redis connect: %s", c->errstr);
		goto err;
	}
	if ((fl = fcntl(c->fd, F_GETFD)) == -1 || fcntl(c->fd, F_SETFD, fl | FD_CLOEXEC) == -1) {
		log_warn("redis fcntl");
		goto err;
	}
	if (redisSetTimeout(c, tv) != REDIS_OK) {
		log_warnx("redis set timeout: %s", c->errstr);
		goto err;
	}
	if (r->url.path[0] == '\0' && redisEnableKeepAlive(c) != REDIS_OK)
		log_debug("redis keepalive: %s", c->errstr);
	if (r->url.password[0] &&
	    expect_ok(c, redisCommand(c, "AUTH %s", r->url.password), "AUTH") != 0)
		goto err;
	if (expect_ok(c, redisCommand(c, "SUBSCRIBE %s", r->channel), "SUBSCRIBE") != 0)
		goto err;
	return c;
err:
	redisFree(c);
	return NULL;
}

static void
on_reply(struct relay *r, redisReply *rep)
{
	struct relay_msg *m;
	enum relay_drop why;

	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
	    rep->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(rep->element[0]->str, "message") != 0)
		return; /* pong, (un)subscribe confirmations */
	if (rep->element[2]->type != REDIS_REPLY_STRING) {
		atomic_fetch_add_explicit(
		    &r->dropped[RELAY_DROP_NOT_JSON], 1, memory_order_relaxed);
		return;
	}
	m = relay_validate(rep->element[2]->str, rep->element[2]->len, &why);
	if (m == NULL) {
		atomic_fetch_add_explicit(&r->dropped[why], 1, memory_order_relaxed);
		log_debug("redis message dropped: %s (%zu bytes)", relay_drop_names[why],
		    rep->element[2]->len);
		return;
	}
	atomic_fetch_add_explicit(&r->messages_in, 1, memory_order_relaxed);
	handoff(r, m);
}

/* Sends a PING (it answers ["pong",""] on a subscribed connection). */
static int
send_ping(redisContext *c)
{
	int done = 0;

	if (redisAppendCommand(c, "PING") != REDIS_OK)
		return -1;
	do {
		if (redisBufferWrite(c, &done) != REDIS_OK)
			return -1;
	} while (!done);
	return 0;
}

/*
 * Reads the subscription until it dies or relay_stop() is called. Every
 * byte received counts as a sign of life; PINGs make sure bytes come.
 * Returns 1 when stopping, 0 when the subscription is lost.
 */
static int
serve(struct relay *r, redisContext *c)
{
	struct pollfd pfd[2];
	redisReply *rep;
	int64_t now, last_rx, next_ping;
	int n, timeout;

	last_rx = util_mono_ms();
	next_ping = last_rx + RELAY_PING_MS;
	for (;;) {
		/* Replies already buffered (e.g. read together with SUBSCRIBE's). */
		for (;;) {
			void *v = NULL;

			if (redisGetReplyFromReader(c, &v) != REDIS_OK) {
				log_warnx("redis protocol error: %s", c->errstr);
				return 0;
			}
			if (v == NULL)
				break;
			rep = v;
			on_reply(r, rep);
			freeReplyObject(rep);
		}
		if (c->reader->len - c->reader->pos > RELAY_READER_MAX) {
			/* hiredis keeps a bulk string whole until it ends (up to
			 * Redis' 512 MB): past our limit, drop the connection. */
			atomic_fetch_add_explicit(
			    &r->dropped[RELAY_DROP_TOO_BIG], 1, memory_order_relaxed);
			log_warnx("redis message over %d bytes: dropping the subscription",
			    RELAY_READER_MAX);
			return 0;
		}
		now = util_mono_ms();
		if (now - last_rx >= RELAY_DEAD_MS) {
			log_warnx(
			    "redis subscription silent for %d ms: reconnecting", RELAY_DEAD_MS);
			return 0;
		}
		if (now >= next_ping) {
			if (send_ping(c) != 0) {
				log_warnx(
				    "redis PING: %s", c->errstr[0] ? c->errstr : "write failed");
				return 0;
			}
			next_ping = now + RELAY_PING_MS;
		}
		timeout = (int)(next_ping - now);
		if (last_rx + RELAY_DEAD_MS - now < timeout)
			timeout = (int)(last_rx + RELAY_DEAD_MS - now);
		pfd[0] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = r->stop_pipe[0], .events = POLLIN };
		n = poll(pfd, 2, timeout < 0 ? 0 : timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_warn("relay poll");
			return 0;
		}
		if (pfd[1].revents)
			return 1;
		if (pfd[0].revents) {
			if (redisBufferRead(c) != REDIS_OK) {
				log_warnx(
				    "redis connection lost: %s", c->errstr[0] ? c->errstr : "eof");
				return 0;
			}
			last_rx = util_mono_ms();
		}
	}
}

static void *
relay_main(void *arg)
{
	struct relay *r = arg;
	redisContext *c;
	int base = 0, ever = 0, stop = 0, delay;

	while (!stop) {
		/* The first failure of an outage is a warning, the retries debug. */
		c = subscribe(r, base == 0);
		if (c == NULL) {
			delay = backoff_next(&base);
			log_debug("redis: retrying in %d ms", delay);
			stop = nap(r, delay);
			continue;
		}
		base = 0;
		atomic_store(&r->state, RELAY_UP);
		log_info("redis: subscribed to %s", r->channel);
		if (ever) {
			/* Messages may have been lost while down: clients catch up. */
			atomic_fetch_add_explicit(&r->reconnects, 1, memory_order_relaxed);
			handoff(r, relay_msg_resync());
		}
		ever = 1;
		stop = serve(r, c);
		atomic_store(&r->state, RELAY_DOWN);
		redisFree(c);
		if (!stop) {
			delay = backoff_next(&base);
			stop = nap(r, delay);
		}
	}
	return NULL;
}

/* ---- lifecycle ----------------------------------------------------------- */

struct relay *
relay_start(const struct conf *cf, struct lws_context *ctx, char *err, size_t errlen)
{
	struct relay *r;
	sigset_t all, old;
	int rc;

	r = xcalloc(1, sizeof(*r));
	r->ctx = ctx;
	r->stop_pipe[0] = r->stop_pipe[1] = -1;
	r->enabled = cf->redis_enabled;
	atomic_init(&r->state, r->enabled ? RELAY_DOWN : RELAY_DISABLED);
	if (pthread_mutex_init(&r->mu, NULL) != 0) {
		snprintf(err, errlen, "pthread_mutex_init failed");
		free(r);
		return NULL;
	}
	if (!r->enabled)
		return r;
	if (pub_parse_url(cf->redis_url, &r->url) != 0) {
		snprintf(err, errlen, "REDIS_URL: not redis://host[:port][/db] or unix:///path");
		goto err;
	}
	r->channel = xasprintf("%s:ws", cf->redis_channel_prefix);
	if (pipe2(r->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		snprintf(err, errlen, "pipe2: %s", strerror(errno));
		goto err;
	}
	/* Signals are for the loop thread: the reader never takes them. */
	sigfillset(&all);
	if (pthread_sigmask(SIG_BLOCK, &all, &old) != 0) {
		snprintf(err, errlen, "pthread_sigmask failed");
		goto err;
	}
	rc = pthread_create(&r->thread, NULL, relay_main, r);
	if (pthread_sigmask(SIG_SETMASK, &old, NULL) != 0)
		log_warnx("pthread_sigmask restore failed");
	if (rc != 0) {
		snprintf(err, errlen, "pthread_create: %s", strerror(rc));
		goto err;
	}
	r->started = 1;
	return r;
err:
	relay_stop(r);
	return NULL;
}

void
relay_stop(struct relay *r)
{
	struct relay_msg *m, *next;
	int more;

	if (r == NULL)
		return;
	if (r->started) {
		if (write(r->stop_pipe[1], "x", 1) != 1)
			log_warn("relay stop pipe");
		if (pthread_join(r->thread, NULL) != 0)
			log_warnx("relay: pthread_join failed");
	}
	for (m = relay_take(r, SIZE_MAX, &more); m != NULL; m = next) {
		next = m->next;
		relay_msg_free(m);
	}
	if (r->stop_pipe[0] != -1)
		close(r->stop_pipe[0]);
	if (r->stop_pipe[1] != -1)
		close(r->stop_pipe[1]);
	pthread_mutex_destroy(&r->mu);
	free(r->channel);
	free(r);
}

void
relay_get_stats(struct relay *r, struct relay_stats *out)
{
	int i;

	out->messages_in = atomic_load_explicit(&r->messages_in, memory_order_relaxed);
	for (i = 0; i < RELAY_DROP__MAX; i++)
		out->dropped[i] = atomic_load_explicit(&r->dropped[i], memory_order_relaxed);
	out->reconnects = atomic_load_explicit(&r->reconnects, memory_order_relaxed);
	out->state = (enum relay_state)atomic_load(&r->state);
}

const char *
relay_state_name(enum relay_state s)
{
	switch (s) {
	case RELAY_UP:
		return "ok";
	case RELAY_DISABLED:
		return "disabled";
	default:
		return "down";
	}
}
