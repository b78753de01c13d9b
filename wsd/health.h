/*
 * health: the plain HTTP side of the etl-wsd port. GET /health answers JSON
 * (Redis subscription state, clients, uptime; 503 while the subscription is
 * down) and GET /metrics the Prometheus text of the relay's counters.
 * Anything else is 404. Runs on the lws loop thread.
 */
#ifndef WSD_HEALTH_H
#define WSD_HEALTH_H

#include <stddef.h>
#include <stdint.h>

struct buf;
struct clients;
struct lws_protocols;
struct relay;

struct health {
	struct clients *clients;
	struct relay *relay;
	int64_t start_ms; /* monotonic ms at start, for uptime */
};

/* Fills out with the HTTP protocol (must be protocols[0]); its user is h,
 * which must outlive the lws context. */
void health_protocol(struct health *h, struct lws_protocols *out);

/* Appends the /health JSON to b; returns the HTTP status (200 or 503). */
int health_render(struct health *h, struct buf *b);
/* Appends the Prometheus exposition to b. */
void health_render_metrics(struct health *h, struct buf *b);

#endif
