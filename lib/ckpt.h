/*
 * ckpt: the WAL checkpointer, a thread with its own database connection
 * that calls db_checkpoint every DB_CHECKPOINT_INTERVAL_MS, or sooner when
 * the WAL grows fast (ckpt.c). etl-worker and
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
 * blocked in it; it passes every interval_ms (DB_CHECKPOINT_INTERVAL_MS
 * but in tests) while the WAL is quiet. Returns NULL with err filled on
 * failure. */
struct ckpt *ckpt_start(const char *path, int busy_ms, int interval_ms, char *err, size_t errlen);
/* Whether c's thread is the one checkpointing its database now. */
int ckpt_holds(struct ckpt *c);
/* Brings c's next pass forward to the end of the short pause after its
 * last one (DB_CHECKPOINT_SOON_MS), if c's thread checkpoints: for a
 * commit that leaves the WAL long (db_autocheckpoint). Any thread; a load
 * and nothing more when a pass is due already. arg is a struct ckpt *. */
void ckpt_nudge(void *arg);
/* Stops the thread (at once, not at its next tick), closes its connection
 * and frees c. NULL is a no-op. */
void ckpt_stop(struct ckpt *c);

#endif
