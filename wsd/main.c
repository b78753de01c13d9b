/*
 * etl-wsd: the websocket relay. Reads the configuration, listens on exactly
 * one address (a TCP host:port or a unix socket), relays every event
 * published on Redis "<prefix>:ws" to its authorised websocket clients, and
 * answers GET /health and /metrics on the same port. SIGTERM closes the
 * clients with 1001 and exits 0. Several instances can run at once: each
 * subscribes on its own.
 *
 *   etl-wsd -l 127.0.0.1:8081 [-p PIDFILE] [-k PING_S]
 *   etl-wsd -u /run/etl/wsd.sock [-m 0660] [-p PIDFILE] [-k PING_S]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "clients.h"
#include "conf.h"
#include "health.h"
#include "log.h"
#include "relay.h"
#include "util.h"

#define WSD_SHUTDOWN_MS 3000 /* ms clients get to take their 1001 close */

/* Server pings after 20 s idle (-k) keep proxied sockets alive through the
 * web servers' 60 s idle timeouts; no pong for 2 * ping + 20 s: hang up. */
#define WSD_PING_S 20
static lws_retry_bo_t wsd_retry;

static const struct lws_protocol_vhost_options wsd_pvo_default = { NULL, NULL, "default", "1" };
static const struct lws_protocol_vhost_options wsd_pvo = { NULL, &wsd_pvo_default, "etl-events",
	"" };

static volatile sig_atomic_t wsd_signal;
static volatile sig_atomic_t wsd_hup;
static struct lws_context *volatile wsd_ctx;

struct wsd_args {
	char host[256];
	int port;
	const char *unix_path;
	const char *pidfile;
	int mode; /* unix socket mode, -1: leave lws' */
	int ping_s; /* idle seconds before a server ping */
};

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr, "usage: etl-wsd (-l HOST:PORT | -u PATH [-m MODE]) [-p PIDFILE] "
	                "[-k PING_S]\n");
	exit(2);
}

static void
on_signal(int sig)
{
	int saved = errno;

	if (sig == SIGHUP)
		wsd_hup = 1;
	else
		wsd_signal = sig;
	if (wsd_ctx != NULL)
		lws_cancel_service(wsd_ctx);
	errno = saved;
}

/* "HOST:PORT" or "[V6]:PORT". Returns 0 or -1. */
static int
parse_listen(const char *s, struct wsd_args *a)
{
	const char *colon;
	struct in_addr a4;
	struct in6_addr a6;
	int64_t port;
	size_t n;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		n = (size_t)(close - s - 1);
		colon = close + 1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		n = (size_t)(colon - s);
	}
	if (n == 0 || n >= sizeof(a->host) || util_parse_i64(colon + 1, 1, 65535, &port) != 0)
		return -1;
	memcpy(a->host, s, n);
	a->host[n] = '\0';
	a->port = (int)port;
	/* An address, not a name: lws would read a name as an interface. */
	if (inet_pton(AF_INET, a->host, &a4) != 1 && inet_pton(AF_INET6, a->host, &a6) != 1)
		return -1;
	return 0;
}

static void
parse_args(int argc, char **argv, struct wsd_args *a)
{
	int ch;
	int64_t mode;

	memset(a, 0, sizeof(*a));
	a->mode = -1;
	a->ping_s = WSD_PING_S;
	while ((ch = getopt(argc, argv, "l:u:p:m:k:h")) != -1) {
		switch (ch) {
		case 'l':
			if (parse_listen(optarg, a) != 0) {
				fprintf(stderr,
				    "etl-wsd: -l wants IP:PORT or [IPv6]:PORT, got \"%s\"\n",
				    optarg);
				exit(2);
			}
			break;
		case 'u':
			a->unix_path = optarg;
			break;
		case 'p':
			a->pidfile = optarg;
			break;
		case 'k': {
			int64_t v;

			if (util_parse_i64(optarg, 1, 3600, &v) != 0)
				usage();
			a->ping_s = (int)v;
			break;
		}
		case 'm': {
			char *end;

			errno = 0;
			mode = strtol(optarg, &end, 8);
			if (errno || *end || mode < 0 || mode > 0777)
				usage();
			a->mode = (int)mode;
			break;
		}
		default:
			usage();
		}
	}
	if (optind != argc || (a->port == 0) == (a->unix_path == NULL))
		usage();
}

static void
lws_log_emit(int level, const char *line)
{
	char esc[512];
	size_t n = strlen(line);

	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	log_escape(line, n, esc, sizeof(esc));
	if (level & LLL_ERR)
		log_warnx("lws: %s", esc);
	else
		log_debug("lws: %s", esc);
}

static int
write_pidfile(const char *path)
{
	char line[32];
	int fd, n;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1)
		return -1;
	n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
	if (write(fd, line, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	return close(fd);
}

/* A unix socket left by a dead instance would make the bind fail. */
static void
unlink_stale_socket(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && unlink(path) != 0)
		log_warn("unlink %s", path);
}

static int
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		return -1;
	sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns at once */
	if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
	    sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGHUP, &sa, NULL) != 0)
		return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	struct wsd_args args;
	struct conf cf;
	struct lws_context_creation_info info;
	struct lws_protocols protocols[3];
	struct lws_context *ctx = NULL;
	struct clients *cs = NULL;
	struct relay *relay = NULL;
	struct health health;
	enum log_level level = LOG_LEVEL_INFO;
	char err[256];
	struct in6_addr a6;
	int64_t deadline;
	int rc = 1;

	parse_args(argc, argv, &args);
	if (conf_load(&cf, err, sizeof(err)) != 0) {
		fprintf(stderr, "etl-wsd: %s\n", err);
		return 1;
	}
	if (cf.log_level != NULL && log_parse_level(cf.log_level, &level) != 0) {
		fprintf(stderr, "etl-wsd: ETL_LOG_LEVEL: error|warn|info|debug\n");
		conf_free(&cf);
		return 1;
	}
	if (log_init("etl-wsd", level, cf.log_file) != 0)
		log_warn("log file %s: using stderr", cf.log_file);
	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
	if (install_signals() != 0)
		fatal("sigaction");

	cs = clients_new(&cf, err, sizeof(err));
	if (cs == NULL) {
		log_warnx("%s: refusing to start", err);
		goto out;
	}
	memset(&health, 0, sizeof(health));
	health.clients = cs;
	health.start_ms = util_mono_ms();
	memset(protocols, 0, sizeof(protocols));
	health_protocol(&health, &protocols[0]);
	clients_protocol(cs, &protocols[1]);

	memset(&info, 0, sizeof(info));
	info.protocols = protocols;
	info.pvo = &wsd_pvo;
	wsd_retry.secs_since_valid_ping = (uint16_t)args.ping_s;
	wsd_retry.secs_since_valid_hangup = (uint16_t)(args.ping_s * 2 + 20);
	info.retry_and_idle_policy = &wsd_retry;
	info.max_http_header_data = 4096; /* tokens ride in the query string */
	info.vhost_name = "etl-wsd";
	if (args.unix_path != NULL) {
		unlink_stale_socket(args.unix_path);
		info.options |= LWS_SERVER_OPTION_UNIX_SOCK;
		info.iface = args.unix_path;
		info.port = 0; /* lws binds the unix socket only with port 0 */
	} else {
		info.iface = args.host;
		info.port = args.port;
		/* Without it lws binds "::" and iface "127.0.0.1" listens everywhere. */
		if (inet_pton(AF_INET6, args.host, &a6) != 1)
			info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	}
	ctx = lws_create_context(&info);
	if (ctx == NULL) {
		if (args.unix_path != NULL)
			log_warnx("cannot listen on unix:%s", args.unix_path);
		else
			log_warnx("cannot listen on %s:%d", args.host, args.port);
		goto out;
	}
	wsd_ctx = ctx;
	if (args.unix_path != NULL && args.mode >= 0 &&
	    chmod(args.unix_path, (mode_t)args.mode) != 0) {
		log_warn("chmod %s", args.unix_path);
		goto out;
	}

	relay = relay_start(&cf, ctx, err, sizeof(err));
	if (relay == NULL) {
		log_warnx("%s", err);
		goto out;
	}
	clients_set_relay(cs, relay);
	health.relay = relay;
	if (!cf.redis_enabled)
		log_warnx("REDIS_ENABLED is false: nothing will be relayed");
	if (args.pidfile != NULL && write_pidfile(args.pidfile) != 0) {
		log_warn("pidfile %s", args.pidfile);
		goto out;
	}
	if (args.unix_path)
		log_info("listening on unix:%s", args.unix_path);
	else
		log_info("listening on %s:%d", args.host, args.port);

	while (!wsd_signal) {
		if (wsd_hup) {
			wsd_hup = 0;
			if (log_reopen() != 0)
				log_warn("log reopen");
		}
		if (lws_service(ctx, 0) < 0)
			break;
	}
	log_info("signal %d: closing %u clients", (int)wsd_signal, clients_open(cs));
	clients_close_all(cs, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
	deadline = util_mono_ms() + WSD_SHUTDOWN_MS;
	while (clients_open(cs) > 0 && util_mono_ms() < deadline)
		if (lws_service(ctx, 0) < 0)
			break;
	rc = 0;
out:
	relay_stop(relay); /* before the context: the thread wakes it */
	wsd_ctx = NULL;
	if (ctx != NULL)
		lws_context_destroy(ctx);
	clients_free(cs);
	if (args.pidfile != NULL && rc == 0)
		unlink(args.pidfile);
	if (args.unix_path != NULL && rc == 0)
		unlink(args.unix_path);
	conf_free(&cf);
	log_info("exit %d", rc);
	return rc;
}
