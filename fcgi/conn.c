/*
 * conn: the shared connection and the enqueue batch (see conn.h).
 *
 * Why members wait only when a thread is already waiting for the
 * connection: that thread will hold it next, and whatever it does ends
 * the batch or extends it: it joins (and decides the same way), or it
 * commits (conn_settle at the start of any other route, conn_give at the
 * end of any request). A member never waits on a batch nobody will
 * commit, and a batch never holds more than the threads there are. The
 * waiter count is taken before the lock is requested, so a thread that
 * is about to block on it is counted.
 */
#include "conn.h"

#include "log.h"

struct conn_member {
	enum db_rc rc;
	int done;
	struct conn_member *next;
};

void
conn_init(struct api *api)
{
	if (pthread_mutex_init(&api->mu, NULL) != 0 ||
	    pthread_mutex_init(&api->pub_mu, NULL) != 0 ||
	    pthread_cond_init(&api->batch_done, NULL) != 0)
		fatalx("conn: cannot make a mutex");
	atomic_init(&api->waiting, 0);
}

void
conn_destroy(struct api *api)
{
	pthread_cond_destroy(&api->batch_done);
	pthread_mutex_destroy(&api->pub_mu);
	pthread_mutex_destroy(&api->mu);
}

void
conn_take(struct api *api)
{
	atomic_fetch_add(&api->waiting, 1);
	pthread_mutex_lock(&api->mu);
	atomic_fetch_sub(&api->waiting, 1);
}

/* Ends the open batch: commits it (rolls it back when it has no member
 * left: every one failed), and tells each member how it ended. */
static void
batch_end(struct api *api, enum db_rc rc)
{
	if (db_in_transaction(api->db)) {
		if (api->batch == NULL)
			db_rollback(api->db);
		else if (rc == DB_OK)
			rc = db_commit(api->db);
		else
			db_rollback(api->db);
	} else if (rc == DB_OK) {
		rc = DB_ERROR; /* the transaction ended under us */
	}
	for (struct conn_member *m = api->batch, *next; m != NULL; m = next) {
		next = m->next;
		m->rc = rc;
		m->done = 1;
	}
	if (api->batch_size > 1)
		log_debug("batch of %d committed (rc=%d)", api->batch_size, (int)rc);
	api->batch = NULL;
	api->batch_size = 0;
	pthread_cond_broadcast(&api->batch_done);
}

void
conn_settle(struct api *api)
{
	if (api->batch != NULL)
		batch_end(api, DB_OK);
}

void
conn_give(struct api *api)
{
	conn_settle(api);
	pthread_mutex_unlock(&api->mu);
}

enum db_rc
conn_batch(struct api *api, enum db_rc (*fn)(struct db *db, void *arg), void *arg)
{
	struct conn_member me = { DB_OK, 0, NULL };
	enum db_rc rc;

	/* a batch is open exactly while it has members (one that fails
	 * alone rolls it back below) */
	if (api->batch != NULL && !db_in_transaction(api->db))
		batch_end(api, DB_ERROR); /* ended under its members: they fail */
	if (api->batch == NULL && (rc = db_begin(api->db)) != DB_OK)
		return rc;
	if ((rc = db_part_begin(api->db)) == DB_OK) {
		rc = fn(api->db, arg);
		enum db_rc end = db_part_end(api->db, rc == DB_OK);
		if (rc == DB_OK)
			rc = end;
	}
	if (!db_in_transaction(api->db)) {
		/* SQLITE_FULL and the like end the whole transaction: nobody's
		 * part of it was kept */
		batch_end(api, rc != DB_OK ? rc : DB_ERROR);
		return rc != DB_OK ? rc : DB_ERROR;
	}
	if (rc != DB_OK) {
		if (api->batch == NULL)
			batch_end(api, DB_OK); /* nobody else in it: roll it back */
		return rc;
	}
	me.next = api->batch;
	api->batch = &me;
	api->batch_size++;
	if (atomic_load(&api->waiting) > 0 && api->batch_size < CONN_BATCH_MAX) {
		while (!me.done)
			pthread_cond_wait(&api->batch_done, &api->mu);
	} else {
		batch_end(api, DB_OK);
	}
	return me.rc;
}
