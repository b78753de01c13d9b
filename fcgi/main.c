/*
 * etl-api: the REST API as a FastCGI responder. One code path serves three
 * ways of being run:
 *   - spawned by the web server (lighttpd bin-path, mod_fcgid): the
 *     listening socket is fd 0;
 *   - an external socket (-s PATH or -p HOST:PORT, for Apache
 *     mod_proxy_fcgi), optionally as -n N pre-forked children, stopping
 *     gracefully on SIGTERM (the request in hand is finished first);
 *   - plain CGI: one request on stdin/stdout when fd 0 is not a socket.
 * Each process opens its own database connection and Redis publisher
 * (never shared across fork) and serves ETL_API_THREADS requests at once
 * on threads that share them (conn.h: one thread uses the connection at a
 * time, and concurrent enqueues share a transaction).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "ckpt.h"
#include "conn.h"
#include "db.h"
#include "handlers.h"
#include "log.h"
#include "pub.h"
#include "route.h"
#include "tok.h"
#include "wake.h"

#define MAX_CHILDREN 256
#define LISTEN_BACKLOG 256
#define STOP_GRACE_MS 15000 /* parent waits this long for children to finish, then kills */

static volatile sig_atomic_t stopping;
static volatile sig_atomic_t reopen_logs;

static void
on_stop(int sig)
{
	(void)sig;
	stopping = 1;
	FCGX_ShutdownPending();
}

static void
on_hup(int sig)
{
	(void)sig;
	reopen_logs = 1;
}

/* SIGTERM/SIGINT stop the accept loop: no SA_RESTART, so accept() returns EINTR. */
static void
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
		fatal("sigaction");
	sa.sa_handler = on_hup; /* reopen ETL_LOG_FILE (after rotation), between requests */
	if (sigaction(SIGHUP, &sa, NULL) != 0)
		fatal("sigaction");
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		fatal("sigaction");
}

/*
 * The request threads hand the shared connection, and SQLite's and
 * malloc's locks, to one another thousands of times a second. Under the
 * default policy the thread that an unlock wakes preempts the thread that
 * unlocked, which then waits for a CPU with its answer ready: the most
 * frequent off-CPU wait under bench/api.sh (perf sched_switch stacks:
 * 588-675 times in 2 s, up to 17 ms; 13-18 under SCHED_BATCH).
 * SCHED_BATCH keeps the same fair share and nice value and needs no
 * privilege; it only stops a woken thread from preempting a running one.
 * bench/api.sh, 7 alternating pairs: GET /api/jobs served 12% more
 * requests/s, with p99 better in every pair (median 8.8 against 10.2 ms);
 * execute unchanged. The cost is that a woken request thread, one with a
 * new request too, no longer preempts whatever runs on its CPU (the web
 * server, a pipeline): it waits for that task's slice (milliseconds). Set
 * before any thread starts: threads and forked children inherit it. Only
 * from the default policy: one the operator chose (chrt, systemd's
 * CPUSchedulingPolicy=) stays.
 */
static void
batch_scheduling(void)
{
	struct sched_param sp = { .sched_priority = 0 };

	if (sched_getscheduler(0) != SCHED_OTHER)
		return;
	if (sched_setscheduler(0, SCHED_BATCH, &sp) != 0)
		log_info("SCHED_BATCH refused: %s (scheduling left as it was)", strerror(errno));
}

/* The signals a serving process takes with sigwaitinfo/sigtimedwait,
 * blocked (serve; prefork adds SIGCHLD). */
static void
control_signals(sigset_t *s)
{
	sigemptyset(s);
	sigaddset(s, SIGTERM);
	sigaddset(s, SIGINT);
	sigaddset(s, SIGHUP);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: etl-api [-s PATH [-m MODE] | -p [HOST:]PORT] [-n CHILDREN]\n"
	    "       etl-api --routes | --version\n"
	    "Without -s/-p: FastCGI on fd 0 when spawned by a web server, else one CGI request.\n"
	    "Configuration comes from the environment (and ETL_ENV_FILE): see .env.example.\n");
	exit(2);
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	(void)nanosleep(&ts, NULL);
}

/* Per-process resources, made after any fork. */
static void
api_open(struct api *api)
{
	char err[256];

	api->pub = pub_open(&api->conf, err, sizeof(err));
	if (api->pub == NULL)
		fatalx("%s", err);
	char *dir = wake_dir_for(api->conf.wake_dir, api->conf.db_path);
	api->wake = wake_sender_open(dir);
	free(dir);
	api->started_ms = util_now_ms();
	if (route_db_ensure(api) != 0)
		log_warnx("database not available yet: requests get 503 until it is");
}

static void
api_close(struct api *api)
{
	ckpt_stop(api->ckpt);
	api->ckpt = NULL;
	db_close(api->db);
	api->db = NULL;
	pub_close(api->pub);
	api->pub = NULL;
	wake_sender_close(api->wake);
	api->wake = NULL;
}

/* One request thread: accepts connections itself and hands each to
 * libfcgi, then serves the request on it.
 *
 * libfcgi's own accept cannot be told to stop except by a signal, and a
 * signal that lands after its accept (its wait for the first bytes, or
 * its read of the parameters) makes it drop the connection: the web
 * server sees it closed without an answer. So the threads take every
 * signal blocked (the main thread waits for them) and accept here: wait
 * on the listening socket (non-blocking, so a connection another thread
 * took costs an EAGAIN, not a hang) and on stop_fd, which the main thread
 * makes readable to stop them. The accepted descriptor goes into the
 * request (ipcFd, a public member of FCGX_Request) with keepConnection
 * set, so that FCGX_Accept_r's opening FCGX_Finish_r keeps it open and
 * reads the request from it; the request's own flags then say whether
 * the web server keeps the connection. The request's listening socket is
 * -1: when libfcgi drops a connection it could not read a request from,
 * its own accept fails at once (EBADF) instead of taking over. */
#define MAX_WEB_SERVER_ADDRS 32

struct server {
	struct api *api;
	int listen_fd;
	int stop_fd;
	int tcp; /* the listening socket is TCP (else a unix socket) */
	/* FCGI_WEB_SERVER_ADDRS, as libfcgi's own accept honoured it: TCP
	 * connections from other IPv4 addresses are closed (none: any) */
	struct in_addr allowed[MAX_WEB_SERVER_ADDRS];
	int nallowed;
};

/* Reads FCGI_WEB_SERVER_ADDRS ("a.b.c.d,e.f.g.h") into s. */
static void
web_server_addrs(struct server *s)
{
	const char *v = getenv("FCGI_WEB_SERVER_ADDRS");
	char *copy, *tok, *save = NULL;

	if (v == NULL || *v == '\0')
		return;
	copy = xstrdup(v);
	for (tok = strtok_r(copy, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
		if (s->nallowed == MAX_WEB_SERVER_ADDRS ||
		    inet_pton(AF_INET, tok, &s->allowed[s->nallowed]) != 1)
			fatalx(
			    "FCGI_WEB_SERVER_ADDRS: %s is not an IPv4 address (or too many)", tok);
		s->nallowed++;
	}
	free(copy);
}

static int
allowed_peer(const struct server *s, const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

	if (!s->tcp || s->nallowed == 0)
		return 1;
	if (ss->ss_family != AF_INET)
		return 0;
	for (int i = 0; i < s->nallowed; i++)
		if (s->allowed[i].s_addr == in->sin_addr.s_addr)
			return 1;
	return 0;
}

/* This thread's wait for a connection: an epoll set with the listening
 * socket (EPOLLEXCLUSIVE: a connection wakes one waiting thread, not all
 * of them) and stop_fd. Returns the epoll descriptor. */
static int
accept_set(const struct server *s)
{
	struct epoll_event lev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = s->listen_fd };
	struct epoll_event sev = { .events = EPOLLIN, .data.fd = s->stop_fd };
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep == -1 || epoll_ctl(ep, EPOLL_CTL_ADD, s->listen_fd, &lev) != 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, s->stop_fd, &sev) != 0)
		fatal("epoll");
	return ep;
}

/* A connection, or -1 when stopping. */
static int
accept_one(const struct server *s, int ep)
{
	for (;;) {
		struct epoll_event ev[2];
		int n = epoll_wait(ep, ev, 2, -1);
		if (n < 0) {
			if (errno != EINTR)
				log_warn("epoll_wait");
			continue;
		}
		for (int i = 0; i < n; i++)
			if (ev[i].data.fd == s->stop_fd)
				return -1;
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int fd = accept4(s->listen_fd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
		if (fd >= 0) {
			int one = 1;
			if (!allowed_peer(s, &peer)) {
				log_warnx("connection from an address not in "
				          "FCGI_WEB_SERVER_ADDRS closed");
				close(fd);
				continue;
			}
			if (s->tcp) /* the answer goes out in one piece anyway */
				(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			return fd;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
		    errno == ECONNABORTED || errno == EPROTO)
			continue;
		log_warn("accept");
		sleep_ms(10); /* EMFILE and the like: do not spin */
	}
}

/* Waits until the web server sends on a connection it kept, or stop_fd.
 * Returns 1 when there is something to read, 0 when stopping. */
static int
kept_ready(const struct server *s, int fd)
{
	struct pollfd p[2] = { { fd, POLLIN, 0 }, { s->stop_fd, POLLIN, 0 } };
	int n;

	while ((n = poll(p, 2, -1)) < 0 && errno == EINTR)
		;
	if (n < 0)
		log_warn("poll");
	/* data, or the web server's close: libfcgi sees which */
	return n > 0 && !p[1].revents;
}

static void *
serve_thread(void *arg)
{
	const struct server *s = arg;
	struct api *api = s->api;
	FCGX_Request fr;
	struct req r;
	struct db *rdb = NULL; /* this thread's read connection (route.c) */
	struct tok_cache *tokc = xcalloc(1, sizeof(*tokc));
	int ep = accept_set(s);

	if (FCGX_InitRequest(&fr, -1, 0) != 0)
		fatalx("FCGX_InitRequest failed");
	for (;;) {
		if (fr.ipcFd < 0) {
			int fd = accept_one(s, ep);
			if (fd < 0)
				break;
			fr.ipcFd = fd;
			fr.keepConnection = 1;
		} else if (!kept_ready(s, fr.ipcFd)) { /* the web server kept it */
			break; /* stopping: FCGX_Free closes it */
		}
		if (FCGX_Accept_r(&fr) < 0)
			continue; /* closed, or no request on it: libfcgi closed it */
		req_init(&r, api, 0, fr.in, fr.out, fr.envp);
		r.own = &rdb;
		r.tokc = tokc;
		route_dispatch(&r);
		req_free(&r);
		atomic_fetch_add(&api->requests, 1);
		/* libfcgi closes a connection gracefully: shutdown, then poll
		 * and read until the web server closes its end, so that unread
		 * input cannot turn into a reset that loses the answer. Every
		 * route reads or drains the request to its end first (route.c),
		 * and once the end is seen no more input can come: then a plain
		 * close loses nothing and saves three system calls and a wake-up
		 * of the web server per request (FCGX_Detach only turns the
		 * graceful part off). A body too big to drain keeps it. */
		if (FCGX_HasSeenEOF(fr.in) == EOF)
			(void)FCGX_Detach(&fr);
		else /* not left over from an earlier request on a kept connection */
			(void)FCGX_Attach(&fr);
		FCGX_Finish_r(&fr);
	}
	FCGX_Free(&fr, 1);
	close(ep);
	db_close(rdb);
	free(tokc);
	return NULL;
}

/* Serves on listen_fd with conf.api_threads request threads until SIGTERM
 * or SIGINT; the main thread takes the signals (SIGHUP: reopen the log).
 * A stop lets every request in hand finish. Returns 0, or the number of
 * threads still in a request after STOP_GRACE_MS (a client that stopped
 * sending its body): the caller then leaves with _exit. */
static int
serve(struct api *api, int listen_fd)
{
	struct server s = { .api = api, .listen_fd = listen_fd, .stop_fd = -1 };
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int n = api->conf.api_threads, started = 0, fl;
	pthread_t *tids = xcalloc((size_t)n, sizeof(*tids));
	sigset_t sigs;

	control_signals(&sigs);
	if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0)
		fatal("pthread_sigmask");
	/* a SIGHUP before the block met on_hup (a child just forked when its
	 * parent passed a rotation on): the full suite lost one so */
	if (reopen_logs) {
		reopen_logs = 0;
		(void)log_reopen();
	}
	if ((fl = fcntl(listen_fd, F_GETFL)) == -1 ||
	    fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) == -1)
		fatal("fcntl O_NONBLOCK on the listening socket");
	if ((s.stop_fd = eventfd(0, EFD_CLOEXEC)) == -1)
		fatal("eventfd");
	if (getsockname(listen_fd, (struct sockaddr *)&ss, &sslen) == 0)
		s.tcp = ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
	web_server_addrs(&s);
	api->long_lived = 1;
	api_open(api);
	for (int i = 0; i < n; i++) {
		if (pthread_create(&tids[i], NULL, serve_thread, &s) != 0) {
			log_warnx("only %d of %d request threads started", started, n);
			break;
		}
		started++;
	}
	if (started == 0)
		fatalx("no request thread could start");
	log_info("serving (pid %d, %d threads)", (int)getpid(), started);
	while (!stopping) {
		int sig = sigwaitinfo(&sigs, NULL);
		if (sig == SIGHUP)
			(void)log_reopen();
		else if (sig == SIGTERM || sig == SIGINT)
			stopping = 1;
	}
	if (eventfd_write(s.stop_fd, 1) != 0)
		log_warn("eventfd_write");
	int64_t deadline = util_mono_ms() + STOP_GRACE_MS;
	int left = 0;
	for (int i = 0; i < started; i++) {
		struct timespec ts = util_abstime(deadline);
		if (pthread_timedjoin_np(tids[i], NULL, &ts) != 0)
			left++;
	}
	free(tids);
	log_info("stopping after %lld request(s)", (long long)atomic_load(&api->requests));
	if (left > 0) {
		log_warnx("%d request thread(s) still in a request: leaving them", left);
		return left;
	}
	close(s.stop_fd);
	api_close(api);
	return 0;
}

/* Plain CGI: one request on stdin/stdout. */
static void
serve_cgi(struct api *api)
{
	struct req r;

	api_open(api);
	req_init(&r, api, 1, NULL, NULL, NULL);
	route_dispatch(&r);
	req_free(&r);
	if (fflush(stdout) != 0)
		log_warn("writing the response");
	api_close(api);
}

static pid_t
spawn_child(struct api *api, int fd)
{
	pid_t pid = fork();

	if (pid == -1) {
		log_warn("fork");
		return -1;
	}
	if (pid == 0) {
		/* the parent's mask (prefork) minus SIGCHLD: serve blocks and
		 * takes the others itself, and one that came already waits */
		sigset_t chld;
		sigemptyset(&chld);
		sigaddset(&chld, SIGCHLD);
		(void)sigprocmask(SIG_UNBLOCK, &chld, NULL);
		if (serve(api, fd) != 0)
			_exit(0); /* threads still run: no exit handlers under them */
		conf_free(&api->conf);
		exit(0);
	}
	return pid;
}

/*
 * Runs n children on fd, replacing any that dies (at most one restart per
 * 100 ms). On SIGTERM: TERM to every child, wait up to STOP_GRACE_MS, then KILL.
 *
 * The signals stay blocked and are taken with sigtimedwait, as serve does:
 * with handlers and a blocking waitpid, a SIGTERM or SIGHUP that came
 * between the check of its flag and the waitpid waited for the next
 * child to end (a stop that did not stop, a rotation the children never
 * heard of; test_sighup_reopens_the_log_file_in_idle_children saw one).
 */
static int
prefork(struct api *api, int fd, int n)
{
	pid_t pids[MAX_CHILDREN];
	int alive = 0;
	sigset_t sigs;

	control_signals(&sigs);
	sigaddset(&sigs, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL) != 0)
		fatal("sigprocmask");
	for (int i = 0; i < n; i++) {
		pids[i] = spawn_child(api, fd);
		alive += pids[i] > 0;
	}
	log_info("%d children serving", alive);
	while (!stopping) {
		struct timespec tick = { 1, 0 }; /* also retries failed forks */
		int st, sig = sigtimedwait(&sigs, NULL, &tick);
		pid_t pid;

		if (sig == SIGTERM || sig == SIGINT) {
			stopping = 1;
		} else if (sig == SIGHUP || reopen_logs) { /* the flag: one before the block */
			reopen_logs = 0;
			(void)log_reopen();
			for (int i = 0; i < n; i++)
				if (pids[i] > 0)
					(void)kill(pids[i], SIGHUP);
		}
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			for (int i = 0; i < n; i++) {
				if (pids[i] != pid)
					continue;
				log_warnx("child %d ended (status %d): restarting", (int)pid, st);
				pids[i] = -1;
			}
		}
		for (int i = 0; i < n && !stopping; i++) {
			if (pids[i] > 0)
				continue;
			sleep_ms(100); /* a child that dies at once must not spin */
			pids[i] = spawn_child(api, fd);
		}
	}
	for (int i = 0; i < n; i++)
		if (pids[i] > 0 && kill(pids[i], SIGTERM) != 0)
			log_warn("kill %d", (int)pids[i]);
	for (int64_t deadline = util_mono_ms() + STOP_GRACE_MS;;) {
		int left = 0;
		for (int i = 0; i < n; i++) {
			if (pids[i] <= 0)
				continue;
			if (waitpid(pids[i], NULL, WNOHANG) == pids[i])
				pids[i] = -1;
			else
				left++;
		}
		if (left == 0)
			break;
		if (util_mono_ms() >= deadline) {
			for (int i = 0; i < n; i++)
				if (pids[i] > 0) {
					log_warnx(
					    "child %d did not stop: killing it", (int)pids[i]);
					(void)kill(pids[i], SIGKILL);
					(void)waitpid(pids[i], NULL, 0);
				}
			break;
		}
		sleep_ms(20);
	}
	log_info("all children stopped");
	return 0;
}

/* Opens -s PATH or -p [HOST:]PORT. Returns the listening fd. */
static int
open_listener(const char *sock_path, const char *port, mode_t mode)
{
	char addr[300];
	int fd;

	if (sock_path != NULL) {
		if (unlink(sock_path) != 0 && errno != ENOENT)
			fatal("unlink %s", sock_path);
		fd = FCGX_OpenSocket(sock_path, LISTEN_BACKLOG);
		if (fd < 0)
			fatalx("cannot listen on %s", sock_path);
		/* the web server's user (www-data) must be able to connect: 0666 by
		 * default, -m 0660 with a shared group to keep other users out */
		if (chmod(sock_path, mode) != 0)
			fatal("chmod %s", sock_path);
		log_info("listening on %s", sock_path);
		return fd;
	}
	/* a bare port would bind every address: default to loopback */
	if (strchr(port, ':') == NULL)
		snprintf(addr, sizeof(addr), "127.0.0.1:%s", port);
	else if (port[0] == ':')
		fatalx("-p needs a host (127.0.0.1:PORT), not %s", port);
	else
		snprintf(addr, sizeof(addr), "%s", port);
	fd = FCGX_OpenSocket(addr, LISTEN_BACKLOG);
	if (fd < 0)
		fatalx("cannot listen on %s", addr);
	log_info("listening on %s", addr);
	return fd;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "routes", no_argument, NULL, 'R' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock_path = NULL, *port = NULL;
	mode_t sock_mode = 0666;
	struct api api;
	enum log_level lvl = LOG_LEVEL_INFO;
	char err[512];
	int ch, children = 1, routes = 0, fd, rc = 0, left = 0;
	int64_t n;

	/* One malloc arena for the process, not one per request thread: each
	 * thread's arena kept its own free memory from its last requests, and
	 * reserved 64 MiB of address space (which a host's RLIMIT_AS counts).
	 * And a fixed trim threshold of 32 KiB, not glibc's, which moves up as
	 * blocks it mapped are freed (glibc keeps M_TOP_PAD, 128 KiB, either
	 * way; a block over 128 KiB, such as a long page of logs, is then
	 * mapped and unmapped each time). Together 0.2-0.3 MB less RSS, which
	 * the 4 MB target needs. The cost is CPU: the threads meet on the
	 * arena's lock for the blocks their tcaches do not hold (SQLite's
	 * pages, libfcgi's 8 KiB buffers): bench/api.sh, 4 alternating rounds,
	 * 116.5 us per enqueue against 108 with two arenas, whose RSS levelled
	 * off at 4.11 MB after a million requests (one: 3.95). Before any
	 * thread starts. */
	if (mallopt(M_ARENA_MAX, 1) != 1 || mallopt(M_TRIM_THRESHOLD, 32 * 1024) != 1)
		log_warnx("mallopt refused a setting (memory use will be higher)");
	memset(&api, 0, sizeof(api));
	conn_init(&api);
	while ((ch = getopt_long(argc, argv, "s:p:n:m:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			sock_path = optarg;
			break;
		case 'p':
			port = optarg;
			break;
		case 'm': {
			char *end = NULL;
			long m = strtol(optarg, &end, 8);
			if (end == optarg || *end != '\0' || m < 0 || m > 0777)
				usage();
			sock_mode = (mode_t)m;
			break;
		}
		case 'n':
			if (util_parse_i64(optarg, 1, MAX_CHILDREN, &n) != 0)
				usage();
			children = (int)n;
			break;
		case 'R':
			routes = 1;
			break;
		case 'V':
			printf("etl-api %s\n", ETL_VERSION);
			return 0;
		default:
			usage();
		}
	}
	if (optind != argc || (sock_path && port))
		usage();
	if (routes) {
		/* the table does not need a valid configuration, only the base */
		const char *base = getenv("ETL_API_BASE");
		route_print(stdout, base && *base ? base : "/api");
		return fflush(stdout) == 0 ? 0 : 1;
	}

	if (conf_load(&api.conf, err, sizeof(err)) != 0) {
		fprintf(stderr, "etl-api: configuration: %s\n", err);
		return 1;
	}
	if (log_parse_level(api.conf.log_level, &lvl) != 0)
		lvl = LOG_LEVEL_INFO;
	(void)log_init("etl-api", lvl, api.conf.log_file);
	if (api.conf.secret == NULL || strlen(api.conf.secret) < TOK_MIN_SECRET)
		fatalx("ETL_SECRET must be set to at least %d bytes", TOK_MIN_SECRET);
	api.secret_len = strlen(api.conf.secret);
	install_signals();
	batch_scheduling();

	/* first admin, once, before serving (several processes may race: harmless) */
	if (route_db_ensure(&api) == 0) {
		if (hauth_bootstrap_admin(&api) != 0)
			log_warnx("first admin not created");
		db_close(api.db);
		api.db = NULL;
	}

	if (sock_path || port) {
		fd = open_listener(sock_path, port, sock_mode);
	} else if (FCGX_IsCGI()) {
		if (getenv("REQUEST_METHOD") == NULL) {
			fprintf(stderr,
			    "etl-api: not run by a web server (no FastCGI socket on fd 0, "
			    "no CGI request)\n");
			conf_free(&api.conf);
			usage();
		}
		serve_cgi(&api);
		goto out;
	} else {
		fd = 0; /* spawned by the web server */
	}
	if (FCGX_Init() != 0)
		fatalx("FCGX_Init failed");
	if (children > 1)
		rc = prefork(&api, fd, children);
	else
		left = serve(&api, fd);
	if (sock_path && unlink(sock_path) != 0)
		log_warn("unlink %s", sock_path);
	if (left > 0)
		_exit(0); /* threads still run: no exit handlers under them */
out:
	conf_free(&api.conf);
	conn_destroy(&api);
	return rc;
}
