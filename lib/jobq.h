/*
 * jobq: the job queue on SQLite, the one seam a networked job store would
 * replace. Enqueue (with idempotency keys), atomic FIFO acquire with sistema
 * exclusivity and a global slot limit, lease renewal, legal state transitions
 * only, cancel requests, orphan sweeps, the worker registry, log lines with a
 * contiguous per-job seq, and the read queries the API pages through.
 *
 * Every write is one BEGIN IMMEDIATE transaction; functions return enum
 * db_rc (DB_BUSY when the database stayed locked past the busy timeout).
 *
 * Legal transitions: pending->running, pending->cancelled,
 * running->completed|error|cancelled. Anything else is DB_CONFLICT.
 */
#ifndef ETL_JOBQ_H
#define ETL_JOBQ_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "util.h"

struct json_object;

enum job_status { JOB_PENDING, JOB_RUNNING, JOB_COMPLETED, JOB_ERROR, JOB_CANCELLED, JOB__MAX };

#define JOBQ_MAX_SISTEMAS 64

/* "pending", "running", ... */
const char *jobq_status_name(enum job_status s);
/* Returns 0 and sets *out, or -1 for an unknown name. */
int jobq_status_parse(const char *s, enum job_status *out);
/* 1 if from -> to is a legal transition. */
int jobq_transition_ok(enum job_status from, enum job_status to);

struct job {
	int64_t id;
	enum job_status status;
	char **sistemas; /* nsistemas malloc'd ids */
	size_t nsistemas;
	char *params; /* JSON object text, or NULL (absent, or legacy text that is not JSON) */
	int64_t created_ms; /* ms since epoch; -1 when NULL */
	int64_t started_ms;
	int64_t finished_ms;
	int worker_slot; /* -1 when NULL */
	int64_t worker_id; /* -1 when NULL */
	int has_exit_code;
	int exit_code;
	char *error_message; /* NULL when none */
	char *created_by; /* NULL for legacy jobs */
	int cancel_requested;
};
/* Frees what j owns and zeroes it. jobq_job_clear(NULL) is a no-op. */
void jobq_job_clear(struct job *j);
/* The API's JSON shape of a job (new object, caller puts it). */
struct json_object *jobq_job_json(const struct job *j);

/*
 * Enqueues a job for n (1..64) distinct sistemas that must exist and be
 * active; params is JSON object text or NULL. With idem_key (non-NULL), a
 * second call by the same created_by with the same key returns the first
 * job's id and sets *existed = 1 without enqueuing. Sistemas not running in
 * another job become PENDING; bit i of *pending_mask is set for each such
 * sistemas[i] (for the caller's status events).
 * Returns DB_OK; DB_INVALID with the offending id copied to bad (65 bytes)
 * when a sistema is unknown or inactive; DB_BUSY, DB_FULL, DB_ERROR.
 */
enum db_rc jobq_enqueue(struct db *db, const char *const *sistemas, size_t n, const char *params,
    const char *created_by, const char *idem_key, int64_t *job_id, int *existed,
    uint64_t *pending_mask, char bad[65]);
/* The same inside the caller's write transaction (etl-api's batch,
 * fcgi/conn.h): on an error return the caller must undo what it did
 * (a savepoint, or the transaction); with *existed it changed nothing.
 * announce: the caller will publish the job's `pending` event (jobs.announce,
 * schema/005_announce.sql); jobq_enqueue passes 0. */
enum db_rc jobq_enqueue_in(struct db *db, const char *const *sistemas, size_t n, const char *params,
    const char *created_by, const char *idem_key, int announce, int64_t *job_id, int *existed,
    uint64_t *pending_mask, char bad[65]);

/*
 * Atomically takes the oldest pending job (FIFO by created_at, id) whose
 * sistemas are all free of running jobs (when exclusive), provided fewer
 * than max_slots jobs run in the whole database. The job gets the lowest
 * free slot id in 0..max_slots-1, worker_id, started_at = locked_at = now,
 * and its sistemas become RUNNING with progresso 0.
 * Returns 1 with *out filled (caller clears it), 0 when nothing can start,
 * or a negative enum db_rc.
 */
int jobq_acquire(struct db *db, int64_t worker_id, int max_slots, int exclusive, struct job *out);

/*
 * The gate of a worker that listens to the events channel: a job enqueued
 * with announce = 1 whose `pending` event the worker has not seen is held,
 * with every job after it (FIFO), while it is younger than young_since;
 * past that its event is not coming (dropped, or its enqueuer died).
 */
struct jobq_gate {
	const char *seen; /* JSON array of the job ids seen announced */
	const char *young_since; /* ISO 8601 (UTC, as created_at is written) */
	/* out, after a 0 or a 1: the first held job and its created_at (ms
	 * since the epoch); 0 and -1 when none is held */
	int64_t held_id, held_ms;
};
/* jobq_acquire through gate (NULL: none, as jobq_acquire). */
int jobq_acquire_gated(struct db *db, int64_t worker_id, int max_slots, int exclusive,
    struct jobq_gate *gate, struct job *out);

/* Renews locked_at of every running job of worker_id, and its heartbeat. */
enum db_rc jobq_renew(struct db *db, int64_t worker_id);

/* A sistema's status as the worker sets it (at a job's end, or on a line). */
struct sist_update {
	const char *id;
	const char *status; /* "RUNNING", "SUCCESS", "ERROR", ... */
	int progresso; /* 0..100 */
	const char *mensagem; /* NULL for SQL NULL */
	int set_ultima; /* 1: ultima_execucao = the finish time */
};

/*
 * Ends a running job: status (completed, error or cancelled), exit code
 * (has_exit 0 for none), error message (NULL for none), finished_at = now,
 * and applies n sistema updates, all in one transaction. *finished_ms gets
 * the finish time. DB_CONFLICT if the job is not running (already closed by
 * a sweep, say): then nothing changes.
 */
enum db_rc jobq_finish(struct db *db, int64_t job_id, enum job_status status, int has_exit,
    int exit_code, const char *error_message, const struct sist_update *upd, size_t n,
    int64_t *finished_ms);

/* Cancel outcomes. */
enum jobq_cancel_result {
	JOBQ_CANCELLED_NOW, /* was pending: now cancelled */
	JOBQ_CANCEL_REQUESTED, /* running: the worker will stop it */
	JOBQ_CANCEL_FINISHED, /* already final: 409 */
};
/*
 * Cancels job id: pending -> cancelled at once (its PENDING sistemas go back
 * to IDLE... or to their previous final status is not kept: IDLE), running
 * -> cancel_requested = 1. *out is the job after the change (caller clears).
 * Returns DB_OK with *res set, DB_NOTFOUND, DB_BUSY, ...
 */
enum db_rc jobq_cancel(struct db *db, int64_t id, enum jobq_cancel_result *res, struct job *out);

/* Ids of worker_id's running jobs with cancel_requested set; at most max.
 * Returns the count (>= 0) or a negative enum db_rc. */
int jobq_cancel_requests(struct db *db, int64_t worker_id, int64_t *ids, int max);

/*
 * Closes as error (error_message = reason) every running job whose lease
 * (locked_at) is older than now - lease_timeout_s, and every running job
 * that no worker holds (legacy rows left by a crash of the original
 * dashboard). Their RUNNING/PENDING sistemas become ERROR with reason as
 * mensagem. Closed ids go to ids (at most max; more may have been closed).
 * Returns the count closed (>= 0) or a negative enum db_rc.
 */
int jobq_sweep_orphans(
    struct db *db, int lease_timeout_s, const char *reason, int64_t *ids, int max);

/* As jobq_sweep_orphans, for the running jobs of one (dead) worker. */
int jobq_close_worker_jobs(
    struct db *db, int64_t worker_id, const char *reason, int64_t *ids, int max);

/* ---- worker registry ---- */

struct worker_info {
	int64_t id;
	char host[256];
	int pid;
	char boot_id[64];
	int64_t started_ms;
	int64_t heartbeat_ms;
	int slots;
};
/* Registers this worker; *id is its row id. */
enum db_rc jobq_worker_register(
    struct db *db, const char *host, int pid, const char *boot_id, int slots, int64_t *id);
/* Removes the row (clean exit). */
enum db_rc jobq_worker_unregister(struct db *db, int64_t id);
/* Workers registered on host (at most max). Returns the count or a negative enum db_rc. */
int jobq_workers_on_host(struct db *db, const char *host, struct worker_info *out, int max);
/* Stores the publishing counters of a worker (for /api/metrics). */
enum db_rc jobq_worker_counters(struct db *db, int64_t id, int64_t published, int64_t dropped);

enum worker_state { WORKER_ALIVE, WORKER_STALE, WORKER_ABSENT };
/* "alive" if some worker's heartbeat is younger than stale_s, "stale" if
 * workers exist but none is, "absent" if none is registered. */
enum db_rc jobq_worker_state(struct db *db, int stale_s, enum worker_state *out);
const char *jobq_worker_state_name(enum worker_state s);

/* ---- log lines ---- */

struct logline {
	int64_t job_id;
	int64_t seq; /* 1, 2, ... within a job, contiguous */
	int64_t ts_ms;
	const char *level; /* "INFO", ... */
	const char *sistema; /* "amplis", "stdout", ... */
	const char *mensagem; /* valid UTF-8 */
};
/* Appends n lines (any jobs) in one transaction. */
enum db_rc jobq_append_logs(struct db *db, const struct logline *lines, size_t n);
/* The highest seq of a job (0 when none). */
enum db_rc jobq_last_seq(struct db *db, int64_t job_id, int64_t *seq);

/*
 * The API's logs page: {"job_id", "lines": [...], "next"} for lines with
 * seq > after, at most limit. DB_NOTFOUND if the job does not exist.
 */
enum db_rc jobq_logs_text(struct db *db, int64_t job_id, int64_t after, int limit, struct buf *out);

/* ---- reads for the API ---- */

/* DB_OK with *out filled (caller clears), or DB_NOTFOUND. */
enum db_rc jobq_get(struct db *db, int64_t id, struct job *out);
/* {"items": [...], "total": N} newest first; status < 0 for all. Written
 * as JSON text into out (reset first): the list is the API's hottest read
 * and building a json-c tree per row cost most of its time. */
enum db_rc jobq_list_text(struct db *db, int status, int limit, int offset, struct buf *out);
/* Count of jobs per status (counts[JOB__MAX]). */
enum db_rc jobq_counts(struct db *db, int64_t counts[JOB__MAX]);

struct slot_info {
	int slot_id;
	int64_t job_id; /* -1 when idle */
	int64_t started_ms; /* -1 when idle */
};
/* Fills slots[0..max_slots-1] from the running jobs (slot ids outside the
 * range are ignored). */
enum db_rc jobq_slots(struct db *db, int max_slots, struct slot_info *slots);

/* Durations (s) of finished jobs, for the metrics histogram: counts per
 * bucket upper bound (bounds[nb], +Inf implied), sum and count. */
enum db_rc jobq_duration_hist(struct db *db, const double *bounds, size_t nb,
    int64_t *bucket_counts, double *sum, int64_t *count);

/* Deletes finished jobs (and their logs) that finished before cutoff_ms.
 * *deleted gets the number of jobs removed. */
enum db_rc jobq_prune(struct db *db, int64_t cutoff_ms, int64_t *deleted);
/* Counts the jobs per status again into job_counts when they differ from
 * the rows. Triggers keep them (schema/004), except through an INSERT OR
 * REPLACE typed in the sqlite3 shell, whose implicit delete fires no
 * trigger. *fixed: how many statuses were off (0: nothing written).
 * etl-worker runs it at start; etlctl recount on demand. */
enum db_rc jobq_recount(struct db *db, int *fixed);

/* Puts a finished job's copy back in the queue as a new pending job (admin requeue). */
enum db_rc jobq_requeue(struct db *db, int64_t id, const char *by, int64_t *new_id);

#endif
