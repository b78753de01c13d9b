/*
 * pub: publishes events to the Redis channel "<prefix>:ws" without ever
 * blocking the caller's work. Built on the hiredis async API driven by the
 * caller's own poll loop (pub_pollfd / pub_handle), with a bounded outgoing
 * buffer: past it, or while Redis is down, an event is dropped and counted.
 * Reconnects with exponential backoff (100 ms .. 5 s). With REDIS_ENABLED
 * false, pub_open returns a publisher that drops nothing and sends nothing.
 *
 * Short-lived callers (etl-api) publish then call pub_flush(), which waits
 * at most the given time for the bytes to leave, or pub_sync(), which also
 * waits for Redis to have published them.
 */
#ifndef ETL_PUB_H
#define ETL_PUB_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

struct conf;
struct pub;

/* Creates a publisher from conf (REDIS_ENABLED, REDIS_URL, prefix, timeout)
 * and starts connecting. Returns NULL only for an unusable REDIS_URL (err). */
struct pub *pub_open(const struct conf *c, char *err, size_t errlen);
void pub_close(struct pub *p);

/* Queues msg (a complete event, see evt.h) for the channel. Returns 0 when
 * queued, -1 when dropped (disabled is not a drop: returns 0 and counts nothing). */
int pub_publish(struct pub *p, const char *msg);

/* Fills pfd with the Redis socket and the events it waits for; returns 0
 * when there is no socket to watch (down or disabled). */
int pub_pollfd(struct pub *p, struct pollfd *pfd);
/* Call with the revents of the fd pub_pollfd gave. */
void pub_handle(struct pub *p, short revents);
/* Call from the loop's timer: reconnects when the backoff has passed.
 * Returns ms until it wants to be called again (-1: not needed). */
int pub_tick(struct pub *p);

/* Sends what is queued, waiting at most timeout_ms. Returns 0 when all left,
 * -1 otherwise (the rest is dropped and counted). */
int pub_flush(struct pub *p, int timeout_ms);
/* The same, and waits (within the same timeout_ms) for Redis to answer
 * every command sent: after a 0, Redis has published every event queued
 * so far, so a PUBLISH another client sends from now on comes after them
 * on the channel. -1 as pub_flush, or when the answers did not come (the
 * connection is then dropped: reconnected later). */
int pub_sync(struct pub *p, int timeout_ms);

enum pub_state { PUB_DISABLED, PUB_CONNECTING, PUB_UP, PUB_DOWN };
enum pub_state pub_state(const struct pub *p);
/* "disabled", "ok", "down" (connecting counts as down). */
const char *pub_state_name(const struct pub *p);
int64_t pub_published(const struct pub *p);
int64_t pub_dropped(const struct pub *p);

/*
 * Parses REDIS_URL: redis://[:password@]host[:port][/db] or
 * unix:///path[?db=N]. Fills the fields (host or path; port 6379 and db 0 by
 * default). Returns 0 or -1. Exported for the tests and for etl-wsd.
 */
struct pub_url {
	char host[256];
	int port;
	char path[256]; /* unix socket, empty for TCP */
	char password[256];
	int db;
};
int pub_parse_url(const char *url, struct pub_url *u);

/*
 * A hiredis async context driven by the caller's own poll loop (the
 * publisher here, etl-worker's subscriber): the hooks pub_attach_poll
 * installs only note what hiredis wants, and the loop polls for that.
 */
struct pub_want {
	int read, write;
};
struct redisAsyncContext;
void pub_attach_poll(struct redisAsyncContext *ac, struct pub_want *want);

#endif
