/*
 * clients: websocket connections of etl-wsd and the fan-out to them, all on
 * the lws loop thread.
 *
 * Messages live in one ring of cap slots indexed by a global sequence
 * number; each client keeps the sequence of the next message it has to look
 * at and a count of the messages matching its filters it has not been sent
 * yet. A message is serialised once (by the relay thread) and written to
 * every client from the same bytes; it is freed as soon as every client has
 * passed it. A client whose pending count passes WSD_MAX_BACKLOG, or that
 * the ring is about to wrap over, is a slow consumer: it is taken out of the
 * fan-out at once and closed with 4008 (killed after 2 s if it cannot even
 * take the close frame). So memory is bounded by cap messages in total, not
 * per client, and nobody else ever waits for a slow one.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>

#include "clients.h"
#include "conf.h"
#include "log.h"
#include "relay.h"
#include "tok.h"
#include "util.h"

#define CLIENTS_INBOUND_MAX 4096 /* bytes of one inbound message */
#define CLIENTS_RX_CHUNK 512 /* lws' per-connection receive buffer */
#define CLIENTS_MAX_TYPES 8 /* names in a ?types= filter */
#define CLIENTS_TXBUF 16384 /* bytes of frames coalesced into one send */
#define CLIENTS_KILL_S 2 /* s a closing client gets to take its close frame */
#define CLIENTS_MAX_ORIGINS 32
#define CLIENTS_SWEEP_MS 250 /* ms between token expiry checks */
#define CLIENTS_ARG_MAX 4200 /* bytes of one query argument (headers are <= 4096) */

const char *const clients_reject_names[CLIENTS_REJECT__MAX] = {
	[CLIENTS_REJECT_MISSING] = "missing_token",
	[CLIENTS_REJECT_INVALID] = "invalid_token",
	[CLIENTS_REJECT_EXPIRED] = "expired_token",
	[CLIENTS_REJECT_ORIGIN] = "origin",
	[CLIENTS_REJECT_FILTER] = "bad_filter",
};

const int64_t clients_lat_bounds_us[CLIENTS_LAT_BUCKETS] = { 100, 250, 500, 1000, 2500, 5000, 10000,
	25000, 50000, 100000, 250000, 500000, 1000000, 2500000 };

/* Per-connection state (lws' per-session data, zeroed by lws). */
struct client {
	struct client *prev, *next; /* fan-out list; in_list says if linked */
	struct lws *wsi;
	struct clients *cs;
	uint64_t id; /* for logs */
	uint64_t next_seq; /* next ring message to look at */
	uint32_t pending; /* matching messages from next_seq on, unsent */
	uint32_t rx_bytes; /* bytes of the inbound message so far */
	int in_list;
	int established;
	int close_code; /* nonzero: close with it at the next writeable */
	const char *close_reason;
	int64_t job_id; /* filter; -1: any */
	int ntypes; /* filter; 0: any */
	char types[CLIENTS_MAX_TYPES][RELAY_TYPE_MAX + 1];
	int64_t exp_ms; /* token expiry, wall-clock ms */
	char sub[65];
};

struct clients {
	struct relay *relay;
	char *secret;
	size_t secret_len;
	uint32_t max_backlog;
	size_t slice; /* messages taken from the relay per loop turn */
	char *origins_buf;
	const char *origins[CLIENTS_MAX_ORIGINS];
	int norigins;

	unsigned char *txbuf; /* LWS_PRE + CLIENTS_TXBUF, shared: one loop thread */
	struct relay_msg **ring;
	uint64_t cap, mask;
	uint64_t head; /* sequence of the next message */
	uint64_t tail; /* oldest message kept; [tail, head) are in the ring */

	struct client *list;
	struct lws_context *ctx;
	lws_sorted_usec_list_t sul_sweep; /* token expiry sweep */
	int sweeping; /* sul_sweep is scheduled */
	uint64_t next_id;
	unsigned nopen;
	struct clients_stats st;
};

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- list and closing ---------------------------------------------------- */

static void
list_add(struct clients *cs, struct client *c)
{
	c->prev = NULL;
	c->next = cs->list;
	if (cs->list)
		cs->list->prev = c;
	cs->list = c;
	c->in_list = 1;
	cs->st.clients++;
}

static void
list_del(struct clients *cs, struct client *c)
{
	if (!c->in_list)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		cs->list = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	c->in_list = 0;
	c->pending = 0;
	cs->st.clients--;
}

/*
 * Takes c out of the fan-out and asks lws for a writeable callback, where it
 * is closed with code. A client that cannot take even the close frame is
 * killed after CLIENTS_KILL_S. Safe to call more than once (first code wins).
 */
static void
client_close(struct client *c, int code, const char *reason)
{
	if (c->close_code)
		return;
	c->close_code = code;
	c->close_reason = reason;
	list_del(c->cs, c);
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, CLIENTS_KILL_S);
	lws_callback_on_writable(c->wsi);
}

static void sweep_schedule(struct clients *cs);

/*
 * Closes the clients whose token has expired (4001), every
 * CLIENTS_SWEEP_MS while any client is connected. One timer for all: lws
 * 4.1 keeps timers in a sorted list with O(n) inserts, so a timer per
 * client made 10,000 connections cost seconds of CPU.
 */
static void
sweep_expired(lws_sorted_usec_list_t *sul)
{
	struct clients *cs = lws_container_of(sul, struct clients, sul_sweep);
	struct client *c, *next;
	int64_t now = util_now_ms();

	cs->sweeping = 0;
	for (c = cs->list; c != NULL; c = next) {
		next = c->next;
		if (c->exp_ms > now)
			continue;
		log_info("client=%llu user=%s: token expired, closing", (unsigned long long)c->id,
		    c->sub);
		cs->st.expired_closes++;
		client_close(c, 4001, "token expired");
	}
	if (cs->list != NULL)
		sweep_schedule(cs);
}

static void
sweep_schedule(struct clients *cs)
{
	if (cs->sweeping || cs->ctx == NULL)
		return;
	cs->sweeping = 1;
	lws_sul_schedule(
	    cs->ctx, 0, &cs->sul_sweep, sweep_expired, CLIENTS_SWEEP_MS * LWS_US_PER_MS);
}

/* ---- filters --------------------------------------------------------------- */

static int
matches(const struct client *c, const struct relay_msg *m)
{
	int i;

	if (m->broadcast)
		return 1;
	if (c->job_id >= 0 && m->job_id != c->job_id)
		return 0;
	if (c->ntypes == 0)
		return 1;
	for (i = 0; i < c->ntypes; i++)
		if (strcmp(c->types[i], m->type) == 0)
			return 1;
	return 0;
}

/* Parses "a,b,c" into c->types. Returns 0 or -1 (empty name, too many, too long). */
static int
parse_types(struct client *c, const char *s)
{
	const char *p = s;
	size_t n;

	for (;;) {
		n = strcspn(p, ",");
		if (n == 0 || n > RELAY_TYPE_MAX || c->ntypes == CLIENTS_MAX_TYPES)
			return -1;
		memcpy(c->types[c->ntypes], p, n);
		c->types[c->ntypes][n] = '\0';
		c->ntypes++;
		if (p[n] == '\0')
			return 0;
		p += n + 1;
	}
}

/* ---- the handshake ----------------------------------------------------- */

static int
origin_allowed(struct clients *cs, struct lws *wsi)
{
	char origin[256];
	int i, n;

	if (cs->norigins == 0)
		return 1;
	/* No Origin: not a browser, so no cross-site risk; browsers always send it. */
	if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0)
		return 1;
	n = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);
	if (n <= 0)
		return 0;
	for (i = 0; i < cs->norigins; i++)
		if (strcmp(origin, cs->origins[i]) == 0)
			return 1;
	return 0;
}

/*
 * Checks origin, token and filters of a new connection. Returns -1 (and
 * the reason) when it must be closed with 1008, else 0 with c's filters,
 * user and expiry filled.
 */
static int
authorise(struct clients *cs, struct client *c, enum clients_reject *why)
{
	char arg[CLIENTS_ARG_MAX]; /* a longer token must read as invalid, not missing */
	const char *v;
	struct tok_claims cl;
	enum tok_rc rc;
	int64_t now_ms = util_now_ms();

	if (!origin_allowed(cs, c->wsi)) {
		*why = CLIENTS_REJECT_ORIGIN;
		return -1;
	}
	v = lws_get_urlarg_by_name(c->wsi, "token=", arg, (int)sizeof(arg));
	if (v == NULL || *v == '\0') {
		*why = CLIENTS_REJECT_MISSING;
		return -1;
	}
	rc = tok_verify(cs->secret, cs->secret_len, v, strlen(v), now_ms / 1000, &cl);
	if (rc != TOK_OK) {
		*why = rc == TOK_EXPIRED ? CLIENTS_REJECT_EXPIRED : CLIENTS_REJECT_INVALID;
		return -1;
	}
	c->job_id = -1;
	v = lws_get_urlarg_by_name(c->wsi, "job_id=", arg, (int)sizeof(arg));
	if (v != NULL && util_parse_i64(v, 0, INT64_MAX, &c->job_id) != 0) {
		*why = CLIENTS_REJECT_FILTER;
		return -1;
	}
	v = lws_get_urlarg_by_name(c->wsi, "types=", arg, (int)sizeof(arg));
	if (v != NULL && parse_types(c, v) != 0) {
		*why = CLIENTS_REJECT_FILTER;
		return -1;
	}
	memcpy(c->sub, cl.sub, sizeof(c->sub));
	c->exp_ms = cl.exp * 1000;
	return 0;
}

/* Accepts only "/" and "/ws" (a proxy may strip or keep the prefix). */
static int
path_ok(struct lws *wsi)
{
	char uri[64];

	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0)
		return 0;
	return strcmp(uri, "/") == 0 || strcmp(uri, "/ws") == 0 || strcmp(uri, "/ws/") == 0;
}

/* ---- fan-out ----------------------------------------------------------- */

static void
observe_latency(struct clients *cs, int64_t us)
{
	int i;

	for (i = 0; i < CLIENTS_LAT_BUCKETS && us > clients_lat_bounds_us[i]; i++)
		;
	cs->st.lat_counts[i]++;
	cs->st.lat_count++;
	cs->st.lat_sum_s += (double)us / 1e6;
}

/*
 * Puts m in the ring (takes ownership) and accounts it to every client.
 * Messages are kept in [tail, head) and only while some client still has
 * to look at them: what everyone has passed is freed at once (m itself when
 * nobody wants it), so the ring holds memory only for clients that lag.
 */
static void
push(struct clients *cs, struct relay_msg *m)
{
	struct relay_msg *old;
	struct client *c, *next;
	uint64_t seq = cs->head, min = seq + 1;

	m->seq = seq;
	old = cs->ring[seq & cs->mask]; /* non-NULL only if tail == seq - cap */
	for (c = cs->list; c != NULL; c = next) {
		next = c->next;
		if (old != NULL && c->next_seq <= old->seq) {
			/* The ring is about to wrap over what it has not read. */
			cs->st.slow_closes++;
			log_info(
			    "client=%llu: ring lag past %llu messages, closing (slow consumer)",
			    (unsigned long long)c->id, (unsigned long long)cs->cap);
			client_close(c, 4008, "slow consumer");
			continue;
		}
		if (!matches(c, m)) {
			if (c->next_seq == seq)
				c->next_seq = seq + 1; /* caught up: skip at once */
		} else if (++c->pending > cs->max_backlog) {
			cs->st.slow_closes++;
			log_info("client=%llu: %u messages behind, closing (slow consumer)",
			    (unsigned long long)c->id, c->pending);
			client_close(c, 4008, "slow consumer");
			continue;
		}
		if (c->next_seq < min)
			min = c->next_seq;
	}
	/* Everything below min is read by all: free it (old included). */
	for (; cs->tail < min && cs->tail < seq; cs->tail++) {
		relay_msg_free(cs->ring[cs->tail & cs->mask]);
		cs->ring[cs->tail & cs->mask] = NULL;
	}
	if (min > seq) {
		relay_msg_free(m); /* nobody wants it */
		cs->ring[seq & cs->mask] = NULL;
		cs->tail = seq + 1;
	} else
		cs->ring[seq & cs->mask] = m;
	cs->head = seq + 1;
}

/*
 * Writes what c has pending: as many whole frames as fit in the shared
 * transmit buffer, in one send (LWS_WRITE_RAW: the frames are ready-made).
 * A short send is kept by lws and flushed before anything else, so frames
 * never interleave with lws' own pings and close. Returns -1 to close.
 */
static int
write_pending(struct clients *cs, struct client *c)
{
	unsigned char *out = cs->txbuf + LWS_PRE;
	struct relay_msg *m;
	size_t off = 0;
	int64_t now = mono_us();

	while (c->pending > 0) {
		m = cs->ring[c->next_seq & cs->mask];
		if (!matches(c, m)) {
			c->next_seq++;
			continue;
		}
		if (off > 0 && off + m->frame_len > CLIENTS_TXBUF)
			break;
		if (m->frame_len > CLIENTS_TXBUF) {
			/* Larger than the buffer: alone, from its own bytes. */
			if (lws_write(c->wsi, m->frame, m->frame_len, LWS_WRITE_RAW) < 0)
				return -1;
			cs->st.writes++;
		} else {
			memcpy(out + off, m->frame, m->frame_len);
			off += m->frame_len;
		}
		observe_latency(cs, now - m->recv_us);
		cs->st.deliveries++;
		c->next_seq++;
		c->pending--;
		if (off == 0)
			break; /* one big frame per writeable */
	}
	if (off > 0) {
		if (lws_write(c->wsi, out, off, LWS_WRITE_RAW) < 0) {
			log_debug("client=%llu: write failed", (unsigned long long)c->id);
			return -1;
		}
		cs->st.writes++;
	}
	if (c->pending > 0)
		lws_callback_on_writable(c->wsi);
	else
		c->next_seq = cs->head; /* nothing left matches: skip the rest */
	return 0;
}

/*
 * Writes to every client with something pending, now, instead of asking
 * lws for a writeable callback first: that detour cost, per message, POLLOUT
 * set and cleared on every socket and one more poll() over all of them
 * (5-10% less CPU per send at 100 messages/s to 1,000 clients without it,
 * doc/wsd.md). Safe outside the writeable callback because every write is
 * whole frames in one lws_write(), and a short send is kept by lws and
 * flushed before any later write. A client
 * whose previous send is still partly buffered is left to its writeable
 * callback (its socket is full: it is lagging).
 */
static void
flush_all(struct clients *cs)
{
	struct client *c, *next;

	for (c = cs->list; c != NULL; c = next) {
		next = c->next;
		if (c->pending == 0)
			continue;
		if (lws_partial_buffered(c->wsi)) {
			lws_callback_on_writable(c->wsi);
			continue;
		}
		if (write_pending(cs, c) != 0)
			client_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "write failed");
	}
}

/*
 * Takes a slice of what the relay handed over: at most a quarter of the
 * backlog per loop turn, so that the clients that keep up are written to
 * between slices and a burst never looks like a slow consumer. The slice
 * is written at once (flush_all: up to CLIENTS_TXBUF bytes per client in
 * one send). The rest waits in the relay's bounded list; waking ourselves
 * comes back for it after this turn's writes.
 */
static void
take_from_relay(struct clients *cs, struct lws *wsi)
{
	struct relay_msg *m, *next;
	int more, any = 0;

	for (m = relay_take(cs->relay, cs->slice, &more); m != NULL; m = next) {
		next = m->next;
		m->next = NULL;
		push(cs, m);
		any = 1;
	}
	if (any)
		flush_all(cs);
	if (more)
		lws_cancel_service(lws_get_context(wsi));
}

/* ---- the protocol callback -------------------------------------------- */

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	const struct lws_protocols *proto = lws_get_protocol(wsi);
	struct clients *cs = proto ? proto->user : NULL;
	struct client *c = user;
	enum clients_reject why;

	(void)in;
	switch (reason) {
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (cs != NULL)
			take_from_relay(cs, wsi);
		return 0;

	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return path_ok(wsi) ? 0 : 1;

	case LWS_CALLBACK_ESTABLISHED:
		c->wsi = wsi;
		c->cs = cs;
		c->id = ++cs->next_id;
		c->established = 1;
		cs->nopen++;
		cs->st.connections++;
		if (authorise(cs, c, &why) != 0) {
			cs->st.rejects[why]++;
			log_info("client=%llu: refused (%s)", (unsigned long long)c->id,
			    clients_reject_names[why]);
			client_close(
			    c, 1008, why == CLIENTS_REJECT_FILTER ? "bad filter" : "unauthorised");
			return 0;
		}
		c->next_seq = cs->head;
		list_add(cs, c);
		cs->ctx = lws_get_context(wsi);
		sweep_schedule(cs);
		log_debug("client=%llu user=%s: connected", (unsigned long long)c->id, c->sub);
		return 0;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (c->close_code) {
			lws_close_reason(wsi, (enum lws_close_status)c->close_code,
			    (unsigned char *)(uintptr_t)c->close_reason, strlen(c->close_reason));
			return -1;
		}
		return write_pending(cs, c);

	case LWS_CALLBACK_RECEIVE:
		/* Clients have nothing to say; lws answers pings itself. */
		c->rx_bytes += (uint32_t)len;
		if (c->rx_bytes + lws_remaining_packet_payload(wsi) > CLIENTS_INBOUND_MAX) {
			cs->st.inbound_closes++;
			lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
			    (unsigned char *)(uintptr_t) "message too big", 15);
			return -1;
		}
		if (lws_is_final_fragment(wsi))
			c->rx_bytes = 0;
		return 0;

	case LWS_CALLBACK_CLOSED:
		if (c->established) {
			list_del(cs, c);
			cs->nopen--;
			c->established = 0;
			log_debug("client=%llu: closed", (unsigned long long)c->id);
		}
		return 0;

	default:
		return 0;
	}
}

/* ---- lifecycle ----------------------------------------------------------- */

static int
parse_origins(struct clients *cs, const char *list, char *err, size_t errlen)
{
	char *p, *tok, *save = NULL;

	if (list == NULL || *list == '\0')
		return 0;
	cs->origins_buf = xstrdup(list);
	for (p = cs->origins_buf; (tok = strtok_r(p, ", ", &save)) != NULL; p = NULL) {
		if (cs->norigins == CLIENTS_MAX_ORIGINS) {
			snprintf(err, errlen, "WSD_ALLOWED_ORIGINS: at most %d origins",
			    CLIENTS_MAX_ORIGINS);
			return -1;
		}
		cs->origins[cs->norigins++] = tok;
	}
	return 0;
}

struct clients *
clients_new(const struct conf *cf, char *err, size_t errlen)
{
	struct clients *cs;
	uint64_t want;

	if (cf->secret == NULL || strlen(cf->secret) < TOK_MIN_SECRET) {
		snprintf(err, errlen, "ETL_SECRET: required, at least %d bytes", TOK_MIN_SECRET);
		return NULL;
	}
	if (cf->wsd_max_backlog < 1) {
		snprintf(err, errlen, "WSD_MAX_BACKLOG: at least 1");
		return NULL;
	}
	cs = xcalloc(1, sizeof(*cs));
	cs->secret = xstrdup(cf->secret);
	cs->secret_len = strlen(cf->secret);
	cs->max_backlog = (uint32_t)cf->wsd_max_backlog;
	cs->slice = cs->max_backlog / 4 > 0 ? cs->max_backlog / 4 : 1;
	if (parse_origins(cs, cf->wsd_allowed_origins, err, errlen) != 0) {
		clients_free(cs);
		return NULL;
	}
	/* Twice the backlog, so that filtered-out messages a lagging client has
	 * not skipped yet do not cull it long before its backlog is full. */
	want = (uint64_t)cs->max_backlog * 2;
	for (cs->cap = 64; cs->cap < want; cs->cap <<= 1)
		;
	cs->mask = cs->cap - 1;
	cs->ring = xcalloc(cs->cap, sizeof(*cs->ring));
	cs->txbuf = xmalloc(LWS_PRE + CLIENTS_TXBUF);
	return cs;
}

void
clients_free(struct clients *cs)
{
	uint64_t i;

	if (cs == NULL)
		return;
	if (cs->ring != NULL)
		for (i = 0; i < cs->cap; i++)
			relay_msg_free(cs->ring[i]);
	free(cs->ring);
	free(cs->txbuf);
	if (cs->secret != NULL)
		explicit_bzero(cs->secret, cs->secret_len);
	free(cs->secret);
	free(cs->origins_buf);
	free(cs);
}

void
clients_set_relay(struct clients *cs, struct relay *r)
{
	cs->relay = r;
}

void
clients_protocol(struct clients *cs, struct lws_protocols *out)
{
	memset(out, 0, sizeof(*out));
	out->name = "etl-events";
	out->callback = callback;
	out->per_session_data_size = sizeof(struct client);
	out->rx_buffer_size = CLIENTS_RX_CHUNK;
	out->tx_packet_size = RELAY_FRAME_MAX; /* a send is never split by lws */
	out->user = cs;
}

void
clients_close_all(struct clients *cs, int code, const char *reason)
{
	struct client *c, *next;

	if (cs->sweeping) {
		lws_sul_cancel(&cs->sul_sweep);
		cs->sweeping = 0;
	}
	for (c = cs->list; c != NULL; c = next) {
		next = c->next;
		client_close(c, code, reason);
	}
}

unsigned
clients_open(const struct clients *cs)
{
	return cs->nopen;
}

void
clients_get_stats(const struct clients *cs, struct clients_stats *out)
{
	*out = cs->st;
}
