/*
 * etl-worker: the daemon that runs ETL jobs in a pool of
 * ETL_MAX_CONCURRENT_JOBS slots (1: the original single mode). This file
 * is the table of contents: command line and configuration, open the
 * resources (database, publisher, wake-up socket, registry), run the loop
 * (loop.c), clean up. See worker.h for the modules.
 *
 *   etl-worker [-f] [-p PIDFILE] [--once]
 *
 * -f stays in the foreground (the default and only mode: run it under a
 * service manager). --once runs until the queue is empty and every slot is
 * idle, then exits; a lock file (flock) "<db>.once.lock" keeps two --once
 * runs from overlapping (the second exits 0 at once), for cron-only hosts.
 * ETL_PIPELINE_CMD is split on blanks (no shell, no quoting): use a script
 * for anything more.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "ckpt.h"
#include "conf.h"
#include "db.h"
#include "log.h"
#include "pub.h"
#include "wake.h"
#include "worker.h"

static void
usage(void)
{
	fprintf(stderr,
	    "usage: etl-worker [-f] [-p pidfile] [--once]\n"
	    "  configuration comes from the environment and ETL_ENV_FILE (see .env.example)\n");
	exit(2);
}

void
worker_publish(struct worker *w, char *msg)
{
	if (msg == NULL)
		return;
	(void)pub_publish(w->pub, msg); /* a drop is counted by pub */
	free(msg);
}

int
worker_busy_slots(const struct worker *w)
{
	int n = 0;

	for (int i = 0; i < w->nslots; i++)
		n += w->slots[i].state != SLOT_IDLE;
	return n;
}

/* fds 0, 1 and 2 open, so no pipe or socket of ours lands on them. */
static void
std_fds(void)
{
	int fd;

	for (fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
			int nfd = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);

			if (nfd == -1)
				exit(1);
			if (nfd != fd)
				exit(1);
		}
	}
}

/* Splits the command on blanks: argv words, no shell. */
static int
split_cmd(struct worker *w, const char *cmd)
{
	char *copy = xstrdup(cmd), *save = NULL, *tok;
	size_t cap = 4;

	w->cmd = xcalloc(cap, sizeof(char *));
	w->ncmd = 0;
	for (tok = strtok_r(copy, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
		if (w->ncmd + 1 >= cap) {
			cap *= 2;
			w->cmd = xrealloc(w->cmd, cap * sizeof(char *));
		}
		w->cmd[w->ncmd++] = xstrdup(tok);
	}
	w->cmd[w->ncmd] = NULL;
	free(copy);
	return w->ncmd > 0 ? 0 : -1;
}

static int
write_pidfile(const char *path)
{
	FILE *f = fopen(path, "we");

	if (f == NULL)
		return -1;
	fprintf(f, "%d\n", (int)getpid());
	return fclose(f) == EOF ? -1 : 0;
}

/* The --once guard: returns the locked fd, -1 on error, -2 when another run holds it. */
static int
once_lock(const char *db_path)
{
	char *path = xasprintf("%s.once.lock", db_path);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd == -1) {
		log_warn("open %s", path);
		free(path);
		return -1;
	}
	free(path);
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		int e = errno;

		close(fd);
		return e == EWOULDBLOCK ? -2 : -1;
	}
	return fd;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "once", no_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct worker w;
	const char *pidfile = NULL;
	char err[512];
	enum log_level lvl = LOG_LEVEL_INFO;
	int ch, lock_fd = -1, rc = 1, pid_written = 0;

	memset(&w, 0, sizeof(w));
	w.wake_fd = w.sig_fd = w.devnull_fd = -1;
	w.worker_id = -1;
	w.started_mono = util_mono_ms();
	while ((ch = getopt_long(argc, argv, "fp:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 'o':
			w.once = 1;
			break;
		case 'V':
			printf("etl-worker %s\n", ETL_VERSION);
			return 0;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	std_fds();

	/* Configuration. */
	if (conf_load(&w.conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "etl-worker: %s\n", err);
		return 2;
	}
	if (w.conf.log_level && log_parse_level(w.conf.log_level, &lvl) == -1)
		lvl = LOG_LEVEL_INFO;
	if (log_init("etl-worker", lvl, w.conf.log_file) == -1)
		log_warnx("logging to stderr");
	if (w.conf.pipeline_cmd == NULL || split_cmd(&w, w.conf.pipeline_cmd) == -1)
		fatalx("ETL_PIPELINE_CMD is not set: nothing to run");
	w.nslots = w.conf.max_concurrent_jobs;
	if ((int64_t)w.conf.lease_interval * 2 > w.conf.job_slot_timeout)
		log_warnx(
		    "ETL_LEASE_INTERVAL (%d s) is more than half ETL_JOB_SLOT_TIMEOUT (%d s): "
		    "live jobs may be swept as orphans",
		    w.conf.lease_interval, w.conf.job_slot_timeout);

	/* Process setup: signals through the loop, descendants reaped by us. */
	if ((w.sig_fd = loop_signals_init()) == -1)
		fatal("signals");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
		log_warn("PR_SET_CHILD_SUBREAPER (grandchildren will be reaped by init)");
	if (w.once) {
		lock_fd = once_lock(w.conf.db_path);
		if (lock_fd == -2) {
			log_info("--once: another run holds the lock; nothing to do");
			rc = 0;
			goto out;
		}
		if (lock_fd == -1)
			goto out;
	}
	if (pidfile != NULL) {
		if (write_pidfile(pidfile) == -1) {
			log_warn("pidfile %s", pidfile);
			goto out;
		}
		pid_written = 1;
	}

	/* Resources. */
	if ((w.db = db_open(w.conf.db_path, DB_OPEN_CREATE, w.conf.db_busy_timeout, err,
	         sizeof(err))) == NULL) {
		log_warnx("database %s: %s", w.conf.db_path, err);
		goto out;
	}
	/* Without it (no thread to be had) commits checkpoint themselves. */
	if ((w.ckpt = ckpt_start(w.conf.db_path, w.conf.db_busy_timeout, DB_CHECKPOINT_INTERVAL_MS,
	         err, sizeof(err))) == NULL)
		log_warnx("%s (commits will checkpoint the WAL themselves)", err);
	db_autocheckpoint(w.db, w.ckpt == NULL, ckpt_nudge, w.ckpt);
	{
		/* heals counts a hand edit put off (jobq.h); a failure here is
		 * not a reason to stop */
		int fixed = 0;
		if (jobq_recount(w.db, &fixed) != DB_OK)
			log_warnx("job counts not checked (database busy?)");
		else if (fixed > 0)
			log_warnx("job counts were off for %d status(es): counted again", fixed);
	}
	if ((w.pub = pub_open(&w.conf, err, sizeof(err))) == NULL) {
		log_warnx("redis: %s", err);
		goto out;
	}
	w.remote = remote_open(&w);
	if ((w.devnull_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("/dev/null");
		goto out;
	}
	w.ing = ingest_new((size_t)w.conf.max_line);
	w.slots = xcalloc((size_t)w.nslots, sizeof(*w.slots));
	for (int i = 0; i < w.nslots; i++) {
		w.slots[i].index = i;
		w.slots[i].pid = -1;
		w.slots[i].out.fd = w.slots[i].err.fd = -1;
		w.slots[i].term_mono = -1;
	}
	w.wake_dir = wake_dir_for(w.conf.wake_dir, w.conf.db_path);
	if ((w.wake_fd = wake_listen(w.wake_dir)) == -1)
		log_warn("wake socket in %s (polling every %.2f s only)", w.wake_dir,
		    w.conf.poll_interval);
	if (lease_start(&w) == -1)
		goto out;

	/* Run. */
	log_info("running %s with %d slot%s (pid %d)", w.conf.pipeline_cmd, w.nslots,
	    w.nslots == 1 ? "" : "s", (int)getpid());
	if (loop_run(&w) == 0)
		rc = 0;

out:
	/* Clean up. */
	if (w.db != NULL)
		lease_stop(&w);
	if (w.wake_fd != -1) {
		wake_unlink(w.wake_dir);
		close(w.wake_fd);
	}
	remote_close(w.remote);
	if (w.pub != NULL) {
		if (pub_flush(w.pub, 1000) == -1)
			log_warnx("redis: some events were not sent before exit");
		pub_close(w.pub);
	}
	if (w.slots != NULL) {
		for (int i = 0; i < w.nslots; i++) {
			ingest_job_end(&w.slots[i]);
			slot_clear(&w.slots[i]);
		}
		free(w.slots);
	}
	ingest_free(w.ing);
	ckpt_stop(w.ckpt);
	db_close(w.db);
	if (w.devnull_fd != -1)
		close(w.devnull_fd);
	if (w.sig_fd != -1)
		close(w.sig_fd);
	if (pid_written && unlink(pidfile) == -1)
		log_warn("unlink %s", pidfile);
	if (lock_fd != -1)
		close(lock_fd);
	for (size_t i = 0; i < w.ncmd; i++)
		free(w.cmd[i]);
	free(w.cmd);
	free(w.wake_dir);
	free(w.closed);
	log_info("exit %d", rc);
	conf_free(&w.conf);
	return rc;
}
