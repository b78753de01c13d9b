/*
 * loop: the one event loop of etl-worker. poll(2) over a signalfd
 * (SIGCHLD, SIGTERM, SIGINT, SIGHUP), the wake-up datagram socket, the
 * Redis publisher's and subscriber's sockets and the two pipes of each
 * running pipeline; the
 * timers (lease renewal, orphan sweep, fallback poll, job timeouts, kill
 * grace, shutdown grace, Redis reconnect, DB-busy retries) only set poll's
 * timeout. Each turn: timers, cancel checks, acquire, slot state, one group
 * commit of every waiting line, then poll. No busy waiting: with nothing to
 * do the loop sleeps until the nearest timer. (The one other thread,
 * lib/ckpt.c, checkpoints the WAL on its own connection.)
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"
#include "pub.h"
#include "wake.h"
#include "worker.h"

#define LOOP_FLUSH_RETRY_MS 50

int
loop_signals_init(void)
{
	sigset_t set;
	struct sigaction sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) == -1)
		return -1;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		return -1;
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd;
}

static void
begin_shutdown(struct worker *w, int sig)
{
	int64_t now = util_mono_ms();

	if (!w->stopping) {
		w->stopping = 1;
		w->shutdown_at = now + (int64_t)w->conf.shutdown_grace * 1000;
		log_info("signal %d: taking no new job; %d running may finish within %d s", sig,
		    worker_busy_slots(w), w->conf.shutdown_grace);
	} else if (w->shutdown_at > now) {
		w->shutdown_at = now; /* a second signal: stop them now */
		log_info("signal %d again: cancelling the running jobs", sig);
	}
}

static void
on_signals(struct worker *w)
{
	struct signalfd_siginfo si;
	ssize_t n;

	for (;;) {
		n = read(w->sig_fd, &si, sizeof(si));
		if (n != (ssize_t)sizeof(si)) {
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1 && errno != EAGAIN)
				log_warn("signalfd");
			return;
		}
		switch (si.ssi_signo) {
		case SIGCHLD:
			slot_reap_children(w);
			break;
		case SIGTERM:
		case SIGINT:
			begin_shutdown(w, (int)si.ssi_signo);
			break;
		case SIGHUP:
			if (log_reopen() == -1)
				log_warnx("SIGHUP: cannot reopen the log");
			else
				log_info("SIGHUP: log reopened");
			break;
		default:
			break;
		}
	}
}

/* The smaller of two waits in ms; ms < 0 means "no timer". */
static int64_t
min_wait(int64_t cur, int64_t ms)
{
	if (ms < 0)
		return cur;
	if (cur < 0 || ms < cur)
		return ms;
	return cur;
}

/* ms from now until at (mono), 0 when due. */
static int64_t
until(int64_t at, int64_t now)
{
	return at > now ? at - now : 0;
}

/* One pollfd per watched fd; what each stands for. */
enum pf_kind { PF_SIG, PF_WAKE, PF_PUB, PF_REMOTE, PF_PIPE };
struct pf_ref {
	enum pf_kind kind;
	struct slot *slot;
	struct stream *st;
};

/* The poll set of one turn: fds and what they stand for. */
struct pollset {
	struct pollfd *pfd;
	struct pf_ref *ref;
	int n, max;
};

/* Periodic work whose time has come, and the shutdown deadline. */
static void
run_timers(struct worker *w, int64_t now, int poll_ms)
{
	if (now >= w->next_sweep) {
		lease_sweep(w);
		w->next_sweep = now + (int64_t)w->conf.job_cleanup_interval * 1000;
	}
	if (now >= w->next_lease) {
		lease_renew(w);
		w->want_cancels = 1;
		w->next_lease = now + (int64_t)w->conf.lease_interval * 1000;
	}
	if (now >= w->next_poll) {
		w->want_acquire = w->want_cancels = 1; /* the safety net */
		w->next_poll = now + poll_ms;
	}
	if (w->held_until && (now >= w->held_until || !remote_gating(w->remote))) {
		w->held_until = 0;
		w->want_acquire = 1; /* a held job's grace is over, or the gate is gone */
	}
	if (w->stopping && !w->shutdown_cancelled && now >= w->shutdown_at) {
		w->shutdown_cancelled = 1;
		if (worker_busy_slots(w) > 0)
			log_info("shutdown grace over: cancelling %d job(s)", worker_busy_slots(w));
		dispatch_stop_all(w, STOP_SHUTDOWN);
	}
}

static void
pollset_add(struct pollset *ps, int fd, short events, struct pf_ref ref)
{
	ps->pfd[ps->n] = (struct pollfd){ .fd = fd, .events = events };
	ps->ref[ps->n++] = ref;
}

static void
build_pollset(struct worker *w, struct pollset *ps)
{
	ps->n = 0;
	pollset_add(ps, w->sig_fd, POLLIN, (struct pf_ref){ .kind = PF_SIG });
	if (w->wake_fd != -1)
		pollset_add(ps, w->wake_fd, POLLIN, (struct pf_ref){ .kind = PF_WAKE });
	if (pub_pollfd(w->pub, &ps->pfd[ps->n]))
		ps->ref[ps->n++] = (struct pf_ref){ .kind = PF_PUB };
	if (remote_pollfd(w->remote, &ps->pfd[ps->n]))
		ps->ref[ps->n++] = (struct pf_ref){ .kind = PF_REMOTE };
	/* Backpressure: with the queue full, the pipes wait (and so do their writers). */
	for (int i = 0; i < w->nslots && !ingest_full(w->ing); i++) {
		struct slot *s = &w->slots[i];
		struct stream *sts[2] = { &s->out, &s->err };

		if (s->state != SLOT_RUNNING && s->state != SLOT_REAPING)
			continue;
		for (int k = 0; k < 2; k++)
			if (sts[k]->fd != -1)
				pollset_add(ps, sts[k]->fd, POLLIN,
				    (struct pf_ref){ .kind = PF_PIPE, .slot = s, .st = sts[k] });
	}
}

/* poll's timeout: the nearest timer, given the slots' own (wait). */
static int
next_timeout(struct worker *w, int64_t now, int64_t wait, int64_t flush_retry)
{
	if ((w->want_acquire && !w->stopping) || w->want_cancels)
		wait = min_wait(wait, until(w->retry_at, now));
	if (ingest_pending(w->ing) > 0)
		wait = min_wait(wait, until(flush_retry, now));
	wait = min_wait(wait, until(w->next_lease, now));
	wait = min_wait(wait, until(w->next_sweep, now));
	if (!w->stopping)
		wait = min_wait(wait, until(w->next_poll, now));
	if (w->held_until && !w->stopping)
		wait = min_wait(wait, until(w->held_until, now));
	if (w->stopping && !w->shutdown_cancelled)
		wait = min_wait(wait, until(w->shutdown_at, now));
	wait = min_wait(wait, pub_tick(w->pub));
	wait = min_wait(wait, remote_tick(w->remote));
	if (w->nclosed > 0)
		wait = min_wait(wait, 50); /* announce once Redis is up */
	if (w->retry_at)
		wait = min_wait(wait, until(w->retry_at, now));
	if (wait > 60000 || wait < 0)
		wait = 60000;
	return (int)wait;
}

static void
handle_events(struct worker *w, struct pollset *ps)
{
	for (int i = 0; i < ps->n; i++) {
		if (ps->pfd[i].revents == 0)
			continue;
		switch (ps->ref[i].kind) {
		case PF_SIG:
			on_signals(w);
			break;
		case PF_WAKE:
			wake_drain(w->wake_fd);
			w->want_acquire = w->want_cancels = 1;
			break;
		case PF_PUB:
			pub_handle(w->pub, ps->pfd[i].revents);
			break;
		case PF_REMOTE:
			remote_handle(w->remote, ps->pfd[i].revents);
			break;
		case PF_PIPE:
			if (ps->ref[i].st->fd != -1)
				(void)slot_read(w, ps->ref[i].slot, ps->ref[i].st);
			break;
		}
	}
	/* A dead leader's group is empty: read what is left without waiting. */
	for (int i = 0; i < w->nslots; i++) {
		struct slot *s = &w->slots[i];

		if (s->state != SLOT_REAPING || !s->group_empty)
			continue;
		if (s->out.fd != -1)
			(void)slot_read(w, s, &s->out);
		if (s->err.fd != -1)
			(void)slot_read(w, s, &s->err);
	}
}

int
loop_run(struct worker *w)
{
	struct pollset ps;
	int64_t now = util_mono_ms(), wait, flush_retry = 0;
	int poll_ms = (int)(w->conf.poll_interval * 1000);
	int rc = 0;

	ps.max = 4 + 2 * w->nslots;
	ps.pfd = xcalloc((size_t)ps.max, sizeof(*ps.pfd));
	ps.ref = xcalloc((size_t)ps.max, sizeof(*ps.ref));
	if (poll_ms < 1)
		poll_ms = 1;
	w->next_lease = now + (int64_t)w->conf.lease_interval * 1000;
	w->next_sweep = now; /* first sweep at once: recovers what a crash left running */
	w->next_poll = now + poll_ms;
	w->want_acquire = 1;

	for (;;) {
		now = util_mono_ms();
		run_timers(w, now, poll_ms);
		if (w->retry_at == 0 || now >= w->retry_at) {
			w->retry_at = 0;
			if (w->want_cancels) {
				w->want_cancels = 0;
				dispatch_cancels(w);
			}
			if (w->want_acquire && !w->stopping) {
				w->want_acquire = 0;
				dispatch_acquire(w);
			}
		}
		lease_announce(w);

		/* Group commit: every line read during the last turn, one transaction. */
		if (flush_retry == 0 || now >= flush_retry) {
			flush_retry = 0;
			if (ingest_flush(w) == -1)
				flush_retry = now + LOOP_FLUSH_RETRY_MS;
		}

		wait = -1;
		for (int i = 0; i < w->nslots; i++) {
			struct slot *s = &w->slots[i];

			wait = min_wait(wait, slot_tick(w, s, now));
			if (s->state == SLOT_FINISHING &&
			    (w->retry_at == 0 || now >= w->retry_at) && dispatch_finish(w, s) == 0)
				wait = 0; /* a slot is free: acquire at once */
		}
		if (w->stopping && worker_busy_slots(w) == 0)
			break;
		if (w->once && w->queue_empty && !w->want_acquire && worker_busy_slots(w) == 0 &&
		    ingest_pending(w->ing) == 0) {
			log_info("--once: queue empty, all slots idle");
			break;
		}

		build_pollset(w, &ps);
		if (poll(ps.pfd, (nfds_t)ps.n, next_timeout(w, now, wait, flush_retry)) == -1) {
			if (errno == EINTR)
				continue;
			log_warn("poll");
			rc = -1;
			break;
		}
		handle_events(w, &ps);
	}
	free(ps.pfd);
	free(ps.ref);
	return rc;
}
