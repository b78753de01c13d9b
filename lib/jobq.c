/*
 * jobq: the job queue's SQL. Every write is one BEGIN IMMEDIATE
 * transaction. FIFO is id order: an id is max(id) + 1, given inside the
 * write lock, so ids follow commit order across processes; none is given
 * twice because jobq_prune never deletes the newest job (schema/003). The acquire is a single UPDATE ... WHERE id = (SELECT ...)
 * RETURNING, so no two workers can take the same job.
 *
 * Each index on jobs costs a WAL frame in every write (schema/003): the
 * queries lean on idx_jobs_status_slot, idx_jobs_created and the rowid,
 * and a job's sistemas are read from jobs.sistemas with json_each.
 */
#include "jobq.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "js.h"
#include "log.h"

static const char *const status_names[JOB__MAX] = {
	"pending",
	"running",
	"completed",
	"error",
	"cancelled",
};

const char *
jobq_status_name(enum job_status s)
{
	return (s >= 0 && s < JOB__MAX) ? status_names[s] : "unknown";
}

int
jobq_status_parse(const char *s, enum job_status *out)
{
	for (int i = 0; i < JOB__MAX; i++)
		if (strcmp(s, status_names[i]) == 0) {
			*out = (enum job_status)i;
			return 0;
		}
	return -1;
}

int
jobq_transition_ok(enum job_status from, enum job_status to)
{
	switch (from) {
	case JOB_PENDING:
		return to == JOB_RUNNING || to == JOB_CANCELLED;
	case JOB_RUNNING:
		return to == JOB_COMPLETED || to == JOB_ERROR || to == JOB_CANCELLED;
	default:
		return 0;
	}
}

static void
now_iso(char out[UTIL_ISO_LEN], int64_t *ms)
{
	int64_t t = util_now_ms();

	if (ms)
		*ms = t;
	util_iso8601(t, out);
}

static int64_t
col_time(sqlite3_stmt *st, int col)
{
	const char *s = (const char *)sqlite3_column_text(st, col);
	return s ? util_parse_iso8601(s) : -1;
}

/* Appends a text column as a JSON string, or null. */
static void
put_col(struct buf *b, sqlite3_stmt *st, int col)
{
	js_put_string(
	    b, (const char *)sqlite3_column_text(st, col), (size_t)sqlite3_column_bytes(st, col));
}

void
jobq_job_clear(struct job *j)
{
	if (j == NULL)
		return;
	for (size_t i = 0; i < j->nsistemas; i++)
		free(j->sistemas[i]);
	free(j->sistemas);
	free(j->params);
	free(j->error_message);
	free(j->created_by);
	memset(j, 0, sizeof(*j));
}

#define JOB_COLS                                                              \
	"id, status, sistemas, params, created_at, started_at, finished_at, " \
	"worker_slot, worker_id, exit_code, error_message, created_by, cancel_requested"

/* Fills j from a row of JOB_COLS starting at column 0. */
static void
job_from_row(sqlite3_stmt *st, struct job *j)
{
	const char *s;
	struct json_object *arr;

	memset(j, 0, sizeof(*j));
	j->id = sqlite3_column_int64(st, 0);
	s = (const char *)sqlite3_column_text(st, 1);
	if (s == NULL || jobq_status_parse(s, &j->status) == -1)
		j->status = JOB_ERROR;
	s = (const char *)sqlite3_column_text(st, 2);
	if (s && (arr = json_tokener_parse(s)) != NULL) {
		if (json_object_is_type(arr, json_type_array)) {
			size_t n = json_object_array_length(arr);
			j->sistemas = xcalloc(n ? n : 1, sizeof(char *));
			for (size_t i = 0; i < n; i++) {
				struct json_object *v = json_object_array_get_idx(arr, i);
				if (json_object_is_type(v, json_type_string))
					j->sistemas[j->nsistemas++] =
					    xstrdup(json_object_get_string(v));
			}
		}
		json_object_put(arr);
	}
	s = (const char *)sqlite3_column_text(st, 3);
	if (s) {
		/* Strict: a legacy row may hold NaN (Python's json.dumps writes it),
		 * which json-c would take and write back as non-JSON. */
		int ok;
		char err[64];
		struct json_object *p = js_parse(s, (size_t)sqlite3_column_bytes(st, 3), 1 << 20,
		    JS_MAX_DEPTH, &ok, err, sizeof(err));
		if (p && json_object_is_type(p, json_type_object))
			j->params = xstrdup(s);
		json_object_put(p);
	}
	j->created_ms = col_time(st, 4);
	j->started_ms = col_time(st, 5);
	j->finished_ms = col_time(st, 6);
	j->worker_slot = sqlite3_column_type(st, 7) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 7);
	j->worker_id = sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 8);
	j->has_exit_code = sqlite3_column_type(st, 9) != SQLITE_NULL;
	j->exit_code = sqlite3_column_int(st, 9);
	j->error_message = db_col_strdup(st, 10);
	j->created_by = db_col_strdup(st, 11);
	j->cancel_requested = sqlite3_column_int(st, 12);
}

struct json_object *
jobq_job_json(const struct job *j)
{
	struct json_object *o = json_object_new_object(), *arr = json_object_new_array();
	struct json_object *params = NULL;

	json_object_object_add(o, "id", json_object_new_int64(j->id));
	json_object_object_add(o, "status", json_object_new_string(jobq_status_name(j->status)));
	for (size_t i = 0; i < j->nsistemas; i++)
		json_object_array_add(arr, json_object_new_string(j->sistemas[i]));
	json_object_object_add(o, "sistemas", arr);
	if (j->params)
		params = json_tokener_parse(j->params);
	json_object_object_add(o, "params", params);
	json_object_object_add(o, "created_at", js_time_or_null(j->created_ms));
	json_object_object_add(o, "started_at", js_time_or_null(j->started_ms));
	json_object_object_add(o, "finished_at", js_time_or_null(j->finished_ms));
	if (j->started_ms >= 0 && j->finished_ms >= j->started_ms) {
		char d[32];
		util_fmt_seconds(j->finished_ms - j->started_ms, d);
		json_object_object_add(o, "duracao_segundos",
		    json_object_new_double_s((double)(j->finished_ms - j->started_ms) / 1000.0, d));
	} else
		json_object_object_add(o, "duracao_segundos", NULL);
	json_object_object_add(
	    o, "worker_slot", j->worker_slot >= 0 ? json_object_new_int(j->worker_slot) : NULL);
	json_object_object_add(
	    o, "exit_code", j->has_exit_code ? json_object_new_int(j->exit_code) : NULL);
	json_object_object_add(o, "error_message", js_str_or_null(j->error_message));
	json_object_object_add(o, "created_by", js_str_or_null(j->created_by));
	json_object_object_add(o, "cancel_requested", json_object_new_boolean(j->cancel_requested));
	return o;
}

/* Runs st (bound by the caller) to completion inside the open transaction;
 * on error rolls back. */
static enum db_rc
step_done(struct db *db, sqlite3_stmt *st)
{
	enum db_rc rc = db_exec_stmt(db, st);

	if (rc != DB_OK && rc != DB_BUSY)
		log_warnx("jobq: %s", db_errmsg(db));
	return rc;
}

#define CHECK(expr)                         \
	do {                                \
		if ((rc = (expr)) != DB_OK) \
			goto fail;          \
	} while (0)
#define STMT(var, sql)                                  \
	do {                                            \
		if ((var = db_stmt(db, sql)) == NULL) { \
			rc = DB_ERROR;                  \
			goto fail;                      \
		}                                       \
	} while (0)

enum db_rc
jobq_enqueue(struct db *db, const char *const *sistemas, size_t n, const char *params,
    const char *created_by, const char *idem_key, int64_t *job_id, int *existed,
    uint64_t *pending_mask, char bad[65])
{
	enum db_rc rc;

	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	rc = jobq_enqueue_in(
	    db, sistemas, n, params, created_by, idem_key, 0, job_id, existed, pending_mask, bad);
	if (rc == DB_OK)
		return *existed ? (db_rollback(db), DB_OK) : db_commit(db);
	db_rollback(db);
	return rc;
}

enum db_rc
jobq_enqueue_in(struct db *db, const char *const *sistemas, size_t n, const char *params,
    const char *created_by, const char *idem_key, int announce, int64_t *job_id, int *existed,
    uint64_t *pending_mask, char bad[65])
{
	static const char q_idem[] =
	    "SELECT id FROM jobs WHERE created_by = ? AND idempotency_key = ?";
	static const char q_sist[] = "SELECT ativo, status = 'PENDING' FROM sistemas WHERE id = ?";
	static const char q_ins[] = "INSERT INTO jobs (tipo, params, status, created_at, sistemas, "
	                            "created_by, idempotency_key, announce) "
	                            "VALUES ('execucao', ?, 'pending', ?, ?, ?, ?, ?)";
	static const char q_pend[] =
	    "UPDATE sistemas SET status = 'PENDING', progresso = 0, mensagem = NULL "
	    "WHERE id = ?1 AND status <> 'PENDING' AND NOT EXISTS (SELECT 1 FROM jobs j, "
	    "json_each(j.sistemas) e WHERE j.status = 'running' AND e.value = ?1)";
	sqlite3_stmt *st;
	char now[UTIL_ISO_LEN];
	enum db_rc rc;
	char *arr = NULL;
	uint64_t pending = 0; /* the sistemas PENDING already: nothing to update */

	*existed = 0;
	*pending_mask = 0;
	if (n == 0 || n > JOBQ_MAX_SISTEMAS)
		return DB_INVALID;
	if (idem_key) {
		STMT(st, q_idem);
		db_bind_text(st, 1, created_by);
		db_bind_text(st, 2, idem_key);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW) {
			*job_id = sqlite3_column_int64(st, 0);
			*existed = 1;
			sqlite3_reset(st);
			return DB_OK;
		}
		sqlite3_reset(st);
		if (r != SQLITE_DONE) {
			rc = db_map(r);
			goto fail;
		}
	}
	for (size_t i = 0; i < n; i++) {
		STMT(st, q_sist);
		db_bind_text(st, 1, sistemas[i]);
		int r = sqlite3_step(st), ativo = r == SQLITE_ROW && sqlite3_column_int(st, 0);
		if (r == SQLITE_ROW && sqlite3_column_int(st, 1))
			pending |= (uint64_t)1 << i;
		sqlite3_reset(st);
		if (r != SQLITE_ROW && r != SQLITE_DONE) {
			rc = db_map(r);
			goto fail;
		}
		if (!ativo) {
			snprintf(bad, 65, "%s", sistemas[i]);
			rc = DB_INVALID;
			goto fail;
		}
	}
	/* ["a","b"]: what js_dump of a json-c array gave, without building one */
	struct buf ab = { 0 };
	buf_putc(&ab, '[');
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf_putc(&ab, ',');
		js_put_string(&ab, sistemas[i], strlen(sistemas[i]));
	}
	buf_putc(&ab, ']');
	arr = ab.data;

	now_iso(now, NULL);
	STMT(st, q_ins);
	db_bind_text(st, 1, params);
	db_bind_text(st, 2, now);
	db_bind_text(st, 3, arr);
	db_bind_text(st, 4, created_by);
	db_bind_text(st, 5, idem_key);
	sqlite3_bind_int(st, 6, announce != 0);
	CHECK(step_done(db, st));
	*job_id = sqlite3_last_insert_rowid(db_sqlite(db));
	for (size_t i = 0; i < n; i++) {
		if (pending & ((uint64_t)1 << i))
			continue; /* q_pend would change nothing (status <> 'PENDING') */
		STMT(st, q_pend);
		db_bind_text(st, 1, sistemas[i]);
		CHECK(step_done(db, st));
		if (sqlite3_changes(db_sqlite(db)) > 0)
			*pending_mask |= (uint64_t)1 << i;
	}
	free(arr);
	return DB_OK;
fail:
	free(arr);
	return rc;
}

int
jobq_acquire(struct db *db, int64_t worker_id, int max_slots, int exclusive, struct job *out)
{
	return jobq_acquire_gated(db, worker_id, max_slots, exclusive, NULL, out);
}

/* The first job the gate holds (jobq_gate: announced, not seen, younger
 * than young_since), if any, into gate->held_id and held_ms: one walk of
 * the pending jobs in id order (idx_jobs_status_slot), stopping at it. */
static enum db_rc
gate_held(struct db *db, struct jobq_gate *gate)
{
	static const char q_held[] =
	    "SELECT id, created_at FROM jobs WHERE status = 'pending' AND worker_slot IS NULL "
	    "AND announce = 1 AND created_at >= ?1 "
	    "AND id NOT IN (SELECT value FROM json_each(?2)) ORDER BY id LIMIT 1";
	sqlite3_stmt *st;
	enum db_rc rc = DB_OK;
	int r;

	if ((st = db_stmt(db, q_held)) == NULL)
		return DB_ERROR;
	db_bind_text(st, 1, gate->young_since);
	db_bind_text(st, 2, gate->seen);
	if ((r = sqlite3_step(st)) == SQLITE_ROW) {
		gate->held_id = sqlite3_column_int64(st, 0);
		gate->held_ms = col_time(st, 1);
	} else if (r != SQLITE_DONE) {
		rc = db_map(r);
	}
	sqlite3_reset(st);
	return rc;
}

/*
 * The candidate is the first pending job in id order (idx_jobs_status_slot:
 * a pending job's worker_slot is NULL, so the index holds them in rowid
 * order), and before the first held one: the gate's bound is that job's
 * id, found first in the same transaction (gate_held), not a test per
 * candidate, so a long queue behind a held job costs no more; and a miss
 * has it already for the caller. The exclusivity test walks from the
 * running jobs (a
 * handful, through the same index) to their sistemas, never from a
 * sistema to all its jobs: that would grow with history.
 */
int
jobq_acquire_gated(struct db *db, int64_t worker_id, int max_slots, int exclusive,
    struct jobq_gate *gate, struct job *out)
{
	static const char q_acq[] =
	    "WITH RECURSIVE slots(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM slots WHERE n + 1 < "
	    "?3) "
	    "UPDATE jobs SET status = 'running', worker_id = ?1, started_at = ?2, locked_at = ?2, "
	    "cancel_requested = 0, "
	    "worker_slot = (SELECT min(n) FROM slots WHERE n NOT IN (SELECT worker_slot FROM jobs "
	    "  WHERE status = 'running' AND worker_slot IS NOT NULL)) "
	    "WHERE id = (SELECT j.id FROM jobs j WHERE j.status = 'pending' AND j.worker_slot IS "
	    "NULL "
	    "  AND (?4 = 0 OR NOT EXISTS "
	    "  (SELECT 1 FROM jobs r CROSS JOIN json_each(r.sistemas) b "
	    "   CROSS JOIN json_each(j.sistemas) a ON a.value = b.value "
	    "   WHERE r.status = 'running')) "
	    "  AND j.id < ?5 "
	    "  ORDER BY j.id LIMIT 1) "
	    "AND (SELECT count(*) FROM jobs WHERE status = 'running') < ?3 "
	    "RETURNING " JOB_COLS;
	static const char q_run[] =
	    "UPDATE sistemas SET status = 'RUNNING', progresso = 0, mensagem = NULL "
	    "WHERE id IN (SELECT value FROM jobs, json_each(jobs.sistemas) WHERE jobs.id = ?)";
	static const char q_any[] = "SELECT 1 FROM jobs WHERE status = 'pending' LIMIT 1";
	sqlite3_stmt *st;
	char now[UTIL_ISO_LEN];
	enum db_rc rc;
	int r, got = 0;

	if (gate) {
		gate->held_id = 0;
		gate->held_ms = -1;
	}
	/* An empty queue is the common case on every poll and wake-up: see it
	 * with a read, without taking the write lock from the API. */
	if ((st = db_stmt(db, q_any)) == NULL)
		return DB_ERROR;
	r = sqlite3_step(st);
	sqlite3_reset(st);
	if (r == SQLITE_DONE)
		return 0;
	if (r != SQLITE_ROW)
		return db_map(r);
	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	if (gate != NULL)
		CHECK(gate_held(db, gate));
	now_iso(now, NULL);
	STMT(st, q_acq);
	sqlite3_bind_int64(st, 1, worker_id);
	db_bind_text(st, 2, now);
	sqlite3_bind_int(st, 3, max_slots);
	sqlite3_bind_int(st, 4, exclusive);
	sqlite3_bind_int64(st, 5, gate != NULL && gate->held_id > 0 ? gate->held_id : INT64_MAX);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		job_from_row(st, out);
		got = 1;
	}
	sqlite3_reset(st);
	if (r != SQLITE_DONE) {
		if (got)
			jobq_job_clear(out);
		rc = db_map(r);
		if (rc != DB_BUSY)
			log_warnx("jobq: acquire: %s", db_errmsg(db));
		goto fail;
	}
	if (!got) {
		db_rollback(db);
		return 0;
	}
	STMT(st, q_run);
	sqlite3_bind_int64(st, 1, out->id);
	if ((rc = step_done(db, st)) != DB_OK || (rc = db_commit(db)) != DB_OK) {
		jobq_job_clear(out);
		goto fail;
	}
	return 1;
fail:
	db_rollback(db);
	return rc;
}

enum db_rc
jobq_renew(struct db *db, int64_t worker_id)
{
	static const char q_lease[] =
	    "UPDATE jobs SET locked_at = ? WHERE worker_id = ? AND status = 'running'";
	static const char q_beat[] = "UPDATE workers SET heartbeat_at = ? WHERE id = ?";
	sqlite3_stmt *st;
	char now[UTIL_ISO_LEN];
	enum db_rc rc;

	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	now_iso(now, NULL);
	STMT(st, q_lease);
	db_bind_text(st, 1, now);
	sqlite3_bind_int64(st, 2, worker_id);
	CHECK(step_done(db, st));
	STMT(st, q_beat);
	db_bind_text(st, 1, now);
	sqlite3_bind_int64(st, 2, worker_id);
	CHECK(step_done(db, st));
	return db_commit(db);
fail:
	db_rollback(db);
	return rc;
}

enum db_rc
jobq_finish(struct db *db, int64_t job_id, enum job_status status, int has_exit, int exit_code,
    const char *error_message, const struct sist_update *upd, size_t n, int64_t *finished_ms)
{
	static const char q_fin[] =
	    "UPDATE jobs SET status = ?, finished_at = ?, exit_code = ?, error_message = ?, "
	    "locked_at = NULL WHERE id = ? AND status = 'running'";
	static const char q_sist[] =
	    "UPDATE sistemas SET status = ?, progresso = ?, mensagem = ?, "
	    "ultima_execucao = CASE WHEN ? THEN ? ELSE ultima_execucao END WHERE id = ?";
	sqlite3_stmt *st;
	char now[UTIL_ISO_LEN];
	int64_t ms;
	enum db_rc rc;

	if (!jobq_transition_ok(JOB_RUNNING, status))
		return DB_CONFLICT;
	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	now_iso(now, &ms);
	STMT(st, q_fin);
	db_bind_text(st, 1, jobq_status_name(status));
	db_bind_text(st, 2, now);
	if (has_exit)
		sqlite3_bind_int(st, 3, exit_code);
	db_bind_text(st, 4, error_message);
	sqlite3_bind_int64(st, 5, job_id);
	CHECK(step_done(db, st));
	if (sqlite3_changes(db_sqlite(db)) == 0) {
		rc = DB_CONFLICT;
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		STMT(st, q_sist);
		db_bind_text(st, 1, upd[i].status);
		sqlite3_bind_int(st, 2, upd[i].progresso);
		db_bind_text(st, 3, upd[i].mensagem);
		sqlite3_bind_int(st, 4, upd[i].set_ultima);
		db_bind_text(st, 5, now);
		db_bind_text(st, 6, upd[i].id);
		CHECK(step_done(db, st));
	}
	CHECK(db_commit(db));
	if (finished_ms)
		*finished_ms = ms;
	return DB_OK;
fail:
	db_rollback(db);
	return rc;
}

enum db_rc
jobq_cancel(struct db *db, int64_t id, enum jobq_cancel_result *res, struct job *out)
{
	static const char q_status[] = "SELECT status FROM jobs WHERE id = ?";
	static const char q_pend[] =
	    "UPDATE jobs SET status = 'cancelled', finished_at = ?, error_message = 'cancelled' "
	    "WHERE id = ? AND status = 'pending'";
	/* Its sistemas that wait only for this job are idle again. */
	static const char q_idle[] =
	    "UPDATE sistemas SET status = 'IDLE', progresso = 0 WHERE status = 'PENDING' "
	    "AND id IN (SELECT value FROM jobs, json_each(jobs.sistemas) WHERE jobs.id = ?1) "
	    "AND NOT EXISTS (SELECT 1 FROM jobs j, json_each(j.sistemas) e "
	    "  WHERE j.status IN ('pending', 'running') AND j.id <> ?1 AND e.value = sistemas.id)";
	static const char q_req[] =
	    "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'running'";
	sqlite3_stmt *st;
	char now[UTIL_ISO_LEN];
	enum job_status s;
	enum db_rc rc;
	int r;

	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	STMT(st, q_status);
	sqlite3_bind_int64(st, 1, id);
	r = sqlite3_step(st);
	if (r == SQLITE_DONE) {
		sqlite3_reset(st);
		rc = DB_NOTFOUND;
		goto fail;
	}
	if (r != SQLITE_ROW) {
		sqlite3_reset(st);
		rc = db_map(r);
		goto fail;
	}
	if (jobq_status_parse((const char *)sqlite3_column_text(st, 0), &s) == -1)
		s = JOB_ERROR;
	sqlite3_reset(st);
	if (s == JOB_PENDING) {
		now_iso(now, NULL);
		STMT(st, q_pend);
		db_bind_text(st, 1, now);
		sqlite3_bind_int64(st, 2, id);
		CHECK(step_done(db, st));
		STMT(st, q_idle);
		sqlite3_bind_int64(st, 1, id);
		CHECK(step_done(db, st));
		*res = JOBQ_CANCELLED_NOW;
	} else if (s == JOB_RUNNING) {
		STMT(st, q_req);
		sqlite3_bind_int64(st, 1, id);
		CHECK(step_done(db, st));
		*res = JOBQ_CANCEL_REQUESTED;
	} else {
		*res = JOBQ_CANCEL_FINISHED;
	}
	CHECK(db_commit(db));
	return jobq_get(db, id, out);
fail:
	db_rollback(db);
	return rc;
}

int
jobq_cancel_requests(struct db *db, int64_t worker_id, int64_t *ids, int max)
{
	static const char q[] = "SELECT id FROM jobs WHERE worker_id = ? AND status = 'running' "
	                        "AND cancel_requested = 1 ORDER BY id";
	sqlite3_stmt *st = db_stmt(db, q);
	int n = 0, r;

	if (st == NULL)
		return DB_ERROR;
	sqlite3_bind_int64(st, 1, worker_id);
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		if (n < max)
			ids[n++] = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return r == SQLITE_DONE ? n : db_map(r);
}

/* Closes the running jobs selected by sel (bound by the caller) as error. */
static int
close_selected(struct db *db, sqlite3_stmt *sel, const char *reason, int64_t *ids, int max)
{
	static const char q_close[] = "UPDATE jobs SET status = 'error', error_message = ?, "
	                              "finished_at = ?, locked_at = NULL "
	                              "WHERE id = ? AND status = 'running'";
	static const char q_sist[] =
	    "UPDATE sistemas SET status = 'ERROR', mensagem = ?, ultima_execucao = ? "
	    "WHERE status = 'RUNNING' AND id IN (SELECT value FROM jobs, json_each(jobs.sistemas) "
	    "WHERE jobs.id = ?)";
	int64_t found[256];
	int nf = 0, r, total = 0;
	char now[UTIL_ISO_LEN];
	sqlite3_stmt *st;
	enum db_rc rc;

	while ((r = sqlite3_step(sel)) == SQLITE_ROW)
		if (nf < (int)UTIL_ARRAY_LEN(found))
			found[nf++] = sqlite3_column_int64(sel, 0);
	sqlite3_reset(sel);
	if (r != SQLITE_DONE) {
		rc = db_map(r);
		goto fail;
	}
	now_iso(now, NULL);
	for (int i = 0; i < nf; i++) {
		STMT(st, q_close);
		db_bind_text(st, 1, reason);
		db_bind_text(st, 2, now);
		sqlite3_bind_int64(st, 3, found[i]);
		CHECK(step_done(db, st));
		STMT(st, q_sist);
		db_bind_text(st, 1, reason);
		db_bind_text(st, 2, now);
		sqlite3_bind_int64(st, 3, found[i]);
		CHECK(step_done(db, st));
		if (total < max)
			ids[total] = found[i];
		total++;
	}
	CHECK(db_commit(db));
	if (total)
		log_info("jobq: closed %d job(s) as error: %s", total, reason);
	return total < max ? total : max;
fail:
	db_rollback(db);
	return rc;
}

int
jobq_sweep_orphans(struct db *db, int lease_timeout_s, const char *reason, int64_t *ids, int max)
{
	static const char q[] =
	    "SELECT id FROM jobs WHERE status = 'running' AND (worker_id IS NULL OR "
	    "locked_at IS NULL OR locked_at < ?) ORDER BY id";
	char cutoff[UTIL_ISO_LEN];
	sqlite3_stmt *st;
	enum db_rc rc;

	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	util_iso8601(util_now_ms() - (int64_t)lease_timeout_s * 1000, cutoff);
	if ((st = db_stmt(db, q)) == NULL) {
		db_rollback(db);
		return DB_ERROR;
	}
	db_bind_text(st, 1, cutoff);
	return close_selected(db, st, reason, ids, max);
}

int
jobq_close_worker_jobs(struct db *db, int64_t worker_id, const char *reason, int64_t *ids, int max)
{
	static const char q[] =
	    "SELECT id FROM jobs WHERE status = 'running' AND worker_id = ? ORDER BY id";
	sqlite3_stmt *st;
	enum db_rc rc;

	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	if ((st = db_stmt(db, q)) == NULL) {
		db_rollback(db);
		return DB_ERROR;
	}
	sqlite3_bind_int64(st, 1, worker_id);
	return close_selected(db, st, reason, ids, max);
}

enum db_rc
jobq_worker_register(
    struct db *db, const char *host, int pid, const char *boot_id, int slots, int64_t *id)
{
	static const char q2[] =
	    "INSERT INTO workers (host, pid, boot_id, started_at, heartbeat_at, slots) "
	    "VALUES (?, ?, ?, ?, ?, ?)";
	sqlite3_stmt *st;
	char now[UTIL_ISO_LEN];
	enum db_rc rc;

	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	now_iso(now, NULL);
	STMT(st, q2);
	db_bind_text(st, 1, host);
	sqlite3_bind_int(st, 2, pid);
	db_bind_text(st, 3, boot_id);
	db_bind_text(st, 4, now);
	db_bind_text(st, 5, now);
	sqlite3_bind_int(st, 6, slots);
	CHECK(step_done(db, st));
	*id = sqlite3_last_insert_rowid(db_sqlite(db));
	return db_commit(db);
fail:
	db_rollback(db);
	return rc;
}

enum db_rc
jobq_worker_unregister(struct db *db, int64_t id)
{
	static const char q[] = "DELETE FROM workers WHERE id = ?";
	sqlite3_stmt *st = db_stmt(db, q);

	if (st == NULL)
		return DB_ERROR;
	sqlite3_bind_int64(st, 1, id);
	return step_done(db, st);
}

int
jobq_workers_on_host(struct db *db, const char *host, struct worker_info *out, int max)
{
	static const char q[] =
	    "SELECT id, host, pid, boot_id, started_at, heartbeat_at, slots FROM workers "
	    "WHERE host = ? ORDER BY id";
	sqlite3_stmt *st = db_stmt(db, q);
	int n = 0, r;

	if (st == NULL)
		return DB_ERROR;
	db_bind_text(st, 1, host);
	while ((r = sqlite3_step(st)) == SQLITE_ROW && n < max) {
		struct worker_info *w = &out[n++];
		memset(w, 0, sizeof(*w));
		w->id = sqlite3_column_int64(st, 0);
		snprintf(w->host, sizeof(w->host), "%s", (const char *)sqlite3_column_text(st, 1));
		w->pid = sqlite3_column_int(st, 2);
		snprintf(
		    w->boot_id, sizeof(w->boot_id), "%s", (const char *)sqlite3_column_text(st, 3));
		w->started_ms = col_time(st, 4);
		w->heartbeat_ms = col_time(st, 5);
		w->slots = sqlite3_column_int(st, 6);
	}
	sqlite3_reset(st);
	return (r == SQLITE_DONE || r == SQLITE_ROW) ? n : db_map(r);
}

enum db_rc
jobq_worker_counters(struct db *db, int64_t id, int64_t published, int64_t dropped)
{
	static const char q[] =
	    "UPDATE workers SET events_published = ?, events_dropped = ? WHERE id = ?";
	sqlite3_stmt *st = db_stmt(db, q);

	if (st == NULL)
		return DB_ERROR;
	sqlite3_bind_int64(st, 1, published);
	sqlite3_bind_int64(st, 2, dropped);
	sqlite3_bind_int64(st, 3, id);
	return step_done(db, st);
}

enum db_rc
jobq_worker_state(struct db *db, int stale_s, enum worker_state *out)
{
	static const char q[] = "SELECT count(*), max(heartbeat_at) FROM workers";
	sqlite3_stmt *st = db_stmt(db, q);
	int r;

	if (st == NULL)
		return DB_ERROR;
	r = sqlite3_step(st);
	if (r != SQLITE_ROW) {
		sqlite3_reset(st);
		return db_map(r);
	}
	if (sqlite3_column_int64(st, 0) == 0) {
		*out = WORKER_ABSENT;
	} else {
		int64_t hb = col_time(st, 1);
		*out = (hb >= 0 && util_now_ms() - hb <= (int64_t)stale_s * 1000) ? WORKER_ALIVE
		                                                                  : WORKER_STALE;
	}
	sqlite3_reset(st);
	return DB_OK;
}

const char *
jobq_worker_state_name(enum worker_state s)
{
	switch (s) {
	case WORKER_ALIVE:
		return "alive";
	case WORKER_STALE:
		return "stale";
	default:
		return "absent";
	}
}

enum db_rc
jobq_append_logs(struct db *db, const struct logline *lines, size_t n)
{
	static const char q[] = "INSERT INTO job_logs (job_id, seq, ts, level, sistema, mensagem) "
	                        "VALUES (?, ?, ?, ?, ?, ?)";
	sqlite3_stmt *st;
	char ts[UTIL_ISO_LEN];
	enum db_rc rc;

	if (n == 0)
		return DB_OK;
	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	STMT(st, q);
	int64_t ts_ms = -1; /* lines of one read share a time: format it once */
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		if (lines[i].ts_ms != ts_ms)
			util_iso8601(ts_ms = lines[i].ts_ms, ts);
		sqlite3_bind_int64(st, 1, lines[i].job_id);
		sqlite3_bind_int64(st, 2, lines[i].seq);
		sqlite3_bind_text(st, 3, ts, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 4, lines[i].level, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, lines[i].sistema, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, lines[i].mensagem, -1, SQLITE_STATIC);
		int r = sqlite3_step(st);
		if (r != SQLITE_DONE) {
			sqlite3_reset(st);
			rc = db_map(r);
			log_warnx("jobq: append logs: %s", db_errmsg(db));
			goto fail;
		}
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return db_commit(db);
fail:
	db_rollback(db);
	return rc;
}

enum db_rc
jobq_last_seq(struct db *db, int64_t job_id, int64_t *seq)
{
	static const char q[] = "SELECT COALESCE(max(seq), 0) FROM job_logs WHERE job_id = ?";
	sqlite3_stmt *st = db_stmt(db, q);
	int r;

	if (st == NULL)
		return DB_ERROR;
	sqlite3_bind_int64(st, 1, job_id);
	r = sqlite3_step(st);
	*seq = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return r == SQLITE_ROW ? DB_OK : db_map(r);
}

static enum db_rc
job_exists(struct db *db, int64_t id)
{
	static const char q[] = "SELECT 1 FROM jobs WHERE id = ?";
	sqlite3_stmt *st = db_stmt(db, q);
	int r;

	if (st == NULL)
		return DB_ERROR;
	sqlite3_bind_int64(st, 1, id);
	r = sqlite3_step(st);
	sqlite3_reset(st);
	if (r == SQLITE_ROW)
		return DB_OK;
	return r == SQLITE_DONE ? DB_NOTFOUND : db_map(r);
}

enum db_rc
jobq_logs_text(struct db *db, int64_t job_id, int64_t after, int limit, struct buf *out)
{
	static const char q[] =
	    "SELECT seq, ts, level, sistema, mensagem FROM job_logs WHERE job_id = ? AND seq > ? "
	    "ORDER BY seq LIMIT ?";
	sqlite3_stmt *st;
	int64_t next = after;
	enum db_rc rc;
	int r, first = 1;

	buf_reset(out);
	/* One read transaction, so the existence check and the page agree. */
	if ((rc = db_begin_read(db)) != DB_OK)
		return rc;
	if ((rc = job_exists(db, job_id)) != DB_OK)
		goto out;
	if ((st = db_stmt(db, q)) == NULL) {
		rc = DB_ERROR;
		goto out;
	}
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_int64(st, 2, after);
	sqlite3_bind_int(st, 3, limit);
	buf_printf(out, "{\"job_id\":%lld,\"lines\":[", (long long)job_id);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		next = sqlite3_column_int64(st, 0);
		buf_puts(out, first ? "{\"seq\":" : ",{\"seq\":");
		buf_put_i64(out, next);
		buf_puts(out, ",\"ts\":");
		first = 0;
		put_col(out, st, 1);
		buf_puts(out, ",\"level\":");
		put_col(out, st, 2);
		buf_puts(out, ",\"sistema\":");
		put_col(out, st, 3);
		buf_puts(out, ",\"mensagem\":");
		put_col(out, st, 4);
		buf_putc(out, '}');
	}
	sqlite3_reset(st);
	if (r != SQLITE_DONE) {
		rc = db_map(r);
		goto out;
	}
	buf_printf(out, "],\"next\":%lld}", (long long)next);
	rc = DB_OK;
out:
	db_rollback(db);
	return rc;
}

enum db_rc
jobq_get(struct db *db, int64_t id, struct job *out)
{
	static const char q[] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?";
	sqlite3_stmt *st = db_stmt(db, q);
	int r;

	if (st == NULL)
		return DB_ERROR;
	sqlite3_bind_int64(st, 1, id);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		job_from_row(st, out);
	sqlite3_reset(st);
	if (r == SQLITE_ROW)
		return DB_OK;
	return r == SQLITE_DONE ? DB_NOTFOUND : db_map(r);
}

/* Copies a stored JSON text column when it is an array (want '[') or an
 * object ('{') in valid UTF-8, else appends fallback. Rows this program
 * wrote always are; a legacy row or a shell edit may not be. Checked here
 * in C, not with json_valid() in the query: that was 15% of the list's
 * CPU (it builds a parse tree per call, twice per column). */
static void
put_raw_json(struct buf *b, sqlite3_stmt *st, int col, char want, const char *fallback)
{
	const char *s = (const char *)sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);

	if (s != NULL && js_text_is(s, n, want) && utf8_valid(s, n))
		buf_append(b, s, n);
	else
		buf_puts(b, fallback);
}

/* Appends one job of a JOB_COLS row in the shape of jobq_job_json(),
 * without building a json-c tree (the list's hot path). */
static void
job_row_text(struct buf *b, sqlite3_stmt *st)
{
	static const char *const names[] = {
		",\"created_at\":", ",\"started_at\":", ",\"finished_at\":"
	};
	const char *status = (const char *)sqlite3_column_text(st, 1);
	enum job_status s;

	if (status == NULL || jobq_status_parse(status, &s) == -1)
		s = JOB_ERROR;
	/* buf_puts and buf_put_i64, not buf_printf: printf was a third of the
	 * list's CPU. */
	buf_puts(b, "{\"id\":");
	buf_put_i64(b, sqlite3_column_int64(st, 0));
	buf_puts(b, ",\"status\":\"");
	buf_puts(b, jobq_status_name(s));
	buf_puts(b, "\",\"sistemas\":");
	put_raw_json(b, st, 2, '[', "[]");
	buf_puts(b, ",\"params\":");
	put_raw_json(b, st, 3, '{', "null");
	for (int i = 0; i < 3; i++) {
		buf_puts(b, names[i]);
		put_col(b, st, 4 + i);
	}
	int64_t started = col_time(st, 5), finished = col_time(st, 6);
	if (started >= 0 && finished >= started) {
		char d[32];
		util_fmt_seconds(finished - started, d);
		buf_puts(b, ",\"duracao_segundos\":");
		buf_puts(b, d);
	} else {
		buf_puts(b, ",\"duracao_segundos\":null");
	}
	if (sqlite3_column_type(st, 7) == SQLITE_NULL)
		buf_puts(b, ",\"worker_slot\":null");
	else {
		buf_puts(b, ",\"worker_slot\":");
		buf_put_i64(b, sqlite3_column_int(st, 7));
	}
	if (sqlite3_column_type(st, 9) == SQLITE_NULL)
		buf_puts(b, ",\"exit_code\":null");
	else {
		buf_puts(b, ",\"exit_code\":");
		buf_put_i64(b, sqlite3_column_int(st, 9));
	}
	buf_puts(b, ",\"error_message\":");
	put_col(b, st, 10);
	buf_puts(b, ",\"created_by\":");
	put_col(b, st, 11);
	buf_puts(b, sqlite3_column_int(st, 12) ? ",\"cancel_requested\":true}"
	                                       : ",\"cancel_requested\":false}");
}

enum db_rc
jobq_list_text(struct db *db, int status, int limit, int offset, struct buf *out)
{
	/* Newest first by created_at (schema/003). All jobs and the completed
	 * ones walk idx_jobs_created backwards and stop after offset+limit
	 * matches (completed is most of the table); error and cancelled come
	 * in order from their partial index idx_jobs_failed; the queued and
	 * running ones come from idx_jobs_status_slot and are sorted. */
	static const char q_all[] = "SELECT " JOB_COLS " FROM jobs "
	                            "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?";
	static const char q_done[] = "SELECT " JOB_COLS " FROM jobs INDEXED BY "
	                             "idx_jobs_created WHERE status = ? "
	                             "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?";
	static const char q_failed[] = "SELECT " JOB_COLS " FROM jobs INDEXED BY "
	                               "idx_jobs_failed WHERE status = ? AND status IN "
	                               "('error', 'cancelled') "
	                               "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?";
	static const char q_live[] = "SELECT " JOB_COLS " FROM jobs INDEXED BY "
	                             "idx_jobs_status_slot WHERE status = ? "
	                             "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?";
	/* totals come from job_counts (schema/004), not a walk of the history */
	static const char c_all[] = "SELECT coalesce(sum(n), 0) FROM job_counts";
	static const char c_st[] =
	    "SELECT coalesce((SELECT n FROM job_counts WHERE status = ?), 0)";
	sqlite3_stmt *st, *ct;
	int r, i = 1, first = 1;
	enum db_rc rc;

	buf_reset(out);
	if ((rc = db_begin_read(db)) != DB_OK)
		return rc;
	if (status < 0)
		st = db_stmt(db, q_all);
	else if (status == JOB_PENDING || status == JOB_RUNNING)
		st = db_stmt(db, q_live);
	else if (status == JOB_ERROR || status == JOB_CANCELLED)
		st = db_stmt(db, q_failed);
	else
		st = db_stmt(db, q_done);
	ct = db_stmt(db, status < 0 ? c_all : c_st);
	if (st == NULL || ct == NULL) {
		rc = DB_ERROR;
		goto out;
	}
	if (status >= 0) {
		db_bind_text(st, i++, jobq_status_name((enum job_status)status));
		db_bind_text(ct, 1, jobq_status_name((enum job_status)status));
	}
	sqlite3_bind_int(st, i++, limit);
	sqlite3_bind_int(st, i, offset);
	buf_puts(out, "{\"items\":[");
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (!first)
			buf_putc(out, ',');
		first = 0;
		job_row_text(out, st);
	}
	sqlite3_reset(st);
	if (r != SQLITE_DONE || (r = sqlite3_step(ct)) != SQLITE_ROW) {
		sqlite3_reset(ct);
		rc = db_map(r);
		goto out;
	}
	buf_printf(out, "],\"total\":%lld}", (long long)sqlite3_column_int64(ct, 0));
	sqlite3_reset(ct);
	rc = DB_OK;
out:
	db_rollback(db);
	return rc;
}

enum db_rc
jobq_counts(struct db *db, int64_t counts[JOB__MAX])
{
	static const char q[] = "SELECT status, n FROM job_counts"; /* schema/004 */
	sqlite3_stmt *st = db_stmt(db, q);
	enum job_status s;
	int r;

	memset(counts, 0, sizeof(int64_t) * JOB__MAX);
	if (st == NULL)
		return DB_ERROR;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		if (name && jobq_status_parse(name, &s) == 0)
			counts[s] = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return r == SQLITE_DONE ? DB_OK : db_map(r);
}

enum db_rc
jobq_slots(struct db *db, int max_slots, struct slot_info *slots)
{
	static const char q[] =
	    "SELECT worker_slot, id, started_at FROM jobs WHERE status = 'running' "
	    "AND worker_slot IS NOT NULL";
	sqlite3_stmt *st = db_stmt(db, q);
	int r;

	for (int i = 0; i < max_slots; i++) {
		slots[i].slot_id = i;
		slots[i].job_id = -1;
		slots[i].started_ms = -1;
	}
	if (st == NULL)
		return DB_ERROR;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		int s = sqlite3_column_int(st, 0);
		if (s < 0 || s >= max_slots)
			continue;
		slots[s].job_id = sqlite3_column_int64(st, 1);
		slots[s].started_ms = col_time(st, 2);
	}
	sqlite3_reset(st);
	return r == SQLITE_DONE ? DB_OK : db_map(r);
}

enum db_rc
jobq_duration_hist(struct db *db, const double *bounds, size_t nb, int64_t *bucket_counts,
    double *sum, int64_t *count)
{
	static const char q[] =
	    "SELECT (julianday(finished_at) - julianday(started_at)) * 86400.0 FROM jobs "
	    "WHERE finished_at IS NOT NULL AND started_at IS NOT NULL";
	sqlite3_stmt *st = db_stmt(db, q);
	int r;

	memset(bucket_counts, 0, sizeof(int64_t) * nb);
	*sum = 0;
	*count = 0;
	if (st == NULL)
		return DB_ERROR;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		double d = sqlite3_column_double(st, 0);
		if (!(d >= 0))
			continue;
		for (size_t i = 0; i < nb; i++)
			if (d <= bounds[i])
				bucket_counts[i]++;
		*sum += d;
		(*count)++;
	}
	sqlite3_reset(st);
	return r == SQLITE_DONE ? DB_OK : db_map(r);
}

enum db_rc
jobq_prune(struct db *db, int64_t cutoff_ms, int64_t *deleted)
{
	/* The newest job always stays: a new id is max(id) + 1 (schema/003), so
	 * deleting it would give its id again. */
	static const char q_logs[] =
	    "DELETE FROM job_logs WHERE job_id IN (SELECT id FROM jobs WHERE status IN "
	    "('completed', 'error', 'cancelled') AND finished_at < ?1 "
	    "AND id < (SELECT max(id) FROM jobs))";
	static const char q_jobs[] = "DELETE FROM jobs WHERE status IN ('completed', 'error', "
	                             "'cancelled') AND finished_at < ?1 "
	                             "AND id < (SELECT max(id) FROM jobs)";
	sqlite3_stmt *st;
	char cutoff[UTIL_ISO_LEN];
	enum db_rc rc;

	*deleted = 0;
	util_iso8601(cutoff_ms, cutoff);
	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	STMT(st, q_logs);
	db_bind_text(st, 1, cutoff);
	CHECK(step_done(db, st));
	STMT(st, q_jobs);
	db_bind_text(st, 1, cutoff);
	CHECK(step_done(db, st));
	*deleted = sqlite3_changes(db_sqlite(db));
	return db_commit(db);
fail:
	db_rollback(db);
	return rc;
}

enum db_rc
jobq_recount(struct db *db, int *fixed)
{
	/* statuses whose count differs from the rows (schema/004) */
	static const char q_off[] =
	    "SELECT count(*) FROM (SELECT status FROM jobs UNION SELECT status FROM job_counts) s "
	    "WHERE coalesce((SELECT n FROM job_counts c WHERE c.status = s.status), 0) != "
	    "(SELECT count(*) FROM jobs j WHERE j.status = s.status)";
	static const char q_clear[] = "DELETE FROM job_counts";
	static const char q_fill[] =
	    "INSERT INTO job_counts (status, n) SELECT status, count(*) FROM jobs GROUP BY status";
	sqlite3_stmt *st;
	enum db_rc rc;
	int r;

	*fixed = 0;
	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	STMT(st, q_off);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		*fixed = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	if (r != SQLITE_ROW) {
		rc = db_map(r);
		goto fail;
	}
	if (*fixed == 0) {
		db_rollback(db); /* nothing to write */
		return DB_OK;
	}
	STMT(st, q_clear);
	CHECK(step_done(db, st));
	STMT(st, q_fill);
	CHECK(step_done(db, st));
	return db_commit(db);
fail:
	db_rollback(db);
	return rc;
}

enum db_rc
jobq_requeue(struct db *db, int64_t id, const char *by, int64_t *new_id)
{
	struct job j;
	enum db_rc rc;
	int existed;
	uint64_t mask;
	char bad[65];

	if ((rc = jobq_get(db, id, &j)) != DB_OK)
		return rc;
	if (j.status == JOB_PENDING || j.status == JOB_RUNNING || j.nsistemas == 0) {
		jobq_job_clear(&j);
		return DB_CONFLICT;
	}
	rc = jobq_enqueue(db, (const char *const *)j.sistemas, j.nsistemas, j.params, by, NULL,
	    new_id, &existed, &mask, bad);
	jobq_job_clear(&j);
	return rc;
}
