/*
 * h_sistemas: the source systems: list, read, and the admin's create or
 * update (PUT is idempotent: the same body twice leaves the same row).
 * Ids are checked against ^[a-z0-9_-]{1,64}$ before they reach SQL, so a
 * traversal- or injection-looking id is a 422, never a lookup. Text
 * fields are bounded; json-c has already rejected invalid UTF-8 and NULs.
 */
#include <string.h>

#include <json-c/json.h>

#include "db.h"
#include "handlers.h"
#include "js.h"
#include "log.h"
#include "resp.h"
#include "sist.h"

#define NOME_MAX 200 /* bytes */
#define DESCRICAO_MAX 2000 /* bytes */

/* The {id} of a sistema route. Returns it, or NULL after a 422. */
static const char *
sist_id_param(struct req *r)
{
	const char *id = r->params[0];

	if (!util_valid_sistema_id(id, strlen(id))) {
		resp_error(r, 422, "sistema id must match ^[a-z0-9_-]{1,64}$");
		return NULL;
	}
	return id;
}

void
hsist_list(struct req *r)
{
	struct json_object *o = NULL;
	enum db_rc rc = sist_list_json(r->db, &o);

	if (rc != DB_OK) {
		resp_db(r, rc, "sistemas");
		return;
	}
	resp_json(r, 200, o);
}

void
hsist_get(struct req *r)
{
	struct json_object *o = NULL;
	const char *id;
	enum db_rc rc;

	if ((id = sist_id_param(r)) == NULL)
		return;
	rc = sist_get_json(r->db, id, &o);
	if (rc != DB_OK) {
		resp_db(r, rc, "sistema");
		return;
	}
	resp_json(r, 200, o);
}

/* The sistema as stored now, for the fields a PUT leaves out: *cur is
 * NULL when it does not exist yet (caller puts it). Returns DB_OK or an error. */
static enum db_rc
current(struct db *db, const char *id, struct json_object **cur)
{
	enum db_rc rc = sist_get_json(db, id, cur);

	if (rc == DB_NOTFOUND) {
		*cur = NULL;
		return DB_OK;
	}
	return rc;
}

/*
 * PUT creates or updates. A field left out keeps its stored value (on
 * creation: descricao null, ativo true); descricao null clears it.
 */
void
hsist_put(struct req *r)
{
	const char *id, *nome = NULL, *descricao = NULL;
	struct json_object *o = NULL, *cur = NULL, *d, *v;
	size_t nlen = 0, dlen = 0;
	int ativo = 1, created = 0, g, has_desc;
	enum db_rc rc;

	if ((id = sist_id_param(r)) == NULL)
		return;
	g = js_get_string(r->json, "nome", &nome, &nlen);
	if (g != 0 || nlen == 0 || nlen > NOME_MAX) {
		resp_error(r, 422, "nome is required: a string of 1 to %d bytes", NOME_MAX);
		return;
	}
	has_desc = json_object_object_get_ex(r->json, "descricao", &d);
	if (has_desc && d != NULL) {
		if (js_get_string(r->json, "descricao", &descricao, &dlen) != 0 ||
		    dlen > DESCRICAO_MAX) {
			resp_error(r, 422, "descricao must be null or a string of at most %d bytes",
			    DESCRICAO_MAX);
			return;
		}
	}
	g = js_get_bool(r->json, "ativo", &ativo);
	if (g < 0) {
		resp_error(r, 422, "ativo must be true or false");
		return;
	}
	if ((g == 1 || !has_desc) && (rc = current(r->db, id, &cur)) != DB_OK) {
		resp_db(r, rc, "sistema");
		return;
	}
	if (cur != NULL && g == 1 && json_object_object_get_ex(cur, "ativo", &v))
		ativo = json_object_get_boolean(v);
	if (cur != NULL && !has_desc && json_object_object_get_ex(cur, "descricao", &v) &&
	    json_object_is_type(v, json_type_string))
		descricao = json_object_get_string(v);
	rc = sist_put(r->db, id, nome, descricao, ativo, &created);
	if (cur != NULL)
		json_object_put(cur);
	if (rc != DB_OK) {
		resp_db(r, rc, "sistema");
		return;
	}
	log_info("sistema %s %s by %s", id, created ? "created" : "updated", r->user.username);
	rc = sist_get_json(r->db, id, &o);
	if (rc != DB_OK) {
		resp_db(r, rc, "sistema");
		return;
	}
	resp_json(r, 200, o);
}
