/*
 * health: GET /health and GET /metrics on the etl-wsd port, so that a load
 * balancer and Prometheus can reach the same listener the websockets use.
 * Bodies are built whole (a few KB), then written in one HTTP_WRITEABLE.
 */
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "clients.h"
#include "health.h"
#include "log.h"
#include "relay.h"
#include "util.h"

#define HEALTH_HDR_MAX 512 /* bytes of response headers */

/* Per-request state: the body, after LWS_PRE bytes of headroom. */
struct hsess {
	char *body;
	size_t len;
};

int
health_render(struct health *h, struct buf *b)
{
	struct relay_stats rs;
	struct clients_stats cst;
	int64_t up_s = (util_mono_ms() - h->start_ms) / 1000;
	int down;

	relay_get_stats(h->relay, &rs);
	clients_get_stats(h->clients, &cst);
	down = rs.state == RELAY_DOWN;
	buf_printf(b,
	    "{\"status\":\"%s\",\"redis\":\"%s\",\"clients\":%llu,\"uptime_s\":%lld,"
	    "\"version\":\"%s\"}\n",
	    down ? "degraded" : "ok", relay_state_name(rs.state), (unsigned long long)cst.clients,
	    (long long)up_s, ETL_VERSION);
	return down ? 503 : 200;
}

static void
counter(struct buf *b, const char *name, const char *help, uint64_t v)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
	    (unsigned long long)v);
}

static void
gauge(struct buf *b, const char *name, const char *help, double v)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

void
health_render_metrics(struct health *h, struct buf *b)
{
	struct relay_stats rs;
	struct clients_stats cs;
	uint64_t cum = 0;
	int i;

	relay_get_stats(h->relay, &rs);
	clients_get_stats(h->clients, &cs);
	gauge(b, "etl_wsd_clients", "Authorised websocket clients connected.", (double)cs.clients);
	gauge(b, "etl_wsd_redis_up", "1 while the Redis subscription is up.",
	    rs.state == RELAY_UP ? 1 : 0);
	gauge(b, "etl_wsd_uptime_seconds", "Seconds since start.",
	    (double)(util_mono_ms() - h->start_ms) / 1000.0);
	counter(b, "etl_wsd_connections_total", "Websocket connections accepted.", cs.connections);
	counter(
	    b, "etl_wsd_messages_in_total", "Valid messages received from Redis.", rs.messages_in);
	counter(b, "etl_wsd_deliveries_total", "Frames written to clients.", cs.deliveries);
	counter(b, "etl_wsd_writes_total", "Sends to clients (frames to one client coalesce).",
	    cs.writes);
	buf_puts(b, "# HELP etl_wsd_messages_dropped_total Redis messages dropped, by reason.\n"
	            "# TYPE etl_wsd_messages_dropped_total counter\n");
	for (i = 0; i < RELAY_DROP__MAX; i++)
		buf_printf(b, "etl_wsd_messages_dropped_total{reason=\"%s\"} %llu\n",
		    relay_drop_names[i], (unsigned long long)rs.dropped[i]);
	counter(b, "etl_wsd_slow_consumer_closes_total", "Clients closed 4008 (slow consumer).",
	    cs.slow_closes);
	counter(b, "etl_wsd_token_expired_closes_total", "Clients closed 4001 (token expired).",
	    cs.expired_closes);
	counter(b, "etl_wsd_inbound_closes_total",
	    "Clients closed for an inbound frame over 4 KiB.", cs.inbound_closes);
	buf_puts(b, "# HELP etl_wsd_rejected_total Handshakes closed 1008, by reason.\n"
	            "# TYPE etl_wsd_rejected_total counter\n");
	for (i = 0; i < CLIENTS_REJECT__MAX; i++)
		buf_printf(b, "etl_wsd_rejected_total{reason=\"%s\"} %llu\n",
		    clients_reject_names[i], (unsigned long long)cs.rejects[i]);
	counter(b, "etl_wsd_redis_reconnects_total", "Redis subscriptions made again after a loss.",
	    rs.reconnects);
	buf_puts(b,
	    "# HELP etl_wsd_relay_latency_seconds Redis read to frame written, per delivery.\n"
	    "# TYPE etl_wsd_relay_latency_seconds histogram\n");
	for (i = 0; i < CLIENTS_LAT_BUCKETS; i++) {
		cum += cs.lat_counts[i];
		buf_printf(b, "etl_wsd_relay_latency_seconds_bucket{le=\"%g\"} %llu\n",
		    (double)clients_lat_bounds_us[i] / 1e6, (unsigned long long)cum);
	}
	cum += cs.lat_counts[CLIENTS_LAT_BUCKETS];
	buf_printf(
	    b, "etl_wsd_relay_latency_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
	buf_printf(b, "etl_wsd_relay_latency_seconds_sum %.9f\n", cs.lat_sum_s);
	buf_printf(
	    b, "etl_wsd_relay_latency_seconds_count %llu\n", (unsigned long long)cs.lat_count);
}

/* Builds the response for uri into s; returns the status and content type. */
static int
route(struct health *h, struct lws *wsi, const char *uri, struct buf *b, const char **ctype)
{
	static const char pre[LWS_PRE];

	buf_append(b, pre, sizeof(pre));
	*ctype = "application/json; charset=utf-8";
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
		buf_puts(b, "{\"detail\":\"method not allowed\"}\n");
		return 405;
	}
	if (strcmp(uri, "/health") == 0 || strcmp(uri, "/ws/health") == 0)
		return health_render(h, b);
	if (strcmp(uri, "/metrics") == 0 || strcmp(uri, "/ws/metrics") == 0) {
		*ctype = "text/plain; version=0.0.4; charset=utf-8";
		health_render_metrics(h, b);
		return 200;
	}
	buf_puts(b, "{\"detail\":\"not found\"}\n");
	return 404;
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	const struct lws_protocols *proto = lws_get_protocol(wsi);
	struct hsess *s = user;
	unsigned char hdr[LWS_PRE + HEALTH_HDR_MAX], *p, *end;
	struct buf b = { 0 };
	const char *ctype;
	int status, n;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		status = route(proto->user, wsi, in, &b, &ctype);
		p = hdr + LWS_PRE;
		end = hdr + sizeof(hdr) - 1;
		if (lws_add_http_common_headers(wsi, (unsigned)status, ctype,
		        (lws_filepos_t)(b.len - LWS_PRE), &p, end) != 0 ||
		    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
		        (const unsigned char *)"no-store", 8, &p, end) != 0 ||
		    (status == 405 &&
		        lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
		            (const unsigned char *)"GET", 3, &p, end) != 0) ||
		    lws_finalize_write_http_header(wsi, hdr + LWS_PRE, &p, end) != 0) {
			buf_free(&b);
			return 1;
		}
		if (status == 405) {
			/* A request with a body: answer now and close rather than
			 * wait for a body nobody reads. */
			if (lws_write(wsi, (unsigned char *)b.data + LWS_PRE, b.len - LWS_PRE,
			        LWS_WRITE_HTTP_FINAL) < 0)
				log_debug("health: write failed");
			buf_free(&b);
			return -1;
		}
		free(s->body);
		s->len = b.len - LWS_PRE;
		s->body = buf_steal(&b);
		lws_callback_on_writable(wsi);
		return 0;

	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (s == NULL || s->body == NULL)
			return 0;
		n = lws_write(
		    wsi, (unsigned char *)s->body + LWS_PRE, s->len, LWS_WRITE_HTTP_FINAL);
		free(s->body);
		s->body = NULL;
		if (n < 0)
			return -1;
		return lws_http_transaction_completed(wsi) ? -1 : 0;

	case LWS_CALLBACK_CLOSED_HTTP:
		if (s != NULL) {
			free(s->body);
			s->body = NULL;
		}
		return 0;

	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

void
health_protocol(struct health *h, struct lws_protocols *out)
{
	memset(out, 0, sizeof(*out));
	out->name = "http";
	out->callback = callback;
	out->per_session_data_size = sizeof(struct hsess);
	out->user = h;
}
