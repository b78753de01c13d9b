/*
 * ckpt: the WAL checkpointer, a thread with its own database connection
 * that calls db_checkpoint every DB_CHECKPOINT_INTERVAL_MS. etl-worker and
 * each serving etl-api process run one, so that no API request and no turn
 * of the worker's event loop pays for copying the WAL back and its fsyncs
 * (lib/db.h). Of all the threads on one database, only the one holding the
 * flock on "<database>.ckpt.lock" checkpoints (ckpt.c says why); the others
 * wait their turn.
 */
#ifndef ETL_CKPT_H
#define ETL_CKPT_H

#include <stddef.h>

struct ckpt;

/* Opens path (already migrated) and starts the thread, with every signal
 * blocked in it. Returns NULL with err filled on failure. */
struct ckpt *ckpt_start(const char *path, int busy_ms, char *err, size_t errlen);
/* Whether c's thread is the one checkpointing its database now. */
int ckpt_holds(struct ckpt *c);
/* Stops the thread (at once, not at its next tick), closes its connection
 * and frees c. NULL is a no-op. */
void ckpt_stop(struct ckpt *c);

#endif
