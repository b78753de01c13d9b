/*
 * h_misc: health, Prometheus metrics, pool status, and the small helpers
 * other handlers share (bounded event publishing, query integers). Health
 * and metrics read only: they are what a load balancer or a scraper hits
 * every few seconds, so each is a handful of indexed reads.
 */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "conn.h"
#include "db.h"
#include "handlers.h"
#include "jobq.h"
#include "js.h"
#include "log.h"
#include "pub.h"
#include "resp.h"
#include "route.h"

#define HEALTH_REDIS_WAIT_MS 300

/* job duration histogram bounds, s */
static const double dur_bounds[] = { 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200 };

static int
flush_ms(const struct api *api)
{
	return (int)(api->conf.redis_socket_timeout * 1000.0);
}

/* Finishes a pending connect (a fresh process starts connecting in
 * pub_open), waiting at most wait_ms: events published before it is up
 * would be dropped. */
static void
pub_ready(struct api *api, int wait_ms)
{
	(void)pub_tick(api->pub);
	if (pub_state(api->pub) == PUB_CONNECTING)
		(void)pub_flush(api->pub, wait_ms);
}

int
hmisc_events_on(const struct req *r)
{
	return r->api->conf.redis_enabled;
}

void
hmisc_event(struct req *r, char *msg)
{
	if (msg == NULL)
		return;
	r->events = xrealloc(r->events, (r->nevents + 1) * sizeof(*r->events));
	r->events[r->nevents++] = msg;
}

void
hmisc_wake_after(struct req *r)
{
	if (hmisc_events_on(r))
		r->wake = 1;
	else
		conn_wake(r->api);
}

/* pub_mu, waiting until deadline (mono ms) at most. Returns 0 or -1. */
static int
lock_pub(struct api *api, int64_t deadline)
{
	struct timespec ts = util_abstime(deadline);

	return pthread_mutex_timedlock(&api->pub_mu, &ts) == 0 ? 0 : -1;
}

/*
 * After the answer and outside the connection: a Redis that does not
 * answer (a connect that hangs, a full socket) must delay neither the
 * other requests' use of the database nor this request past the timeout.
 * The publisher is one per process, so threads take turns (pub_mu); a turn
 * not had by the deadline drops the events, as a slow Redis would.
 */
void
hmisc_send_events(struct req *r)
{
	struct api *api = r->api;
	int64_t deadline;
	size_t i;

	if (r->nevents == 0) /* most requests */
		goto wake;
	/* the answer is complete: it need not wait for Redis (the web server
	 * passes it on with its Content-Length; the end of the request, after
	 * the events, only frees the connection) */
	req_flush(r);
	deadline = util_mono_ms() + flush_ms(api);
	if (lock_pub(api, deadline) != 0) {
		log_debug("%zu event(s) dropped: another request is waiting on redis", r->nevents);
	} else {
		int left = (int)(deadline - util_mono_ms());
		pub_ready(api, left > 0 ? left : 0);
		for (i = 0; i < r->nevents; i++)
			if (pub_publish(api->pub, r->events[i]) != 0)
				log_debug("event dropped (redis %s)", pub_state_name(api->pub));
		/* published, not only sent, before the workers are woken:
		 * bytes in our socket (or a proxy's) could still reach Redis
		 * after a worker's "running" */
		left = (int)(deadline - util_mono_ms());
		if (pub_sync(api->pub, left > 0 ? left : 0) != 0)
			log_warnx("events not delivered within %d ms", flush_ms(api));
		pthread_mutex_unlock(&api->pub_mu);
	}
	for (i = 0; i < r->nevents; i++)
		free(r->events[i]);
	free(r->events);
	r->events = NULL;
	r->nevents = 0;
wake:
	if (r->wake)
		conn_wake(api);
	r->wake = 0;
}

int
hmisc_query_int(struct req *r, const char *key, int64_t def, int64_t min, int64_t max, int64_t *out)
{
	const char *v = req_query(r, key);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (util_parse_i64(v, min, max, out) != 0) {
		resp_error(r, 422, "%s must be an integer from %lld to %lld", key, (long long)min,
		    (long long)max);
		return -1;
	}
	return 0;
}

/* Seconds without a heartbeat after which a worker counts as stale. */
static int
stale_s(const struct api *api)
{
	int s = api->conf.lease_interval * 3;

	return s < 10 ? 10 : s;
}

void
hmisc_health(struct req *r)
{
	struct api *api = r->api;
	enum worker_state ws = WORKER_ABSENT;
	struct json_object *o;
	const char *redis = "disabled";
	int db_ok = 0;

	if (route_db_ensure(api) == 0 && jobq_worker_state(api->db, stale_s(api), &ws) == DB_OK)
		db_ok = 1;
	/* a health probe must answer fast even when Redis is unreachable (or
	 * another request is waiting on it: then it counts as down) */
	if (api->conf.redis_enabled) {
		int wait =
		    flush_ms(api) < HEALTH_REDIS_WAIT_MS ? flush_ms(api) : HEALTH_REDIS_WAIT_MS;
		if (lock_pub(api, util_mono_ms() + wait) == 0) {
			pub_ready(api, wait);
			redis = pub_state_name(api->pub);
			pthread_mutex_unlock(&api->pub_mu);
		} else {
			redis = "down";
		}
	}
	o = json_object_new_object();
	json_object_object_add(o, "status", json_object_new_string(db_ok ? "ok" : "error"));
	json_object_object_add(o, "db", json_object_new_string(db_ok ? "ok" : "down"));
	json_object_object_add(o, "redis", json_object_new_string(redis));
	json_object_object_add(o, "worker", json_object_new_string(jobq_worker_state_name(ws)));
	json_object_object_add(o, "version", json_object_new_string(ETL_VERSION));
	if (!db_ok)
		resp_header(r, "Retry-After", "5");
	resp_json(r, db_ok ? 200 : 503, o);
}

/* Sum of the workers' publishing counters (rows of live workers). */
static enum db_rc
event_counters(struct db *db, int64_t *published, int64_t *dropped)
{
	static const char q[] = "SELECT COALESCE(SUM(events_published), 0), "
	                        "COALESCE(SUM(events_dropped), 0) FROM workers";
	sqlite3_stmt *st = db_stmt(db, q);
	int rc;

	*published = *dropped = 0;
	if (st == NULL)
		return DB_ERROR;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*published = sqlite3_column_int64(st, 0);
		*dropped = sqlite3_column_int64(st, 1);
		rc = SQLITE_DONE;
	}
	sqlite3_reset(st);
	return db_map(rc);
}

/* ETL_METRICS_TOKEN, when set, guards /api/metrics. Returns 0 or -1 (401 sent). */
static int
metrics_auth(struct req *r)
{
	const char *want = r->api->conf.metrics_token, *h;
	size_t n;

	if (want == NULL || *want == '\0')
		return 0;
	h = req_env(r, "HTTP_AUTHORIZATION");
	if (h == NULL)
		h = req_env(r, "REDIRECT_HTTP_AUTHORIZATION");
	n = strlen(want);
	if (h == NULL || strncmp(h, "Bearer ", 7) != 0 || strlen(h + 7) != n ||
	    !util_ct_equal(h + 7, want, n)) {
		resp_error(r, 401, "metrics token required");
		return -1;
	}
	return 0;
}

void
hmisc_metrics(struct req *r)
{
	struct api *api = r->api;
	int64_t counts[JOB__MAX], buckets[UTIL_ARRAY_LEN(dur_bounds)], n = 0, pubd = 0, drop = 0;
	int max = api->conf.max_concurrent_jobs, busy = 0;
	struct slot_info *slots = NULL;
	enum worker_state ws = WORKER_ABSENT;
	struct buf b = { 0 };
	double sum = 0;
	enum db_rc rc;

	if (metrics_auth(r) != 0)
		return;
	if (route_db_ensure(api) != 0) {
		resp_error(r, 503, "database unavailable");
		return;
	}
	slots = xcalloc((size_t)max, sizeof(*slots));
	if ((rc = jobq_counts(api->db, counts)) != DB_OK ||
	    (rc = jobq_slots(api->db, max, slots)) != DB_OK ||
	    (rc = jobq_duration_hist(
	         api->db, dur_bounds, UTIL_ARRAY_LEN(dur_bounds), buckets, &sum, &n)) != DB_OK ||
	    (rc = event_counters(api->db, &pubd, &drop)) != DB_OK ||
	    (rc = jobq_worker_state(api->db, stale_s(api), &ws)) != DB_OK) {
		resp_db(r, rc, "metrics");
		goto out;
	}
	for (int i = 0; i < max; i++)
		busy += slots[i].job_id >= 0;

	buf_puts(&b, "# HELP etl_jobs Jobs in the database by status.\n# TYPE etl_jobs gauge\n");
	for (int s = 0; s < JOB__MAX; s++)
		buf_printf(&b, "etl_jobs{status=\"%s\"} %lld\n",
		    jobq_status_name((enum job_status)s), (long long)counts[s]);
	buf_printf(&b,
	    "# HELP etl_queue_depth Jobs waiting to start.\n# TYPE etl_queue_depth gauge\n"
	    "etl_queue_depth %lld\n",
	    (long long)counts[JOB_PENDING]);
	buf_printf(&b,
	    "# HELP etl_slots_busy Worker slots running a job.\n# TYPE etl_slots_busy gauge\n"
	    "etl_slots_busy %d\n",
	    busy);
	buf_printf(&b,
	    "# HELP etl_slots_total Worker slots (ETL_MAX_CONCURRENT_JOBS).\n"
	    "# TYPE etl_slots_total gauge\netl_slots_total %d\n",
	    max);
	buf_printf(&b,
	    "# HELP etl_worker_alive 1 if a worker's heartbeat is fresh.\n"
	    "# TYPE etl_worker_alive gauge\netl_worker_alive %d\n",
	    ws == WORKER_ALIVE);
	buf_puts(&b, "# HELP etl_job_duration_seconds Run time of finished jobs.\n"
	             "# TYPE etl_job_duration_seconds histogram\n");
	for (size_t i = 0; i < UTIL_ARRAY_LEN(dur_bounds); i++)
		buf_printf(&b, "etl_job_duration_seconds_bucket{le=\"%g\"} %lld\n", dur_bounds[i],
		    (long long)buckets[i]);
	buf_printf(&b, "etl_job_duration_seconds_bucket{le=\"+Inf\"} %lld\n", (long long)n);
	buf_printf(&b, "etl_job_duration_seconds_sum %.3f\netl_job_duration_seconds_count %lld\n",
	    sum, (long long)n);
	buf_printf(&b,
	    "# HELP etl_events_published_total Events the workers published to Redis.\n"
	    "# TYPE etl_events_published_total counter\netl_events_published_total %lld\n",
	    (long long)pubd);
	buf_printf(&b,
	    "# HELP etl_events_dropped_total Events the workers dropped (Redis down or slow).\n"
	    "# TYPE etl_events_dropped_total counter\netl_events_dropped_total %lld\n",
	    (long long)drop);
	resp_send(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
out:
	buf_free(&b);
	free(slots);
}

void
hmisc_pool(struct req *r)
{
	struct api *api = r->api;
	int max = api->conf.max_concurrent_jobs;
	struct slot_info *slots = xcalloc((size_t)max, sizeof(*slots));
	enum worker_state ws = WORKER_ABSENT;
	struct json_object *o = NULL, *arr;
	enum db_rc rc;

	if ((rc = jobq_slots(r->db, max, slots)) != DB_OK ||
	    (rc = jobq_worker_state(r->db, stale_s(api), &ws)) != DB_OK) {
		resp_db(r, rc, "pool");
		goto out;
	}
	o = json_object_new_object();
	if (max == 1) {
		json_object_object_add(o, "mode", json_object_new_string("single"));
		json_object_object_add(o, "current_job_id",
		    slots[0].job_id >= 0 ? json_object_new_int64(slots[0].job_id) : NULL);
		resp_json(r, 200, o);
		goto out;
	}
	json_object_object_add(o, "mode", json_object_new_string("pool"));
	json_object_object_add(o, "max_workers", json_object_new_int(max));
	json_object_object_add(o, "running", json_object_new_boolean(ws == WORKER_ALIVE));
	arr = json_object_new_array_ext(max);
	for (int i = 0; i < max; i++) {
		struct json_object *s = json_object_new_object();
		int busy = slots[i].job_id >= 0;
		json_object_object_add(s, "slot_id", json_object_new_int(i));
		json_object_object_add(
		    s, "status", json_object_new_string(busy ? "running" : "idle"));
		json_object_object_add(
		    s, "job_id", busy ? json_object_new_int64(slots[i].job_id) : NULL);
		json_object_object_add(
		    s, "started_at", js_time_or_null(busy ? slots[i].started_ms : -1));
		json_object_array_add(arr, s);
	}
	json_object_object_add(o, "slots", arr);
	resp_json(r, 200, o);
out:
	free(slots);
}
