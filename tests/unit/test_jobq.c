/* jobq: the queue's rules one by one, then a multi-process race. */
#include "unit.h"

#include <sys/mman.h>
#include <sys/wait.h>

#include "db.h"
#include "jobq.h"
#include "js.h"
#include "sist.h"

static char path[64];
static struct db *db;

static int
setup(void **state)
{
	char err[256];
	int created;
	(void)state;
	unit_tmpdb(path, sizeof(path));
	db = db_open(path, DB_OPEN_CREATE, 10000, err, sizeof(err));
	assert_non_null(db);
	const char *ids[] = { "a", "b", "c", "d", "e" };
	for (int i = 0; i < 5; i++)
		assert_int_equal(sist_put(db, ids[i], ids[i], NULL, 1, &created), DB_OK);
	assert_int_equal(sist_put(db, "off", "Off", NULL, 0, &created), DB_OK);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	db_close(db);
	db_remove(path);
	return 0;
}

static int64_t
enq(const char *s1, const char *s2)
{
	const char *s[2] = { s1, s2 };
	int64_t id;
	int existed;
	uint64_t mask;
	char bad[65];
	assert_int_equal(
	    jobq_enqueue(db, s, s2 ? 2 : 1, NULL, "t", NULL, &id, &existed, &mask, bad), DB_OK);
	return id;
}

static int64_t
scalar(const char *sql)
{
	sqlite3_stmt *st;
	int64_t n = -1;
	assert_int_equal(sqlite3_prepare_v2(db_sqlite(db), sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* A text page (rc and b from jobq_*_text), parsed back strictly for the
 * assertions into *o (NULL unless rc is DB_OK); frees b. Returns rc. */
static enum db_rc
parsed_page(enum db_rc rc, struct buf *b, struct json_object **o)
{
	int ok;
	char err[64];
	*o = NULL;
	if (rc == DB_OK) {
		*o = js_parse(b->data, b->len, 1 << 24, 8, &ok, err, sizeof(err));
		if (*o == NULL)
			fail_msg("page text is not JSON (%s): %s", err, b->data);
	}
	buf_free(b);
	return rc;
}

static enum db_rc
logs_page(int64_t id, int64_t after, int limit, struct json_object **o)
{
	struct buf b = { 0 };
	return parsed_page(jobq_logs_text(db, id, after, limit, &b), &b, o);
}

static enum db_rc
list_page(int status, int limit, int offset, struct json_object **o)
{
	struct buf b = { 0 };
	return parsed_page(jobq_list_text(db, status, limit, offset, &b), &b, o);
}

static void
transitions_table(void **state)
{
	(void)state;
	assert_true(jobq_transition_ok(JOB_PENDING, JOB_RUNNING));
	assert_true(jobq_transition_ok(JOB_PENDING, JOB_CANCELLED));
	assert_true(jobq_transition_ok(JOB_RUNNING, JOB_COMPLETED));
	assert_true(jobq_transition_ok(JOB_RUNNING, JOB_ERROR));
	assert_true(jobq_transition_ok(JOB_RUNNING, JOB_CANCELLED));
	assert_false(jobq_transition_ok(JOB_PENDING, JOB_COMPLETED));
	assert_false(jobq_transition_ok(JOB_COMPLETED, JOB_RUNNING));
	assert_false(jobq_transition_ok(JOB_CANCELLED, JOB_PENDING));
	assert_false(jobq_transition_ok(JOB_ERROR, JOB_COMPLETED));
}

static void
enqueue_validates(void **state)
{
	const char *s[2] = { "a", "nope" };
	int64_t id;
	int existed;
	uint64_t mask;
	char bad[65] = "";
	(void)state;
	int64_t before = scalar("SELECT count(*) FROM jobs");
	assert_int_equal(
	    jobq_enqueue(db, s, 2, NULL, "t", NULL, &id, &existed, &mask, bad), DB_INVALID);
	assert_string_equal(bad, "nope");
	s[1] = "off";
	assert_int_equal(
	    jobq_enqueue(db, s, 2, NULL, "t", NULL, &id, &existed, &mask, bad), DB_INVALID);
	assert_string_equal(bad, "off");
	assert_int_equal(scalar("SELECT count(*) FROM jobs"), before);
	assert_int_equal(scalar("SELECT count(*) FROM sistemas WHERE status = 'PENDING'"), 0);
}

static void
enqueue_idempotent(void **state)
{
	const char *s[1] = { "a" };
	int64_t id1, id2;
	int existed;
	uint64_t mask;
	char bad[65];
	(void)state;
	assert_int_equal(
	    jobq_enqueue(db, s, 1, "{\"x\":1}", "alice", "key-1", &id1, &existed, &mask, bad),
	    DB_OK);
	assert_false(existed);
	assert_int_equal(mask, 1);
	assert_int_equal(
	    jobq_enqueue(db, s, 1, "{\"x\":1}", "alice", "key-1", &id2, &existed, &mask, bad),
	    DB_OK);
	assert_true(existed);
	assert_int_equal(id1, id2);
	/* the same key from another user is another job */
	assert_int_equal(
	    jobq_enqueue(db, s, 1, NULL, "bob", "key-1", &id2, &existed, &mask, bad), DB_OK);
	assert_false(existed);
	assert_int_not_equal(id1, id2);
	struct job j;
	assert_int_equal(jobq_get(db, id1, &j), DB_OK);
	assert_string_equal(j.params, "{\"x\":1}");
	assert_int_equal(j.status, JOB_PENDING);
	assert_int_equal(j.nsistemas, 1);
	jobq_job_clear(&j);
}

static void
acquire_fifo_slots_and_limit(void **state)
{
	struct job j1, j2, j3;
	(void)state;
	int64_t a = enq("a", NULL), b = enq("b", NULL), c = enq("c", NULL);
	assert_int_equal(jobq_acquire(db, 1, 2, 1, &j1), 1);
	assert_int_equal(j1.id, a);
	assert_int_equal(j1.worker_slot, 0);
	assert_int_equal(j1.status, JOB_RUNNING);
	assert_int_equal(jobq_acquire(db, 1, 2, 1, &j2), 1);
	assert_int_equal(j2.id, b);
	assert_int_equal(j2.worker_slot, 1);
	assert_int_equal(jobq_acquire(db, 1, 2, 1, &j3), 0); /* two slots busy */
	assert_int_equal(scalar("SELECT count(*) FROM sistemas WHERE id IN ('a','b') AND status = "
	                        "'RUNNING' AND progresso = 0"),
	    2);
	assert_int_equal(jobq_finish(db, a, JOB_COMPLETED, 1, 0, NULL, NULL, 0, NULL), DB_OK);
	assert_int_equal(jobq_finish(db, a, JOB_ERROR, 1, 1, "x", NULL, 0, NULL), DB_CONFLICT);
	assert_int_equal(jobq_acquire(db, 1, 2, 1, &j3), 1);
	assert_int_equal(j3.id, c);
	assert_int_equal(j3.worker_slot, 0); /* the lowest free slot */
	assert_int_equal(jobq_finish(db, b, JOB_COMPLETED, 1, 0, NULL, NULL, 0, NULL), DB_OK);
	assert_int_equal(jobq_finish(db, c, JOB_COMPLETED, 1, 0, NULL, NULL, 0, NULL), DB_OK);
	jobq_job_clear(&j1);
	jobq_job_clear(&j2);
	jobq_job_clear(&j3);
}

static void
exclusivity_skips_to_next_free(void **state)
{
	struct job j1, j2, j3;
	(void)state;
	int64_t x = enq("d", NULL), y = enq("d", "e"), z = enq("e", NULL);
	assert_int_equal(jobq_acquire(db, 1, 3, 1, &j1), 1);
	assert_int_equal(j1.id, x);
	assert_int_equal(jobq_acquire(db, 1, 3, 1, &j2), 1);
	assert_int_equal(j2.id, z); /* y waits for d */
	assert_int_equal(jobq_acquire(db, 1, 3, 1, &j3), 0);
	assert_int_equal(jobq_finish(db, x, JOB_COMPLETED, 1, 0, NULL, NULL, 0, NULL), DB_OK);
	assert_int_equal(jobq_acquire(db, 1, 3, 1, &j3), 0); /* e still busy */
	assert_int_equal(jobq_finish(db, z, JOB_COMPLETED, 1, 0, NULL, NULL, 0, NULL), DB_OK);
	assert_int_equal(jobq_acquire(db, 1, 3, 1, &j3), 1);
	assert_int_equal(j3.id, y);
	assert_int_equal(jobq_finish(db, y, JOB_COMPLETED, 1, 0, NULL, NULL, 0, NULL), DB_OK);
	jobq_job_clear(&j1);
	jobq_job_clear(&j2);
	jobq_job_clear(&j3);
	/* without exclusivity both start */
	x = enq("d", NULL);
	y = enq("d", NULL);
	assert_int_equal(jobq_acquire(db, 1, 3, 0, &j1), 1);
	assert_int_equal(jobq_acquire(db, 1, 3, 0, &j2), 1);
	assert_int_equal(jobq_finish(db, x, JOB_COMPLETED, 1, 0, NULL, NULL, 0, NULL), DB_OK);
	assert_int_equal(jobq_finish(db, y, JOB_COMPLETED, 1, 0, NULL, NULL, 0, NULL), DB_OK);
	jobq_job_clear(&j1);
	jobq_job_clear(&j2);
}

/* An enqueue as etl-api's with events on: the job is announced. */
static int64_t
enq_announced(const char *s1)
{
	const char *s[1] = { s1 };
	int64_t id;
	int existed;
	uint64_t mask;
	char bad[65];
	assert_int_equal(db_begin(db), DB_OK);
	assert_int_equal(
	    jobq_enqueue_in(db, s, 1, NULL, "t", NULL, 1, &id, &existed, &mask, bad), DB_OK);
	assert_int_equal(db_commit(db), DB_OK);
	return id;
}

static void
acquire_gate_holds_unseen_announced_jobs(void **state)
{
	struct job j;
	char since[UTIL_ISO_LEN], later[UTIL_ISO_LEN], seen[64];
	struct jobq_gate g = { "[]", since, 0, 0 };
	(void)state;
	util_iso8601(util_now_ms() - 10000, since);
	util_iso8601(util_now_ms() + 3600 * 1000, later);
	/* one before it, never announced, starts: FIFO holds only what follows */
	int64_t z = enq("e", NULL), a = enq_announced("a"), b = enq("b", NULL);
	assert_int_equal(jobq_acquire_gated(db, 1, 4, 1, &g, &j), 1);
	assert_int_equal(j.id, z);
	jobq_job_clear(&j);
	/* a is young and not seen: held, and b behind it */
	g.held_id = g.held_ms = 12345;
	assert_int_equal(jobq_acquire_gated(db, 1, 4, 1, &g, &j), 0);
	assert_int_equal(g.held_id, a);
	assert_true(g.held_ms >= util_now_ms() - 10000 && g.held_ms <= util_now_ms());
	assert_int_equal(g.held_ms, scalar("SELECT (julianday(created_at) - 2440587.5) * 86400000 "
	                                   "+ 0.5 FROM jobs WHERE announce = 1"));
	/* seen: it starts, then b (never announced) */
	snprintf(seen, sizeof(seen), "[%lld]", (long long)a);
	g.seen = seen;
	assert_int_equal(jobq_acquire_gated(db, 1, 4, 1, &g, &j), 1);
	assert_int_equal(j.id, a);
	jobq_job_clear(&j);
	assert_int_equal(jobq_acquire_gated(db, 1, 4, 1, &g, &j), 1);
	assert_int_equal(j.id, b);
	jobq_job_clear(&j);
	g.held_id = g.held_ms = 12345;
	assert_int_equal(jobq_acquire_gated(db, 1, 4, 1, &g, &j), 0);
	assert_true(g.held_id == 0 && g.held_ms == -1); /* nothing pending */
	/* too old for its event still to come: it starts unseen */
	int64_t c = enq_announced("c");
	g.young_since = later;
	assert_int_equal(jobq_acquire_gated(db, 1, 5, 1, &g, &j), 1);
	assert_int_equal(j.id, c);
	jobq_job_clear(&j);
	/* held, and blocked by a running job on its sistema: still reported */
	int64_t d = enq_announced("a");
	g.young_since = since;
	g.held_id = 0;
	assert_int_equal(jobq_acquire_gated(db, 1, 9, 1, &g, &j), 0);
	assert_int_equal(g.held_id, d);
	/* no gate: nothing is held (a finished, so d's sistema is free) */
	assert_int_equal(jobq_finish(db, a, JOB_COMPLETED, 1, 0, NULL, NULL, 0, NULL), DB_OK);
	assert_int_equal(jobq_acquire(db, 1, 9, 1, &j), 1);
	assert_int_equal(j.id, d);
	jobq_job_clear(&j);
	assert_int_equal(scalar("SELECT count(*) FROM jobs WHERE announce = 1"), 3);
}

static void
finish_applies_sistema_updates(void **state)
{
	struct job j;
	(void)state;
	int64_t id = enq("a", "b");
	assert_int_equal(jobq_acquire(db, 1, 1, 1, &j), 1);
	struct sist_update u[2] = {
		{ "a", "SUCCESS", 100, NULL, 1 },
		{ "b", "ERROR", 40, "exit code 2", 1 },
	};
	int64_t fin;
	assert_int_equal(jobq_finish(db, id, JOB_ERROR, 1, 2, "exit code 2", u, 2, &fin), DB_OK);
	assert_true(fin > 0);
	assert_int_equal(scalar("SELECT count(*) FROM sistemas WHERE id = 'a' AND status = "
	                        "'SUCCESS' AND progresso = 100 AND ultima_execucao IS NOT NULL"),
	    1);
	assert_int_equal(scalar("SELECT count(*) FROM sistemas WHERE id = 'b' AND status = 'ERROR' "
	                        "AND mensagem = 'exit code 2'"),
	    1);
	jobq_job_clear(&j);
	assert_int_equal(jobq_get(db, id, &j), DB_OK);
	assert_int_equal(j.status, JOB_ERROR);
	assert_true(j.has_exit_code);
	assert_int_equal(j.exit_code, 2);
	struct json_object *o = jobq_job_json(&j);
	struct json_object *v;
	assert_true(json_object_object_get_ex(o, "duracao_segundos", &v));
	assert_true(json_object_is_type(v, json_type_double));
	json_object_put(o);
	jobq_job_clear(&j);
}

static void
cancel_paths(void **state)
{
	struct job j, r;
	enum jobq_cancel_result res;
	int64_t ids[4];
	(void)state;
	int64_t p = enq("c", NULL);
	assert_int_equal(jobq_cancel(db, p, &res, &j), DB_OK);
	assert_int_equal(res, JOBQ_CANCELLED_NOW);
	assert_int_equal(j.status, JOB_CANCELLED);
	jobq_job_clear(&j);
	assert_int_equal(
	    scalar("SELECT count(*) FROM sistemas WHERE id = 'c' AND status = 'IDLE'"), 1);
	assert_int_equal(jobq_cancel(db, p, &res, &j), DB_OK);
	assert_int_equal(res, JOBQ_CANCEL_FINISHED);
	jobq_job_clear(&j);
	assert_int_equal(jobq_cancel(db, 999999, &res, &j), DB_NOTFOUND);

	int64_t q = enq("c", NULL);
	assert_int_equal(jobq_acquire(db, 7, 1, 1, &r), 1);
	assert_int_equal(jobq_cancel_requests(db, 7, ids, 4), 0);
	assert_int_equal(jobq_cancel(db, q, &res, &j), DB_OK);
	assert_int_equal(res, JOBQ_CANCEL_REQUESTED);
	assert_int_equal(j.status, JOB_RUNNING);
	assert_true(j.cancel_requested);
	jobq_job_clear(&j);
	assert_int_equal(jobq_cancel_requests(db, 7, ids, 4), 1);
	assert_int_equal(ids[0], q);
	assert_int_equal(jobq_cancel_requests(db, 8, ids, 4), 0);
	assert_int_equal(
	    jobq_finish(db, q, JOB_CANCELLED, 0, 0, "cancelled", NULL, 0, NULL), DB_OK);
	jobq_job_clear(&r);
}

static void
orphans_and_dead_workers(void **state)
{
	struct job j;
	int64_t ids[8], wid;
	(void)state;
	assert_int_equal(jobq_worker_register(db, "h", 1234, "boot", 2, &wid), DB_OK);
	int64_t a = enq("a", NULL);
	assert_int_equal(jobq_acquire(db, wid, 2, 1, &j), 1);
	jobq_job_clear(&j);
	/* fresh lease: not an orphan */
	assert_int_equal(jobq_sweep_orphans(db, 60, "orphaned", ids, 8), 0);
	/* an old lease is */
	assert_int_equal(
	    sqlite3_exec(db_sqlite(db),
	        "UPDATE jobs SET locked_at = '2000-01-01T00:00:00.000Z' WHERE status = 'running'",
	        NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(jobq_sweep_orphans(db, 60, "orphaned", ids, 8), 1);
	assert_int_equal(ids[0], a);
	assert_int_equal(
	    scalar(
	        "SELECT count(*) FROM jobs WHERE status = 'error' AND error_message = 'orphaned'"),
	    1);
	assert_int_equal(
	    scalar("SELECT count(*) FROM sistemas WHERE id = 'a' AND status = 'ERROR'"), 1);
	/* renewal keeps a long job alive */
	int64_t b = enq("b", NULL);
	assert_int_equal(jobq_acquire(db, wid, 2, 1, &j), 1);
	jobq_job_clear(&j);
	assert_int_equal(jobq_renew(db, wid), DB_OK);
	assert_int_equal(jobq_sweep_orphans(db, 60, "orphaned", ids, 8), 0);
	/* a dead worker's jobs close at once */
	assert_int_equal(jobq_close_worker_jobs(db, wid, "orphaned: worker died", ids, 8), 1);
	assert_int_equal(ids[0], b);
	struct worker_info w[4];
	assert_int_equal(jobq_workers_on_host(db, "h", w, 4), 1);
	assert_int_equal(w[0].pid, 1234);
	enum worker_state ws;
	assert_int_equal(jobq_worker_state(db, 30, &ws), DB_OK);
	assert_int_equal(ws, WORKER_ALIVE);
	assert_int_equal(jobq_worker_unregister(db, wid), DB_OK);
	assert_int_equal(jobq_worker_state(db, 30, &ws), DB_OK);
	assert_int_equal(ws, WORKER_ABSENT);
	/* a running job nobody holds (legacy) is closed by the sweep */
	assert_int_equal(sqlite3_exec(db_sqlite(db),
	                     "INSERT INTO jobs (tipo, status, created_at, locked_at) VALUES "
	                     "('execucao', 'running', '2026-01-01T00:00:00.000Z', NULL)",
	                     NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(jobq_sweep_orphans(db, 7200, "orphaned", ids, 8), 1);
}

static void
logs_paging(void **state)
{
	struct logline l[300];
	struct json_object *o, *v;
	(void)state;
	int64_t id = enq("e", NULL);
	for (int i = 0; i < 300; i++)
		l[i] = (struct logline){ id, i + 1, util_now_ms(), "INFO", "e",
			"linha \"x\" </script>" };
	assert_int_equal(jobq_append_logs(db, l, 300), DB_OK);
	int64_t last;
	assert_int_equal(jobq_last_seq(db, id, &last), DB_OK);
	assert_int_equal(last, 300);
	assert_int_equal(logs_page(id, 0, 100, &o), DB_OK);
	json_object_object_get_ex(o, "next", &v);
	assert_int_equal(json_object_get_int64(v), 100);
	json_object_object_get_ex(o, "lines", &v);
	assert_int_equal(json_object_array_length(v), 100);
	json_object_put(o);
	assert_int_equal(logs_page(id, 299, 100, &o), DB_OK);
	json_object_object_get_ex(o, "lines", &v);
	assert_int_equal(json_object_array_length(v), 1);
	json_object_put(o);
	assert_int_equal(logs_page(id, 300, 100, &o), DB_OK);
	json_object_object_get_ex(o, "next", &v);
	assert_int_equal(json_object_get_int64(v), 300);
	json_object_put(o);
	assert_int_equal(logs_page(987654, 0, 10, &o), DB_NOTFOUND);
	/* a duplicate seq is refused whole */
	assert_int_equal(jobq_append_logs(db, l, 1), DB_CONFLICT);
}

static void
list_counts_slots(void **state)
{
	struct json_object *o, *v;
	int64_t counts[JOB__MAX];
	struct slot_info s[3];
	struct job j;
	enum jobq_cancel_result res;
	(void)state;
	for (int i = 0; i < 5; i++)
		enq("a", NULL);
	assert_int_equal(jobq_cancel(db, enq("b", NULL), &res, &j), DB_OK);
	jobq_job_clear(&j);
	assert_int_equal(jobq_acquire(db, 1, 3, 1, &j), 1);
	assert_int_equal(jobq_finish(db, j.id, JOB_COMPLETED, 1, 0, NULL, NULL, 0, NULL), DB_OK);
	jobq_job_clear(&j);
	assert_int_equal(jobq_counts(db, counts), DB_OK);
	assert_int_equal(counts[JOB_PENDING], 4);
	assert_int_equal(counts[JOB_CANCELLED], 1);
	assert_int_equal(counts[JOB_COMPLETED], 1);
	int64_t total = 0;
	for (int i = 0; i < JOB__MAX; i++)
		total += counts[i];
	assert_int_equal(list_page(-1, 2, 0, &o), DB_OK);
	json_object_object_get_ex(o, "total", &v);
	assert_int_equal(json_object_get_int64(v), total);
	json_object_object_get_ex(o, "items", &v);
	assert_int_equal(json_object_array_length(v), 2);
	/* newest first */
	int64_t first =
	    json_object_get_int64(json_object_object_get(json_object_array_get_idx(v, 0), "id"));
	int64_t second =
	    json_object_get_int64(json_object_object_get(json_object_array_get_idx(v, 1), "id"));
	assert_true(first > second);
	/* each item is exactly what GET /api/jobs/{id} gives */
	for (size_t k = 0; k < json_object_array_length(v); k++) {
		struct json_object *it = json_object_array_get_idx(v, k), *one;
		struct job jj;
		assert_int_equal(
		    jobq_get(db, json_object_get_int64(json_object_object_get(it, "id")), &jj),
		    DB_OK);
		one = jobq_job_json(&jj);
		if (!json_object_equal(it, one))
			fail_msg("list item %s != job %s", json_object_to_json_string(it),
			    json_object_to_json_string(one));
		json_object_put(one);
		jobq_job_clear(&jj);
	}
	json_object_put(o);
	assert_int_equal(list_page(JOB_CANCELLED, 500, 0, &o), DB_OK);
	json_object_object_get_ex(o, "total", &v);
	assert_int_equal(json_object_get_int64(v), counts[JOB_CANCELLED]);
	json_object_put(o);
	assert_int_equal(jobq_slots(db, 3, s), DB_OK);
	for (int i = 0; i < 3; i++)
		assert_int_equal(s[i].slot_id, i);
	double bounds[] = { 1, 10, 60 };
	int64_t bc[3], cnt;
	double sum;
	assert_int_equal(jobq_duration_hist(db, bounds, 3, bc, &sum, &cnt), DB_OK);
	assert_true(cnt > 0);
	assert_true(bc[2] >= bc[0]);
}

static void
prune_and_requeue(void **state)
{
	int64_t deleted, nid;
	struct job j;
	struct logline l = { 0, 1, 0, "INFO", "a", "x" };
	(void)state;
	enq("a", NULL);
	assert_int_equal(jobq_acquire(db, 1, 3, 1, &j), 1);
	l.job_id = j.id;
	assert_int_equal(jobq_append_logs(db, &l, 1), DB_OK);
	assert_int_equal(jobq_finish(db, j.id, JOB_COMPLETED, 1, 0, NULL, NULL, 0, NULL), DB_OK);
	jobq_job_clear(&j);
	int64_t done = scalar("SELECT id FROM jobs WHERE status = 'completed' ORDER BY id LIMIT 1");
	assert_int_equal(jobq_requeue(db, done, "admin", &nid), DB_OK);
	assert_true(nid > done);
	int64_t pend = scalar("SELECT id FROM jobs WHERE status = 'pending' ORDER BY id LIMIT 1");
	assert_int_equal(jobq_requeue(db, pend, "admin", &nid), DB_CONFLICT);
	int64_t before =
	    scalar("SELECT count(*) FROM jobs WHERE status IN ('completed','error','cancelled')");
	assert_true(before > 0);
	assert_int_equal(jobq_prune(db, util_now_ms() - 86400000, &deleted), DB_OK);
	assert_int_equal(deleted, 0);
	assert_int_equal(jobq_prune(db, util_now_ms() + 1000, &deleted), DB_OK);
	assert_int_equal(deleted, before);
	assert_int_equal(scalar("SELECT count(*) FROM job_logs l LEFT JOIN jobs j ON j.id = "
	                        "l.job_id WHERE j.id IS NULL"),
	    0);
}

/* A new id is max(id) + 1 (schema/003): prune keeps the newest job so that
 * no id is ever given twice. */
static void
prune_keeps_newest(void **state)
{
	enum jobq_cancel_result res;
	int64_t a, b, deleted;
	struct job j;
	(void)state;
	a = enq("a", NULL);
	b = enq("b", NULL);
	assert_int_equal(jobq_cancel(db, a, &res, &j), DB_OK);
	jobq_job_clear(&j);
	assert_int_equal(jobq_cancel(db, b, &res, &j), DB_OK);
	jobq_job_clear(&j);
	assert_int_equal(jobq_prune(db, util_now_ms() + 1000, &deleted), DB_OK);
	assert_int_equal(deleted, 1);
	assert_int_equal(scalar("SELECT count(*) FROM jobs"), 1);
	assert_int_equal(scalar("SELECT max(id) FROM jobs"), b);
	assert_true(enq("a", NULL) > b);
}

/* job_counts (schema/004) equals a count of the rows, status by status. */
static void
assert_counts_match(const char *after)
{
	int64_t off = scalar(
	    "SELECT count(*) FROM (SELECT status FROM jobs UNION SELECT status FROM job_counts) s "
	    "WHERE coalesce((SELECT n FROM job_counts c WHERE c.status = s.status), 0) != "
	    "(SELECT count(*) FROM jobs j WHERE j.status = s.status)");
	if (off != 0)
		fail_msg("job_counts differs from the rows in %lld status(es) after %s",
		    (long long)off, after);
}

/* Every way a job comes, goes or changes status keeps job_counts, also
 * the sqlite3 shell's way; list totals and jobq_counts read it. */
static void
counts_follow_every_change(void **state)
{
	struct job j;
	enum jobq_cancel_result res;
	int64_t ids[8], wid, nid, deleted, counts[JOB__MAX];
	struct json_object *o, *v;
	const char *sists[] = { "a", "b", "c", "d", "e" };
	(void)state;
	assert_int_equal(jobq_worker_register(db, "h", 1, "boot", 4, &wid), DB_OK);
	srand(4242);
	for (int step = 0; step < 400; step++) {
		char what[64];
		int op = rand() % 10;
		snprintf(what, sizeof(what), "step %d (op %d)", step, op);
		switch (op) {
		case 0:
		case 1:
		case 2:
			enq(sists[rand() % 5], rand() % 2 ? sists[rand() % 5] : NULL);
			break;
		case 3:
			if (jobq_acquire(db, wid, 4, 1, &j) == 1)
				jobq_job_clear(&j);
			break;
		case 4: {
			int64_t r = scalar("SELECT id FROM jobs WHERE status = 'running' LIMIT 1");
			if (r > 0)
				assert_int_equal(
				    jobq_finish(db, r, rand() % 2 ? JOB_COMPLETED : JOB_ERROR, 1, 0,
				        NULL, NULL, 0, NULL),
				    DB_OK);
			break;
		}
		case 5: {
			int64_t r =
			    scalar("SELECT id FROM jobs WHERE status IN ('pending', 'running') "
			           "ORDER BY random() LIMIT 1");
			if (r > 0 && jobq_cancel(db, r, &res, &j) == DB_OK)
				jobq_job_clear(&j);
			break;
		}
		case 6:
			assert_int_equal(
			    sqlite3_exec(db_sqlite(db),
			        "UPDATE jobs SET locked_at = '2000-01-01T00:00:00.000Z' "
			        "WHERE id IN (SELECT id FROM jobs WHERE status = 'running' "
			        "LIMIT 1)",
			        NULL, NULL, NULL),
			    SQLITE_OK);
			(void)jobq_sweep_orphans(db, 60, "orphaned", ids, 8);
			break;
		case 7: {
			int64_t r =
			    scalar("SELECT id FROM jobs WHERE status IN ('completed', 'error', "
			           "'cancelled') ORDER BY random() LIMIT 1");
			if (r > 0)
				assert_int_equal(jobq_requeue(db, r, "admin", &nid), DB_OK);
			break;
		}
		case 8:
			if (rand() % 4 == 0)
				assert_int_equal(
				    jobq_prune(db, util_now_ms() + 1000, &deleted), DB_OK);
			else
				(void)jobq_close_worker_jobs(db, wid, "worker died", ids, 8);
			break;
		default:
			/* hand edits in the sqlite3 shell, including a status no
			 * program writes */
			assert_int_equal(
			    sqlite3_exec(db_sqlite(db),
			        rand() % 2 ? "DELETE FROM jobs WHERE id IN (SELECT id FROM "
			                     "jobs ORDER BY random() LIMIT 1)"
			                   : "UPDATE jobs SET status = CASE abs(random()) % 3 "
			                     "WHEN 0 THEN 'completed' WHEN 1 THEN 'x' ELSE "
			                     "status END WHERE id IN (SELECT id FROM jobs "
			                     "ORDER BY random() LIMIT 2)",
			        NULL, NULL, NULL),
			    SQLITE_OK);
			break;
		}
		assert_counts_match(what);
	}
	assert_true(scalar("SELECT count(DISTINCT status) FROM jobs") >= 4);
	assert_int_equal(jobq_counts(db, counts), DB_OK);
	for (int s = 0; s < JOB__MAX; s++) {
		char q[128];
		snprintf(q, sizeof(q), "SELECT count(*) FROM jobs WHERE status = '%s'",
		    jobq_status_name((enum job_status)s));
		assert_int_equal(counts[s], scalar(q));
		assert_int_equal(list_page(s, 1, 0, &o), DB_OK);
		json_object_object_get_ex(o, "total", &v);
		assert_int_equal(json_object_get_int64(v), counts[s]);
		json_object_put(o);
	}
	assert_int_equal(list_page(-1, 1, 0, &o), DB_OK);
	json_object_object_get_ex(o, "total", &v);
	assert_int_equal(json_object_get_int64(v), scalar("SELECT count(*) FROM jobs"));
	json_object_put(o);
	/* the one edit triggers miss: REPLACE's implicit delete; recount heals */
	int fixed = -1;
	assert_int_equal(jobq_recount(db, &fixed), DB_OK);
	assert_int_equal(fixed, 0);
	int64_t rid = scalar("SELECT max(id) FROM jobs");
	char q[256];
	snprintf(q, sizeof(q),
	    "INSERT OR REPLACE INTO jobs (id, tipo, status, created_at) VALUES (%lld, 'execucao', "
	    "'completed', '2026-01-01T00:00:00.000Z')",
	    (long long)rid);
	assert_int_equal(sqlite3_exec(db_sqlite(db), q, NULL, NULL, NULL), SQLITE_OK);
	assert_true(scalar("SELECT sum(n) FROM job_counts") != scalar("SELECT count(*) FROM jobs"));
	assert_int_equal(jobq_recount(db, &fixed), DB_OK);
	assert_true(fixed > 0);
	assert_counts_match("recount");
}

/* Every status filter lists newest first, whichever index serves it
 * (schema/003: idx_jobs_created, idx_jobs_failed, idx_jobs_status_slot). */
static void
list_by_status_newest_first(void **state)
{
	enum jobq_cancel_result res;
	struct json_object *o, *items;
	int64_t ids[4];
	struct job j;
	(void)state;
	for (int i = 0; i < 4; i++)
		ids[i] = enq(i % 2 ? "a" : "b", NULL);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(jobq_cancel(db, ids[i], &res, &j), DB_OK);
		jobq_job_clear(&j);
	}
	const int statuses[] = { JOB_CANCELLED, JOB_PENDING, JOB_ERROR, JOB_COMPLETED, -1 };
	const int want[] = { 3, 1, 0, 0, 4 };
	for (size_t s = 0; s < UTIL_ARRAY_LEN(statuses); s++) {
		assert_int_equal(list_page(statuses[s], 50, 0, &o), DB_OK);
		assert_true(json_object_object_get_ex(o, "items", &items));
		assert_int_equal((int)json_object_array_length(items), want[s]);
		for (int i = 1; i < want[s]; i++) {
			struct json_object *a, *b;
			json_object_object_get_ex(
			    json_object_array_get_idx(items, i - 1), "id", &a);
			json_object_object_get_ex(json_object_array_get_idx(items, i), "id", &b);
			assert_true(json_object_get_int64(a) > json_object_get_int64(b));
		}
		json_object_put(o);
	}
	/* a page further down */
	assert_int_equal(list_page(JOB_CANCELLED, 1, 1, &o), DB_OK);
	assert_true(json_object_object_get_ex(o, "items", &items));
	struct json_object *id;
	json_object_object_get_ex(json_object_array_get_idx(items, 0), "id", &id);
	assert_int_equal(json_object_get_int64(id), ids[1]);
	json_object_put(o);
}

/* Stored text that is not what it should be (a legacy row, a shell edit;
 * sistemas has a CHECK, which does not look at UTF-8) is listed as [] or
 * null, the way GET /jobs/{id} shows it, and the page stays JSON; good
 * text is copied as it is. */
static void
list_copes_with_bad_stored_json(void **state)
{
	static const struct {
		const char *sistemas, *params, *want_sistemas, *want_params;
	} rows[] = {
		{ "[\"a\"]", "{\"k\":[1,2]}", "[\"a\"]", "{\"k\":[1,2]}" },
		{ "[]", "not json at all", "[]", "null" },
		{ "[\"b\"]", "[1]", "[\"b\"]", "null" }, /* the wrong kind */
		{ "[\"c\"]", "{\"x\":NaN}", "[\"c\"]", "null" }, /* Python's NaN */
		{ "[\"\xff\"]", "{\"k\":\"\xc3\"}", "[]", "null" }, /* not UTF-8 */
		{ "[\"d\"]", "{} {}", "[\"d\"]", "null" }, /* trailing text */
		{ "[\"e\"]", "{\"k\":1", "[\"e\"]", "null" }, /* cut */
	};
	struct json_object *o, *items;
	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
		sqlite3_stmt *st;
		assert_int_equal(
		    sqlite3_prepare_v2(db_sqlite(db),
		        "INSERT INTO jobs (tipo, params, status, created_at, sistemas) "
		        "VALUES ('etl', ?, 'completed', ?, ?)",
		        -1, &st, NULL),
		    SQLITE_OK);
		sqlite3_bind_text(st, 1, rows[i].params, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, 1000 + (int64_t)i);
		sqlite3_bind_text(st, 3, rows[i].sistemas, -1, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_finalize(st);
	}
	assert_int_equal(list_page(-1, 50, 0, &o), DB_OK); /* parsed strictly */
	assert_true(json_object_object_get_ex(o, "items", &items));
	assert_int_equal((int)json_object_array_length(items), (int)UTIL_ARRAY_LEN(rows));
	for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
		/* newest first: the last row inserted comes first */
		struct json_object *it =
		    json_object_array_get_idx(items, UTIL_ARRAY_LEN(rows) - 1 - i);
		struct json_object *sv, *pv;
		assert_true(json_object_object_get_ex(it, "sistemas", &sv));
		assert_true(json_object_object_get_ex(it, "params", &pv));
		assert_string_equal(json_object_to_json_string_ext(sv,
		                        JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
		    rows[i].want_sistemas);
		assert_string_equal(json_object_to_json_string_ext(pv,
		                        JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
		    rows[i].want_params);
	}
	json_object_put(o);
}

/* ---- the race: P processes, many jobs, one database file ---- */

#define RACE_JOBS 2000
#define RACE_PROCS 4
#define RACE_SLOTS 3

struct shared {
	int running; /* jobs running now (by our count) */
	int max_running;
	int per_sistema[5];
	int violations;
	int busy_errors;
	int acquired[RACE_JOBS + 1];
};

static void
race_child(struct shared *sh, int64_t first)
{
	char err[256];
	struct db *d = db_open(path, 0, 10000, err, sizeof(err));
	struct job j;
	int idle = 0;

	if (d == NULL)
		_exit(3);
	while (idle < 50) {
		int r = jobq_acquire(d, getpid(), RACE_SLOTS, 1, &j);
		if (r < 0) {
			if (r == DB_BUSY)
				__atomic_add_fetch(&sh->busy_errors, 1, __ATOMIC_SEQ_CST);
			continue;
		}
		if (r == 0) {
			idle++;
			usleep(1000);
			continue;
		}
		idle = 0;
		int n = __atomic_add_fetch(&sh->running, 1, __ATOMIC_SEQ_CST);
		if (n > RACE_SLOTS)
			__atomic_add_fetch(&sh->violations, 1, __ATOMIC_SEQ_CST);
		for (size_t i = 0; i < j.nsistemas; i++)
			if (__atomic_add_fetch(
			        &sh->per_sistema[j.sistemas[i][0] - 'a'], 1, __ATOMIC_SEQ_CST) > 1)
				__atomic_add_fetch(&sh->violations, 1, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&sh->acquired[j.id - first], 1, __ATOMIC_SEQ_CST);
		for (size_t i = 0; i < j.nsistemas; i++)
			__atomic_sub_fetch(
			    &sh->per_sistema[j.sistemas[i][0] - 'a'], 1, __ATOMIC_SEQ_CST);
		__atomic_sub_fetch(&sh->running, 1, __ATOMIC_SEQ_CST);
		enum db_rc rc;
		while ((rc = jobq_finish(d, j.id, JOB_COMPLETED, 1, 0, NULL, NULL, 0, NULL)) ==
		       DB_BUSY)
			__atomic_add_fetch(&sh->busy_errors, 1, __ATOMIC_SEQ_CST);
		if (rc != DB_OK)
			__atomic_add_fetch(&sh->violations, 1, __ATOMIC_SEQ_CST);
		jobq_job_clear(&j);
	}
	db_close(d);
	_exit(0);
}

static void
multi_process_race(void **state)
{
	struct shared *sh =
	    mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	const char *names[] = { "a", "b", "c", "d", "e" };
	int64_t first = -1, id;
	int existed, st;
	uint64_t mask;
	char bad[65];
	(void)state;
	assert_true(sh != MAP_FAILED);
	memset(sh, 0, sizeof(*sh));
	assert_int_equal(
	    sqlite3_exec(db_sqlite(db), "DELETE FROM jobs", NULL, NULL, NULL), SQLITE_OK);
	srand(42);
	for (int i = 0; i < RACE_JOBS; i++) {
		const char *s[2] = { names[rand() % 5], names[rand() % 5] };
		size_t n = (rand() % 3 == 0 && strcmp(s[0], s[1])) ? 2 : 1;
		assert_int_equal(
		    jobq_enqueue(db, s, n, NULL, "race", NULL, &id, &existed, &mask, bad), DB_OK);
		if (first < 0)
			first = id;
	}
	for (int p = 0; p < RACE_PROCS; p++)
		if (fork() == 0)
			race_child(sh, first);
	int ok = 0;
	while (wait(&st) > 0)
		ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
	assert_int_equal(ok, RACE_PROCS);
	assert_int_equal(sh->violations, 0);
	assert_int_equal(sh->busy_errors, 0);
	for (int i = 0; i < RACE_JOBS; i++)
		if (sh->acquired[i] != 1)
			fail_msg(
			    "job %lld acquired %d times", (long long)(first + i), sh->acquired[i]);
	assert_int_equal(scalar("SELECT count(*) FROM jobs WHERE status = 'completed'"), RACE_JOBS);
	/* FIFO: whenever a newer job Y started, every older job X whose
	 * sistemas are a subset of Y's could have started too (Y's sistemas
	 * were all free, and a slot was), so X must not start after Y. */
	assert_int_equal(scalar("SELECT count(*) FROM jobs jx JOIN jobs jy ON jy.id > jx.id "
	                        "WHERE jy.started_at < jx.started_at AND NOT EXISTS ("
	                        "  SELECT 1 FROM json_each(jx.sistemas) x WHERE x.value NOT IN "
	                        "  (SELECT value FROM json_each(jy.sistemas)))"),
	    0);
	munmap(sh, sizeof(*sh));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(transitions_table, setup, teardown),
		cmocka_unit_test_setup_teardown(enqueue_validates, setup, teardown),
		cmocka_unit_test_setup_teardown(enqueue_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(acquire_fifo_slots_and_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(exclusivity_skips_to_next_free, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    acquire_gate_holds_unseen_announced_jobs, setup, teardown),
		cmocka_unit_test_setup_teardown(finish_applies_sistema_updates, setup, teardown),
		cmocka_unit_test_setup_teardown(cancel_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(orphans_and_dead_workers, setup, teardown),
		cmocka_unit_test_setup_teardown(logs_paging, setup, teardown),
		cmocka_unit_test_setup_teardown(list_counts_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(prune_and_requeue, setup, teardown),
		cmocka_unit_test_setup_teardown(prune_keeps_newest, setup, teardown),
		cmocka_unit_test_setup_teardown(list_by_status_newest_first, setup, teardown),
		cmocka_unit_test_setup_teardown(list_copes_with_bad_stored_json, setup, teardown),
		cmocka_unit_test_setup_teardown(counts_follow_every_change, setup, teardown),
		cmocka_unit_test_setup_teardown(multi_process_race, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
