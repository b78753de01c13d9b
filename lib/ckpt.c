/*
 * ckpt: the checkpointer thread (ckpt.h). It shares nothing with its
 * creator but the stop flag, under one mutex and condition variable that
 * also serve as its interruptible sleep, and with the committing threads
 * of its process the atomic turn and nudged flags (ckpt_nudge).
 *
 * One checkpointer per database, not one per process: SQLite lets one
 * checkpoint run at a time and a RESTART that finds another's passive pass
 * in progress gives up at once, so with two etl-api processes and a worker
 * each checkpointing, the WAL went up to 400 MB between restarts under
 * bench/api.sh; with one, it stays at its 4,000-page mark. The thread that
 * holds an flock on "<database>.ckpt.lock" checkpoints; the others try to take
 * it at each tick, so when its process ends (even by SIGKILL: the kernel
 * drops the lock) another takes over within a tick. If the lock file
 * cannot be opened, the thread checkpoints anyway: several checkpointers
 * are worse than one, but better than none.
 */
#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "util.h"

struct ckpt {
	struct db *db;
	char *lock_path;
	int lock_fd; /* -1 until opened */
	atomic_int held; /* this thread is the database's checkpointer */
	int lock_failed;
	mode_t lock_mode; /* the database file's */
	gid_t lock_gid;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	int interval_ms; /* between passes when the WAL is quiet */
	atomic_int turn; /* this thread checkpoints (take_turn's last answer) */
	atomic_int nudged; /* a pass is due: no need to nudge again */
};

/* Says once why the thread checkpoints without the lock, and lets it. */
static int
without_lock(struct ckpt *c, const char *what)
{
	if (!c->lock_failed)
		log_warn("checkpointer: %s %s (checkpointing without it)", what, c->lock_path);
	c->lock_failed = 1;
	return 1;
}

/* Whether this thread is (now) the database's checkpointer. */
static int
take_turn(struct ckpt *c)
{
	struct stat sb;

	if (atomic_load(&c->held))
		return 1;
	if (c->lock_fd == -1) {
		/* read-only is enough for flock: programs of the database's group
		 * can take it whoever made the file */
		c->lock_fd = open(c->lock_path, O_RDONLY | O_CREAT | O_CLOEXEC, c->lock_mode);
		if (c->lock_fd == -1)
			return without_lock(c, "open");
		/* made by us: the database's mode and group, whatever our umask
		 * (as SQLite does for -wal and -shm), or the programs of another
		 * user of the group could not open it and would all checkpoint */
		if (fstat(c->lock_fd, &sb) == 0 && sb.st_uid == geteuid()) {
			if ((sb.st_mode & 0777) != c->lock_mode)
				(void)fchmod(c->lock_fd, c->lock_mode);
			if (sb.st_gid != c->lock_gid)
				(void)fchown(c->lock_fd, (uid_t)-1, c->lock_gid);
		}
	}
	if (flock(c->lock_fd, LOCK_EX | LOCK_NB) == 0)
		atomic_store(&c->held, 1);
	else if (errno != EWOULDBLOCK)
		return without_lock(c, "flock"); /* no locks here (NFS, FUSE) */
	return atomic_load(&c->held);
}

/* Waits ms, or less when c stops, or (if on_nudge) when a commit nudges
 * it; called and returns with c->mu held. Returns 0 once c is stopping. */
static int
rest(struct ckpt *c, int ms, int on_nudge)
{
	struct timespec at;

	clock_gettime(CLOCK_MONOTONIC, &at);
	at.tv_nsec += (long)(ms % 1000) * 1000000L;
	at.tv_sec += ms / 1000 + at.tv_nsec / 1000000000L;
	at.tv_nsec %= 1000000000L;
	while (!c->stop && !(on_nudge && atomic_load(&c->nudged)))
		if (pthread_cond_timedwait(&c->cv, &c->mu, &at) == ETIMEDOUT)
			break;
	return !c->stop;
}

/* Passes, each after a pause of DB_CHECKPOINT_SOON_MS, and then, unless
 * the last pass found the WAL busy (DB_CHECKPOINT_BUSY_PAGES or more), of
 * the rest of the interval: cut short by a nudge (ckpt_nudge), except
 * after two passes in a row that could not finish (SQLITE_BUSY). One
 * such pass is mostly a RESTART that did not get the write lock from a
 * stream of writers (the next pass, soon, gets it); a second one has met
 * a reader keeping the WAL from starting over, and a RESTART holds the
 * write lock while it waits for readers: every 50 ms, writers would wait
 * most of the time while the reader stays. */
static void *
ckpt_main(void *arg)
{
	struct ckpt *c = arg;
	enum { QUIET, BUSY, STUCK_ONCE, STUCK } pace = QUIET;
	int frames, mine;
	enum db_rc rc;

	atomic_store(&c->turn, take_turn(c)); /* at once: nudges need it */
	pthread_mutex_lock(&c->mu);
	while (rest(c, DB_CHECKPOINT_SOON_MS, 0) &&
	       (pace == BUSY || pace == STUCK_ONCE ||
	           rest(c, c->interval_ms - DB_CHECKPOINT_SOON_MS, pace == QUIET))) {
		atomic_store(&c->nudged, 0); /* a nudge from now on is for the next */
		pthread_mutex_unlock(&c->mu);
		frames = 0;
		rc = DB_OK;
		atomic_store(&c->turn, mine = take_turn(c));
		if (mine)
			rc = db_checkpoint(c->db, &frames, NULL);
		/* one pass that could not finish may have met writers only */
		pace = rc == DB_BUSY && pace >= STUCK_ONCE  ? STUCK
		       : rc == DB_BUSY                      ? STUCK_ONCE
		       : frames >= DB_CHECKPOINT_BUSY_PAGES ? BUSY
		                                            : QUIET;
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

struct ckpt *
ckpt_start(const char *path, int busy_ms, int interval_ms, char *err, size_t errlen)
{
	struct ckpt *c = xcalloc(1, sizeof(*c));
	struct stat sb;
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	if ((c->db = db_open(path, DB_OPEN_NOMIGRATE, busy_ms, err, errlen)) == NULL) {
		free(c);
		return NULL;
	}
	c->lock_path = xasprintf("%s.ckpt.lock", path);
	c->lock_fd = -1;
	c->interval_ms = interval_ms > DB_CHECKPOINT_SOON_MS ? interval_ms : DB_CHECKPOINT_SOON_MS;
	c->lock_mode = 0660;
	c->lock_gid = getegid();
	if (stat(path, &sb) == 0) {
		c->lock_mode = sb.st_mode & 0666;
		c->lock_gid = sb.st_gid;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	/* Signals stay with the creator (etl-worker reads them from a signalfd). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&c->thread, NULL, ckpt_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "checkpointer thread: %s", strerror(rc));
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		db_close(c->db);
		free(c->lock_path);
		free(c);
		return NULL;
	}
	return c;
}

int
ckpt_holds(struct ckpt *c)
{
	return atomic_load(&c->held);
}

void
ckpt_nudge(void *arg)
{
	struct ckpt *c = arg;

	/* most commits past the mark find it already set: a load, no write */
	if (!atomic_load(&c->turn) || atomic_load(&c->nudged) || atomic_exchange(&c->nudged, 1))
		return;
	pthread_mutex_lock(&c->mu);
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

void
ckpt_stop(struct ckpt *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = 1;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	if (c->lock_fd != -1)
		close(c->lock_fd); /* hands the turn to another process's thread */
	db_close(c->db);
	free(c->lock_path);
	free(c);
}
