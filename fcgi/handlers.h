/*
 * handlers: the route handlers, one group per file (h_auth.c, h_jobs.c,
 * h_sistemas.c, h_misc.c). A handler runs after the dispatcher's common
 * checks (route.h): r->user is set on authenticated routes, r->json holds
 * the parsed body on routes that take one, r->api->db is open unless the
 * route is ROUTE_NODB. Each writes exactly one response through resp.h.
 */
#ifndef ETL_HANDLERS_H
#define ETL_HANDLERS_H

#include "api.h"

/* h_auth.c */
/* Authentication is in two halves: the token, then its account. */
/* Checks the bearer token's form, signature and expiry, without the
 * database. Returns 0 with r->claims set, or -1 after a 401. */
int hauth_token(struct req *r);
/* Reads the token's account on db (role from the database) and checks it
 * against the claims and min_role. Returns 0 with r->user set, or -1
 * after a 401 (no such account, or a token older than it), 403 or 503. */
int hauth_account(struct req *r, struct db *db, int min_role);
/*
 * Leaves the account check of an enqueue to its part of the batch (where
 * it costs a lookup inside the open write transaction, not a read
 * transaction of its own): sets r->user from the claims and
 * r->account_pending, and returns 1; or returns 0 when the claims' role
 * is not enough (the account must decide between 401 and 403 now). Any
 * answer but the enqueue's own success checks the account first
 * (resp_send), so a refusal keeps the order of route.h: 401/403 first.
 */
int hauth_defer_account(struct req *r, int min_role);
/* The account check of hauth_account inside a transaction on db, without
 * an answer: DB_OK when it holds, DB_NOTFOUND when it is refused, or the
 * database's error. */
enum db_rc hauth_account_holds(struct db *db, const struct tok_claims *c, int min_role);
/* Creates the first admin from ETL_ADMIN_USER/ETL_ADMIN_PASSWORD when the
 * database has no admin. Returns 0 (also when nothing was to be done), -1
 * on a database error or an unusable name/password (logged). */
int hauth_bootstrap_admin(struct api *api);
void hauth_login(struct req *r);
void hauth_me(struct req *r);
void hauth_users_list(struct req *r);
void hauth_users_create(struct req *r);
void hauth_users_delete(struct req *r);

/* h_jobs.c */
void hjobs_execute(struct req *r);
void hjobs_list(struct req *r);
void hjobs_get(struct req *r);
void hjobs_logs(struct req *r);
void hjobs_cancel(struct req *r);

/* h_sistemas.c */
void hsist_list(struct req *r);
void hsist_get(struct req *r);
void hsist_put(struct req *r);

/* h_misc.c */
void hmisc_health(struct req *r);
void hmisc_metrics(struct req *r);
void hmisc_pool(struct req *r);
/* Whether events are published at all (REDIS_ENABLED): handlers ask
 * before building any, which costs JSON work (and, for a cancel, reads). */
int hmisc_events_on(const struct req *r);
/* Queues msg (takes ownership; NULL is ignored) to be published once the
 * request is answered and the connection given back (hmisc_send_events).
 * Only called when hmisc_events_on. */
void hmisc_event(struct req *r, char *msg);
/*
 * Wakes the workers after a change that may start or stop a job (an
 * enqueue, a cancel). With events off, now. With events on, once the
 * request's events are published (hmisc_send_events): a worker woken
 * earlier could start the job and publish its "running" before the API's
 * "pending" reached Redis, and a dashboard would then show a running job
 * as pending.
 */
void hmisc_wake_after(struct req *r);
/* Publishes r's queued events and waits until Redis has published them,
 * all within REDIS_SOCKET_TIMEOUT from the call (waiting for another
 * thread's publishing included: past it they are dropped); then wakes the
 * workers if hmisc_wake_after asked. route.c calls it. */
void hmisc_send_events(struct req *r);
/* Parses a query integer in [min, max] (default def when absent). Returns 0,
 * or -1 after a 422 naming the parameter. */
int hmisc_query_int(
    struct req *r, const char *key, int64_t def, int64_t min, int64_t max, int64_t *out);

#endif
