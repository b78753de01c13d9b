/*
 * wake: etl-api -> etl-worker wake-ups over unix datagram sockets, one per
 * worker in a shared directory. A datagram carries no data that matters:
 * it only says "look at the queue now". Lost wake-ups are harmless (the
 * worker also polls), so every send is non-blocking.
 */
#include "wake.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static int
sock_path(struct sockaddr_un *sa, const char *dir, const char *name)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	int n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", dir, name);
	return (n < 0 || (size_t)n >= sizeof(sa->sun_path)) ? -1 : 0;
}

int
wake_listen(const char *dir)
{
	struct sockaddr_un sa;
	char name[64];
	int fd;

	if (mkdir(dir, 0770) == -1 && errno != EEXIST) {
		log_warn("wake: mkdir %s", dir);
		return -1;
	}
	snprintf(name, sizeof(name), "worker-%d.sock", (int)getpid());
	if (sock_path(&sa, dir, name) == -1) {
		log_warnx("wake: socket path too long in %s", dir);
		return -1;
	}
	unlink(sa.sun_path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_warn("wake: socket");
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		log_warn("wake: bind %s", sa.sun_path);
		close(fd);
		return -1;
	}
	/* etl-api may run as another user (www-data) in the same group. */
	if (chmod(sa.sun_path, 0666) == -1)
		log_warn("wake: chmod %s", sa.sun_path);
	return fd;
}

void
wake_drain(int fd)
{
	char b[64];

	while (recv(fd, b, sizeof(b), 0) >= 0)
		;
}

void
wake_unlink(const char *dir)
{
	struct sockaddr_un sa;
	char name[64];

	snprintf(name, sizeof(name), "worker-%d.sock", (int)getpid());
	if (sock_path(&sa, dir, name) == 0)
		unlink(sa.sun_path);
}

/*
 * The sender keeps the names it found and rescans only when the
 * directory's mtime moves: a stat instead of open, two getdents, close,
 * and a socket made and closed, on every enqueue. A timestamp comes from a
 * clock that ticks every few milliseconds, so a worker binding in the same
 * tick as the scan would leave the mtime as it was: a listing is trusted
 * only if the directory had not changed for WAKE_RECENT_NS when it was
 * read, else it is read again next time. Were a worker
 * still missed, it would only start the job at its next poll.
 */
#define WAKE_MAX_PEERS 32
#define WAKE_RECENT_NS 100000000LL /* 100 ms */

struct wake_sender {
	char *dir;
	int fd; /* the datagram socket sends go out on; -1 until it opens */
	int scanned;
	struct timespec mtime; /* of dir when names were read */
	size_t n;
	char names[WAKE_MAX_PEERS][64];
};

struct wake_sender *
wake_sender_open(const char *dir)
{
	struct wake_sender *w = xcalloc(1, sizeof(*w));

	w->dir = xstrdup(dir);
	w->fd = -1;
	return w;
}

void
wake_sender_close(struct wake_sender *w)
{
	if (w == NULL)
		return;
	if (w->fd != -1)
		close(w->fd);
	free(w->dir);
	free(w);
}

static int
is_recent(const struct timespec *t)
{
	struct timespec now;

	if (clock_gettime(CLOCK_REALTIME, &now) != 0)
		return 1;
	return (now.tv_sec - t->tv_sec) * 1000000000LL + (now.tv_nsec - t->tv_nsec) <
	       WAKE_RECENT_NS;
}

static void
scan(struct wake_sender *w, const struct timespec *mtime)
{
	DIR *d = opendir(w->dir);
	struct dirent *de;

	w->n = 0;
	w->scanned = 0;
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (strncmp(de->d_name, "worker-", 7) != 0 || n < 5 || n >= sizeof(w->names[0]) ||
		    strcmp(de->d_name + n - 5, ".sock") != 0)
			continue;
		if (w->n == WAKE_MAX_PEERS) {
			log_warnx("wake: more than %d worker sockets in %s: waking the first %d",
			    WAKE_MAX_PEERS, w->dir, WAKE_MAX_PEERS);
			break;
		}
		memcpy(w->names[w->n++], de->d_name, n + 1);
	}
	closedir(d);
	w->mtime = *mtime;
	/* trusted only once the directory had been quiet for WAKE_RECENT_NS
	 * before it was read: a later change in the same clock tick would
	 * leave this mtime as it is */
	w->scanned = !is_recent(mtime);
}

int
wake_sender_notify(struct wake_sender *w)
{
	struct stat sb;
	int sent = 0;

	if (stat(w->dir, &sb) == -1) {
		w->n = 0;
		w->scanned = 0;
		return 0;
	}
	if (!w->scanned || sb.st_mtim.tv_sec != w->mtime.tv_sec ||
	    sb.st_mtim.tv_nsec != w->mtime.tv_nsec)
		scan(w, &sb.st_mtim);
	if (w->n > 0 && w->fd == -1)
		w->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (w->fd == -1)
		return 0;
	for (size_t i = 0; i < w->n; i++) {
		struct sockaddr_un sa;
		if (sock_path(&sa, w->dir, w->names[i]) == -1)
			continue;
		if (sendto(w->fd, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa,
		        sizeof(sa)) == 1) {
			sent++;
			continue;
		}
		if (errno == ECONNREFUSED)
			unlink(sa.sun_path); /* its worker is gone */
		if (errno == ECONNREFUSED || errno == ENOENT)
			w->scanned = 0; /* read the directory again next time */
		/* EAGAIN: its queue is full of wake-ups already; enough. */
	}
	return sent;
}

int
wake_notify(const char *dir)
{
	struct wake_sender *w = wake_sender_open(dir);
	int n = wake_sender_notify(w);

	wake_sender_close(w);
	return n;
}

char *
wake_dir_for(const char *wake_dir, const char *db_path)
{
	const char *slash;

	if (wake_dir)
		return xstrdup(wake_dir);
	slash = strrchr(db_path, '/');
	if (slash == NULL)
		return xstrdup("./wake");
	return xasprintf("%.*s/wake", (int)(slash - db_path), db_path);
}
