/*
 * migrate: applies schema/NNN_*.sql (compiled in) in order, tracked by
 * PRAGMA user_version, each inside one BEGIN IMMEDIATE transaction, so two
 * programs starting at once serialise and the second finds nothing to do.
 * Some steps have a C part (the legacy text logs become log lines).
 */
#ifndef ETL_MIGRATE_H
#define ETL_MIGRATE_H

#include <sqlite3.h>
#include <stddef.h>

/* The schema version this build knows (the number of the newest migration). */
int migrate_latest(void);

/*
 * Brings db to migrate_latest(). Returns 0, or -1 with a reason in err: a
 * newer version than this program knows, a failed step (rolled back whole),
 * busy past the timeout, disk full.
 */
int migrate_apply(sqlite3 *db, char *err, size_t errlen);

/* The database's current user_version, or -1 on error. */
int migrate_version(sqlite3 *db);

#endif
