/*
 * bench/queue: the job queue micro-benchmark on a file database (issue 2).
 *   enqueue: N jobs from one process, one transaction each (as the API
 *            does), jobs/s;
 *   acquire+complete: P processes competing for the same N jobs (each
 *            acquire and each finish its own transaction), jobs/s.
 * A checkpointer (lib/ckpt.c, the thread etl-worker runs) works beside
 * both, as in a deployment, so the WAL's copying back and its fsyncs are
 * in the measurement, off the enqueuer's path as they are off the API's.
 * Prints "name value unit" lines for bench/run to collect.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt.h"
#include "db.h"
#include "jobq.h"
#include "log.h"
#include "sist.h"
#include "util.h"

/* CPU time (user + system) of the calling thread, in µs. */
static int64_t
thread_cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
	       ru.ru_stime.tv_usec;
}

int
main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "/tmp/etl-bench-queue.db";
	int n = argc > 2 ? atoi(argv[2]) : 20000, procs = argc > 3 ? atoi(argv[3]) : 4;
	char err[256], sid[16];
	const char *names[8];
	int created;

	log_init("bench-queue", LOG_LEVEL_WARN, NULL);
	db_remove(path);
	struct db *db = db_open(path, DB_OPEN_CREATE, 10000, err, sizeof(err));
	if (db == NULL)
		fatalx("%s", err);
	for (int i = 0; i < 8; i++) {
		snprintf(sid, sizeof(sid), "s%d", i);
		if (sist_put(db, sid, sid, NULL, 1, &created) != DB_OK)
			fatalx("sist_put");
		names[i] = xstrdup(sid);
	}
	struct ckpt *ckpt = ckpt_start(path, 10000, DB_CHECKPOINT_INTERVAL_MS, err, sizeof(err));
	if (ckpt == NULL)
		fatalx("%s", err);
	db_autocheckpoint(db, 0, ckpt_nudge, ckpt); /* as in etl-api and etl-worker */
	int64_t c0 = thread_cpu_us(), t0 = util_mono_ms(), id;
	int existed;
	uint64_t mask;
	char bad[65];
	for (int i = 0; i < n; i++) {
		const char *s[1] = { names[i % 8] };
		if (jobq_enqueue(db, s, 1, "{\"lines\":3}", "bench", NULL, &id, &existed, &mask,
		        bad) != DB_OK)
			fatalx("enqueue failed");
	}
	int64_t t1 = util_mono_ms(), c1 = thread_cpu_us();
	printf("queue_enqueue %.0f jobs/s\n", n * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1));
	/* The enqueuer's own CPU per job (user + system): what a busy machine
	 * changes least. */
	printf("queue_enqueue_cpu %.1f us/job\n", (double)(c1 - c0) / n);
	db_close(db);
	ckpt_stop(ckpt);

	/* Exclusivity off here: this measures the queue's own cost, not how
	 * often 8 sistemas happen to be free. */
	t0 = util_mono_ms();
	for (int p = 0; p < procs; p++) {
		if (fork() == 0) {
			struct db *d = db_open(path, 0, 10000, err, sizeof(err));
			struct job j;
			int r;
			if (d == NULL)
				_exit(1);
			db_autocheckpoint(d, 0, NULL, NULL); /* the parent's thread checkpoints */
			while ((r = jobq_acquire(d, getpid(), procs, 0, &j)) != 0) {
				if (r < 0)
					continue;
				if (jobq_finish(
				        d, j.id, JOB_COMPLETED, 1, 0, NULL, NULL, 0, NULL) != DB_OK)
					_exit(2);
				jobq_job_clear(&j);
			}
			db_close(d);
			_exit(0);
		}
	}
	/* The parent checkpoints meanwhile (forked children must not inherit a
	 * running thread: they get none, the parent starts it after forking). */
	struct ckpt *ck2 = ckpt_start(path, 10000, DB_CHECKPOINT_INTERVAL_MS, err, sizeof(err));
	if (ck2 == NULL)
		fatalx("%s", err);
	int st, bad_exit = 0;
	while (wait(&st) > 0)
		bad_exit |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	t1 = util_mono_ms();
	ckpt_stop(ck2);
	if (bad_exit)
		fatalx("a competing process failed");
	printf("queue_acquire_complete_%dp %.0f jobs/s\n", procs,
	    n * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1));
	db_remove(path);
	return 0;
}
