/*
 * h_jobs: enqueue, list, read, logs and cancel. The API never starts a job
 * (the worker acquires them); after a committed enqueue or cancel it
 * publishes the events (job_status, and the sistemas' status) and then
 * wakes the workers through the local wake-up sockets, so a job starts
 * without waiting for the worker's next poll (hmisc_wake_after).
 * Publishing is bounded by REDIS_SOCKET_TIMEOUT and never fails the
 * request.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "conn.h"
#include "db.h"
#include "evt.h"
#include "handlers.h"
#include "jobq.h"
#include "js.h"
#include "log.h"
#include "resp.h"
#include "route.h"
#include "sist.h"

#define IDEM_MAX_LEN 200
#define LOGS_DEFAULT_LIMIT 200
#define LOGS_MAX_LIMIT 1000
#define JOBS_DEFAULT_LIMIT 50
#define JOBS_MAX_LIMIT 500

/* The {id} of a job route. Returns 0, or -1 after a 422. */
static int
job_id_param(struct req *r, int64_t *id)
{
	if (util_parse_i64(r->params[0], 1, INT64_MAX, id) != 0) {
		resp_error(r, 422, "job id must be a positive integer");
		return -1;
	}
	return 0;
}

/* Idempotency-Key: absent (NULL), or 1..200 visible ASCII characters. */
static int
idem_key(struct req *r, const char **out)
{
	const char *k = req_env(r, "HTTP_IDEMPOTENCY_KEY");
	size_t n;

	*out = NULL;
	if (k == NULL)
		return 0;
	n = strlen(k);
	if (n == 0 || n > IDEM_MAX_LEN) {
		resp_error(r, 422, "Idempotency-Key must be 1 to %d characters", IDEM_MAX_LEN);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)k[i] < 0x21 || (unsigned char)k[i] > 0x7e) {
			resp_error(r, 422, "Idempotency-Key must be visible ASCII");
			return -1;
		}
	*out = k;
	return 0;
}

/* Checks "sistemas": 1..64 distinct valid ids. Fills ids (pointers into
 * r->json). Returns the count, or -1 after a 422. */
static int
sistemas_param(struct req *r, const char **ids)
{
	struct json_object *arr = NULL;
	size_t n;

	if (!json_object_object_get_ex(r->json, "sistemas", &arr)) {
		resp_error(r, 422, "sistemas is required");
		return -1;
	}
	if (!json_object_is_type(arr, json_type_array)) {
		resp_error(r, 422, "sistemas must be an array of sistema ids");
		return -1;
	}
	n = json_object_array_length(arr);
	if (n < 1 || n > JOBQ_MAX_SISTEMAS) {
		resp_error(r, 422, "sistemas must hold 1 to %d ids", JOBQ_MAX_SISTEMAS);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		const char *s;
		if (!json_object_is_type(e, json_type_string)) {
			resp_error(r, 422, "sistemas[%zu] must be a string", i);
			return -1;
		}
		s = json_object_get_string(e);
		if (!util_valid_sistema_id(s, (size_t)json_object_get_string_len(e))) {
			resp_error(r, 422, "sistemas[%zu] must match ^[a-z0-9_-]{1,64}$", i);
			return -1;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(ids[j], s) == 0) {
				resp_error(r, 422, "sistema %s is listed twice", s);
				return -1;
			}
		ids[i] = s;
	}
	return (int)n;
}

/* Publishes a status event per sistema of the job, as the database has it now. */
static void
publish_sistemas(struct req *r, const struct job *j)
{
	for (size_t i = 0; i < j->nsistemas; i++) {
		struct json_object *o = NULL, *st, *pg, *msg;
		if (sist_get_json(r->db, j->sistemas[i], &o) != DB_OK)
			continue;
		if (json_object_object_get_ex(o, "status", &st) &&
		    json_object_object_get_ex(o, "progresso", &pg)) {
			const char *m = NULL;
			if (json_object_object_get_ex(o, "mensagem", &msg) && msg != NULL)
				m = json_object_get_string(msg);
			hmisc_event(r, evt_status(j->sistemas[i], json_object_get_string(st),
			                   json_object_get_int(pg), m));
		}
		json_object_put(o);
	}
}

/* jobq_enqueue_in's arguments and results, for conn_batch. */
struct enqueue {
	const char *const *ids;
	size_t n;
	const char *params, *by, *key;
	int announce; /* events on: we publish its pending (jobq_enqueue_in) */
	int64_t job_id;
	int existed;
	const char *status; /* "pending", or the existing job's */
	uint64_t mask;
	char bad[65];
	/* the account to check first (hauth_defer_account), or NULL */
	const struct tok_claims *claims;
	int min_role;
	int refused; /* by the account */
};

static enum db_rc
enqueue_part(struct db *db, void *arg)
{
	struct enqueue *e = arg;
	enum db_rc rc;

	if (e->claims != NULL && (rc = hauth_account_holds(db, e->claims, e->min_role)) != DB_OK) {
		e->refused = rc == DB_NOTFOUND;
		return rc;
	}
	rc = jobq_enqueue_in(db, e->ids, e->n, e->params, e->by, e->key, e->announce, &e->job_id,
	    &e->existed, &e->mask, e->bad);

	if (rc == DB_OK && e->existed) {
		struct job j = { 0 };
		if (jobq_get(db, e->job_id, &j) == DB_OK)
			e->status = jobq_status_name(j.status);
		jobq_job_clear(&j);
	}
	return rc;
}

void
hjobs_execute(struct req *r)
{
	struct api *api = r->api;
	const char *ids[JOBQ_MAX_SISTEMAS];
	struct json_object *params = NULL, *o;
	const char *key = NULL;
	char *params_text = NULL;
	int n;
	enum db_rc rc;

	if ((n = sistemas_param(r, ids)) < 0)
		return;
	if (json_object_object_get_ex(r->json, "params", &params) && params != NULL) {
		if (!json_object_is_type(params, json_type_object)) {
			resp_error(r, 422, "params must be a JSON object");
			return;
		}
		params_text = js_dump(params);
	}
	if (idem_key(r, &key) != 0)
		goto out;
	/* in the batch: the answer waits for the commit (conn.h) */
	struct enqueue e = { .ids = ids,
		.n = (size_t)n,
		.params = params_text,
		.by = r->user.username,
		.key = key,
		.announce = hmisc_events_on(r),
		.status = "pending",
		.claims = r->account_pending ? &r->claims : NULL,
		.min_role = r->route->min_role };
	rc = conn_batch(api, enqueue_part, &e);
	r->held = 0; /* conn_batch gave the connection back */
	r->db = NULL;
	if (rc == DB_OK)
		r->account_pending = 0; /* it held, in the batch */
	if (e.refused) {
		/* resp_send reads the account again, and answers that */
		resp_error(r, 401, "user no longer exists");
		goto out;
	}
	if (rc == DB_INVALID) {
		resp_error(r, 422, "sistema %s is unknown or inactive", e.bad);
		goto out;
	}
	if (rc != DB_OK) {
		resp_db(r, rc, "job");
		goto out;
	}
	if (!e.existed) {
		log_info("job=%lld enqueued by %s sistemas=%d", (long long)e.job_id,
		    r->user.username, n);
		if (hmisc_events_on(r)) {
			/* the job's pending last: a worker that sees it on the
			 * channel may start the job at once (e.announce), and so
			 * publish its sistemas' RUNNING */
			for (int i = 0; i < n; i++)
				if (e.mask & (1ULL << i))
					hmisc_event(r, evt_status(ids[i], "PENDING", 0, NULL));
			hmisc_event(r, evt_job_status(e.job_id, "pending", -1));
			hmisc_wake_after(r); /* the commit did not, with events on */
		}
	}
	o = json_object_new_object();
	json_object_object_add(o, "job_id", json_object_new_int64(e.job_id));
	json_object_object_add(o, "status", json_object_new_string(e.status));
	resp_header(r, "Location", "%s/jobs/%lld", api->conf.api_base, (long long)e.job_id);
	resp_json(r, 202, o);
out:
	free(params_text);
}

void
hjobs_list(struct req *r)
{
	const char *st = req_query(r, "status");
	struct buf out = { 0 };
	enum job_status s;
	int64_t limit, offset;
	enum db_rc rc;

	if (st != NULL && *st == '\0')
		st = NULL; /* "?status=" (a form's empty choice) means every status */
	if (st != NULL && jobq_status_parse(st, &s) != 0) {
		resp_error(
		    r, 422, "status must be pending, running, completed, error or cancelled");
		return;
	}
	if (hmisc_query_int(r, "limit", JOBS_DEFAULT_LIMIT, 1, JOBS_MAX_LIMIT, &limit) != 0 ||
	    hmisc_query_int(r, "offset", 0, 0, INT_MAX, &offset) != 0)
		return;
	rc = jobq_list_text(r->db, st ? (int)s : -1, (int)limit, (int)offset, &out);
	if (rc != DB_OK)
		resp_db(r, rc, "jobs");
	else
		resp_send(r, 200, "application/json; charset=utf-8", out.data, out.len);
	buf_free(&out);
}

void
hjobs_get(struct req *r)
{
	struct job j = { 0 };
	int64_t id;
	enum db_rc rc;

	if (job_id_param(r, &id) != 0)
		return;
	rc = jobq_get(r->db, id, &j);
	if (rc != DB_OK) {
		resp_db(r, rc, "job");
		return;
	}
	resp_json(r, 200, jobq_job_json(&j));
	jobq_job_clear(&j);
}

void
hjobs_logs(struct req *r)
{
	struct buf out = { 0 };
	int64_t id, after, limit;
	enum db_rc rc;

	if (job_id_param(r, &id) != 0)
		return;
	if (hmisc_query_int(r, "after", 0, 0, INT64_MAX, &after) != 0 ||
	    hmisc_query_int(r, "limit", LOGS_DEFAULT_LIMIT, 1, LOGS_MAX_LIMIT, &limit) != 0)
		return;
	rc = jobq_logs_text(r->db, id, after, (int)limit, &out);
	if (rc != DB_OK)
		resp_db(r, rc, "job");
	else
		resp_send(r, 200, "application/json; charset=utf-8", out.data, out.len);
	buf_free(&out);
}

void
hjobs_cancel(struct req *r)
{
	enum jobq_cancel_result res;
	struct job j = { 0 };
	int64_t id;
	enum db_rc rc;

	if (job_id_param(r, &id) != 0)
		return;
	rc = jobq_cancel(r->db, id, &res, &j);
	if (rc != DB_OK) {
		resp_db(r, rc, "job");
		goto out;
	}
	switch (res) {
	case JOBQ_CANCELLED_NOW:
		log_info("job=%lld cancelled by %s", (long long)id, r->user.username);
		if (hmisc_events_on(r)) {
			hmisc_event(r, evt_job_status(id, "cancelled", j.worker_slot));
			publish_sistemas(r, &j);
		}
		hmisc_wake_after(r);
		resp_json(r, 200, jobq_job_json(&j));
		break;
	case JOBQ_CANCEL_REQUESTED:
		log_info("job=%lld cancel requested by %s", (long long)id, r->user.username);
		hmisc_wake_after(r);
		resp_json(r, 202, jobq_job_json(&j));
		break;
	case JOBQ_CANCEL_FINISHED:
	default:
		resp_error(
		    r, 409, "job %lld is already %s", (long long)id, jobq_status_name(j.status));
		break;
	}
out:
	jobq_job_clear(&j);
}
