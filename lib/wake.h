/*
 * wake: the local wake-up path from etl-api to etl-worker (DESIGN.md: no
 * polling on the hot path). Each worker binds a unix datagram socket
 * "<dir>/worker-<pid>.sock"; etl-api sends a one-byte datagram to every
 * socket in the directory after an enqueue or a cancel. Sends never block;
 * sockets whose worker is gone are removed.
 */
#ifndef ETL_WAKE_H
#define ETL_WAKE_H

/* Binds the worker's socket in dir (created 0770 if missing). Returns the fd
 * (non-blocking, close-on-exec) or -1. */
int wake_listen(const char *dir);
/* Reads and discards every pending datagram on fd. */
void wake_drain(int fd);
/* Removes the worker's own socket file (at exit). */
void wake_unlink(const char *dir);
/* Sends a wake-up to every worker socket in dir. Returns how many got it. */
int wake_notify(const char *dir);
/* The same for a process that wakes often (etl-api): the sender keeps the
 * socket names and reads the directory again only when it has changed. One
 * sender per thread. */
struct wake_sender *wake_sender_open(const char *dir);
int wake_sender_notify(struct wake_sender *w);
void wake_sender_close(struct wake_sender *w);
/* The wake dir for a configuration: ETL_WAKE_DIR, else "<dir of db>/wake".
 * Returns a malloc'd string. */
char *wake_dir_for(const char *wake_dir, const char *db_path);

#endif
