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
/* Checks the bearer token and looks the user up (role from the database).
 * Returns 0 with r->user set, or -1 after writing a 401/503 response. */
int hauth_authenticate(struct req *r);
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
/* Queues msg (takes ownership; NULL is ignored) to be published once the
 * request is answered and the connection given back (hmisc_send_events). */
void hmisc_event(struct req *r, char *msg);
/* Publishes r's queued events and lets them leave, all within
 * REDIS_SOCKET_TIMEOUT from the call (waiting for another thread's
 * publishing included: past it they are dropped). route.c calls it. */
void hmisc_send_events(struct req *r);
/* Parses a query integer in [min, max] (default def when absent). Returns 0,
 * or -1 after a 422 naming the parameter. */
int hmisc_query_int(
    struct req *r, const char *key, int64_t def, int64_t min, int64_t max, int64_t *out);

#endif
