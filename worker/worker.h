/*
 * worker.h: the state of the etl-worker daemon shared by its modules (one
 * struct worker for the process, one struct slot per job it can run at
 * once) and the functions each module offers the others. The daemon is a
 * single thread around one poll loop (loop.c); nothing here is locked.
 *
 *   main.c      command line, configuration, open, run, clean up
 *   loop.c      the poll loop: signals, wake-ups, timers, Redis, pipes
 *   dispatch.c  acquire jobs, cancel requests, finish jobs (DB + events)
 *   slot.c      spawn the pipeline, read its pipes, kill escalation, reaping
 *   lines.c     bytes -> lines (LF, CRLF, CR, long lines): pure, unit-tested
 *   ingest.c    parsing, sistema status, group commit, events
 *   lease.c     registry, heartbeat and leases, orphan sweeps, predecessors
 *   remote.c    wake-ups through Redis (an etl-api on another host), and the
 *               gate that starts a job only once its pending is out
 */
#ifndef ETL_WORKER_H
#define ETL_WORKER_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf.h"
#include "jobq.h"
#include "lines.h"
#include "util.h"

struct db;
struct ckpt;
struct pub;
struct ingest;
struct remote;

enum slot_state {
	SLOT_IDLE, /* no job */
	SLOT_RUNNING, /* the pipeline's leader is alive */
	SLOT_REAPING, /* leader reaped: killing what is left of its group, draining pipes */
	SLOT_FINISHING /* group empty, pipes closed: waiting to commit the end */
};

/* Why the worker is stopping a job (set once, the first reason wins). */
enum slot_stop { STOP_NONE, STOP_TIMEOUT, STOP_CANCEL, STOP_SHUTDOWN };

/* A sistema of the running job, as this worker last set it. */
struct sist_state {
	const char *id; /* points into the job's sistemas */
	const char *status; /* static string: "RUNNING", "SUCCESS", "ERROR" */
	int progresso; /* 0..100, never decreases while the job runs */
	char *mensagem; /* malloc'd, or NULL */
	int own_final; /* a line of the job said SUCCESS or ERROR */
	int dirty; /* changed since the last commit */
};

struct slot {
	int index; /* position in worker.slots (not the DB slot id) */
	enum slot_state state;
	struct job job; /* job.worker_slot is the DB's slot id */
	pid_t pid; /* leader = process group id, -1 when none */
	int wstatus; /* the leader's wait status once reaped */
	struct stream out, err;
	int64_t started_mono; /* ms, monotonic */
	int64_t deadline_mono; /* ms: past it the job times out */
	enum slot_stop stop;
	int64_t term_mono; /* ms when SIGTERM went to the group, -1 */
	int kill_sent; /* SIGKILL went to the group */
	int group_empty; /* leader reaped and kill(-pgid) says ESRCH */
	char *errmsg; /* malloc'd: why the job failed before running, or NULL */
	int64_t next_seq; /* seq of the next log line */
	struct sist_state *sist;
	size_t nsist;
	int sist_dirty; /* some sist[i].dirty */
	int64_t lines; /* lines seen (for the log) */
	int finish_tries; /* failed jobq_finish calls (not busy) */
};

struct worker {
	struct conf conf;
	struct db *db;
	struct ckpt *ckpt; /* the WAL checkpointer thread */
	struct pub *pub;
	struct ingest *ing;
	struct remote *remote; /* NULL without Redis */
	char **cmd; /* ETL_PIPELINE_CMD split on blanks, NULL-terminated */
	size_t ncmd;
	char *wake_dir;
	int wake_fd; /* -1 when none */
	int sig_fd; /* signalfd */
	int devnull_fd; /* /dev/null, the pipelines' stdin */
	int64_t worker_id; /* row in workers, -1 before registering */
	char host[256];
	char boot_id[64];
	struct slot *slots;
	int nslots;
	int once; /* --once: exit when the queue is empty and all slots idle */
	int queue_empty; /* the last acquire found nothing to start */
	int stopping; /* SIGTERM/SIGINT seen: take no new job */
	int64_t shutdown_at; /* ms (mono): cancel what still runs */
	int shutdown_cancelled;
	int want_acquire; /* try jobq_acquire at the next turn */
	int want_cancels; /* check jobq_cancel_requests at the next turn */
	int64_t next_lease; /* ms (mono) */
	int64_t next_sweep;
	int64_t next_poll;
	int64_t retry_at; /* ms (mono): DB busy, retry acquire/finish then; 0 none */
	int64_t held_until; /* ms (mono): a job the gate holds may start (remote_gate); 0 none */
	int64_t held_id; /* that job */
	int64_t jobs_started;
	int64_t jobs_finished;
	int64_t *closed; /* orphan jobs closed, not announced yet */
	size_t nclosed, capclosed;
	int64_t started_mono; /* ms */
};

/* ---- main.c ---- */
/* Publishes msg (an event built by evt.h) and frees it. msg NULL: no-op. */
void worker_publish(struct worker *w, char *msg);
/* Number of slots not idle. */
int worker_busy_slots(const struct worker *w);

/* ---- loop.c ---- */
/* Blocks the signals the loop takes through a signalfd, ignores SIGPIPE.
 * Returns the signalfd or -1. */
int loop_signals_init(void);
/* Runs until the worker may exit. Returns 0 (clean stop) or -1. */
int loop_run(struct worker *w);

/* ---- dispatch.c ---- */
/* Starts jobs while a slot is free and the queue gives one. */
void dispatch_acquire(struct worker *w);
/* Asks running jobs whose cancel was requested to stop. */
void dispatch_cancels(struct worker *w);
/* Ends a slot in SLOT_FINISHING: flushes its lines, jobq_finish, events.
 * Returns 0 when done (slot idle), -1 to retry later (DB busy). */
int dispatch_finish(struct worker *w, struct slot *s);
/* Starts stopping every running job with reason why. */
void dispatch_stop_all(struct worker *w, enum slot_stop why);

/* ---- slot.c ---- */
/* Forks and execs the pipeline for s->job (already acquired). Returns 0,
 * or -1 (then the job is finished as error by the caller). */
int slot_spawn(struct worker *w, struct slot *s, char *errbuf, size_t errlen);
/* Sends sig to the group of s (no-op without a group). */
void slot_signal(struct slot *s, int sig);
/* Begins the SIGTERM -> SIGKILL escalation for reason why. */
void slot_stop(struct worker *w, struct slot *s, enum slot_stop why);
/* Reaps every exited child (SIGCHLD). */
void slot_reap_children(struct worker *w);
/* Reads what a pipe has (bounded), feeding ingest. Returns 1 when more
 * may be waiting, 0 otherwise. */
int slot_read(struct worker *w, struct slot *s, struct stream *st);
/* Timers of one slot: job timeout, SIGKILL after the grace, killing the
 * rest of an exited leader's group. Returns ms until it needs to run
 * again, or -1. */
int64_t slot_tick(struct worker *w, struct slot *s, int64_t now);
/* Releases what a finished slot holds and makes it idle. */
void slot_clear(struct slot *s);

/* ---- ingest.c ---- */
struct ingest *ingest_new(size_t max_line);
void ingest_free(struct ingest *g);
/* Frees the queue's peak memory when nothing waits (call when idle). */
void ingest_trim(struct ingest *g);
/* 1 when the pending lines reached the bound: stop reading the pipes. */
int ingest_full(const struct ingest *g);
/* Lines waiting for a commit. */
size_t ingest_pending(const struct ingest *g);
/* Sets up the sistema states of a slot's new job (RUNNING, 0). */
void ingest_job_start(struct slot *s);
/* Feeds n bytes read from st at ts_ms (wall). */
void ingest_bytes(
    struct worker *w, struct slot *s, struct stream *st, const char *p, size_t n, int64_t ts_ms);
/* End of a stream: a partial last line becomes a line. */
void ingest_eof(struct worker *w, struct slot *s, struct stream *st);
/* Commits every pending line (one transaction) and dirty sistema status,
 * then publishes. Returns 0 (done or nothing to do) or -1 (DB busy: kept,
 * retry later). */
int ingest_flush(struct worker *w);
/* Frees the sistema states of a slot. */
void ingest_job_end(struct slot *s);

/* ---- lease.c ---- */
/* Closes the jobs of dead predecessors on this host, then registers.
 * Returns 0 or -1. */
int lease_start(struct worker *w);
/* Heartbeat, lease renewal and counters. */
void lease_renew(struct worker *w);
/* jobq_sweep_orphans, with events for what was closed. */
void lease_sweep(struct worker *w);
/* Rewrites "<wake dir>/worker-<pid>.jobs": job id and process group of
 * each running pipeline (for a successor if this worker dies). */
void lease_track(struct worker *w);
/* Unregisters (clean exit) and removes the jobs file. */
void lease_stop(struct worker *w);
/* Notes a job closed as an orphan; lease_announce() publishes its
 * job_status, job_complete and sistema status events. */
void lease_closed(struct worker *w, int64_t job_id);
/* Publishes what lease_closed noted, once the publisher is past its first
 * connection attempt (the closes at start come before Redis is up). */
void lease_announce(struct worker *w);

/* ---- remote.c ---- */
/* Subscribes to "<prefix>:ws" when Redis is enabled; NULL otherwise. */
struct remote *remote_open(struct worker *w);
void remote_close(struct remote *r);
/* As pub_pollfd / pub_handle / pub_tick (tick returns ms, -1: not needed). */
int remote_pollfd(struct remote *r, struct pollfd *pfd);
void remote_handle(struct remote *r, short revents);
int64_t remote_tick(struct remote *r);
/* Fills g with the gate (remote.c's comment) and returns 1; 0 when there
 * is none: r NULL, or not subscribed while our publisher is down too. g's
 * strings are r's until the next call. */
int remote_gate(struct remote *r, struct jobq_gate *g);
/* How long an announced job waits for its event at most (ms). */
int64_t remote_grace_ms(const struct remote *r);
/* Whether remote_gate would give a gate now. */
int remote_gating(const struct remote *r);
/* Whether job id's pending is among those seen (within the grace). */
int remote_saw(const struct remote *r, int64_t id);

#endif
