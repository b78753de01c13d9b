/*
 * remote: wake-ups through Redis, for an etl-api that runs on another host
 * than this worker (its wake datagrams cannot reach us). With Redis
 * enabled the worker also SUBSCRIBEs to "<prefix>:ws" on its own hiredis
 * async connection, driven by the poll loop like the publisher, and treats
 * a `job_status` event with status "pending" (an enqueue) as a wake-up to
 * acquire, and a `cancel` or `job_cancel` event as a wake-up to look for
 * cancel requests. Everything else on the channel is ignored; events this
 * process published itself are skipped by source_instance. Losing the
 * connection loses nothing: the fallback poll still runs, and the
 * subscriber reconnects with backoff (100 ms .. 5 s).
 *
 * It also keeps the order of a job's events: the ids of the jobs whose
 * `pending` it has seen (at most REMOTE_SEEN_MAX, of the last grace
 * period) make the gate behind which jobq_acquire_gated holds announced
 * jobs not seen yet. Seen on the channel means published, so the `running`
 * this worker publishes next comes after it. A job whose event does not
 * come (the API's link to Redis was down, or it died between its commit and
 * its publish) starts once it is older than REDIS_SOCKET_TIMEOUT plus
 * REMOTE_GRACE_SLACK: longer than an API tries to publish, given the same
 * REDIS_SOCKET_TIMEOUT (or a shorter one for the API), the clock of the
 * one host that has the database, and under REMOTE_GRACE_SLACK from the
 * API's insert to its answer (its publish deadline starts after that).
 * While we are not subscribed (starting, or reconnecting) every young
 * announced job waits; but the gate is open while our own publisher is
 * down too: our events are dropped, there is no order to keep.
 * Runs in the loop of etl-worker only.
 */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "jobq.h"
#include "log.h"
#include "pub.h"
#include "worker.h"

#define REMOTE_BACKOFF_MIN 100 /* ms */
#define REMOTE_BACKOFF_MAX 5000
#define REMOTE_MAX_MSG 65536 /* bytes of a message we look into */
#define REMOTE_SEEN_MAX 4096 /* announced jobs remembered */
#define REMOTE_GRACE_SLACK 1000 /* ms past REDIS_SOCKET_TIMEOUT: see above */

struct seen {
	int64_t id;
	int64_t at; /* ms (mono) */
};

struct remote {
	struct pub_url url;
	char *channel;
	int timeout_ms;
	redisAsyncContext *ac;
	struct pub_want want;
	int up;
	int64_t connect_started; /* ms (mono) */
	int64_t retry_at; /* ms (mono) */
	int backoff; /* ms */
	struct worker *w;
	int subscribed;
	int64_t subscribed_at; /* ms since the epoch */
	struct seen seen[REMOTE_SEEN_MAX]; /* a ring, the oldest at seen_first */
	size_t seen_first, nseen;
	struct buf seen_json; /* remote_gate's text of them */
	char young_since[UTIL_ISO_LEN];
};

static void
seen_add(struct remote *r, int64_t id)
{
	if (r->nseen == REMOTE_SEEN_MAX) { /* full: forget the oldest */
		r->seen_first = (r->seen_first + 1) % REMOTE_SEEN_MAX;
		r->nseen--;
	}
	r->seen[(r->seen_first + r->nseen) % REMOTE_SEEN_MAX] = (struct seen){ id, util_mono_ms() };
	r->nseen++;
}

static void
schedule_retry(struct remote *r)
{
	r->up = 0;
	r->subscribed = 0;
	r->retry_at = util_mono_ms() + r->backoff;
	r->backoff = r->backoff * 2 > REMOTE_BACKOFF_MAX ? REMOTE_BACKOFF_MAX : r->backoff * 2;
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct remote *r = ac->data;

	if (r == NULL)
		return;
	if (status != REDIS_OK) {
		log_debug("remote: cannot connect to Redis: %s", ac->errstr);
		r->ac = NULL; /* hiredis frees it */
		schedule_retry(r);
		return;
	}
	log_debug("remote: connected to Redis");
	r->up = 1;
	r->backoff = REMOTE_BACKOFF_MIN;
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct remote *r = ac->data;

	if (r == NULL)
		return;
	if (status != REDIS_OK)
		log_debug("remote: Redis connection lost: %s", ac->errstr);
	r->ac = NULL;
	schedule_retry(r);
}

/* What a message on the channel asks of us. */
static void
on_event(struct remote *r, const char *msg, size_t len)
{
	struct json_object *o, *v, *pl, *st;
	const char *type, *src;

	if (len > REMOTE_MAX_MSG)
		return;
	if ((o = json_tokener_parse(msg)) == NULL)
		return;
	if (!json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "type", &v) || !json_object_is_type(v, json_type_string))
		goto out;
	type = json_object_get_string(v);
	if (json_object_object_get_ex(o, "source_instance", &v) &&
	    json_object_is_type(v, json_type_string)) {
		src = json_object_get_string(v);
		if (strcmp(src, util_instance_id()) == 0)
			goto out; /* our own event */
	}
	if (strcmp(type, "job_status") == 0) {
		if (json_object_object_get_ex(o, "payload", &pl) &&
		    json_object_object_get_ex(pl, "status", &st) &&
		    json_object_is_type(st, json_type_string) &&
		    strcmp(json_object_get_string(st), "pending") == 0) {
			r->w->want_acquire = 1;
			if (json_object_object_get_ex(pl, "job_id", &v) &&
			    json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0)
				seen_add(r, json_object_get_int64(v));
		}
	} else if (strcmp(type, "cancel") == 0 || strcmp(type, "job_cancel") == 0) {
		r->w->want_cancels = 1;
	}
out:
	json_object_put(o);
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct remote *r = ac->data;
	redisReply *rep = reply;

	(void)priv;
	if (r == NULL || rep == NULL)
		return;
	if (rep->type == REDIS_REPLY_ERROR) {
		log_warnx(
		    "remote: Redis error: %.*s", (int)(rep->len > 200 ? 200 : rep->len), rep->str);
		return;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
	    rep->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(rep->element[0]->str, "subscribe") == 0) {
		log_info("remote: subscribed to %s for wake-ups", r->channel);
		r->subscribed = 1;
		r->subscribed_at = util_now_ms();
		/* Anything enqueued while we were not listening: look now. */
		r->w->want_acquire = r->w->want_cancels = 1;
	} else if (strcmp(rep->element[0]->str, "message") == 0 &&
	           rep->element[2]->type == REDIS_REPLY_STRING) {
		on_event(r, rep->element[2]->str, rep->element[2]->len);
	}
}

/* Frees the context ourselves (connect timeout): hiredis calls no
 * disconnect callback for a context that never connected. */
static void
drop_conn(struct remote *r)
{
	if (r->ac) {
		r->ac->data = NULL;
		redisAsyncFree(r->ac);
		r->ac = NULL;
	}
	r->want.read = r->want.write = 0;
	schedule_retry(r);
}

static void
start_connect(struct remote *r)
{
	redisAsyncContext *ac;

	if (r->url.path[0])
		ac = redisAsyncConnectUnix(r->url.path);
	else
		ac = redisAsyncConnect(r->url.host, r->url.port);
	if (ac == NULL) {
		schedule_retry(r);
		return;
	}
	if (ac->err) {
		log_debug("remote: cannot connect to Redis: %s", ac->errstr);
		redisAsyncFree(ac);
		schedule_retry(r);
		return;
	}
	/* A subscription whose peer vanished without a FIN (a host or a NAT
	 * gone) would look alive forever, and hold every announced job its
	 * grace: TCP keepalive ends it in about 30 s (hiredis: idle 15 s) */
	if (r->url.path[0] == '\0' && redisEnableKeepAlive(&ac->c) != REDIS_OK)
		log_debug("remote: keepalive: %s", ac->c.errstr);
	ac->data = r;
	pub_attach_poll(ac, &r->want);
	if (redisAsyncSetConnectCallback(ac, on_connect) != REDIS_OK ||
	    redisAsyncSetDisconnectCallback(ac, on_disconnect) != REDIS_OK) {
		redisAsyncFree(ac);
		schedule_retry(r);
		return;
	}
	r->ac = ac;
	r->connect_started = util_mono_ms();
	/* Queued now, sent once connected. */
	if ((r->url.password[0] &&
	        redisAsyncCommand(ac, on_reply, NULL, "AUTH %s", r->url.password) != REDIS_OK) ||
	    redisAsyncCommand(ac, on_reply, NULL, "SUBSCRIBE %s", r->channel) != REDIS_OK) {
		drop_conn(r);
		return;
	}
	r->want.write = 1; /* a non-blocking connect completes as writable */
}

struct remote *
remote_open(struct worker *w)
{
	struct remote *r;

	if (!w->conf.redis_enabled)
		return NULL;
	r = xcalloc(1, sizeof(*r));
	if (pub_parse_url(w->conf.redis_url, &r->url) == -1) {
		free(r);
		return NULL; /* pub_open has said why */
	}
	r->w = w;
	r->channel = xasprintf("%s:ws", w->conf.redis_channel_prefix);
	r->timeout_ms = (int)(w->conf.redis_socket_timeout * 1000);
	r->backoff = REMOTE_BACKOFF_MIN;
	start_connect(r);
	return r;
}

void
remote_close(struct remote *r)
{
	if (r == NULL)
		return;
	if (r->ac) {
		r->ac->data = NULL;
		redisAsyncFree(r->ac);
	}
	free(r->channel);
	buf_free(&r->seen_json);
	free(r);
}

int
remote_gating(const struct remote *r)
{
	enum pub_state ps;

	if (r == NULL)
		return 0;
	ps = pub_state(r->w->pub);
	/* not listening, and our own events are dropped: no order to keep */
	return r->subscribed || ps == PUB_UP || ps == PUB_CONNECTING;
}

int
remote_gate(struct remote *r, struct jobq_gate *g)
{
	int64_t now, since;

	if (!remote_gating(r))
		return 0;
	now = util_mono_ms();
	since = util_now_ms() - remote_grace_ms(r);
	/* Not listening (yet), we would not see an event: every young
	 * announced job waits. Listening, a job enqueued before we were may
	 * have had its event already: it goes. */
	if (r->subscribed && since < r->subscribed_at)
		since = r->subscribed_at;
	while (r->nseen > 0 && now - r->seen[r->seen_first].at > remote_grace_ms(r)) {
		r->seen_first = (r->seen_first + 1) % REMOTE_SEEN_MAX;
		r->nseen--;
	}
	buf_reset(&r->seen_json);
	buf_putc(&r->seen_json, '[');
	for (size_t i = 0; i < r->nseen; i++) {
		if (i > 0)
			buf_putc(&r->seen_json, ',');
		buf_put_i64(&r->seen_json, r->seen[(r->seen_first + i) % REMOTE_SEEN_MAX].id);
	}
	buf_putc(&r->seen_json, ']');
	util_iso8601(since, r->young_since);
	g->seen = r->seen_json.data;
	g->young_since = r->young_since;
	return 1;
}

int64_t
remote_grace_ms(const struct remote *r)
{
	return (int64_t)r->timeout_ms + REMOTE_GRACE_SLACK;
}

int
remote_saw(const struct remote *r, int64_t id)
{
	for (size_t i = 0; r != NULL && i < r->nseen; i++)
		if (r->seen[(r->seen_first + i) % REMOTE_SEEN_MAX].id == id)
			return 1;
	return 0;
}

int
remote_pollfd(struct remote *r, struct pollfd *pfd)
{
	if (r == NULL || r->ac == NULL)
		return 0;
	pfd->fd = r->ac->c.fd;
	pfd->events = (short)((r->want.read ? POLLIN : 0) | (r->want.write ? POLLOUT : 0));
	pfd->revents = 0;
	return 1;
}

void
remote_handle(struct remote *r, short revents)
{
	if (r->ac && (revents & (POLLIN | POLLERR | POLLHUP)))
		redisAsyncHandleRead(r->ac); /* may disconnect and free ac */
	if (r->ac && (revents & (POLLOUT | POLLERR)))
		redisAsyncHandleWrite(r->ac);
}

int64_t
remote_tick(struct remote *r)
{
	int64_t now;

	if (r == NULL)
		return -1;
	now = util_mono_ms();
	if (r->ac && !r->up && now - r->connect_started > r->timeout_ms) {
		log_debug("remote: connecting to Redis timed out");
		drop_conn(r);
	}
	if (r->ac == NULL) {
		if (now < r->retry_at)
			return r->retry_at - now;
		start_connect(r);
	}
	if (r->ac == NULL) /* failed at once: the next attempt */
		return r->retry_at > now ? r->retry_at - now : 0;
	if (r->up)
		return -1;
	/* Connecting: wake up for its timeout. */
	return r->connect_started + r->timeout_ms - now > 0
	           ? r->connect_started + r->timeout_ms - now
	           : 0;
}
