/*
 * bench/sqlite_floor: what SQLite itself costs here for a transaction
 * shaped like an enqueue, with none of our code: the floor that
 * bench/queue's enqueue rate is measured against (as bench/wsd is against
 * tcpfloor). Same file system, same pragmas as lib/db.c (WAL,
 * synchronous=NORMAL), prepared statements, one process, and no
 * checkpoint at all (their cost is a separate question).
 *   floor_1page:  BEGIN IMMEDIATE; INSERT a 300-byte row; COMMIT
 *                 (one page written: the table's last leaf);
 *   floor_2pages: the same with an index that grows at its end;
 *   floor_3pages: with two such indexes;
 *   floor_4pages: with two indexes and a counter row updated: four pages,
 *                 as an enqueue writes (jobs, idx_jobs_status_slot,
 *                 idx_jobs_created, job_counts).
 * Usage: sqlite_floor [PATH] [N]. Prints "name value unit" lines.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "db.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void
check(int rc, sqlite3 *h, const char *what)
{
	if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
		fprintf(stderr, "sqlite_floor: %s: %s\n", what, sqlite3_errmsg(h));
		exit(1);
	}
}

/* Runs n transactions writing pages (1-4) pages each; prints tx/s and CPU
 * µs per tx. */
static void
run(const char *path, int n, int pages, const char *name)
{
	static const char *const setup[] = {
		"PRAGMA journal_mode=WAL",
		"PRAGMA synchronous=NORMAL",
		"PRAGMA wal_autocheckpoint=0",
		"CREATE TABLE t (id INTEGER PRIMARY KEY, status TEXT, created TEXT, body TEXT)",
		"CREATE TABLE cnt (k INTEGER PRIMARY KEY, n INTEGER)",
		"INSERT INTO cnt VALUES (1, 0)",
	};
	sqlite3 *h;
	sqlite3_stmt *begin, *ins, *upd, *commit;
	char created[32], body[301];
	double t0, c0, t1, c1;

	db_remove(path);
	check(sqlite3_open(path, &h), h, "open");
	for (size_t i = 0; i < sizeof(setup) / sizeof(setup[0]); i++)
		check(sqlite3_exec(h, setup[i], NULL, NULL, NULL), h, setup[i]);
	if (pages >= 2)
		check(sqlite3_exec(h, "CREATE INDEX t_status ON t (status)", NULL, NULL, NULL), h,
		    "index");
	if (pages >= 3)
		check(
		    sqlite3_exec(h, "CREATE INDEX t_created ON t (created, id)", NULL, NULL, NULL),
		    h, "index");
	check(sqlite3_prepare_v2(h, "BEGIN IMMEDIATE", -1, &begin, NULL), h, "prepare");
	check(sqlite3_prepare_v2(h, "INSERT INTO t VALUES (NULL, 'pending', ?, ?)", -1, &ins, NULL),
	    h, "prepare");
	check(sqlite3_prepare_v2(h, "UPDATE cnt SET n = n + 1 WHERE k = 1", -1, &upd, NULL), h,
	    "prepare");
	check(sqlite3_prepare_v2(h, "COMMIT", -1, &commit, NULL), h, "prepare");
	memset(body, 'x', 300);
	body[300] = '\0';
	t0 = now_s();
	c0 = cpu_s();
	for (int i = 0; i < n; i++) {
		snprintf(created, sizeof(created), "2026-11-29T00:%012d", i);
		check(sqlite3_step(begin), h, "begin");
		sqlite3_reset(begin);
		sqlite3_bind_text(ins, 1, created, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, body, 300, SQLITE_STATIC);
		check(sqlite3_step(ins), h, "insert");
		sqlite3_reset(ins);
		if (pages >= 4) {
			check(sqlite3_step(upd), h, "update");
			sqlite3_reset(upd);
		}
		check(sqlite3_step(commit), h, "commit");
		sqlite3_reset(commit);
	}
	t1 = now_s();
	c1 = cpu_s();
	printf("%s %.0f tx/s\n", name, n / (t1 - t0));
	printf("%s_cpu %.1f us/tx\n", name, (c1 - c0) * 1e6 / n);
	sqlite3_finalize(begin);
	sqlite3_finalize(ins);
	sqlite3_finalize(upd);
	sqlite3_finalize(commit);
	sqlite3_close(h);
	db_remove(path);
}

int
main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "/tmp/etl-bench-floor.db";
	int n = argc > 2 ? atoi(argv[2]) : 20000;

	if (n <= 0) {
		fprintf(stderr, "usage: sqlite_floor [PATH] [N > 0]\n");
		return 2;
	}
	run(path, n, 1, "floor_1page");
	run(path, n, 2, "floor_2pages");
	run(path, n, 3, "floor_3pages");
	run(path, n, 4, "floor_4pages");
	return 0;
}
