/*
 * db: the SQLite layer every program uses. Opens the database in WAL mode
 * with a busy timeout, applies the schema migrations (migrate.h), caches
 * prepared statements, and maps SQLite's errors to the few kinds callers
 * branch on. Writes go through db_begin() (BEGIN IMMEDIATE), so a writer
 * never has to upgrade a read snapshot (PLATFORM.md: SQLITE_BUSY_SNAPSHOT).
 */
#ifndef ETL_DB_H
#define ETL_DB_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* Result kinds. The API maps DB_BUSY to 503, DB_CONFLICT to 409, DB_NOTFOUND to 404. */
enum db_rc {
	DB_OK = 0,
	DB_ERROR = -1, /* anything else: logged where it happened */
	DB_BUSY = -2, /* locked past the busy timeout */
	DB_FULL = -3, /* disk or quota full */
	DB_CONFLICT = -4, /* a constraint or an illegal state transition */
	DB_NOTFOUND = -5,
	DB_INVALID = -6, /* the request names something that does not exist or is inactive */
};

struct db;

/* Flags for db_open. */
#define DB_OPEN_CREATE 0x1 /* create the file (and migrate) if it does not exist */
#define DB_OPEN_NOMIGRATE 0x2 /* do not migrate (tools that only inspect) */
/* 64 KiB of page cache (after migrating), not SQLite's 2 MiB: for etl-api,
 * whose every request thread has a connection. In WAL mode a commit on
 * another connection empties a connection's cache anyway; a read
 * connection used 32-35 KiB of it under bench/api.sh, and the shared
 * connection's writes kept any size full of old index pages. From 512 KiB
 * to 64, RSS fell 0.5 MB with CPU per request the same (README, "Request
 * threads"). Not for etl-worker: a batch of log lines dirties more pages
 * than that, and spilling them mid-transaction cost bench/worker.sh lines
 * 8% (at 512 KiB already). */
#define DB_OPEN_SMALL_CACHE 0x4

/*
 * Opens path, sets WAL, foreign keys, the busy timeout (ms) and migrates to
 * the newest schema. Returns the handle, or NULL with a clear reason in err
 * (unreadable, corrupt, newer schema than this program knows, disk full).
 */
struct db *db_open(const char *path, int flags, int busy_ms, char *err, size_t errlen);
/* Finalises cached statements and closes. db_close(NULL) is a no-op. */
void db_close(struct db *db);
sqlite3 *db_sqlite(struct db *db);

/*
 * Returns the cached prepared statement for sql (keyed by the pointer: pass
 * string literals), reset and with bindings cleared; NULL on error (logged).
 * The statement stays owned by db.
 */
sqlite3_stmt *db_stmt(struct db *db, const char *sql);

/* Maps a sqlite3 result code to enum db_rc (SQLITE_OK/ROW/DONE -> DB_OK). */
enum db_rc db_map(int sqlite_rc);

/*
 * The page size of a database db_open creates; one that exists keeps its
 * own (the legacy database has 4 KiB pages; see the README to convert it).
 * With synchronous=NORMAL a commit appends every page it changed to the WAL,
 * and the checkpoints fsync all of it: an enqueue changes about six pages
 * (the jobs row, its index entries, job_sistemas, job_counts) whatever
 * their size, and under a steady stream of enqueues it is that write-back
 * the writers wait for. bench/api.sh, POST /api/execute, 3 rounds of 8 s:
 * p99 16.3-21.8 ms at 4 KiB, 13.8-14.8 at 2 KiB, 11.3-12.5 at 1 KiB.
 * Smaller pages cost the log ingest, though: job_logs rows (about 120
 * bytes) fill a page sooner, and its B-tree splits more often.
 * bench/worker.sh lines: 275-316k lines/s at 4 KiB, 234k at 2 KiB,
 * 190-216k at 1 KiB (its target is 200k). 2 KiB is the balance.
 */
#define DB_PAGE_SIZE 2048

/* The WAL is copied back into the database by db_checkpoint, which one
 * checkpointer thread per database (ckpt.h: etl-worker's or an etl-api
 * process's) calls every DB_CHECKPOINT_INTERVAL_MS, or sooner while the
 * WAL grows fast (ckpt.c); a connection of a
 * process without that thread checkpoints at commit once the WAL holds
 * DB_AUTOCHECKPOINT_PAGES (32 MiB of 2 KiB pages, 64 MiB of a legacy
 * database's 4 KiB), and a WAL file longer than 64 MiB is cut back to that
 * when it starts over (db_open's pragmas). */
#define DB_AUTOCHECKPOINT_PAGES 16000
#define DB_AUTOCHECKPOINT_FALLBACK_PAGES 64000 /* 128 MiB of 2 KiB pages, 256 of 4 KiB */
/* 250 ms, not 1 s: the locked RESTART pass then has less to copy and the
 * passive passes less to flush; p99 of bench/api.sh execute 16-19 ms
 * against 22-23 ms, the same throughput (4 pairs). */
#define DB_CHECKPOINT_INTERVAL_MS 250
#define DB_CHECKPOINT_RESTART_PAGES 4000
/* A pass that finds this many pages in the WAL (written since it last
 * started over) comes back after DB_CHECKPOINT_SOON_MS, not the whole
 * interval; and a commit that leaves DB_CHECKPOINT_RESTART_PAGES nudges
 * the thread (ckpt_nudge). Both bound
 * the WAL, and with it the WAL index every process maps: 32 KiB per
 * 4,096 frames the WAL ever held, all of it resident. At 24k enqueues/s
 * the WAL reached 20,000-40,000 frames in 250 ms (README). */
#define DB_CHECKPOINT_BUSY_PAGES 1000
#define DB_CHECKPOINT_SOON_MS 50
#define DB_CHECKPOINT_WAIT_MS 50

/* A passive checkpoint: copies what it can without waiting for readers or
 * writers; then, when the WAL holds DB_CHECKPOINT_RESTART_PAGES or more,
 * has it start over (db.c says why). *wal_frames and *copied (either may be NULL)
 * get the WAL's length and how much of it is now in the database. Returns
 * enum db_rc. */
enum db_rc db_checkpoint(struct db *db, int *wal_frames, int *copied);
/* Removes the database file at path and every file kept beside it (the
 * WAL, its index and the checkpointer's lock): a fresh start for tests and
 * benchmarks, never for a database in use. */
void db_remove(const char *path);
/* Whose job the checkpoints of db's commits are. on: their own, once the
 * WAL holds DB_AUTOCHECKPOINT_PAGES, as db_open leaves it. Off: a
 * checkpointer thread's (ckpt.h), this process's or another's; then a
 * commit that leaves the WAL at DB_CHECKPOINT_RESTART_PAGES or more calls
 * nudge(arg) (ckpt_nudge; nudge may be NULL), and db's commits checkpoint
 * only past DB_AUTOCHECKPOINT_FALLBACK_PAGES. Past 16,000 pages every
 * commit would try, in the request, and get in the way of the thread:
 * under bench/api.sh its passes failed (SQLITE_BUSY) for seconds while the
 * WAL grew to 250 MB. The fallback is for a checkpointer that holds the
 * turn but makes no progress (its process stopped with SIGSTOP, frozen, or
 * on an old inode of a replaced database): then the commits take over at
 * 64,000 pages. */
void db_autocheckpoint(struct db *db, int on, void (*nudge)(void *arg), void *arg);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. begin and commit return enum db_rc;
 * rollback is safe to call when no transaction is open. db_begin_read opens
 * a read transaction (BEGIN): several reads see one snapshot; end it with
 * db_rollback. */
enum db_rc db_begin(struct db *db);
enum db_rc db_begin_read(struct db *db);
enum db_rc db_commit(struct db *db);
void db_rollback(struct db *db);

/* A part of a write transaction that can be undone alone (a savepoint):
 * db_part_end keeps it (keep) or undoes it, then ends it. Some errors
 * (SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY) end the whole transaction on
 * their own: db_in_transaction tells. */
enum db_rc db_part_begin(struct db *db);
enum db_rc db_part_end(struct db *db, int keep);
int db_in_transaction(struct db *db);

/* A read scope: one read transaction for several steps that each open and
 * end their own (etl-api: the token's user, then the handler's query), so
 * the request reads one snapshot and pays for one transaction. Inside it
 * db_begin_read joins it, db_rollback leaves it open, and any write fails
 * (db_begin, and db_stmt refuses a statement that would write). End it
 * with db_read_scope_end (safe when none is open, or db is NULL). */
enum db_rc db_read_scope(struct db *db);
void db_read_scope_end(struct db *db);

/* Runs a statement that returns no rows to completion; returns enum db_rc and resets it. */
enum db_rc db_exec_stmt(struct db *db, sqlite3_stmt *st);

/* Column helpers: a malloc'd copy of a text column, or NULL when SQL NULL. */
char *db_col_strdup(sqlite3_stmt *st, int col);
/* Binds text, or NULL when s is NULL. Returns the sqlite3 rc. */
int db_bind_text(sqlite3_stmt *st, int idx, const char *s);

/* A short description of the last error on db (for logs, never for clients). */
const char *db_errmsg(struct db *db);

#endif
