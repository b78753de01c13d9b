/*
 * sist: the sistemas table. Reads return the API's JSON shape; writes are
 * small single-row updates.
 */
#include "sist.h"

#include <json-c/json.h>
#include <string.h>

#include "js.h"
#include "log.h"
#include "util.h"

#define SIST_COLS "id, nome, descricao, ativo, status, progresso, mensagem, ultima_execucao"

static const char *const statuses[] = { "IDLE", "PENDING", "RUNNING", "SUCCESS", "ERROR" };

int
sist_status_valid(const char *status)
{
	for (size_t i = 0; i < UTIL_ARRAY_LEN(statuses); i++)
		if (strcmp(status, statuses[i]) == 0)
			return 1;
	return 0;
}

static struct json_object *
row_json(sqlite3_stmt *st)
{
	struct json_object *o = json_object_new_object();
	const char *ue = (const char *)sqlite3_column_text(st, 7);
	int64_t ms = ue ? util_parse_iso8601(ue) : -1;

	json_object_object_add(
	    o, "id", json_object_new_string((const char *)sqlite3_column_text(st, 0)));
	json_object_object_add(
	    o, "nome", json_object_new_string((const char *)sqlite3_column_text(st, 1)));
	json_object_object_add(
	    o, "descricao", js_str_or_null((const char *)sqlite3_column_text(st, 2)));
	json_object_object_add(o, "ativo", json_object_new_boolean(sqlite3_column_int(st, 3) != 0));
	json_object_object_add(
	    o, "status", json_object_new_string((const char *)sqlite3_column_text(st, 4)));
	json_object_object_add(o, "progresso", json_object_new_int(sqlite3_column_int(st, 5)));
	json_object_object_add(
	    o, "mensagem", js_str_or_null((const char *)sqlite3_column_text(st, 6)));
	/* A time we cannot parse is shown as stored rather than lost. */
	json_object_object_add(
	    o, "ultima_execucao", ms >= 0 ? js_time_or_null(ms) : js_str_or_null(ue));
	return o;
}

enum db_rc
sist_list_json(struct db *db, struct json_object **out)
{
	static const char q[] = "SELECT " SIST_COLS " FROM sistemas ORDER BY id";
	sqlite3_stmt *st = db_stmt(db, q);
	struct json_object *arr;
	int r;

	*out = NULL;
	if (st == NULL)
		return DB_ERROR;
	arr = json_object_new_array();
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		json_object_array_add(arr, row_json(st));
	sqlite3_reset(st);
	if (r != SQLITE_DONE) {
		json_object_put(arr);
		return db_map(r);
	}
	*out = arr;
	return DB_OK;
}

enum db_rc
sist_get_json(struct db *db, const char *id, struct json_object **out)
{
	static const char q[] = "SELECT " SIST_COLS " FROM sistemas WHERE id = ?";
	sqlite3_stmt *st = db_stmt(db, q);
	int r;

	*out = NULL;
	if (st == NULL)
		return DB_ERROR;
	db_bind_text(st, 1, id);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		*out = row_json(st);
	sqlite3_reset(st);
	if (r == SQLITE_ROW)
		return DB_OK;
	return r == SQLITE_DONE ? DB_NOTFOUND : db_map(r);
}

enum db_rc
sist_put(
    struct db *db, const char *id, const char *nome, const char *descricao, int ativo, int *created)
{
	static const char q_ins[] =
	    "INSERT INTO sistemas (id, nome, descricao, ativo) VALUES (?, ?, ?, ?) "
	    "ON CONFLICT (id) DO NOTHING";
	static const char q_upd[] =
	    "UPDATE sistemas SET nome = ?, descricao = ?, ativo = ? WHERE id = ?";
	sqlite3_stmt *st;
	enum db_rc rc;

	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	if ((st = db_stmt(db, q_ins)) == NULL)
		goto fail;
	db_bind_text(st, 1, id);
	db_bind_text(st, 2, nome);
	db_bind_text(st, 3, descricao);
	sqlite3_bind_int(st, 4, ativo != 0);
	if ((rc = db_exec_stmt(db, st)) != DB_OK)
		goto fail;
	*created = sqlite3_changes(db_sqlite(db)) > 0;
	if (!*created) {
		if ((st = db_stmt(db, q_upd)) == NULL)
			goto fail;
		db_bind_text(st, 1, nome);
		db_bind_text(st, 2, descricao);
		sqlite3_bind_int(st, 3, ativo != 0);
		db_bind_text(st, 4, id);
		if ((rc = db_exec_stmt(db, st)) != DB_OK)
			goto fail;
	}
	return db_commit(db);
fail:
	if (rc == DB_OK)
		rc = DB_ERROR;
	db_rollback(db);
	return rc;
}

enum db_rc
sist_set_status(
    struct db *db, const char *id, const char *status, int progresso, const char *mensagem)
{
	static const char q[] =
	    "UPDATE sistemas SET status = ?, progresso = ?, mensagem = ? WHERE id = ?";
	sqlite3_stmt *st = db_stmt(db, q);

	if (st == NULL)
		return DB_ERROR;
	db_bind_text(st, 1, status);
	sqlite3_bind_int(st, 2, progresso);
	db_bind_text(st, 3, mensagem);
	db_bind_text(st, 4, id);
	return db_exec_stmt(db, st);
}
