/*
 * wsclient: a load-generating websocket client for the etl-wsd tests and
 * benchmarks, on the libwebsockets client API. Opens N connections to one
 * URL (at most 64 handshakes in flight), prints one JSON line when all are
 * open, counts the messages each receives and, when a payload carries
 * "t_us" (wall-clock microseconds at PUBLISH), the publish-to-receive
 * latency. Ends when every connection got -n messages, after -H seconds of
 * holding, at -T, or on SIGTERM/SIGINT, and prints a JSON summary line.
 *
 *   wsclient -p PORT -P '/ws?token=...' -c 1000 -n 100 [-h 127.0.0.1] [-T 60] [-H 0]
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#define WSC_INFLIGHT 64 /* handshakes at once */
#define WSC_LAT_MAX (1 << 23) /* latency samples kept */

struct conn {
	struct lws *wsi;
	long msgs;
	int open;
	int close_code;
};

static struct {
	const char *host, *path;
	int port, nconns, timeout_s, hold_s;
	long expect;

	struct lws_context *ctx;
	struct conn *conns;
	int started, inflight, connected, failed, closed, complete, announced;
	long total;
	int64_t *lat;
	size_t nlat;
	int codes[5000]; /* close codes seen (index = code) */
	int64_t t0_us, all_open_us;
	int64_t first_rx_us, last_rx_us; /* monotonic, first and last message */
	lws_sorted_usec_list_t sul, tick;
} wsc;

static volatile sig_atomic_t wsc_stop;

static int64_t
now_us(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
on_signal(int sig)
{
	(void)sig;
	wsc_stop = 1;
	if (wsc.ctx)
		lws_cancel_service(wsc.ctx);
}

static void
connect_more(lws_sorted_usec_list_t *sul)
{
	struct lws_client_connect_info ci;

	(void)sul;
	while (wsc.started < wsc.nconns && wsc.inflight < WSC_INFLIGHT) {
		struct conn *c = &wsc.conns[wsc.started++];

		memset(&ci, 0, sizeof(ci));
		ci.context = wsc.ctx;
		ci.address = wsc.host;
		ci.port = wsc.port;
		ci.path = wsc.path;
		ci.host = wsc.host;
		ci.origin = NULL;
		ci.local_protocol_name = "wsc";
		ci.userdata = c;
		ci.pwsi = &c->wsi;
		wsc.inflight++;
		if (lws_client_connect_via_info(&ci) == NULL) {
			wsc.inflight--;
			wsc.failed++;
		}
	}
	if (wsc.started < wsc.nconns)
		lws_sul_schedule(wsc.ctx, 0, &wsc.sul, connect_more, 10 * LWS_US_PER_MS);
}

/* lws_service() sleeps until the next event: wake it to check deadlines. */
static void
tick(lws_sorted_usec_list_t *sul)
{
	lws_sul_schedule(wsc.ctx, 0, sul, tick, 100 * LWS_US_PER_MS);
}

static void
latency_sample(const char *msg, size_t len)
{
	const char *p;
	char num[24];
	size_t i = 0;

	p = memmem(msg, len, "\"t_us\":", 7);
	if (p == NULL || wsc.nlat >= WSC_LAT_MAX)
		return;
	p += 7;
	while (p < msg + len && i < sizeof(num) - 1 && ((*p >= '0' && *p <= '9') || *p == '-'))
		num[i++] = *p++;
	num[i] = '\0';
	if (i > 0)
		wsc.lat[wsc.nlat++] = now_us(CLOCK_REALTIME) - strtoll(num, NULL, 10);
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct conn *c = user;

	(void)wsi;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		wsc.inflight--;
		wsc.connected++;
		c->open = 1;
		connect_more(NULL);
		if (wsc.connected == wsc.nconns) {
			wsc.all_open_us = now_us(CLOCK_MONOTONIC);
			printf("{\"event\":\"connected\",\"n\":%d}\n", wsc.connected);
			fflush(stdout);
			wsc.announced = 1;
		}
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		wsc.inflight--;
		wsc.failed++;
		connect_more(NULL);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (!lws_is_final_fragment(wsi))
			break;
		c->msgs++;
		wsc.total++;
		wsc.last_rx_us = now_us(CLOCK_MONOTONIC);
		if (wsc.first_rx_us == 0)
			wsc.first_rx_us = wsc.last_rx_us;
		latency_sample(in, len);
		if (wsc.expect > 0 && c->msgs == wsc.expect)
			wsc.complete++;
		break;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (len >= 2) {
			const unsigned char *b = in;

			c->close_code = (b[0] << 8) | b[1];
		}
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (c->open) {
			c->open = 0;
			wsc.closed++;
			if (c->close_code > 0 && c->close_code < 5000)
				wsc.codes[c->close_code]++;
		}
		break;
	default:
		break;
	}
	return 0;
}

static int
cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void
summary(void)
{
	struct rusage ru;
	long mn = -1, mx = 0;
	int i, first = 1;
	int64_t p50 = -1, p99 = -1, pmax = -1;
	double elapsed = (double)(now_us(CLOCK_MONOTONIC) - wsc.t0_us) / 1e6;

	for (i = 0; i < wsc.nconns; i++) {
		if (wsc.conns[i].wsi == NULL && wsc.conns[i].msgs == 0)
			continue;
		if (mn < 0 || wsc.conns[i].msgs < mn)
			mn = wsc.conns[i].msgs;
		if (wsc.conns[i].msgs > mx)
			mx = wsc.conns[i].msgs;
	}
	if (wsc.nlat > 0) {
		qsort(wsc.lat, wsc.nlat, sizeof(*wsc.lat), cmp64);
		p50 = wsc.lat[wsc.nlat / 2];
		p99 = wsc.lat[(wsc.nlat * 99) / 100];
		pmax = wsc.lat[wsc.nlat - 1];
	}
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		memset(&ru, 0, sizeof(ru));
	printf("{\"connected\":%d,\"failed\":%d,\"closed\":%d,\"complete\":%d,\"messages\":%ld,"
	       "\"min_per_conn\":%ld,\"max_per_conn\":%ld,\"latency_samples\":%zu,"
	       "\"latency_p50_us\":%lld,\"latency_p99_us\":%lld,\"latency_max_us\":%lld,"
	       "\"elapsed_s\":%.3f,\"since_open_s\":%.3f,\"rx_span_s\":%.6f,\"cpu_user_s\":%.3f,"
	       "\"cpu_sys_s\":%.3f,"
	       "\"close_codes\":{",
	    wsc.connected, wsc.failed, wsc.closed, wsc.complete, wsc.total, mn < 0 ? 0 : mn, mx,
	    wsc.nlat, (long long)p50, (long long)p99, (long long)pmax, elapsed,
	    wsc.all_open_us ? (double)(now_us(CLOCK_MONOTONIC) - wsc.all_open_us) / 1e6 : 0.0,
	    (double)(wsc.last_rx_us - wsc.first_rx_us) / 1e6,
	    (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
	for (i = 0; i < 5000; i++)
		if (wsc.codes[i]) {
			printf("%s\"%d\":%d", first ? "" : ",", i, wsc.codes[i]);
			first = 0;
		}
	printf("}}\n");
	fflush(stdout);
}

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr,
	    "usage: wsclient -p PORT -P PATH [-h HOST] [-c CONNS] [-n MSGS] [-T TIMEOUT_S] "
	    "[-H HOLD_S]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct lws_protocols protocols[] = { { "wsc", callback, sizeof(struct conn),
		                                              65536, 0, NULL, 0 },
		{ NULL, NULL, 0, 0, 0, NULL, 0 } };
	struct lws_context_creation_info info;
	struct sigaction sa;
	int64_t deadline, hold_until = 0;
	int ch, rc = 0;

	wsc.host = "127.0.0.1";
	wsc.nconns = 1;
	wsc.timeout_s = 60;
	while ((ch = getopt(argc, argv, "h:p:P:c:n:T:H:")) != -1) {
		switch (ch) {
		case 'h':
			wsc.host = optarg;
			break;
		case 'p':
			wsc.port = atoi(optarg);
			break;
		case 'P':
			wsc.path = optarg;
			break;
		case 'c':
			wsc.nconns = atoi(optarg);
			break;
		case 'n':
			wsc.expect = atol(optarg);
			break;
		case 'T':
			wsc.timeout_s = atoi(optarg);
			break;
		case 'H':
			wsc.hold_s = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (wsc.port <= 0 || wsc.path == NULL || wsc.nconns <= 0)
		usage();
	wsc.conns = calloc((size_t)wsc.nconns, sizeof(*wsc.conns));
	wsc.lat = malloc(sizeof(*wsc.lat) * WSC_LAT_MAX);
	if (wsc.conns == NULL || wsc.lat == NULL)
		return 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	lws_set_log_level(LLL_ERR, NULL);

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.fd_limit_per_thread = (unsigned)wsc.nconns + 64;
	wsc.ctx = lws_create_context(&info);
	if (wsc.ctx == NULL) {
		fprintf(stderr, "wsclient: lws_create_context failed\n");
		return 1;
	}
	wsc.t0_us = now_us(CLOCK_MONOTONIC);
	deadline = wsc.t0_us + (int64_t)wsc.timeout_s * 1000000;
	connect_more(NULL);
	tick(&wsc.tick);
	while (!wsc_stop) {
		int64_t t = now_us(CLOCK_MONOTONIC);

		if (t > deadline)
			break;
		if (wsc.started == wsc.nconns && wsc.inflight == 0 && wsc.connected == 0)
			break; /* nothing connected */
		if (wsc.expect > 0 && wsc.complete + wsc.failed >= wsc.nconns)
			break;
		if (wsc.expect == 0 && wsc.announced) {
			if (wsc.hold_s == 0)
				break;
			if (hold_until == 0)
				hold_until = t + (int64_t)wsc.hold_s * 1000000;
			else if (t > hold_until)
				break;
		}
		if (wsc.expect == 0 && wsc.closed > 0 && wsc.closed >= wsc.connected &&
		    wsc.started == wsc.nconns && wsc.inflight == 0)
			break;
		if (lws_service(wsc.ctx, 100) < 0)
			break;
	}
	summary();
	lws_context_destroy(wsc.ctx);
	free(wsc.conns);
	free(wsc.lat);
	return rc;
}
