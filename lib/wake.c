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

int
wake_notify(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int fd, sent = 0;

	if (d == NULL)
		return 0;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		closedir(d);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		struct sockaddr_un sa;
		size_t n = strlen(de->d_name);
		if (strncmp(de->d_name, "worker-", 7) != 0 || n < 5 ||
		    strcmp(de->d_name + n - 5, ".sock") != 0)
			continue;
		if (sock_path(&sa, dir, de->d_name) == -1)
			continue;
		if (sendto(fd, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa,
		        sizeof(sa)) == 1)
			sent++;
		else if (errno == ECONNREFUSED)
			unlink(sa.sun_path); /* its worker is gone */
		/* EAGAIN: its queue is full of wake-ups already; enough. */
	}
	close(fd);
	closedir(d);
	return sent;
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
