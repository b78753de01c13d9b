/*
 * ckpt: the checkpointer thread (ckpt.h). It shares nothing with its
 * creator but the stop flag, under one mutex and condition variable that
 * also serve as its interruptible sleep.
 */
#include "ckpt.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "util.h"

struct ckpt {
	struct db *db;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
};

static void *
ckpt_main(void *arg)
{
	struct ckpt *c = arg;
	struct timespec at;

	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_nsec += (long)(DB_CHECKPOINT_INTERVAL_MS % 1000) * 1000000L;
		at.tv_sec += DB_CHECKPOINT_INTERVAL_MS / 1000 + at.tv_nsec / 1000000000L;
		at.tv_nsec %= 1000000000L;
		while (!c->stop && pthread_cond_timedwait(&c->cv, &c->mu, &at) != ETIMEDOUT)
			;
		if (c->stop)
			break;
		pthread_mutex_unlock(&c->mu);
		(void)db_checkpoint(c->db, NULL, NULL); /* DB_BUSY: the next tick */
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

struct ckpt *
ckpt_start(const char *path, int busy_ms, char *err, size_t errlen)
{
	struct ckpt *c = xcalloc(1, sizeof(*c));
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	if ((c->db = db_open(path, DB_OPEN_NOMIGRATE, busy_ms, err, errlen)) == NULL) {
		free(c);
		return NULL;
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
		free(c);
		return NULL;
	}
	return c;
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
	db_close(c->db);
	free(c);
}
