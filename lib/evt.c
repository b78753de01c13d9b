/*
 * evt: the four live event types of API.md, built with json-c so every
 * string is escaped correctly, each stamped with this process's instance id.
 */
#include "evt.h"

#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>

#include "js.h"
#include "util.h"

static char *
wrap(const char *type, struct json_object *payload)
{
	struct json_object *o = json_object_new_object();
	char *s;

	json_object_object_add(o, "type", json_object_new_string(type));
	json_object_object_add(o, "payload", payload);
	json_object_object_add(o, "source_instance", json_object_new_string(util_instance_id()));
	s = js_dump(o);
	json_object_put(o);
	return s;
}

char *
evt_log(int64_t job_id, int slot_id, int64_t seq, int64_t ts_ms, const char *level,
    const char *sistema, const char *mensagem)
{
	struct json_object *p = json_object_new_object();

	json_object_object_add(p, "job_id", json_object_new_int64(job_id));
	json_object_object_add(p, "slot_id", slot_id >= 0 ? json_object_new_int(slot_id) : NULL);
	json_object_object_add(p, "seq", json_object_new_int64(seq));
	json_object_object_add(p, "ts", js_time_or_null(ts_ms));
	json_object_object_add(p, "level", json_object_new_string(level));
	json_object_object_add(p, "sistema", json_object_new_string(sistema));
	json_object_object_add(p, "mensagem", json_object_new_string(mensagem));
	return wrap("log", p);
}

char *
evt_status(const char *sistema_id, const char *status, int progresso, const char *mensagem)
{
	struct json_object *p = json_object_new_object();

	json_object_object_add(p, "sistema_id", json_object_new_string(sistema_id));
	json_object_object_add(p, "status", json_object_new_string(status));
	json_object_object_add(p, "progresso", json_object_new_int(progresso));
	json_object_object_add(p, "mensagem", js_str_or_null(mensagem));
	return wrap("status", p);
}

char *
evt_job_complete(int64_t job_id, const char *status, double duracao_segundos)
{
	struct json_object *p = json_object_new_object();

	json_object_object_add(p, "job_id", json_object_new_int64(job_id));
	json_object_object_add(p, "status", json_object_new_string(status));
	char d[32];
	util_fmt_seconds(llround(duracao_segundos * 1000.0), d);
	json_object_object_add(
	    p, "duracao_segundos", json_object_new_double_s(duracao_segundos, d));
	return wrap("job_complete", p);
}

char *
evt_job_status(int64_t job_id, const char *status, int worker_slot)
{
	struct json_object *p = json_object_new_object();

	json_object_object_add(p, "job_id", json_object_new_int64(job_id));
	json_object_object_add(p, "status", json_object_new_string(status));
	json_object_object_add(
	    p, "worker_slot", worker_slot >= 0 ? json_object_new_int(worker_slot) : NULL);
	return wrap("job_status", p);
}
