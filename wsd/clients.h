/*
 * clients: the websocket side of etl-wsd. Authorises each connection at the
 * handshake (token, origin, filters), keeps one shared ring of relayed
 * messages with a read position per client (a message is serialised once
 * and sent to everyone from the same bytes), culls a client that lags past
 * WSD_MAX_BACKLOG (4008), closes on token expiry (4001) and on shutdown
 * (1001). Runs entirely on the lws loop thread.
 */
#ifndef WSD_CLIENTS_H
#define WSD_CLIENTS_H

#include <stddef.h>
#include <stdint.h>

struct conf;
struct lws_protocols;
struct relay;
struct clients;

/* Why a handshake was refused (closed with 1008), metrics label order. */
enum clients_reject {
	CLIENTS_REJECT_MISSING, /* no token */
	CLIENTS_REJECT_INVALID, /* malformed or forged */
	CLIENTS_REJECT_EXPIRED,
	CLIENTS_REJECT_ORIGIN, /* Origin not in WSD_ALLOWED_ORIGINS */
	CLIENTS_REJECT_FILTER, /* unparsable job_id / types */
	CLIENTS_REJECT__MAX
};
extern const char *const clients_reject_names[CLIENTS_REJECT__MAX];

/* Relay latency histogram (Redis read -> frame handed to the socket). */
#define CLIENTS_LAT_BUCKETS 14
extern const int64_t clients_lat_bounds_us[CLIENTS_LAT_BUCKETS];

struct clients_stats {
	uint64_t clients; /* authorised open connections (gauge) */
	uint64_t connections; /* websocket connections accepted, total */
	uint64_t deliveries; /* frames written to clients */
	uint64_t writes; /* sends to clients (several frames coalesce in one) */
	uint64_t slow_closes; /* closed 4008 */
	uint64_t expired_closes; /* closed 4001 */
	uint64_t inbound_closes; /* closed 1009: inbound frame over 4 KiB */
	uint64_t rejects[CLIENTS_REJECT__MAX];
	uint64_t lat_counts[CLIENTS_LAT_BUCKETS + 1]; /* last: +Inf */
	uint64_t lat_count;
	double lat_sum_s;
};

/*
 * Makes the client side from conf (ETL_SECRET, WSD_MAX_BACKLOG,
 * WSD_ALLOWED_ORIGINS). Returns NULL with a reason in err (secret shorter
 * than TOK_MIN_SECRET, bad origin list). The secret is copied. Free with
 * clients_free() after the lws context is destroyed.
 */
struct clients *clients_new(const struct conf *c, char *err, size_t errlen);
void clients_free(struct clients *cs);

/* Where messages come from; until set (NULL), nothing is relayed. */
void clients_set_relay(struct clients *cs, struct relay *r);

/* The websocket protocol to list in the vhost (its user is cs). */
void clients_protocol(struct clients *cs, struct lws_protocols *out);

/* Asks every open connection to close with code (1001 on shutdown). */
void clients_close_all(struct clients *cs, int code, const char *reason);

/* Websocket connections still open (authorised or closing). */
unsigned clients_open(const struct clients *cs);

void clients_get_stats(const struct clients *cs, struct clients_stats *out);

#endif
