/*
 * lease: the worker's standing in the database (DESIGN.md "Leases, not
 * hopes"). Registers the worker (host, pid, boot id, slots), renews its
 * heartbeat and the leases of its running jobs every ETL_LEASE_INTERVAL,
 * stores its publishing counters, sweeps orphans every
 * ETL_JOB_CLEANUP_INTERVAL, and at start closes at once the jobs of dead
 * predecessors on this host: a registered worker of this host is dead when
 * its boot id differs (the machine rebooted), or its pid is gone, or the
 * process now holding that pid started after the worker registered (pid
 * reused). Every job closed here is announced like one the worker ended.
 * The pipelines such a predecessor left running (in their own sessions, so
 * its death did not stop them) are killed too: each worker keeps the
 * process groups of its running jobs in "<wake dir>/worker-<pid>.jobs",
 * and a group is killed only if a process in it still carries that job's
 * ETL_JOB_ID in its environment (pids are reused; environments are not).
 * Runs in the loop of etl-worker only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "evt.h"
#include "jobq.h"
#include "log.h"
#include "pub.h"
#include "sist.h"
#include "worker.h"

#define LEASE_MAX_WORKERS 256
#define LEASE_MAX_CLOSED 64
#define LEASE_PID_SLACK_MS 2000 /* clock skew allowed between btime and our registration */

static void
read_boot_id(char *out, size_t outlen)
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
	size_t n = 0;

	out[0] = '\0';
	if (f == NULL) {
		log_warn("boot_id");
	} else {
		if (fgets(out, (int)outlen, f) == NULL)
			out[0] = '\0';
		if (fclose(f) == EOF)
			log_warn("close boot_id");
	}
	n = strcspn(out, "\n");
	out[n] = '\0';
	if (out[0] == '\0')
		snprintf(out, outlen, "unknown");
}

/* Boot time in ms since the epoch (from /proc/stat btime), or -1. */
static int64_t
boot_time_ms(void)
{
	char line[256];
	long long bt = -1;
	FILE *f = fopen("/proc/stat", "re");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "btime %lld", &bt) == 1)
			break;
	if (fclose(f) == EOF)
		return -1;
	return bt < 0 ? -1 : bt * 1000;
}

/* Start time of pid in ms since the epoch (/proc/PID/stat field 22), or -1. */
static int64_t
pid_start_ms(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	int64_t bt;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	if (fclose(f) == EOF)
		return -1;
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: fields restart after the last ')'. */
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	/* After ") ": state(3) ... starttime is field 22, the 20th from state. */
	if (sscanf(p + 2,
	        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
	        "%*d %*d %llu",
	        &start) != 1)
		return -1;
	if ((bt = boot_time_ms()) < 0 || hz <= 0)
		return -1;
	return bt + (int64_t)(start * 1000 / (unsigned long long)hz);
}

/* 1 when the worker row wi still belongs to a live process. */
static int
worker_alive(const struct worker *w, const struct worker_info *wi)
{
	int64_t st;

	if (strcmp(wi->boot_id, w->boot_id) != 0)
		return 0; /* registered before this boot */
	if (wi->pid == (int)getpid() || wi->pid <= 0)
		return 0; /* we hold its pid now: it is gone */
	if (kill(wi->pid, 0) == -1 && errno == ESRCH)
		return 0;
	st = pid_start_ms(wi->pid);
	if (st >= 0 && wi->started_ms >= 0 && st > wi->started_ms + LEASE_PID_SLACK_MS)
		return 0; /* the pid was reused by a younger process */
	return 1;
}

/* Publishes a sistema's current row as a status event. */
static void
publish_sistema(struct worker *w, const char *id)
{
	struct json_object *o = NULL, *v;
	const char *status = NULL, *mensagem = NULL;
	int progresso = 0;

	if (sist_get_json(w->db, id, &o) != DB_OK || o == NULL)
		return;
	if (json_object_object_get_ex(o, "status", &v) && v != NULL)
		status = json_object_get_string(v);
	if (json_object_object_get_ex(o, "progresso", &v) && v != NULL)
		progresso = json_object_get_int(v);
	if (json_object_object_get_ex(o, "mensagem", &v) && v != NULL)
		mensagem = json_object_get_string(v);
	if (status != NULL)
		worker_publish(w, evt_status(id, status, progresso, mensagem));
	json_object_put(o);
}

#define LEASE_ANNOUNCE_WAIT_MS 3000 /* longest wait for Redis before announcing */

void
lease_closed(struct worker *w, int64_t job_id)
{
	if (w->nclosed == w->capclosed) {
		w->capclosed = w->capclosed ? w->capclosed * 2 : 16;
		w->closed = xrealloc(w->closed, w->capclosed * sizeof(*w->closed));
	}
	w->closed[w->nclosed++] = job_id;
}

static void
publish_closed(struct worker *w, int64_t job_id)
{
	struct job j;
	double dur = 0;

	memset(&j, 0, sizeof(j));
	if (jobq_get(w->db, job_id, &j) != DB_OK)
		return;
	log_warnx("job=%lld closed as %s: %s", (long long)job_id, jobq_status_name(j.status),
	    j.error_message ? j.error_message : "");
	if (j.started_ms >= 0 && j.finished_ms >= j.started_ms)
		dur = (double)(j.finished_ms - j.started_ms) / 1000.0;
	for (size_t i = 0; i < j.nsistemas; i++)
		publish_sistema(w, j.sistemas[i]);
	worker_publish(w, evt_job_status(j.id, jobq_status_name(j.status), j.worker_slot));
	worker_publish(w, evt_job_complete(j.id, jobq_status_name(j.status), dur));
	jobq_job_clear(&j);
}

static char *
jobs_file(const struct worker *w, int pid)
{
	return xasprintf("%s/worker-%d.jobs", w->wake_dir, pid);
}

/* 1 if the NUL-separated environment env (n bytes) holds the entry want. */
static int
env_has(const char *env, size_t n, const char *want)
{
	size_t wl = strlen(want);

	for (size_t i = 0; i < n;) {
		size_t l = strnlen(env + i, n - i);

		if (l == wl && memcmp(env + i, want, wl) == 0)
			return 1;
		i += l + 1;
	}
	return 0;
}

/* 1 if process pid is in group pgid and runs for job_id. */
static int
is_job_process(int pid, int pgid, const char *want)
{
	char path[64], buf[4096], *p;
	int fd, grp = -1;
	ssize_t n;
	FILE *f;
	int match = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	n = (ssize_t)fread(buf, 1, sizeof(buf) - 1, f);
	(void)fclose(f);
	buf[n > 0 ? n : 0] = '\0';
	if ((p = strrchr(buf, ')')) == NULL || sscanf(p + 2, "%*c %*d %d", &grp) != 1 ||
	    grp != pgid)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/environ", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	/* ETL_JOB_ID is the first entry the worker sets: the first block holds it. */
	n = read(fd, buf, sizeof(buf));
	if (n > 0)
		match = env_has(buf, (size_t)n, want);
	(void)close(fd);
	return match;
}

/* Kills the group pgid if it still runs job_id's pipeline. */
static void
kill_left_group(int64_t job_id, int pgid)
{
	char want[64];
	DIR *d;
	struct dirent *de;
	int found = 0;

	if (pgid <= 1)
		return;
	snprintf(want, sizeof(want), "ETL_JOB_ID=%lld", (long long)job_id);
	if ((d = opendir("/proc")) == NULL)
		return;
	while (!found && (de = readdir(d)) != NULL) {
		int64_t pid;

		if (util_parse_i64(de->d_name, 1, INT32_MAX, &pid) == 0)
			found = is_job_process((int)pid, pgid, want);
	}
	(void)closedir(d);
	if (!found)
		return;
	log_warnx("job=%lld: its dead worker's pipeline (group %d) still runs: SIGKILL",
	    (long long)job_id, pgid);
	if (kill(-pgid, SIGKILL) == -1 && errno != ESRCH)
		log_warn("kill(-%d)", pgid);
}

/* The groups a dead worker of this boot left: killed, then its file removed. */
static void
kill_left_groups(struct worker *w, int pid)
{
	char *path, line[128];
	long long job;
	int pgid;
	FILE *f;

	if (w->wake_dir == NULL)
		return;
	path = jobs_file(w, pid);
	if ((f = fopen(path, "re")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "%lld %d", &job, &pgid) == 2)
				kill_left_group(job, pgid);
		(void)fclose(f);
		if (unlink(path) == -1)
			log_warn("unlink %s", path);
	}
	free(path);
}

void
lease_track(struct worker *w)
{
	char *path, *tmp;
	FILE *f;
	int ok;

	if (w->wake_dir == NULL || w->wake_fd == -1)
		return;
	path = jobs_file(w, (int)getpid());
	tmp = xasprintf("%s.tmp", path);
	if ((f = fopen(tmp, "we")) == NULL) {
		log_warn("%s", tmp);
		goto out;
	}
	for (int i = 0; i < w->nslots; i++) {
		const struct slot *s = &w->slots[i];

		if (s->state != SLOT_IDLE && s->pid > 0)
			fprintf(f, "%lld %d\n", (long long)s->job.id, (int)s->pid);
	}
	ok = fclose(f) == 0;
	if (!ok || rename(tmp, path) == -1) {
		log_warn("%s", path);
		(void)unlink(tmp);
	}
out:
	free(tmp);
	free(path);
}

static void
close_dead(struct worker *w, const struct worker_info *wi)
{
	int64_t ids[LEASE_MAX_CLOSED];
	int n;

	if (strcmp(wi->boot_id, w->boot_id) == 0)
		kill_left_groups(w, wi->pid);
	log_warnx("worker %lld (pid %d, %s) is dead: closing its jobs", (long long)wi->id, wi->pid,
	    strcmp(wi->boot_id, w->boot_id) ? "previous boot" : "this boot");
	do {
		n = jobq_close_worker_jobs(
		    w->db, wi->id, "orphaned: worker died", ids, LEASE_MAX_CLOSED);
		if (n < 0) {
			log_warnx("worker %lld: cannot close its jobs (%s)", (long long)wi->id,
			    db_errmsg(w->db));
			return; /* the lease sweep will get them */
		}
		for (int k = 0; k < n; k++)
			lease_closed(w, ids[k]);
	} while (n == LEASE_MAX_CLOSED);
	if (jobq_worker_unregister(w->db, wi->id) != DB_OK)
		log_warnx(
		    "worker %lld: cannot unregister (%s)", (long long)wi->id, db_errmsg(w->db));
}

int
lease_start(struct worker *w)
{
	struct worker_info *wi = xcalloc(LEASE_MAX_WORKERS, sizeof(*wi));
	enum db_rc rc;
	int n, ret = -1;

	if (gethostname(w->host, sizeof(w->host)) == -1) {
		log_warn("gethostname");
		snprintf(w->host, sizeof(w->host), "localhost");
	}
	w->host[sizeof(w->host) - 1] = '\0';
	read_boot_id(w->boot_id, sizeof(w->boot_id));

	n = jobq_workers_on_host(w->db, w->host, wi, LEASE_MAX_WORKERS);
	if (n < 0) {
		log_warnx("cannot list the workers of %s (%s)", w->host, db_errmsg(w->db));
		goto out;
	}
	for (int i = 0; i < n; i++)
		if (!worker_alive(w, &wi[i]))
			close_dead(w, &wi[i]);

	rc = jobq_worker_register(
	    w->db, w->host, (int)getpid(), w->boot_id, w->nslots, &w->worker_id);
	if (rc != DB_OK) {
		log_warnx("cannot register the worker (%s)", db_errmsg(w->db));
		goto out;
	}
	log_info("worker %lld registered: host %s, %d slot%s", (long long)w->worker_id, w->host,
	    w->nslots, w->nslots == 1 ? " (single mode)" : "s");
	ret = 0;
out:
	free(wi);
	return ret;
}

void
lease_renew(struct worker *w)
{
	enum db_rc rc;

	if ((rc = jobq_renew(w->db, w->worker_id)) != DB_OK)
		log_warnx("lease renewal: %s", rc == DB_BUSY ? "database busy" : db_errmsg(w->db));
	if ((rc = jobq_worker_counters(
	         w->db, w->worker_id, pub_published(w->pub), pub_dropped(w->pub))) != DB_OK)
		log_debug("worker counters: %s", db_errmsg(w->db));
}

void
lease_sweep(struct worker *w)
{
	int64_t ids[LEASE_MAX_CLOSED];
	int n;

	do {
		n = jobq_sweep_orphans(
		    w->db, w->conf.job_slot_timeout, "orphaned", ids, LEASE_MAX_CLOSED);
		if (n < 0) {
			log_warnx(
			    "orphan sweep: %s", n == DB_BUSY ? "database busy" : db_errmsg(w->db));
			return;
		}
		for (int k = 0; k < n; k++)
			lease_closed(w, ids[k]);
	} while (n == LEASE_MAX_CLOSED);
}

void
lease_stop(struct worker *w)
{
	char *path;

	if (w->wake_dir != NULL) {
		path = jobs_file(w, (int)getpid());
		if (unlink(path) == -1 && errno != ENOENT)
			log_warn("unlink %s", path);
		free(path);
	}
	if (w->worker_id < 0)
		return;
	if (jobq_worker_unregister(w->db, w->worker_id) != DB_OK)
		log_warnx("cannot unregister worker %lld (%s)", (long long)w->worker_id,
		    db_errmsg(w->db));
	w->worker_id = -1;
}

void
lease_announce(struct worker *w)
{
	if (w->nclosed == 0)
		return;
	if (pub_state(w->pub) == PUB_CONNECTING &&
	    util_mono_ms() - w->started_mono < LEASE_ANNOUNCE_WAIT_MS)
		return;
	for (size_t i = 0; i < w->nclosed; i++)
		publish_closed(w, w->closed[i]);
	w->nclosed = 0;
}
