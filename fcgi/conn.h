/*
 * conn: an etl-api process's one database connection, with its wake-up
 * sender, shared by the process's request threads; and the enqueue batch
 * (group commit) built on it. (The Redis publisher has a lock of its own,
 * taken after the connection is given back: h_misc.c.)
 *
 * A request holds the connection from the moment its route is known to
 * its end (conn_take, conn_give), except that an enqueue gives it back as
 * soon as its part of the batch is in (conn_batch), and a login or a
 * user's creation while it hashes a password (the slow part must not
 * stall the other threads).
 *
 * The batch: an enqueue costs one write transaction, and a transaction's
 * fixed cost (its four pages, their WAL frames, the locks, and the
 * checkpoint copying those pages) is most of an enqueue. So concurrent
 * enqueues share one: the first opens it, each runs in a savepoint of its
 * own (its failure undoes only itself), and a member leaves it open for
 * the next only when another thread is already waiting for the
 * connection; otherwise it commits, wakes the workers once for the whole
 * batch (unless events are on: then each member wakes them once its
 * events are out, hmisc_wake_after), and every member gets the commit's
 * result before it answers.
 * Nothing is acknowledged before it is committed. Any other use of the
 * connection commits an open batch first (conn_settle), so nothing else
 * ever reads or writes inside it.
 */
#ifndef ETL_CONN_H
#define ETL_CONN_H

#include "api.h"
#include "db.h"

#define CONN_BATCH_MAX 64 /* members of one batch at most */

void conn_init(struct api *api);
void conn_destroy(struct api *api);

/* Takes the connection (blocks while another thread has it). */
void conn_take(struct api *api);
/* Commits an open batch, then gives the connection back. */
void conn_give(struct api *api);
/* Commits an open batch: before any use of the connection but joining it. */
void conn_settle(struct api *api);
/* Takes the connection back after giving it up in the middle of a request
 * (a login's or a user creation's hashing): commits whatever batch opened
 * meanwhile first. */
void conn_retake(struct api *api);
/* Wakes the workers (any thread; the sender has a lock of its own). */
void conn_wake(struct api *api);

/*
 * Runs fn(api->db, arg) as a member of the batch (opening one when none is
 * open), holding the connection, and gives the connection back. Returns
 * fn's error when fn failed (its part undone, the rest of the batch
 * unharmed); else the commit's result, once the batch is committed: DB_OK
 * means fn's changes are durable as far as SQLite's synchronous=NORMAL
 * makes any commit, and, with events off, that the workers were woken. A
 * member that waits for the commit waits without the connection.
 */
enum db_rc conn_batch(struct api *api, enum db_rc (*fn)(struct db *db, void *arg), void *arg);

#endif
