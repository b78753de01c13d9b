/*
 * db: opening, configuring and migrating the SQLite database, a small cache
 * of prepared statements keyed by their SQL text's address, transactions
 * that start as writers (BEGIN IMMEDIATE), and the mapping of SQLite errors
 * to the few kinds the programs act on.
 */
#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "migrate.h"
#include "util.h"

#define DB_STMT_CACHE 96

struct db {
	sqlite3 *h;
	int busy_ms; /* how long to wait for a lock */
	int64_t busy_since; /* mono ms: when the current wait began */
	int64_t busy_last; /* mono ms: when the handler's last sleep ended */
	int ckpt_wait; /* in db_checkpoint's RESTART (busy_wait says why) */
	int read_scope; /* in db_read_scope */
	void (*nudge)(void *); /* db_autocheckpoint's; may be NULL */
	void *nudge_arg;
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} cache[DB_STMT_CACHE];
	int ncache;
};

enum db_rc
db_map(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return DB_OK;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return DB_BUSY;
	case SQLITE_FULL:
		return DB_FULL;
	case SQLITE_CONSTRAINT:
		return DB_CONFLICT;
	default:
		return DB_ERROR;
	}
}

/*
 * SQLite's own busy timeout sleeps in steps that grow to 100 ms, so a
 * program that meets another's short write transaction often waits far
 * longer than the lock was held (a worker's acquire, an API request).
 * Writers here hold the lock for well under a millisecond: poll finely
 * (0.1 ms, then 1 ms) up to the same timeout. Runs inside sqlite3_step.
 *
 * SQLite numbers the calls (n) per operation, not per lock: a RESTART
 * checkpoint waits for the write lock, copies and fsyncs (tens of ms),
 * then waits for readers, all as one count. Timed from n == 0, that second
 * wait began already past DB_CHECKPOINT_WAIT_MS and gave up at once, so
 * under load the WAL grew to 250 MB between restarts. So inside
 * db_checkpoint's RESTART (db->ckpt_wait) a wait is also new when
 * BUSY_NEW_WAIT_MS passed since the handler's last sleep ended (SQLite was
 * working, not waiting); a RESTART has only a few waits. Nowhere else:
 * there a gap can also be the thread being descheduled, and restarting the
 * clock on it would let a wait outlast its timeout without bound (the
 * review reproduced a 300 ms timeout waiting 3.5 s); a request must get
 * DB_BUSY, and a 503, in time.
 */
#define BUSY_NEW_WAIT_MS 5

static int
busy_wait(void *arg, int n)
{
	struct db *db = arg;
	struct timespec ts = { 0, n < 20 ? 100000L : 1000000L };
	int64_t now = util_mono_ms();

	if (n == 0 || (db->ckpt_wait && now - db->busy_last > BUSY_NEW_WAIT_MS))
		db->busy_since = now;
	if (now - db->busy_since >= db->busy_ms)
		return 0; /* give up: SQLITE_BUSY, DB_BUSY to the caller */
	(void)nanosleep(&ts, NULL);
	db->busy_last = util_mono_ms();
	return 1;
}

static int
exec_simple(sqlite3 *h, const char *sql)
{
	return sqlite3_exec(h, sql, NULL, NULL, NULL);
}

/*
 * SQLite keeps memory statistics by default, under one process-wide mutex
 * taken by every sqlite3_malloc and sqlite3_free: etl-api's request threads
 * took turns on it. Nothing here reads the statistics. sqlite3_config only
 * works before SQLite initializes, which the first sqlite3_open does, so
 * db_open calls this once, first; if something opened a database without
 * db_open before, the call fails and the statistics stay (harmless).
 *
 * Nor does a connection take its page cache's first 20 pages in one
 * allocation (SQLite's default, SQLITE_DEFAULT_PCACHE_INITSZ): it takes
 * each page when it needs it. etl-api has six connections (four request
 * threads', the shared one, the checkpointer's) and the checkpointer's and
 * the readers' never fill 20 pages: massif under bench/api.sh counted
 * those bulk blocks as 277 KB of the 814 KB of heap.
 */
static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

static void
sqlite_configure(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	(void)sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
}

static const char sql_page_size[] = "PRAGMA page_size=2048";
_Static_assert(DB_PAGE_SIZE == 2048, "sql_page_size must say DB_PAGE_SIZE");

struct db *
db_open(const char *path, int flags, int busy_ms, char *err, size_t errlen)
{
	struct db *db = NULL;
	sqlite3 *h = NULL;
	struct stat sb;
	int rc, oflags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, empty = 0;
	sqlite3_stmt *st = NULL;

	(void)pthread_once(&sqlite_once, sqlite_configure);
	if (stat(path, &sb) == -1) {
		if (errno != ENOENT || !(flags & DB_OPEN_CREATE)) {
			snprintf(err, errlen, "database %s: %s", path, strerror(errno));
			return NULL;
		}
		/* The database holds password hashes: create it 0640, whatever
		 * the umask (SQLite gives its -wal and -shm files the same mode). */
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
		if (fd == -1 && errno != EEXIST) {
			snprintf(
			    err, errlen, "database %s: cannot create: %s", path, strerror(errno));
			return NULL;
		}
		if (fd != -1)
			close(fd);
		oflags |= SQLITE_OPEN_CREATE;
		empty = 1;
	} else if (sb.st_size == 0) {
		empty = 1;
	}
	rc = sqlite3_open_v2(path, &h, oflags, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "database %s: cannot open: %s", path,
		    h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(h, 1);
	db = xcalloc(1, sizeof(*db));
	db->h = h;
	db->busy_ms = busy_ms;
	if (sqlite3_busy_handler(h, busy_wait, db) != SQLITE_OK)
		sqlite3_busy_timeout(h, busy_ms);
	/* A quick read proves the file is a database before anything writes. */
	rc = sqlite3_prepare_v2(h, "SELECT count(*) FROM sqlite_master", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_ROW) {
		snprintf(err, errlen, "database %s: unreadable (%s)", path, sqlite3_errmsg(h));
		goto fail;
	}
	/* A new database gets DB_PAGE_SIZE pages (db.h says why). The pragma
	 * only holds until the first write, which is the switch to WAL just
	 * below (it writes page 1): it must come before that. */
	if (empty && exec_simple(h, sql_page_size) != SQLITE_OK) {
		snprintf(err, errlen, "database %s: %s", path, sqlite3_errmsg(h));
		goto fail;
	}
	/* WAL: readers never block the writer. The mode is kept in the file, so
	 * only the first program to open it switches; SQLite does not call the
	 * busy handler for that switch, so several programs opening a new file
	 * at once retry here, within the same busy timeout. */
	for (int64_t start = util_mono_ms();;) {
		rc = sqlite3_prepare_v2(h, "PRAGMA journal_mode=WAL", -1, &st, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		sqlite3_finalize(st);
		st = NULL;
		if (rc == SQLITE_ROW)
			break;
		if (db_map(rc) != DB_BUSY || util_mono_ms() - start > busy_ms) {
			snprintf(err, errlen, "database %s: cannot set WAL mode (%s)", path,
			    sqlite3_errmsg(h));
			goto fail;
		}
		usleep(5000);
	}
	if (exec_simple(h, "PRAGMA foreign_keys=ON") != SQLITE_OK ||
	    exec_simple(h, "PRAGMA synchronous=NORMAL") != SQLITE_OK ||
	    /* Checkpoints are a checkpointer thread's job (ckpt.h): a
	     * checkpoint is two fsyncs, which would otherwise land on whichever
	     * request's commit crosses the threshold. This one is the safety
	     * net for a connection of a process without that thread (CGI mode,
	     * tools); db_autocheckpoint hands the job to the thread where
	     * it runs, with a hook of ours in place of SQLite's.
	     * The WAL file is cut back to 64 MiB when it starts over. */
	    sqlite3_wal_autocheckpoint(h, DB_AUTOCHECKPOINT_PAGES) != SQLITE_OK ||
	    exec_simple(h, "PRAGMA journal_size_limit=67108864") != SQLITE_OK) {
		snprintf(err, errlen, "database %s: %s", path, sqlite3_errmsg(h));
		goto fail;
	}
	if (!(flags & DB_OPEN_NOMIGRATE)) {
		char merr[256];
		if (migrate_apply(h, merr, sizeof(merr)) == -1) {
			snprintf(err, errlen, "database %s: %s", path, merr);
			goto fail;
		}
	} else {
		int v = migrate_version(h);
		if (v > migrate_latest()) {
			snprintf(err, errlen,
			    "database %s: schema version %d is newer than this program knows (%d)",
			    path, v, migrate_latest());
			goto fail;
		}
	}
	/* after migrating: a migration that rebuilds a table needs more */
	if ((flags & DB_OPEN_SMALL_CACHE) && exec_simple(h, "PRAGMA cache_size=-64") != SQLITE_OK) {
		snprintf(err, errlen, "database %s: %s", path, sqlite3_errmsg(h));
		goto fail;
	}
	return db;
fail:
	sqlite3_finalize(st);
	sqlite3_close(h);
	free(db);
	return NULL;
}

void
db_close(struct db *db)
{
	if (db == NULL)
		return;
	for (int i = 0; i < db->ncache; i++)
		sqlite3_finalize(db->cache[i].st);
	if (sqlite3_close(db->h) != SQLITE_OK)
		log_warnx("db: close: %s", sqlite3_errmsg(db->h));
	free(db);
}

sqlite3 *
db_sqlite(struct db *db)
{
	return db->h;
}

sqlite3_stmt *
db_stmt(struct db *db, const char *sql)
{
	sqlite3_stmt *st;

	for (int i = 0; i < db->ncache; i++)
		if (db->cache[i].sql == sql) {
			st = db->cache[i].st;
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			goto found;
		}
	if (sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
		log_warnx("db: prepare: %s", sqlite3_errmsg(db->h));
		return NULL;
	}
	if (db->ncache < DB_STMT_CACHE) {
		db->cache[db->ncache].sql = sql;
		db->cache[db->ncache].st = st;
		db->ncache++;
	} else {
		/* Every statement is a literal: more than the cache means a bug. */
		fatalx("db: statement cache full");
	}
found:
	if (db->read_scope && !sqlite3_stmt_readonly(st)) {
		log_warnx("db: a write inside a read scope refused: %.60s", sql);
		return NULL;
	}
	return st;
}

/* Runs one of the transaction statements through the statement cache:
 * sqlite3_exec would parse it again on every call (a few µs each, three
 * times per write). Returns enum db_rc. */
static enum db_rc
exec_cached(struct db *db, const char *sql)
{
	sqlite3_stmt *st = db_stmt(db, sql);

	return st ? db_exec_stmt(db, st) : DB_ERROR;
}

static const char sql_begin_write[] = "BEGIN IMMEDIATE";
static const char sql_begin_read[] = "BEGIN";
static const char sql_commit[] = "COMMIT";
static const char sql_rollback[] = "ROLLBACK";
static const char sql_savepoint[] = "SAVEPOINT part";
static const char sql_release[] = "RELEASE part";
static const char sql_rollback_to[] = "ROLLBACK TO part";

/*
 * Under a steady stream of writes a passive checkpoint never catches up:
 * frames arrive while it copies, so the WAL is never wholly copied, no
 * writer can start it over, and it grows until a writer's own
 * autocheckpoint (two fsyncs inside a request) does the job. So once the
 * WAL is long, a RESTART checkpoint follows the passive ones: it holds the
 * write lock only to copy the few frames written meanwhile (two short
 * fsyncs), and then the next writer starts the WAL over from its
 * beginning. Not TRUNCATE: cutting a WAL of 16 MB to nothing took 24-67 ms
 * in ftruncate (strace -T, under bench/api.sh), all of it with every writer
 * waiting, and the file then had to grow again block by block; restarted,
 * the file keeps its blocks and is written over (journal_size_limit still
 * cuts it back to 64 MiB). It waits at most DB_CHECKPOINT_WAIT_MS for the
 * lock and for readers (DB_BUSY then: the next call tries again).
 */
enum db_rc
db_checkpoint(struct db *db, int *wal_frames, int *copied)
{
	int log = 0, done = 0, saved = db->busy_ms;
	int rc = sqlite3_wal_checkpoint_v2(db->h, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);

	if (rc == SQLITE_OK && log >= DB_CHECKPOINT_RESTART_PAGES) {
		/* A second passive pass copies what came during the first, so the
		 * locked pass has only milliseconds of frames (and of fsync) left. */
		rc = sqlite3_wal_checkpoint_v2(db->h, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
		db->busy_ms = DB_CHECKPOINT_WAIT_MS;
		db->ckpt_wait = 1;
		if (rc == SQLITE_OK)
			rc = sqlite3_wal_checkpoint_v2(
			    db->h, NULL, SQLITE_CHECKPOINT_RESTART, &log, &done);
		db->ckpt_wait = 0;
		db->busy_ms = saved;
	}
	if (rc != SQLITE_OK && db_map(rc) != DB_BUSY)
		log_warnx("db: checkpoint: %s", sqlite3_errmsg(db->h));
	if (wal_frames)
		*wal_frames = log;
	if (copied)
		*copied = done;
	return db_map(rc);
}

void
db_remove(const char *path)
{
	static const char *const suffix[] = { "", "-wal", "-shm", ".ckpt.lock" };
	char p[4096];

	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++)
		if (snprintf(p, sizeof(p), "%s%s", path, suffix[i]) < (int)sizeof(p))
			(void)unlink(p);
}

/* The WAL hook of a connection whose checkpoints are a thread's job; in
 * place of SQLite's own (sqlite3_wal_autocheckpoint), whose passive
 * checkpoint it keeps as the fallback. */
static int
wal_hook(void *arg, sqlite3 *h, const char *name, int frames)
{
	struct db *db = arg;

	if (frames >= DB_AUTOCHECKPOINT_FALLBACK_PAGES)
		(void)sqlite3_wal_checkpoint_v2(h, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	else if (frames >= DB_CHECKPOINT_RESTART_PAGES && db->nudge != NULL)
		db->nudge(db->nudge_arg);
	return SQLITE_OK;
}

void
db_autocheckpoint(struct db *db, int on, void (*nudge)(void *arg), void *arg)
{
	db->nudge = nudge;
	db->nudge_arg = arg;
	if (on)
		(void)sqlite3_wal_autocheckpoint(db->h, DB_AUTOCHECKPOINT_PAGES);
	else
		(void)sqlite3_wal_hook(db->h, wal_hook, db);
}

enum db_rc
db_begin(struct db *db)
{
	enum db_rc rc = exec_cached(db, sql_begin_write);
	if (rc != DB_OK && rc != DB_BUSY)
		log_warnx("db: begin: %s", sqlite3_errmsg(db->h));
	return rc;
}

enum db_rc
db_begin_read(struct db *db)
{
	if (db->read_scope)
		return DB_OK; /* the scope's snapshot */
	return exec_cached(db, sql_begin_read);
}

/* The scope's BEGIN takes no snapshot yet (SQLite's read transactions are
 * deferred): its first SELECT does. A statement that would write is refused
 * in it (db_stmt), so that a write by mistake is an error, never a change
 * that the scope's end rolls back after the client was told it was made.
 * (PRAGMA query_only would do the same, but setting it expires every
 * prepared statement: the list ran at 0.75 of its speed with it.) */
enum db_rc
db_read_scope(struct db *db)
{
	enum db_rc rc;

	if (db->read_scope)
		return DB_OK;
	if ((rc = exec_cached(db, sql_begin_read)) != DB_OK)
		return rc;
	db->read_scope = 1;
	return DB_OK;
}

void
db_read_scope_end(struct db *db)
{
	if (db == NULL || !db->read_scope)
		return;
	db->read_scope = 0;
	db_rollback(db);
}

enum db_rc
db_part_begin(struct db *db)
{
	return exec_cached(db, sql_savepoint);
}

enum db_rc
db_part_end(struct db *db, int keep)
{
	enum db_rc rc = DB_OK;

	if (!keep)
		rc = exec_cached(db, sql_rollback_to);
	if (rc == DB_OK)
		rc = exec_cached(db, sql_release);
	return rc;
}

int
db_in_transaction(struct db *db)
{
	return !sqlite3_get_autocommit(db->h);
}

enum db_rc
db_commit(struct db *db)
{
	static int64_t last_warn; /* mono ms: a full disk fails every commit */
	static int suppressed;
	enum db_rc rc = exec_cached(db, sql_commit);
	if (rc != DB_OK) {
		int64_t now = util_mono_ms();
		if (now - last_warn >= 10000) {
			log_warnx("db: commit: %s (%d more like it not logged)",
			    sqlite3_errmsg(db->h), suppressed);
			last_warn = now;
			suppressed = 0;
		} else {
			suppressed++;
		}
		db_rollback(db);
	}
	return rc;
}

void
db_rollback(struct db *db)
{
	if (db->read_scope)
		return; /* db_read_scope_end ends it */
	if (!sqlite3_get_autocommit(db->h))
		exec_cached(db, sql_rollback);
}

enum db_rc
db_exec_stmt(struct db *db, sqlite3_stmt *st)
{
	int rc;

	(void)db;
	do
		rc = sqlite3_step(st);
	while (rc == SQLITE_ROW);
	sqlite3_reset(st);
	return db_map(rc);
}

char *
db_col_strdup(sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	if (s == NULL)
		return NULL;
	return xstrndup((const char *)s, (size_t)sqlite3_column_bytes(st, col));
}

int
db_bind_text(sqlite3_stmt *st, int idx, const char *s)
{
	if (s == NULL)
		return sqlite3_bind_null(st, idx);
	return sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT);
}

const char *
db_errmsg(struct db *db)
{
	return sqlite3_errmsg(db->h);
}
