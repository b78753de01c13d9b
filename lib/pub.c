/*
 * pub: the event publisher. hiredis' async API does the protocol; our
 * caller's poll loop does the waiting (the ev hooks below only record which
 * directions hiredis wants). Publishing never blocks: while Redis is down,
 * connecting, or too far behind (output buffer or unanswered commands past
 * their bounds), an event is dropped and counted. Redis is a notification
 * bus; SQLite already holds the truth (DESIGN.md).
 */
#include "pub.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "util.h"

#define PUB_MAX_OBUF (4u << 20) /* bytes waiting to be written */
#define PUB_MAX_INFLIGHT 100000 /* commands sent, reply not read yet */
#define PUB_BACKOFF_MIN 100 /* ms */
#define PUB_BACKOFF_MAX 5000 /* ms */

struct pub {
	int enabled;
	struct pub_url url;
	char *channel;
	int timeout_ms;
	enum pub_state state;
	redisAsyncContext *ac;
	struct pub_want want;
	int64_t connect_started; /* mono ms */
	int64_t retry_at; /* mono ms; 0: now */
	int backoff; /* ms */
	int64_t inflight; /* commands sent (AUTH, SELECT, PUBLISH), no reply yet */
	int64_t unflushed; /* PUBLISHes queued since the buffer was last empty */
	int64_t published, dropped;
};

/* ---- hiredis event hooks: remember what it wants, the loop polls ---- */

static void
ev_add_read(void *d)
{
	((struct pub_want *)d)->read = 1;
}
static void
ev_del_read(void *d)
{
	((struct pub_want *)d)->read = 0;
}
static void
ev_add_write(void *d)
{
	((struct pub_want *)d)->write = 1;
}
static void
ev_del_write(void *d)
{
	((struct pub_want *)d)->write = 0;
}
static void
ev_cleanup(void *d)
{
	struct pub_want *w = d;
	w->read = w->write = 0;
}

void
pub_attach_poll(struct redisAsyncContext *ac, struct pub_want *want)
{
	ac->ev.data = want;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
}

static void
schedule_retry(struct pub *p)
{
	unsigned char r;

	p->state = PUB_DOWN;
	if (util_random(&r, 1) == -1)
		r = 128;
	/* Jitter of +-25% so many processes do not reconnect in step. */
	p->retry_at = util_mono_ms() + p->backoff * (3 * 256 + 2 * r) / (4 * 256);
	p->backoff = p->backoff * 2 > PUB_BACKOFF_MAX ? PUB_BACKOFF_MAX : p->backoff * 2;
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct pub *p = ac->data;

	if (p == NULL)
		return;
	if (status != REDIS_OK) {
		log_warnx("pub: cannot connect to Redis: %s", ac->errstr);
		p->ac = NULL; /* hiredis frees it */
		p->dropped += p->unflushed;
		p->unflushed = 0;
		p->inflight = 0;
		schedule_retry(p);
		return;
	}
	log_info("pub: connected to Redis");
	p->state = PUB_UP;
	/* the back-off starts again at its minimum only once Redis answers
	 * (on_reply): one that takes connections and never answers would
	 * otherwise be tried again, and waited for, every 100 ms */
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct pub *p = ac->data;

	if (p == NULL)
		return;
	if (status != REDIS_OK)
		log_warnx("pub: Redis connection lost: %s", ac->errstr);
	p->ac = NULL;
	p->dropped += p->unflushed;
	p->unflushed = 0;
	p->inflight = 0;
	schedule_retry(p);
}

static void
on_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct pub *p = ac->data;
	redisReply *reply = r;

	(void)priv;
	if (p == NULL)
		return;
	if (p->inflight > 0)
		p->inflight--;
	p->backoff = PUB_BACKOFF_MIN;
	if (reply && reply->type == REDIS_REPLY_ERROR)
		log_warnx("pub: Redis error: %.*s", (int)(reply->len > 200 ? 200 : reply->len),
		    reply->str);
}

/* Queues a command on the connection, counted in flight until its answer
 * (on_reply): every command, so that pub_sync waits for them all. Returns
 * 0, or -1 when hiredis refused it. */
static int
command(struct pub *p, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = redisvAsyncCommand(p->ac, on_reply, NULL, fmt, ap);
	va_end(ap);
	if (rc != REDIS_OK)
		return -1;
	p->inflight++;
	return 0;
}

/* Frees the connection ourselves (timeouts): hiredis calls no disconnect
 * callback for a context that never connected, so do its work here. */
static void
drop_conn(struct pub *p)
{
	if (p->ac) {
		p->ac->data = NULL;
		redisAsyncFree(p->ac);
		p->ac = NULL;
	}
	p->want.read = p->want.write = 0;
	p->dropped += p->unflushed;
	p->unflushed = 0;
	p->inflight = 0;
	schedule_retry(p);
}

static void
start_connect(struct pub *p)
{
	redisAsyncContext *ac;

	if (p->url.path[0])
		ac = redisAsyncConnectUnix(p->url.path);
	else
		ac = redisAsyncConnect(p->url.host, p->url.port);
	if (ac == NULL) {
		schedule_retry(p);
		return;
	}
	if (ac->err) {
		log_warnx("pub: cannot connect to Redis: %s", ac->errstr);
		redisAsyncFree(ac);
		schedule_retry(p);
		return;
	}
	ac->data = p;
	pub_attach_poll(ac, &p->want);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	p->ac = ac;
	p->state = PUB_CONNECTING;
	p->connect_started = util_mono_ms();
	/* Queued now, sent first once connected. A Redis that works answers
	 * the PING at once, and its answer resets the back-off (on_reply) even
	 * when nothing is published for a while. */
	if (p->url.password[0])
		(void)command(p, "AUTH %s", p->url.password);
	if (p->url.db)
		(void)command(p, "SELECT %d", p->url.db);
	(void)command(p, "PING");
	/* Ask to be told when the socket is writable: that is when a
	 * non-blocking connect completes. */
	p->want.write = 1;
}

int
pub_parse_url(const char *url, struct pub_url *u)
{
	const char *s, *at, *colon, *slash;
	char num[16];

	memset(u, 0, sizeof(*u));
	u->port = 6379;
	if (strncmp(url, "unix://", 7) == 0) {
		s = url + 7;
		const char *q = strchr(s, '?');
		size_t n = q ? (size_t)(q - s) : strlen(s);
		if (n == 0 || n >= sizeof(u->path) || s[0] != '/')
			return -1;
		memcpy(u->path, s, n);
		if (q) {
			int64_t db;
			if (strncmp(q, "?db=", 4) != 0 || util_parse_i64(q + 4, 0, 255, &db) == -1)
				return -1;
			u->db = (int)db;
		}
		return 0;
	}
	if (strncmp(url, "redis://", 8) != 0)
		return -1;
	s = url + 8;
	slash = strchr(s, '/');
	at = strchr(s, '@');
	if (at && (!slash || at < slash)) {
		const char *pw = memchr(s, ':', (size_t)(at - s));
		pw = pw ? pw + 1 : s;
		if ((size_t)(at - pw) >= sizeof(u->password))
			return -1;
		memcpy(u->password, pw, (size_t)(at - pw));
		s = at + 1;
	}
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	colon = memchr(s, ':', hl);
	size_t hostlen = colon ? (size_t)(colon - s) : hl;
	if (hostlen == 0 || hostlen >= sizeof(u->host))
		return -1;
	memcpy(u->host, s, hostlen);
	if (colon) {
		int64_t port;
		size_t pl = hl - hostlen - 1;
		if (pl == 0 || pl >= sizeof(num))
			return -1;
		memcpy(num, colon + 1, pl);
		num[pl] = '\0';
		if (util_parse_i64(num, 1, 65535, &port) == -1)
			return -1;
		u->port = (int)port;
	}
	if (slash && slash[1]) {
		int64_t db;
		if (util_parse_i64(slash + 1, 0, 255, &db) == -1)
			return -1;
		u->db = (int)db;
	}
	return 0;
}

struct pub *
pub_open(const struct conf *c, char *err, size_t errlen)
{
	struct pub *p = xcalloc(1, sizeof(*p));

	/* A peer that goes away must be an error return, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	p->enabled = c->redis_enabled;
	p->state = PUB_DISABLED;
	p->backoff = PUB_BACKOFF_MIN;
	p->timeout_ms = (int)(c->redis_socket_timeout * 1000);
	if (!p->enabled)
		return p;
	if (pub_parse_url(c->redis_url, &p->url) == -1) {
		snprintf(err, errlen,
		    "REDIS_URL: invalid value (expected redis://host[:port][/db] or unix:///path)");
		free(p);
		return NULL;
	}
	p->channel = xasprintf("%s:ws", c->redis_channel_prefix);
	p->state = PUB_DOWN;
	start_connect(p);
	return p;
}

void
pub_close(struct pub *p)
{
	if (p == NULL)
		return;
	if (p->ac) {
		p->ac->data = NULL;
		redisAsyncFree(p->ac);
	}
	free(p->channel);
	free(p);
}

static size_t
obuf_len(const struct pub *p)
{
	return p->ac ? sdslen(p->ac->c.obuf) : 0;
}

int
pub_publish(struct pub *p, const char *msg)
{
	if (!p->enabled)
		return 0;
	/* While connecting, hiredis buffers the command and sends it once the
	 * connection is up (a failed connect counts it as dropped). */
	if ((p->state != PUB_UP && p->state != PUB_CONNECTING) || p->ac == NULL) {
		if (p->state == PUB_DOWN && util_mono_ms() >= p->retry_at && p->ac == NULL)
			start_connect(p);
		p->dropped++;
		return -1;
	}
	if (obuf_len(p) > PUB_MAX_OBUF || p->inflight > PUB_MAX_INFLIGHT) {
		p->dropped++;
		return -1;
	}
	if (command(p, "PUBLISH %s %s", p->channel, msg) != 0) {
		p->dropped++;
		return -1;
	}
	p->unflushed++;
	p->published++;
	return 0;
}

int
pub_pollfd(struct pub *p, struct pollfd *pfd)
{
	if (p->ac == NULL)
		return 0;
	pfd->fd = p->ac->c.fd;
	pfd->events = (short)((p->want.read ? POLLIN : 0) | (p->want.write ? POLLOUT : 0));
	pfd->revents = 0;
	return 1;
}

void
pub_handle(struct pub *p, short revents)
{
	if (p->ac && (revents & (POLLIN | POLLERR | POLLHUP)))
		redisAsyncHandleRead(p->ac); /* may disconnect and free ac */
	if (p->ac && (revents & (POLLOUT | POLLERR)))
		redisAsyncHandleWrite(p->ac);
	if (p->ac && obuf_len(p) == 0)
		p->unflushed = 0;
}

int
pub_tick(struct pub *p)
{
	int64_t now = util_mono_ms();

	if (!p->enabled)
		return -1;
	if (p->state == PUB_CONNECTING && p->ac && now - p->connect_started > p->timeout_ms) {
		struct pollfd pfd;
		/* A connect that completed while nobody polled (an etl-api
		 * process idle since it started) is not a timeout. */
		if (pub_pollfd(p, &pfd) && poll(&pfd, 1, 0) > 0) {
			pub_handle(p, pfd.revents);
			if (p->state != PUB_CONNECTING || p->ac == NULL)
				return pub_tick(p);
		}
		log_warnx("pub: connecting to Redis timed out");
		drop_conn(p);
		return pub_tick(p);
	}
	if (p->state == PUB_DOWN && p->ac == NULL) {
		if (now >= p->retry_at)
			start_connect(p);
		else
			return (int)(p->retry_at - now);
	}
	if (p->state == PUB_CONNECTING)
		return 50;
	return 1000;
}

/* Waits at most timeout_ms for what is queued to leave and, when replies
 * is set, for Redis to answer every command sent. On a timeout the
 * connection is dropped (reconnected later): a Redis that neither takes
 * nor answers must not make every later caller wait as long. */
static int
wait_out(struct pub *p, int timeout_ms, int replies)
{
	int64_t deadline = util_mono_ms() + timeout_ms;

	if (!p->enabled)
		return 0;
	/* anything to wait for? (a connection lost meanwhile loses it) */
	int owed =
	    p->ac != NULL && (obuf_len(p) > 0 || p->unflushed > 0 || (replies && p->inflight > 0));
	for (;;) {
		struct pollfd pfd;
		int64_t left = deadline - util_mono_ms();

		pub_tick(p);
		if (p->ac == NULL)
			return owed ? -1 : 0;
		if (p->state == PUB_UP && obuf_len(p) == 0) {
			p->unflushed = 0;
			/* Read replies already there, without waiting. */
			if (pub_pollfd(p, &pfd) && poll(&pfd, 1, 0) > 0)
				pub_handle(p, pfd.revents);
			if (!replies)
				return 0; /* left: a close now does not unsend it */
			if (p->ac == NULL)
				return owed ? -1 : 0;
			if (p->inflight == 0)
				return 0;
		}
		if (left <= 0)
			break;
		if (!pub_pollfd(p, &pfd))
			continue;
		if (p->state == PUB_UP && obuf_len(p) > 0)
			pfd.events |= POLLOUT;
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno != EINTR)
			break;
		if (r > 0)
			pub_handle(p, pfd.revents);
	}
	/* Redis is not taking our bytes, or not answering: give up on them,
	 * reconnect later. */
	if (p->unflushed)
		log_warnx("pub: Redis did not take %lld event(s) within %d ms: dropped",
		    (long long)p->unflushed, timeout_ms);
	else
		log_warnx("pub: Redis did not answer %lld command(s) within %d ms",
		    (long long)p->inflight, timeout_ms);
	drop_conn(p);
	return -1;
}

int
pub_flush(struct pub *p, int timeout_ms)
{
	return wait_out(p, timeout_ms, 0);
}

int
pub_sync(struct pub *p, int timeout_ms)
{
	return wait_out(p, timeout_ms, 1);
}

enum pub_state
pub_state(const struct pub *p)
{
	return p->state;
}

const char *
pub_state_name(const struct pub *p)
{
	switch (p->state) {
	case PUB_DISABLED:
		return "disabled";
	case PUB_UP:
		return "ok";
	default:
		return "down";
	}
}

int64_t
pub_published(const struct pub *p)
{
	return p->published;
}

int64_t
pub_dropped(const struct pub *p)
{
	return p->dropped;
}
