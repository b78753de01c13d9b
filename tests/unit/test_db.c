/* db + migrate: fresh and legacy databases, idempotence, refusal cases. */
#include "unit.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "ckpt.h"
#include "db.h"
#include "migrate.h"
#include "util.h"

#ifndef FIXTURES
#define FIXTURES "../shared/fixtures"
#endif

/* A database as the original dashboard left it (the shared fixture). */
static void
make_legacy(const char *path)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "sqlite3 %s < %s/legacy-v1.sql", path, FIXTURES);
	assert_int_equal(system(cmd), 0);
}

static int64_t
count(struct db *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t n = -1;
	assert_int_equal(sqlite3_prepare_v2(db_sqlite(db), sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static void
fresh_database(void **state)
{
	char path[64], err[256];
	(void)state;
	unit_tmpdb(path, sizeof(path));
	assert_null(db_open(path, 0, 1000, err, sizeof(err))); /* no CREATE: refused */
	struct db *db = db_open(path, DB_OPEN_CREATE, 1000, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(migrate_version(db_sqlite(db)), migrate_latest());
	assert_int_equal(count(db, "SELECT count(*) FROM pragma_index_list('jobs') WHERE name = "
	                           "'idx_jobs_status_slot'"),
	    1);
	assert_int_equal(count(db, "PRAGMA page_size"), DB_PAGE_SIZE);
	assert_int_equal(count(db, "PRAGMA cache_size"), -2000); /* SQLite's own */
	struct db *small = db_open(path, DB_OPEN_SMALL_CACHE, 1000, err, sizeof(err));
	assert_non_null(small);
	assert_int_equal(count(small, "PRAGMA cache_size"), -64);
	db_close(small);
	db_close(db);
	db_remove(path);
	/* an empty file (made by an installer, say) is a new database too */
	int fd = open(path, O_CREAT | O_WRONLY, 0640);
	assert_true(fd >= 0);
	close(fd);
	assert_non_null(db = db_open(path, 0, 1000, err, sizeof(err)));
	assert_int_equal(count(db, "PRAGMA page_size"), DB_PAGE_SIZE);
	db_close(db);
	db_remove(path);
}

static void
legacy_migrated_in_place(void **state)
{
	char path[64], err[256];
	(void)state;
	unit_tmpdb(path, sizeof(path));
	make_legacy(path);
	struct db *db = db_open(path, 0, 1000, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(count(db, "SELECT count(*) FROM jobs"), 5);
	assert_int_equal(count(db, "PRAGMA page_size"), 4096); /* an existing file keeps its own */
	assert_int_equal(count(db, "SELECT count(*) FROM sistemas"), 4);
	assert_int_equal(count(db, "SELECT count(*) FROM users"), 1);
	assert_int_equal(count(db, "SELECT count(*) FROM pragma_table_info('jobs') WHERE name IN "
	                           "('worker_slot', 'locked_at')"),
	    2);
	assert_int_equal(count(db, "SELECT count(*) FROM job_logs"), 5);
	assert_int_equal(count(db, "SELECT count(*) FROM job_logs WHERE job_id = 2 AND seq = 2 AND "
	                           "level = 'ERROR' AND sistema = 'maps'"),
	    1);
	assert_int_equal(count(db, "SELECT count(*) FROM jobs WHERE created_at LIKE '%Z'"), 5);
	assert_int_equal(count(db, "SELECT json_array_length(sistemas) FROM jobs WHERE id = 4"), 2);
	/* the unparseable legacy params are kept as they were */
	assert_int_equal(
	    count(db, "SELECT count(*) FROM jobs WHERE params = 'not json at all'"), 1);
	/* 003 rebuilt jobs: the same ids, no AUTOINCREMENT, foreign keys back on
	 * and whole (the rebuild did not cascade into job_logs), the index API.md
	 * names still there */
	assert_int_equal(count(db, "SELECT sum(id) FROM jobs"), 1 + 2 + 3 + 4 + 5);
	assert_int_equal(count(db, "SELECT count(*) FROM sqlite_master WHERE name = 'jobs' AND sql "
	                           "LIKE '%AUTOINCREMENT%'"),
	    0);
	assert_int_equal(count(db, "PRAGMA foreign_keys"), 1);
	assert_int_equal(count(db, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
	/* jobs.sistemas is read with json_each: a malformed one is refused */
	assert_int_equal(sqlite3_exec(db_sqlite(db), "UPDATE jobs SET sistemas = '[' WHERE id = 1",
	                     NULL, NULL, NULL) &
	                     0xff,
	    SQLITE_CONSTRAINT);
	assert_int_equal(sqlite3_exec(db_sqlite(db), "UPDATE jobs SET sistemas = '{}' WHERE id = 1",
	                     NULL, NULL, NULL) &
	                     0xff,
	    SQLITE_CONSTRAINT);
	assert_int_equal(count(db, "SELECT count(*) FROM pragma_foreign_key_list('job_logs') WHERE "
	                           "\"table\" = 'jobs'"),
	    1);
	assert_int_equal(count(db, "SELECT count(*) FROM pragma_index_list('jobs') WHERE name = "
	                           "'idx_jobs_status_slot'"),
	    1);
	/* 004 counted the legacy jobs per status, and its triggers keep counting */
	assert_int_equal(count(db, "SELECT count(*) FROM (SELECT status, count(*) AS n FROM jobs "
	                           "GROUP BY status) r JOIN job_counts c USING (status) "
	                           "WHERE c.n = r.n"),
	    count(db, "SELECT count(DISTINCT status) FROM jobs"));
	assert_int_equal(count(db, "SELECT sum(n) FROM job_counts"), 5);
	assert_int_equal(
	    sqlite3_exec(db_sqlite(db), "DELETE FROM jobs WHERE id = 5", NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(count(db, "SELECT sum(n) FROM job_counts"), 4);
	db_close(db);
	/* twice: nothing changes */
	db = db_open(path, 0, 1000, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(count(db, "SELECT count(*) FROM jobs"), 4);
	assert_int_equal(count(db, "SELECT sum(n) FROM job_counts"), 4);
	db_close(db);
	db_remove(path);
}

/* A database at schema version 2, as the previous release left it (steps 1
 * and 2 run by the sqlite3 shell, which enforces no foreign keys), with
 * extra SQL run on it. */
static void
make_v2(const char *path, const char *extra)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
	    "(cat schema/001_legacy.sql schema/002_pool.sql; echo \"%s\"; "
	    "echo 'PRAGMA user_version = 2;') | sqlite3 %s",
	    extra, path);
	assert_int_equal(system(cmd), 0);
}

/* Step 3 rebuilds jobs: log lines a hand-deleted job left behind do not
 * stop it (and stay), a view of jobs survives it, and a column it does not
 * know stops it with a message instead of being dropped. */
static void
rebuild_step_edge_cases(void **state)
{
	char path[64], err[256];
	(void)state;
	unit_tmpdb(path, sizeof(path));
	make_v2(path,
	    "INSERT INTO jobs (id, tipo, status, created_at) VALUES (7, 'execucao', 'completed', "
	    "'2026-10-01T03:00:00.000Z'); INSERT INTO job_logs VALUES (7, 1, "
	    "'2026-10-01T03:00:00.000Z', 'INFO', 'a', 'x'); INSERT INTO job_logs VALUES (99, 1, "
	    "'2026-10-01T03:00:00.000Z', 'INFO', 'a', 'orphan'); CREATE VIEW v_jobs AS SELECT id "
	    "FROM jobs;");
	struct db *db = db_open(path, 0, 1000, err, sizeof(err));
	if (db == NULL)
		fail_msg("%s", err);
	assert_int_equal(migrate_version(db_sqlite(db)), migrate_latest());
	assert_int_equal(count(db, "SELECT count(*) FROM job_logs"), 2);
	assert_int_equal(count(db, "SELECT count(*) FROM v_jobs"), 1);
	db_close(db);
	db_remove(path);

	unit_tmpdb(path, sizeof(path));
	make_v2(path, "ALTER TABLE jobs ADD COLUMN usuario TEXT;");
	assert_null(db_open(path, 0, 1000, err, sizeof(err)));
	assert_non_null(strstr(err, "column(s) this program does not know"));
	db_remove(path);
}

static void
newer_schema_refused(void **state)
{
	char path[64], err[256];
	(void)state;
	unit_tmpdb(path, sizeof(path));
	struct db *db = db_open(path, DB_OPEN_CREATE, 1000, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(
	    sqlite3_exec(db_sqlite(db), "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	db_close(db);
	assert_null(db_open(path, 0, 1000, err, sizeof(err)));
	assert_non_null(strstr(err, "newer"));
	db_remove(path);
}

static void
corrupt_file_refused(void **state)
{
	char path[64], err[256];
	(void)state;
	unit_tmpdb(path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	char junk[4096];
	memset(junk, 'Z', sizeof(junk));
	assert_true(write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk));
	close(fd);
	assert_null(db_open(path, 0, 1000, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	db_remove(path);
}

static void
unwritable_refused_without_half_migration(void **state)
{
	char path[64], err[256];
	(void)state;
	if (geteuid() == 0) {
		/* root ignores file modes: make it read-only through SQLite instead */
	}
	unit_tmpdb(path, sizeof(path));
	make_legacy(path);
	/* A read-only open (what an unwritable file gives) cannot migrate. */
	sqlite3 *h;
	assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	char merr[256];
	assert_int_equal(migrate_apply(h, merr, sizeof(merr)), -1);
	assert_int_equal(migrate_version(h), 0);
	sqlite3_close(h);
	/* still the legacy shape: no column was added */
	struct db *db = db_open(path, DB_OPEN_NOMIGRATE, 1000, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(
	    count(db, "SELECT count(*) FROM pragma_table_info('jobs') WHERE name = 'worker_slot'"),
	    0);
	db_close(db);
	db_remove(path);
}

static void
busy_reported_distinctly(void **state)
{
	char path[64], err[256];
	(void)state;
	unit_tmpdb(path, sizeof(path));
	struct db *a = db_open(path, DB_OPEN_CREATE, 100, err, sizeof(err));
	struct db *b = db_open(path, 0, 100, err, sizeof(err));
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(db_begin(a), DB_OK);
	assert_int_equal(db_begin(b), DB_BUSY);
	db_rollback(a);
	assert_int_equal(db_begin(b), DB_OK);
	assert_int_equal(db_commit(b), DB_OK);
	db_close(a);
	db_close(b);
	db_remove(path);
}

/* A read scope: the steps inside it (each with its own db_begin_read and
 * db_rollback) read one snapshot; a write inside it is refused; after its
 * end the connection reads the newest data and writes again. */
static void
read_scope_is_one_snapshot_and_read_only(void **state)
{
	static const char q_count[] = "SELECT count(*) FROM sistemas";
	static const char q_ins[] = "INSERT INTO sistemas (id, nome, ativo) VALUES (?, 'x', 1)";
	char path[64], err[256];
	sqlite3_stmt *st;
	(void)state;
	unit_tmpdb(path, sizeof(path));
	struct db *a = db_open(path, DB_OPEN_CREATE, 1000, err, sizeof(err));
	struct db *b = db_open(path, 0, 1000, err, sizeof(err));
	assert_non_null(a);
	assert_non_null(b);

	assert_int_equal(db_read_scope(a), DB_OK);
	assert_int_equal(count(a, q_count), 0); /* the snapshot is taken here */
	st = db_stmt(b, q_ins); /* another connection commits meanwhile */
	db_bind_text(st, 1, "one");
	assert_int_equal(db_exec_stmt(b, st), DB_OK);
	/* a step that opens and ends its own read transaction joins the scope */
	assert_int_equal(db_begin_read(a), DB_OK);
	assert_int_equal(count(a, q_count), 0);
	db_rollback(a);
	assert_int_equal(count(a, q_count), 0); /* still the same snapshot */
	/* writes are refused, and leave nothing behind */
	assert_null(db_stmt(a, q_ins));
	assert_int_equal(db_begin(a), DB_ERROR);
	db_read_scope_end(a);
	db_read_scope_end(a); /* twice: harmless */
	db_read_scope_end(NULL);

	assert_int_equal(count(a, q_count), 1);
	st = db_stmt(a, q_ins); /* the same cached statement, now allowed */
	assert_non_null(st);
	db_bind_text(st, 1, "two");
	assert_int_equal(db_exec_stmt(a, st), DB_OK);
	assert_int_equal(count(b, q_count), 2);
	db_close(a);
	db_close(b);
	db_remove(path);
}

/* Bytes in path's WAL file (-1: none). */
static long
wal_size(const char *path)
{
	char wal[80];
	struct stat sb;
	snprintf(wal, sizeof(wal), "%s-wal", path);
	return stat(wal, &sb) == 0 ? (long)sb.st_size : -1;
}

/* The WAL header's checkpoint sequence number: one more each time the WAL
 * starts over (-1: no WAL file). */
static long
wal_restarts(const char *path)
{
	char wal[80];
	unsigned char h[16];
	FILE *f;
	long n = -1;
	snprintf(wal, sizeof(wal), "%s-wal", path);
	if ((f = fopen(wal, "rb")) == NULL)
		return -1;
	if (fread(h, 1, sizeof(h), f) == sizeof(h))
		n = (long)((unsigned long)h[12] << 24 | (unsigned long)h[13] << 16 |
		           (unsigned long)h[14] << 8 | h[15]);
	fclose(f);
	return n;
}

/* A new database at path (of size sizeof(char[64])) with a table t of
 * blobs. */
static struct db *
db_with_blobs(char *path)
{
	char err[256];
	unit_tmpdb(path, 64);
	struct db *db = db_open(path, DB_OPEN_CREATE, 1000, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(
	    sqlite3_exec(db_sqlite(db), "CREATE TABLE t (x BLOB)", NULL, NULL, NULL), SQLITE_OK);
	return db;
}

/* db_checkpoint copies a long WAL back with a writer's data intact, and
 * the WAL starts over; while another process writes steadily, the
 * checkpointer thread keeps it starting over (without the thread only the
 * writer's own autocheckpoint, at 16,000 pages, would). Why RESTART and
 * not TRUNCATE is a matter of time under load (db.c), not of outcome. */
static void
checkpoint_restarts_a_long_wal(void **state)
{
	char path[64], err[256];
	int frames = -1, copied = -1, st;
	(void)state;
	struct db *db = db_with_blobs(path);
	assert_int_equal(db_checkpoint(db, &frames, &copied), DB_OK);
	assert_true(frames < DB_CHECKPOINT_RESTART_PAGES && copied == frames);
	/* > DB_CHECKPOINT_RESTART_PAGES pages (two a row), one transaction each */
	char ins[64];
	snprintf(ins, sizeof(ins), "INSERT INTO t VALUES (zeroblob(%d))", DB_PAGE_SIZE * 5 / 4);
	for (int i = 0; i < DB_CHECKPOINT_RESTART_PAGES / 2 + 10; i++)
		assert_int_equal(sqlite3_exec(db_sqlite(db), ins, NULL, NULL, NULL), SQLITE_OK);
	assert_true(wal_size(path) > (long)DB_CHECKPOINT_RESTART_PAGES * DB_PAGE_SIZE);
	long seq = wal_restarts(path);
	assert_int_equal(db_checkpoint(db, &frames, &copied), DB_OK);
	assert_true(frames >= DB_CHECKPOINT_RESTART_PAGES && copied == frames);
	assert_int_equal(
	    sqlite3_exec(db_sqlite(db), "INSERT INTO t VALUES (1)", NULL, NULL, NULL), SQLITE_OK);
	assert_true(wal_restarts(path) > seq);
	assert_int_equal(count(db, "SELECT count(*) FROM t"), DB_CHECKPOINT_RESTART_PAGES / 2 + 11);
	db_close(db);

	/* the thread, against another process committing every ~0.2 ms, as
	 * the API does under load: never a pause long enough for a passive
	 * checkpoint (fsyncs of milliseconds) to catch up. Two restarts are
	 * enough; the writer stops then, or after 30 s (a slow machine). */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct db *w = db_open(path, 0, 10000, err, sizeof(err));
		int64_t until = util_mono_ms() + 30000;
		long n = 0;
		while (w && util_mono_ms() < until)
			if (sqlite3_exec(db_sqlite(w), "INSERT INTO t VALUES (zeroblob(100))", NULL,
			        NULL, NULL) == SQLITE_OK &&
			    ++n % 2 == 0)
				usleep(300);
		_exit(1);
	}
	seq = -1;
	for (int i = 0; i < 3000 && seq < 0; i++) {
		usleep(1000);
		seq = wal_restarts(path); /* once the writer has its WAL */
	}
	assert_true(seq >= 0);
	struct ckpt *c = ckpt_start(path, 1000, DB_CHECKPOINT_INTERVAL_MS, err, sizeof(err));
	assert_non_null(c);
	long restarts = 0;
	for (int i = 0; i < 3000 && restarts < 2; i++) {
		usleep(10000);
		restarts = wal_restarts(path) - seq;
	}
	kill(pid, SIGKILL); /* in the middle of a write, maybe: no harm */
	assert_int_equal(waitpid(pid, &st, 0), pid);
	ckpt_stop(c);
	if (restarts < 2)
		fail_msg("the WAL started over %ld time(s) in 30 s under a steady writer; want 2",
		    restarts);
	db = db_open(path, 0, 1000, err, sizeof(err));
	assert_non_null(db);
	assert_true(count(db, "SELECT count(*) FROM t") > 2 * DB_CHECKPOINT_RESTART_PAGES);
	assert_int_equal(count(db, "SELECT count(*) FROM pragma_integrity_check WHERE "
	                           "integrity_check != 'ok'"),
	    0);
	db_close(db);
	db_remove(path);
}

static void
count_nudge(void *arg)
{
	(*(int *)arg)++;
}

/* One commit that changes at least `pages` pages of t. */
static void
write_pages(struct db *db, int pages)
{
	char ins[80];
	snprintf(ins, sizeof(ins), "INSERT INTO t VALUES (zeroblob(%d))", pages * DB_PAGE_SIZE);
	assert_int_equal(sqlite3_exec(db_sqlite(db), ins, NULL, NULL, NULL), SQLITE_OK);
}

/* Whether the WAL starts over within ms: a small commit every 10 ms, and
 * the first commit after a pass that copied the whole WAL starts it over. */
static int
restarts_within(struct db *db, const char *path, int ms)
{
	long seq = wal_restarts(path);
	for (int t = 0; t < ms; t += 10) {
		usleep(10000);
		assert_int_equal(
		    sqlite3_exec(db_sqlite(db), "INSERT INTO t VALUES (1)", NULL, NULL, NULL),
		    SQLITE_OK);
		if (wal_restarts(path) != seq)
			return 1;
	}
	return 0;
}

static struct ckpt *
holding_checkpointer(const char *path, int interval_ms)
{
	char err[256];
	struct ckpt *c = ckpt_start(path, 1000, interval_ms, err, sizeof(err));
	assert_non_null(c);
	for (int i = 0; i < 200 && !ckpt_holds(c); i++)
		usleep(10000); /* it takes the turn as it starts */
	assert_true(ckpt_holds(c));
	return c;
}

/* The checkpointer keeps pace with the WAL, so the WAL (and the index
 * every process maps, 32 KiB per 4,096 frames it ever held) stays short:
 * a commit that leaves the WAL long nudges the thread, and a pass that
 * found it busy comes back soon. With an interval of a minute, nothing
 * else could make it start over within seconds. And a connection whose
 * checkpoints are a thread's job still checkpoints past the fallback. */
static void
the_checkpointer_keeps_pace_with_the_wal(void **state)
{
	char path[64];
	int nudges = 0;
	(void)state;
	struct db *db = db_with_blobs(path);
	struct ckpt *c = holding_checkpointer(path, 60000);

	/* counted, not passed on: the WAL stays as it is */
	db_autocheckpoint(db, 0, count_nudge, &nudges);
	write_pages(db, DB_CHECKPOINT_RESTART_PAGES / 2);
	assert_int_equal(nudges, 0);
	write_pages(db, DB_CHECKPOINT_RESTART_PAGES / 2);
	assert_int_equal(nudges, 1);
	assert_false(restarts_within(db, path, 300));
	assert_true(nudges > 1); /* each commit while it is long */

	/* passed on: the next commit brings the pass forward */
	db_autocheckpoint(db, 0, ckpt_nudge, c);
	assert_true(restarts_within(db, path, 10000));

	/* busy: a writer that never nudges, 1,100 pages every 20 ms; one
	 * kick, then each pass finds 1,000 pages or more and comes back soon */
	db_autocheckpoint(db, 0, NULL, NULL);
	long seq = wal_restarts(path), seen = seq, restarts = 0;
	ckpt_nudge(c);
	for (int i = 0; i < 50; i++) { /* 55,000 pages: under the fallback */
		write_pages(db, 1100);
		if (wal_restarts(path) != seen) {
			seen = wal_restarts(path);
			restarts++;
		}
		usleep(20000);
	}
	if (restarts < 4)
		fail_msg("the WAL started over %ld time(s) in 50 busy writes; want 4", restarts);
	ckpt_stop(c);

	/* no thread at work (a commit first: its last pass may have copied
	 * everything): past the fallback, the commit checkpoints */
	assert_int_equal(
	    sqlite3_exec(db_sqlite(db), "INSERT INTO t VALUES (1)", NULL, NULL, NULL), SQLITE_OK);
	assert_false(restarts_within(db, path, 100));
	write_pages(db, DB_AUTOCHECKPOINT_FALLBACK_PAGES);
	assert_true(restarts_within(db, path, 100));
	db_close(db);
	db_remove(path);
}

/* A reader that keeps the WAL from starting over makes every pass fail
 * (SQLITE_BUSY), and each pass's RESTART holds the write lock while it
 * waits for that reader: such passes must not come every 50 ms, nudged by
 * each commit, or the writers wait most of the time. */
static void
a_reader_holding_the_wal_does_not_speed_the_passes_up(void **state)
{
	char path[64], err[256];
	int slow = 0;
	(void)state;
	struct db *db = db_with_blobs(path);
	struct db *rd = db_open(path, 0, 1000, err, sizeof(err));
	assert_non_null(rd);
	assert_int_equal(db_begin_read(rd), DB_OK);
	assert_int_equal(count(rd, "SELECT count(*) FROM t"), 0); /* its snapshot, from now */
	struct ckpt *c = holding_checkpointer(path, 60000);
	db_autocheckpoint(db, 0, ckpt_nudge, c);
	write_pages(db, DB_CHECKPOINT_RESTART_PAGES); /* long: every commit nudges */
	for (int i = 0; i < 100; i++) { /* 1 s or more */
		int64_t t0 = util_mono_ms();
		assert_int_equal(
		    sqlite3_exec(db_sqlite(db), "INSERT INTO t VALUES (1)", NULL, NULL, NULL),
		    SQLITE_OK);
		slow += util_mono_ms() - t0 >= DB_CHECKPOINT_WAIT_MS * 3 / 5;
		usleep(10000);
	}
	if (slow > 3) /* two passes, at most one wait each, to tell it is stuck */
		fail_msg("%d of 100 commits waited for a checkpoint; want 3 at most", slow);
	db_autocheckpoint(db, 0, NULL, NULL);
	ckpt_stop(c);
	db_rollback(rd);
	db_close(rd);
	db_close(db);
	db_remove(path);
}

/* Whether some open file description holds the flock on path. */
static int
lock_taken(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), taken;
	if (fd == -1)
		return 0;
	taken = flock(fd, LOCK_EX | LOCK_NB) == -1;
	close(fd);
	return taken;
}

/* Of several checkpointer threads on one database exactly one
 * checkpoints; when it stops, another takes over within a tick or two. */
static void
one_checkpointer_per_database(void **state)
{
	char path[64], lock[96], err[256];
	struct ckpt *c[3];
	(void)state;
	unit_tmpdb(path, sizeof(path));
	snprintf(lock, sizeof(lock), "%s.ckpt.lock", path);
	struct db *db = db_open(path, DB_OPEN_CREATE, 1000, err, sizeof(err));
	assert_non_null(db);
	for (int i = 0; i < 3; i++)
		assert_non_null(
		    c[i] = ckpt_start(path, 1000, DB_CHECKPOINT_INTERVAL_MS, err, sizeof(err)));
	for (int left = 3; left > 0; left--) {
		int holders = 0, who = -1;
		for (int t = 0; t < 40; t++) { /* up to 4 s: ticks are 250 ms apart */
			holders = 0;
			for (int i = 0; i < 3; i++)
				if (c[i] && ckpt_holds(c[i])) {
					holders++;
					who = i;
				}
			if (holders > 0)
				break;
			usleep(100000);
		}
		assert_int_equal(holders, 1);
		assert_true(lock_taken(lock));
		ckpt_stop(c[who]);
		c[who] = NULL;
	}
	assert_false(lock_taken(lock));
	/* a process with the thread replaces SQLite's own hook by ours (its
	 * fallback: the_checkpointer_keeps_pace_with_the_wal) */
	assert_int_equal(count(db, "PRAGMA wal_autocheckpoint"), DB_AUTOCHECKPOINT_PAGES);
	db_autocheckpoint(db, 0, NULL, NULL);
	assert_int_equal(count(db, "PRAGMA wal_autocheckpoint"), 0);
	db_autocheckpoint(db, 1, NULL, NULL);
	assert_int_equal(count(db, "PRAGMA wal_autocheckpoint"), DB_AUTOCHECKPOINT_PAGES);
	db_close(db);
	db_remove(path);
}

static void
concurrent_first_open(void **state)
{
	char path[64], err[256];
	(void)state;
	unit_tmpdb(path, sizeof(path));
	for (int i = 0; i < 6; i++)
		if (fork() == 0) {
			struct db *db = db_open(path, DB_OPEN_CREATE, 10000, err, sizeof(err));
			if (db == NULL)
				fprintf(stderr, "concurrent open: %s\n", err);
			_exit(db ? 0 : 1);
		}
	int ok = 0, st;
	while (wait(&st) > 0)
		ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
	assert_int_equal(ok, 6);
	struct db *db = db_open(path, 0, 1000, err, sizeof(err));
	assert_int_equal(migrate_version(db_sqlite(db)), migrate_latest());
	db_close(db);
	db_remove(path);
}

static void
full_disk_is_reported(void **state)
{
	char path[64], err[256];
	(void)state;
	unit_tmpdb(path, sizeof(path));
	struct db *db = db_open(path, DB_OPEN_CREATE, 1000, err, sizeof(err));
	assert_non_null(db);
	/* max_page_count is SQLite's own quota: hitting it is SQLITE_FULL,
	 * exactly what a full disk gives. */
	assert_int_equal(
	    sqlite3_exec(db_sqlite(db), "PRAGMA max_page_count = 40", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(db_begin(db), DB_OK);
	int rc = sqlite3_exec(db_sqlite(db),
	    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) "
	    "INSERT INTO sistemas (id, nome) SELECT 's' || i, hex(randomblob(100)) FROM n",
	    NULL, NULL, NULL);
	assert_int_equal(db_map(rc), DB_FULL);
	db_rollback(db);
	db_close(db);
	db_remove(path);
}

static void
full_disk_mid_migration_rolls_back(void **state)
{
	char path[64], err[256];
	sqlite3 *h;
	(void)state;
	unit_tmpdb(path, sizeof(path));
	make_legacy(path);
	assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
	/* The file may not grow past its current size: the migration's new
	 * tables and indexes hit SQLITE_FULL part way through. */
	assert_int_equal(sqlite3_exec(h, "PRAGMA max_page_count = 8", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(migrate_apply(h, err, sizeof(err)), -1);
	if (strstr(err, "disk full") == NULL)
		fail_msg("unexpected error: %s", err);
	/* step 1 (the legacy shape, nothing to create) may be done; step 2 is not */
	assert_true(migrate_version(h) <= 1);
	sqlite3_stmt *st;
	assert_int_equal(
	    sqlite3_prepare_v2(h,
	        "SELECT count(*) FROM pragma_table_info('jobs') WHERE name = 'worker_slot'", -1,
	        &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	db_remove(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fresh_database),
		cmocka_unit_test(legacy_migrated_in_place),
		cmocka_unit_test(newer_schema_refused),
		cmocka_unit_test(rebuild_step_edge_cases),
		cmocka_unit_test(corrupt_file_refused),
		cmocka_unit_test(unwritable_refused_without_half_migration),
		cmocka_unit_test(busy_reported_distinctly),
		cmocka_unit_test(read_scope_is_one_snapshot_and_read_only),
		cmocka_unit_test(checkpoint_restarts_a_long_wal),
		cmocka_unit_test(one_checkpointer_per_database),
		cmocka_unit_test(the_checkpointer_keeps_pace_with_the_wal),
		cmocka_unit_test(a_reader_holding_the_wal_does_not_speed_the_passes_up),
		cmocka_unit_test(concurrent_first_open),
		cmocka_unit_test(full_disk_is_reported),
		cmocka_unit_test(full_disk_mid_migration_rolls_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
