/*
 * migrate: the schema migrations. schema/NNN_*.sql are compiled in as
 * schema_sql[] (schema/embed.sh); step i brings user_version from i to i+1.
 * Each step runs in its own BEGIN IMMEDIATE transaction that first re-reads
 * user_version, so when two programs start at the same moment one applies
 * the step and the other finds it done. A step fails whole: nothing of it
 * stays.
 */
#include "migrate.h"

#include <stdio.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "lparse.h"
#include "util.h"

extern const char *const schema_sql[];
extern const size_t schema_count;

/* The C part of step 2: the legacy jobs.logs text becomes job_logs rows,
 * parsed as the worker parses live output. The text column is kept. */
static int
legacy_logs(sqlite3 *h, char *err, size_t errlen)
{
	sqlite3_stmt *sel = NULL, *ins = NULL;
	struct lparse_line pl = { 0 };
	int rc;

	rc = sqlite3_prepare_v2(h,
	    "SELECT id, logs, COALESCE(started_at, created_at) FROM jobs "
	    "WHERE logs IS NOT NULL AND logs <> ''",
	    -1, &sel, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(h,
		    "INSERT INTO job_logs (job_id, seq, ts, level, sistema, mensagem) "
		    "VALUES (?, ?, ?, ?, ?, ?)",
		    -1, &ins, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(sel, 0), seq = 0;
		const char *text = (const char *)sqlite3_column_text(sel, 1);
		size_t len = (size_t)sqlite3_column_bytes(sel, 1);
		const char *ts = (const char *)sqlite3_column_text(sel, 2);
		size_t pos = 0;

		while (pos < len) {
			size_t start = pos;
			while (pos < len && text[pos] != '\n')
				pos++;
			size_t n = pos - start;
			pos++;
			if (n && text[start + n - 1] == '\r')
				n--;
			if (n == 0)
				continue;
			lparse(text + start, n, 0, 8192, &pl);
			sqlite3_reset(ins);
			sqlite3_bind_int64(ins, 1, id);
			sqlite3_bind_int64(ins, 2, ++seq);
			sqlite3_bind_text(
			    ins, 3, ts ? ts : "1970-01-01T00:00:00.000Z", -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(ins, 4, pl.level, -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, 5, pl.sistema, -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, 6, pl.mensagem.data ? pl.mensagem.data : "",
			    (int)pl.mensagem.len, SQLITE_STATIC);
			if ((rc = sqlite3_step(ins)) != SQLITE_DONE)
				goto fail;
		}
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(sel);
	sqlite3_finalize(ins);
	lparse_free(&pl);
	return 0;
fail:
	snprintf(err, errlen, "legacy logs: %s", sqlite3_errmsg(h));
	sqlite3_finalize(sel);
	sqlite3_finalize(ins);
	lparse_free(&pl);
	return -1;
}

/* The first column of a one-row query (a count or a pragma), or -1. */
static int64_t
scalar(sqlite3 *h, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v = -1;

	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Step 3 rebuilds jobs with the columns it knows: refuse, rather than drop
 * them, when the table has others (added by hand, or a variant of the
 * original dashboard). 0 or -1 with err filled. */
static int
jobs_columns_known(sqlite3 *h, char *err, size_t errlen)
{
	int64_t extra =
	    scalar(h, "SELECT count(*) FROM pragma_table_info('jobs') WHERE name NOT IN "
	              "('id', 'tipo', 'params', 'status', 'created_at', 'started_at', "
	              "'finished_at', 'error_message', 'logs', 'worker_slot', "
	              "'locked_at', 'sistemas', 'exit_code', 'created_by', 'worker_id', "
	              "'cancel_requested', 'idempotency_key')");
	if (extra == 0)
		return 0;
	snprintf(err, errlen,
	    "migration to version 3: table jobs has %lld column(s) this program does not know; "
	    "the step rebuilds the table and would lose them (move them out first)",
	    (long long)extra);
	return -1;
}

/* C parts of the steps, run inside the step's transaction, before or after
 * its SQL. A hook returns 0, or -1 with err filled (the step is undone). */
enum hook_when { HOOK_BEFORE, HOOK_AFTER };
static const struct {
	int version; /* the step that brings user_version to this */
	enum hook_when when;
	int (*fn)(sqlite3 *, char *, size_t);
} hooks[] = {
	{ 2, HOOK_AFTER, legacy_logs },
	{ 3, HOOK_BEFORE, jobs_columns_known },
};

/* Runs the hooks of step version at when. 0 or -1. */
static int
run_hooks(sqlite3 *h, int version, enum hook_when when, char *err, size_t errlen)
{
	for (size_t i = 0; i < UTIL_ARRAY_LEN(hooks); i++)
		if (hooks[i].version == version && hooks[i].when == when &&
		    hooks[i].fn(h, err, errlen) == -1)
			return -1;
	return 0;
}

int
migrate_latest(void)
{
	return (int)schema_count;
}

int
migrate_version(sqlite3 *h)
{
	return (int)scalar(h, "PRAGMA user_version");
}

static const char *
why(sqlite3 *h, int rc)
{
	switch (db_map(rc)) {
	case DB_BUSY:
		return "locked by another process past the busy timeout";
	case DB_FULL:
		return "disk full";
	default:
		return sqlite3_errmsg(h);
	}
}

/* Rows of PRAGMA foreign_key_check: broken references, or -1. A database
 * may hold some before a step (a job deleted in the sqlite3 shell, which
 * does not enforce foreign keys, leaves its log lines); a step may not add
 * any. */
static int64_t
foreign_keys_broken(sqlite3 *h)
{
	return scalar(h, "SELECT count(*) FROM pragma_foreign_key_check");
}

static int apply_steps(sqlite3 *h, char *err, size_t errlen);

/*
 * Steps run with foreign keys off (SQLite's procedure for rebuilding a
 * table: with them on, dropping the old jobs would cascade into job_logs)
 * and legacy_alter_table on (so the rename does not fail on a view of
 * jobs someone made), and each step checks that it broke no foreign key
 * before it commits. Both pragmas are no-ops inside a transaction, so they
 * are set around the steps, and the steps do not run unless foreign keys
 * are really off.
 */
int
migrate_apply(sqlite3 *h, char *err, size_t errlen)
{
	int v = migrate_version(h), r, fk;

	if (v < 0 || v >= migrate_latest())
		return apply_steps(h, err, errlen); /* reports the error, or nothing to do */
	fk = (int)scalar(h, "PRAGMA foreign_keys");
	if (!sqlite3_get_autocommit(h) ||
	    sqlite3_exec(h, "PRAGMA foreign_keys=OFF", NULL, NULL, NULL) != SQLITE_OK ||
	    scalar(h, "PRAGMA foreign_keys") != 0) {
		snprintf(err, errlen, "cannot migrate: foreign keys cannot be turned off (%s)",
		    sqlite3_get_autocommit(h) ? sqlite3_errmsg(h) : "inside a transaction");
		return -1;
	}
	sqlite3_exec(h, "PRAGMA legacy_alter_table=ON", NULL, NULL, NULL);
	r = apply_steps(h, err, errlen);
	sqlite3_exec(h, "PRAGMA legacy_alter_table=OFF", NULL, NULL, NULL);
	if (fk == 1)
		sqlite3_exec(h, "PRAGMA foreign_keys=ON", NULL, NULL, NULL);
	return r;
}

static int
apply_steps(sqlite3 *h, char *err, size_t errlen)
{
	int latest = migrate_latest();

	for (;;) {
		int v = migrate_version(h), rc;
		char pragma[64];

		if (v < 0) {
			snprintf(
			    err, errlen, "cannot read the schema version: %s", sqlite3_errmsg(h));
			return -1;
		}
		if (v > latest) {
			snprintf(err, errlen,
			    "schema version %d is newer than this program knows (%d): "
			    "upgrade the program",
			    v, latest);
			return -1;
		}
		if (v == latest)
			return 0;
		if ((rc = sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK) {
			snprintf(err, errlen, "migration to version %d: %s", v + 1, why(h, rc));
			return -1;
		}
		/* Another program may have migrated while we waited for the lock. */
		if (migrate_version(h) != v) {
			sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
			continue;
		}
		int64_t broken = foreign_keys_broken(h);
		if (run_hooks(h, v + 1, HOOK_BEFORE, err, errlen) == -1)
			goto rollback;
		rc = sqlite3_exec(h, schema_sql[v], NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			snprintf(
			    err, errlen, "migration to version %d failed: %s", v + 1, why(h, rc));
			goto rollback;
		}
		if (run_hooks(h, v + 1, HOOK_AFTER, err, errlen) == -1)
			goto rollback;
		if (broken < 0 || foreign_keys_broken(h) != broken) {
			snprintf(err, errlen,
			    "migration to version %d failed: it breaks a foreign key", v + 1);
			goto rollback;
		}
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
		if ((rc = sqlite3_exec(h, pragma, NULL, NULL, NULL)) != SQLITE_OK ||
		    (rc = sqlite3_exec(h, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) {
			snprintf(
			    err, errlen, "migration to version %d failed: %s", v + 1, why(h, rc));
			goto rollback;
		}
		log_info("database migrated to schema version %d", v + 1);
	}
rollback:
	if (!sqlite3_get_autocommit(h))
		sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}
