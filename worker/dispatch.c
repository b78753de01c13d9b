/*
 * dispatch: where jobs enter and leave the worker's slots. Acquires jobs
 * through jobq_acquire_gated (FIFO, sistema exclusivity, the global slot
 * limit: the database decides, so any number of workers can share it; and
 * with Redis, not before the job's pending event, remote.c), starts
 * their pipelines, turns cancel requests into the kill escalation, and
 * ends jobs: the final status of the job and of each of its sistemas
 * (API.md "The pipeline") in one jobq_finish transaction, then the
 * `status`, `job_status` and `job_complete` events, then a wake-up so
 * that workers waiting on a freed sistema or slot look again.
 * Runs in the loop of etl-worker only.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "db.h"
#include "evt.h"
#include "jobq.h"
#include "log.h"
#include "wake.h"
#include "worker.h"

#define DISPATCH_RETRY_MS 100 /* DB busy: try again after */
#define DISPATCH_FINISH_TRIES 600 /* non-busy errors of jobq_finish before giving up (~60 s) */

static struct slot *
free_slot(struct worker *w)
{
	for (int i = 0; i < w->nslots; i++)
		if (w->slots[i].state == SLOT_IDLE)
			return &w->slots[i];
	return NULL;
}

static void
start_job(struct worker *w, struct slot *s, struct job *j)
{
	char err[256];
	int64_t last = 0;

	s->job = *j;
	memset(j, 0, sizeof(*j));
	s->state = SLOT_RUNNING; /* until spawned: so no other acquire takes the slot */
	s->pid = -1;
	s->lines = 0;
	s->next_seq = 1;
	if (jobq_last_seq(w->db, s->job.id, &last) == DB_OK)
		s->next_seq = last + 1;
	ingest_job_start(s);
	w->jobs_started++;
	/* jobq_acquire made the job running and its sistemas RUNNING/0. */
	worker_publish(w, evt_job_status(s->job.id, "running", s->job.worker_slot));
	for (size_t i = 0; i < s->nsist; i++)
		worker_publish(w, evt_status(s->sist[i].id, "RUNNING", 0, NULL));
	if (slot_spawn(w, s, err, sizeof(err)) == -1) {
		log_warnx("job=%lld slot=%d cannot start the pipeline: %s", (long long)s->job.id,
		    s->job.worker_slot, err);
		s->errmsg = xasprintf("cannot start the pipeline: %s", err);
		s->out.fd = s->err.fd = -1;
		s->state = SLOT_FINISHING;
		return;
	}
	lease_track(w);
}

void
dispatch_acquire(struct worker *w)
{
	struct slot *s;
	struct job j;
	struct jobq_gate gate;
	int64_t was_held = w->held_id;
	int rc, gated = 0;

	w->held_until = 0;
	w->held_id = 0;
	if (!w->stopping && free_slot(w) != NULL)
		gated = remote_gate(w->remote, &gate); /* no event is read in the loop */
	while (!w->stopping && (s = free_slot(w)) != NULL) {
		memset(&j, 0, sizeof(j));
		rc = jobq_acquire_gated(w->db, w->worker_id, w->conf.max_concurrent_jobs,
		    w->conf.sistema_exclusive, gated ? &gate : NULL, &j);
		if (rc == 0 && gated && gate.held_id > 0) {
			/* its event is on its way (it wakes us); at the latest, then
			 * (2 ms past: at the very millisecond it is still held) */
			int64_t in = gate.held_ms < 0 ? remote_grace_ms(w->remote)
			                              : gate.held_ms + remote_grace_ms(w->remote) -
			                                    util_now_ms();
			w->held_id = gate.held_id;
			w->held_until = util_mono_ms() + (in > 0 ? in : 0) + 2;
			w->queue_empty = 0;
			return;
		}
		if (rc == 0) {
			w->queue_empty = 1;
			return;
		}
		if (rc < 0) {
			log_warnx("acquire: %s (retrying)",
			    rc == DB_BUSY ? "database busy" : db_errmsg(w->db));
			w->retry_at = util_mono_ms() + DISPATCH_RETRY_MS;
			w->want_acquire = 1;
			return;
		}
		w->queue_empty = 0;
		if (gated && j.id == was_held && !remote_saw(w->remote, j.id) &&
		    util_now_ms() - j.created_ms >= remote_grace_ms(w->remote))
			log_warnx("job=%lld: started without its pending event, not seen within "
			          "%lld ms",
			    (long long)j.id, (long long)remote_grace_ms(w->remote));
		start_job(w, s, &j);
	}
}

void
dispatch_cancels(struct worker *w)
{
	int64_t ids[64];
	int n, max = w->nslots < 64 ? w->nslots : 64;

	if (worker_busy_slots(w) == 0)
		return;
	n = jobq_cancel_requests(w->db, w->worker_id, ids, max);
	if (n < 0) {
		log_warnx("cancel requests: %s", n == DB_BUSY ? "database busy" : db_errmsg(w->db));
		w->want_cancels = 1;
		w->retry_at = util_mono_ms() + DISPATCH_RETRY_MS;
		return;
	}
	for (int k = 0; k < n; k++) {
		for (int i = 0; i < w->nslots; i++) {
			struct slot *s = &w->slots[i];

			if (s->state != SLOT_IDLE && s->job.id == ids[k] && s->stop == STOP_NONE) {
				log_info("job=%lld slot=%d cancel requested", (long long)s->job.id,
				    s->job.worker_slot);
				slot_stop(w, s, STOP_CANCEL);
			}
		}
	}
}

void
dispatch_stop_all(struct worker *w, enum slot_stop why)
{
	for (int i = 0; i < w->nslots; i++)
		if (w->slots[i].state != SLOT_IDLE)
			slot_stop(w, &w->slots[i], why);
}

/* The job's outcome from how it was stopped or how its leader ended. */
static enum job_status
outcome(struct worker *w, struct slot *s, int *has_exit, int *code, char **msg)
{
	int st = s->wstatus;

	*has_exit = 0;
	*code = 0;
	*msg = NULL;
	if (s->errmsg != NULL) {
		*msg = xstrdup(s->errmsg);
		return JOB_ERROR;
	}
	if (WIFEXITED(st)) {
		*has_exit = 1;
		*code = WEXITSTATUS(st);
	}
	switch (s->stop) {
	case STOP_TIMEOUT:
		*msg = xasprintf("timeout after %d s", w->conf.job_timeout);
		return JOB_ERROR;
	case STOP_CANCEL:
		*msg = xstrdup("cancelled");
		return JOB_CANCELLED;
	case STOP_SHUTDOWN:
		*msg = xstrdup("worker shutdown");
		return JOB_CANCELLED;
	case STOP_NONE:
		break;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return JOB_COMPLETED;
	if (WIFEXITED(st))
		*msg = xasprintf("exit code %d", WEXITSTATUS(st));
	else
		*msg = xasprintf("killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	return JOB_ERROR;
}

int
dispatch_finish(struct worker *w, struct slot *s)
{
	struct sist_update *upd = NULL;
	enum job_status status;
	int has_exit, code, rc = -1;
	char *msg = NULL;
	int64_t fin_ms = 0;
	enum db_rc drc;

	if ((ingest_pending(w->ing) > 0 || s->sist_dirty) && ingest_flush(w) == -1) {
		w->retry_at = util_mono_ms() + DISPATCH_RETRY_MS;
		return -1;
	}
	status = outcome(w, s, &has_exit, &code, &msg);
	upd = xcalloc(s->nsist ? s->nsist : 1, sizeof(*upd));
	for (size_t i = 0; i < s->nsist; i++) {
		struct sist_state *ss = &s->sist[i];

		upd[i].id = ss->id;
		upd[i].set_ultima = 1;
		if (ss->own_final) {
			upd[i].status = ss->status;
			upd[i].progresso = ss->progresso;
			upd[i].mensagem = ss->mensagem;
		} else if (status == JOB_COMPLETED) {
			upd[i].status = "SUCCESS";
			upd[i].progresso = 100;
			upd[i].mensagem = NULL;
		} else {
			upd[i].status = "ERROR";
			upd[i].progresso = ss->progresso;
			upd[i].mensagem = msg;
		}
	}
	drc = jobq_finish(w->db, s->job.id, status, has_exit, code, msg, upd, s->nsist, &fin_ms);
	if (drc == DB_BUSY || drc == DB_FULL) {
		w->retry_at = util_mono_ms() + DISPATCH_RETRY_MS;
		goto out;
	}
	if (drc == DB_CONFLICT) {
		log_warnx(
		    "job=%lld slot=%d was closed elsewhere (orphan sweep?): result %s dropped",
		    (long long)s->job.id, s->job.worker_slot, jobq_status_name(status));
	} else if (drc != DB_OK) {
		if (++s->finish_tries < DISPATCH_FINISH_TRIES) {
			w->retry_at = util_mono_ms() + DISPATCH_RETRY_MS;
			goto out;
		}
		log_warnx("job=%lld: cannot record its end (%s): left to the orphan sweep",
		    (long long)s->job.id, db_errmsg(w->db));
	} else {
		double dur =
		    s->job.started_ms >= 0 ? (double)(fin_ms - s->job.started_ms) / 1000.0 : 0;

		for (size_t i = 0; i < s->nsist; i++)
			worker_publish(w, evt_status(upd[i].id, upd[i].status, upd[i].progresso,
			                      upd[i].mensagem));
		worker_publish(
		    w, evt_job_status(s->job.id, jobq_status_name(status), s->job.worker_slot));
		worker_publish(w, evt_job_complete(s->job.id, jobq_status_name(status), dur));
		log_info("job=%lld slot=%d %s%s%s (%lld lines, %.3f s)", (long long)s->job.id,
		    s->job.worker_slot, jobq_status_name(status), msg ? ": " : "", msg ? msg : "",
		    (long long)s->lines, dur);
	}
	w->jobs_finished++;
	ingest_job_end(s);
	slot_clear(s);
	lease_track(w);
	if (worker_busy_slots(w) == 0)
		ingest_trim(w->ing);
	w->want_acquire = 1;
	/* A freed slot or sistema may let another worker's pending job start. */
	if (w->wake_dir != NULL)
		(void)wake_notify(w->wake_dir);
	rc = 0;
out:
	free(upd);
	free(msg);
	return rc;
}
