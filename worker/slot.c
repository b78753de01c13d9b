/*
 * slot: the life of one pipeline process group. Spawns ETL_PIPELINE_CMD
 * without a shell (the command is split on blanks into argv, then the
 * job's sistemas are appended), in its own session and process group, with
 * stdin on /dev/null, stdout and stderr on two pipes, no other fd, a clean
 * environment (ETL_JOB_ID, ETL_SLOT_ID, ETL_SISTEMAS, ETL_JOB_PARAMS, and
 * PATH, HOME, LANG copied from the worker) and ETL_PIPELINE_CWD as working
 * directory. Reads the pipes for ingest, escalates SIGTERM -> SIGKILL on
 * timeout, cancel or shutdown, reaps children (the worker is a child
 * subreaper, so descendants orphaned inside the group come back to it) and,
 * once the leader has exited, keeps sending SIGKILL to the group until
 * kill() says it is empty: no descendant outlives its job.
 * Runs in the loop of etl-worker only.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "worker.h"

#define SLOT_READ_CHUNK 65536
#define SLOT_READS_PER_TURN 16 /* chunks per stream per loop turn: bounds one turn */
#define SLOT_PIPE_SIZE (1 << 20) /* bigger pipes: bigger batches when flooding */
#define SLOT_REKILL_MS 10 /* retry period while a dead leader's group empties */

static void
stream_init(struct stream *st, int fd, int is_stderr)
{
	buf_reset(&st->line);
	st->fd = fd;
	st->is_stderr = is_stderr;
	st->overflow = 0;
	st->after_cr = 0;
}

static void
stream_close(struct stream *st)
{
	if (st->fd != -1 && close(st->fd) == -1)
		log_warn("close pipe");
	st->fd = -1;
}

/* The child's environment: ETL_* of the job plus a few of the worker's. */
static char **
build_env(const struct slot *s)
{
	static const char *const keep[] = { "PATH", "HOME", "LANG" };
	char **envp = xcalloc(4 + UTIL_ARRAY_LEN(keep) + 1, sizeof(char *));
	struct buf sis = { 0 };
	size_t n = 0;

	for (size_t i = 0; i < s->job.nsistemas; i++) {
		if (i)
			buf_putc(&sis, ',');
		buf_puts(&sis, s->job.sistemas[i]);
	}
	envp[n++] = xasprintf("ETL_JOB_ID=%lld", (long long)s->job.id);
	envp[n++] = xasprintf("ETL_SLOT_ID=%d", s->job.worker_slot);
	envp[n++] = xasprintf("ETL_SISTEMAS=%s", sis.data ? sis.data : "");
	envp[n++] = xasprintf("ETL_JOB_PARAMS=%s", s->job.params ? s->job.params : "{}");
	for (size_t i = 0; i < UTIL_ARRAY_LEN(keep); i++) {
		const char *v = getenv(keep[i]);

		if (v != NULL)
			envp[n++] = xasprintf("%s=%s", keep[i], v);
	}
	envp[n] = NULL;
	buf_free(&sis);
	return envp;
}

static void
free_vec(char **v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

/*
 * The spawn attributes: own session (setsid, so its own process group),
 * no blocked signals, default SIGPIPE (the worker ignores it), stdin from
 * /dev/null, stdout/stderr on the pipes, every other fd closed, and the
 * working directory. posix_spawn uses vfork semantics: no page tables to
 * copy, which is most of the cost of a trivial job.
 */
static int
spawn_setup(const struct worker *w, posix_spawnattr_t *at, posix_spawn_file_actions_t *fa, int outw,
    int errw)
{
	sigset_t none, def;

	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	if (posix_spawnattr_setflags(
	        at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) != 0 ||
	    posix_spawnattr_setsigmask(at, &none) != 0 ||
	    posix_spawnattr_setsigdefault(at, &def) != 0)
		return -1;
	if (posix_spawn_file_actions_adddup2(fa, w->devnull_fd, 0) != 0 ||
	    posix_spawn_file_actions_adddup2(fa, outw, 1) != 0 ||
	    posix_spawn_file_actions_adddup2(fa, errw, 2) != 0 ||
	    posix_spawn_file_actions_addclosefrom_np(fa, 3) != 0)
		return -1;
	if (w->conf.pipeline_cwd != NULL &&
	    posix_spawn_file_actions_addchdir_np(fa, w->conf.pipeline_cwd) != 0)
		return -1;
	return 0;
}

int
slot_spawn(struct worker *w, struct slot *s, char *errbuf, size_t errlen)
{
	int outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
	char **argv = NULL, **envp = NULL;
	size_t n = 0;
	posix_spawnattr_t at;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int rc = -1, err, inited = 0; /* 1: at, 2: at and fa */

	if (pipe2(outp, O_CLOEXEC) == -1 || pipe2(errp, O_CLOEXEC) == -1) {
		snprintf(errbuf, errlen, "pipe: %s", strerror(errno));
		goto out;
	}
	if (fcntl(outp[0], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(errp[0], F_SETFL, O_NONBLOCK) == -1) {
		snprintf(errbuf, errlen, "fcntl: %s", strerror(errno));
		goto out;
	}
	if (fcntl(outp[0], F_SETPIPE_SZ, SLOT_PIPE_SIZE) == -1)
		log_debug(
		    "job=%lld: pipe size stays default: %s", (long long)s->job.id, strerror(errno));
	argv = xcalloc(w->ncmd + s->job.nsistemas + 1, sizeof(char *));
	for (size_t i = 0; i < w->ncmd; i++)
		argv[n++] = xstrdup(w->cmd[i]);
	for (size_t i = 0; i < s->job.nsistemas; i++)
		argv[n++] = xstrdup(s->job.sistemas[i]);
	argv[n] = NULL;
	envp = build_env(s);

	if (posix_spawnattr_init(&at) != 0) {
		snprintf(errbuf, errlen, "posix_spawn: out of memory");
		goto out;
	}
	inited = 1;
	if (posix_spawn_file_actions_init(&fa) != 0) {
		snprintf(errbuf, errlen, "posix_spawn: out of memory");
		goto out;
	}
	inited = 2;
	if (spawn_setup(w, &at, &fa, outp[1], errp[1]) == -1) {
		snprintf(errbuf, errlen, "posix_spawn attributes: out of memory");
		goto out;
	}
	/* Errors of setsid, dup2, chdir and exec come back here (vfork). */
	if ((err = posix_spawnp(&pid, argv[0], &fa, &at, argv, envp)) != 0) {
		snprintf(errbuf, errlen, "%s: %s", argv[0], strerror(err));
		goto out;
	}

	s->pid = pid;
	s->started_mono = util_mono_ms();
	s->deadline_mono = s->started_mono + (int64_t)w->conf.job_timeout * 1000;
	s->stop = STOP_NONE;
	s->term_mono = -1;
	s->kill_sent = 0;
	s->group_empty = 0;
	s->wstatus = 0;
	stream_init(&s->out, outp[0], 0);
	stream_init(&s->err, errp[0], 1);
	outp[0] = errp[0] = -1;
	s->state = SLOT_RUNNING;
	log_info(
	    "job=%lld slot=%d pid=%d started", (long long)s->job.id, s->job.worker_slot, (int)pid);
	rc = 0;
out:
	if (inited >= 1)
		posix_spawnattr_destroy(&at);
	if (inited >= 2)
		posix_spawn_file_actions_destroy(&fa);
	for (int i = 0; i < 2; i++) {
		if (outp[i] != -1)
			close(outp[i]);
		if (errp[i] != -1)
			close(errp[i]);
	}
	free_vec(argv);
	free_vec(envp);
	return rc;
}

void
slot_signal(struct slot *s, int sig)
{
	if (s->pid <= 0 || s->group_empty)
		return;
	if (kill(-s->pid, sig) == -1 && errno != ESRCH)
		log_warn("job=%lld kill(-%d, %d)", (long long)s->job.id, (int)s->pid, sig);
}

void
slot_stop(struct worker *w, struct slot *s, enum slot_stop why)
{
	static const char *const names[] = { "", "timeout", "cancel", "shutdown" };

	/* Once the leader has exited the job's outcome is known: a late
	 * cancel or shutdown does not rewrite it (the rest of the group is
	 * being killed anyway). */
	if (s->state != SLOT_RUNNING || s->stop != STOP_NONE)
		return;
	s->stop = why;
	log_info("job=%lld slot=%d stopping (%s): SIGTERM to group %d", (long long)s->job.id,
	    s->job.worker_slot, names[why], (int)s->pid);
	s->term_mono = util_mono_ms();
	if (w->conf.kill_grace <= 0) {
		slot_signal(s, SIGKILL);
		s->kill_sent = 1;
	} else {
		slot_signal(s, SIGTERM);
	}
}

void
slot_reap_children(struct worker *w)
{
	int st;
	pid_t pid;

	for (;;) {
		pid = waitpid(-1, &st, WNOHANG);
		if (pid == 0)
			return;
		if (pid == -1) {
			if (errno == EINTR)
				continue;
			if (errno != ECHILD)
				log_warn("waitpid");
			return;
		}
		for (int i = 0; i < w->nslots; i++) {
			struct slot *s = &w->slots[i];

			if (s->state != SLOT_RUNNING || s->pid != pid)
				continue;
			s->wstatus = st;
			s->state = SLOT_REAPING;
			if (WIFEXITED(st))
				log_info("job=%lld slot=%d pid=%d exited %d", (long long)s->job.id,
				    s->job.worker_slot, (int)pid, WEXITSTATUS(st));
			else
				log_info("job=%lld slot=%d pid=%d killed by signal %d",
				    (long long)s->job.id, s->job.worker_slot, (int)pid,
				    WTERMSIG(st));
			/* Whatever else is in the group is left over: kill it now. */
			slot_signal(s, SIGKILL);
			break;
		}
	}
}

int
slot_read(struct worker *w, struct slot *s, struct stream *st)
{
	static char chunk[SLOT_READ_CHUNK];
	ssize_t n;

	for (int k = 0; k < SLOT_READS_PER_TURN && st->fd != -1; k++) {
		if (ingest_full(w->ing))
			return 1;
		n = read(st->fd, chunk, sizeof(chunk));
		if (n > 0) {
			ingest_bytes(w, s, st, chunk, (size_t)n, util_now_ms());
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* With the group gone, only a process that left the group can
			 * still hold the pipe: stop waiting for it. */
			if (!s->group_empty)
				return 0;
		} else if (n == -1) {
			log_warn("job=%lld read pipe", (long long)s->job.id);
		}
		ingest_eof(w, s, st);
		stream_close(st);
		return 0;
	}
	return st->fd != -1;
}

int64_t
slot_tick(struct worker *w, struct slot *s, int64_t now)
{
	int64_t next = -1, t;

	switch (s->state) {
	case SLOT_RUNNING:
		if (s->stop == STOP_NONE) {
			if (now >= s->deadline_mono) {
				log_warnx("job=%lld slot=%d timed out after %d s",
				    (long long)s->job.id, s->job.worker_slot, w->conf.job_timeout);
				slot_stop(w, s, STOP_TIMEOUT);
			} else {
				next = s->deadline_mono - now;
			}
		}
		if (s->term_mono >= 0 && !s->kill_sent) {
			t = s->term_mono + (int64_t)w->conf.kill_grace * 1000;
			if (now >= t) {
				log_info("job=%lld slot=%d grace over: SIGKILL to group %d",
				    (long long)s->job.id, s->job.worker_slot, (int)s->pid);
				slot_signal(s, SIGKILL);
				s->kill_sent = 1;
			} else if (next < 0 || t - now < next) {
				next = t - now;
			}
		}
		return next;
	case SLOT_REAPING:
		if (!s->group_empty) {
			slot_reap_children(w);
			if (kill(-s->pid, SIGKILL) == 0)
				return SLOT_REKILL_MS;
			if (errno != ESRCH)
				log_warn("job=%lld kill(-%d) (giving up on the rest of the group)",
				    (long long)s->job.id, (int)s->pid);
			s->group_empty = 1;
		}
		if (s->out.fd == -1 && s->err.fd == -1) {
			s->state = SLOT_FINISHING;
			return 0;
		}
		return ingest_full(w->ing) ? -1 : 0; /* the loop drains the pipes */
	case SLOT_FINISHING: /* the loop finishes it this turn, or at retry_at */
	case SLOT_IDLE:
		break;
	}
	return -1;
}

void
slot_clear(struct slot *s)
{
	stream_close(&s->out);
	stream_close(&s->err);
	buf_free(&s->out.line);
	buf_free(&s->err.line);
	jobq_job_clear(&s->job);
	free(s->errmsg);
	s->errmsg = NULL;
	s->pid = -1;
	s->state = SLOT_IDLE;
	s->stop = STOP_NONE;
	s->term_mono = -1;
	s->kill_sent = 0;
	s->group_empty = 0;
	s->lines = 0;
	s->finish_tries = 0;
}
