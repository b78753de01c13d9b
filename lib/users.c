/*
 * users: accounts and the failed-login counter. Passwords only ever pass
 * through pw_hash(); the counter lives in SQLite so every etl-api process
 * sees the same count.
 */
#include "users.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "js.h"
#include "log.h"
#include "pw.h"
#include "util.h"

static const char *const role_names[ROLE__MAX] = { "viewer", "operator", "admin" };

const char *
users_role_name(enum role r)
{
	return (r >= 0 && r < ROLE__MAX) ? role_names[r] : "viewer";
}

int
users_role_parse(const char *s, enum role *out)
{
	for (int i = 0; i < ROLE__MAX; i++)
		if (strcmp(s, role_names[i]) == 0) {
			*out = (enum role)i;
			return 0;
		}
	return -1;
}

void
users_clear(struct user *u)
{
	if (u == NULL)
		return;
	free(u->password_hash);
	memset(u, 0, sizeof(*u));
}

/* users_get and users_get_auth: q selects username, role, created_at and,
 * when with_hash, password_hash. */
static enum db_rc
get(struct db *db, const char *q, const char *username, struct user *out, int with_hash)
{
	sqlite3_stmt *st = db_stmt(db, q);
	int r;

	memset(out, 0, sizeof(*out));
	if (st == NULL)
		return DB_ERROR;
	db_bind_text(st, 1, username);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		const char *role = (const char *)sqlite3_column_text(st, 1);
		snprintf(out->username, sizeof(out->username), "%s",
		    (const char *)sqlite3_column_text(st, 0));
		/* An unknown role in the table (hand edits) gets the least rights. */
		if (role == NULL || users_role_parse(role, &out->role) == -1)
			out->role = ROLE_VIEWER;
		const char *c = (const char *)sqlite3_column_text(st, 2);
		out->created_ms = c ? util_parse_iso8601(c) : -1;
		if (with_hash)
			out->password_hash = db_col_strdup(st, 3);
	}
	sqlite3_reset(st);
	if (r == SQLITE_ROW)
		return DB_OK;
	return r == SQLITE_DONE ? DB_NOTFOUND : db_map(r);
}

enum db_rc
users_get(struct db *db, const char *username, struct user *out)
{
	return get(db,
	    "SELECT username, role, created_at, password_hash FROM users WHERE username = ?",
	    username, out, 1);
}

enum db_rc
users_get_auth(struct db *db, const char *username, struct user *out)
{
	return get(db, "SELECT username, role, created_at FROM users WHERE username = ?", username,
	    out, 0);
}

enum db_rc
users_create_hashed(struct db *db, const char *username, const char *hash, enum role role)
{
	static const char q[] =
	    "INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?)";
	sqlite3_stmt *st;
	char now[UTIL_ISO_LEN];

	util_iso8601(util_now_ms(), now);
	if ((st = db_stmt(db, q)) == NULL)
		return DB_ERROR;
	db_bind_text(st, 1, username);
	db_bind_text(st, 2, hash);
	db_bind_text(st, 3, users_role_name(role));
	db_bind_text(st, 4, now);
	return db_exec_stmt(db, st);
}

enum db_rc
users_create(struct db *db, const char *username, const char *password, enum role role)
{
	char *hash;
	enum db_rc rc;

	if ((hash = pw_hash(password)) == NULL)
		return DB_ERROR;
	rc = users_create_hashed(db, username, hash, role);
	pw_hash_free(hash);
	return rc;
}

enum db_rc
users_delete(struct db *db, const char *username)
{
	static const char q[] = "DELETE FROM users WHERE username = ?";
	sqlite3_stmt *st = db_stmt(db, q);
	enum db_rc rc;

	if (st == NULL)
		return DB_ERROR;
	db_bind_text(st, 1, username);
	if ((rc = db_exec_stmt(db, st)) != DB_OK)
		return rc;
	return sqlite3_changes(db_sqlite(db)) ? DB_OK : DB_NOTFOUND;
}

enum db_rc
users_set_password(struct db *db, const char *username, const char *password)
{
	static const char q[] = "UPDATE users SET password_hash = ? WHERE username = ?";
	sqlite3_stmt *st;
	char *hash;
	enum db_rc rc;

	if ((hash = pw_hash(password)) == NULL)
		return DB_ERROR;
	if ((st = db_stmt(db, q)) == NULL) {
		pw_hash_free(hash);
		return DB_ERROR;
	}
	db_bind_text(st, 1, hash);
	db_bind_text(st, 2, username);
	rc = db_exec_stmt(db, st);
	pw_hash_free(hash);
	if (rc == DB_OK && sqlite3_changes(db_sqlite(db)) == 0)
		rc = DB_NOTFOUND;
	return rc;
}

enum db_rc
users_list_json(struct db *db, struct json_object **out)
{
	static const char q[] = "SELECT username, role, created_at FROM users ORDER BY username";
	sqlite3_stmt *st = db_stmt(db, q);
	struct json_object *arr;
	int r;

	*out = NULL;
	if (st == NULL)
		return DB_ERROR;
	arr = json_object_new_array();
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		struct json_object *o = json_object_new_object();
		const char *c = (const char *)sqlite3_column_text(st, 2);
		enum role role;
		if (users_role_parse((const char *)sqlite3_column_text(st, 1), &role) == -1)
			role = ROLE_VIEWER;
		json_object_object_add(o, "username",
		    json_object_new_string((const char *)sqlite3_column_text(st, 0)));
		json_object_object_add(o, "role", json_object_new_string(users_role_name(role)));
		json_object_object_add(
		    o, "created_at", js_time_or_null(c ? util_parse_iso8601(c) : -1));
		json_object_array_add(arr, o);
	}
	sqlite3_reset(st);
	if (r != SQLITE_DONE) {
		json_object_put(arr);
		return db_map(r);
	}
	*out = arr;
	return DB_OK;
}

enum db_rc
users_count_admins(struct db *db, int64_t *n)
{
	static const char q[] = "SELECT count(*) FROM users WHERE role = 'admin'";
	sqlite3_stmt *st = db_stmt(db, q);
	int r;

	if (st == NULL)
		return DB_ERROR;
	r = sqlite3_step(st);
	*n = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return r == SQLITE_ROW ? DB_OK : db_map(r);
}

enum db_rc
users_failures(
    struct db *db, const char *username, int window_s, int64_t *count, int64_t *oldest_ms)
{
	static const char q[] =
	    "SELECT count(*), min(ts) FROM login_failures WHERE username = ? AND ts > ?";
	sqlite3_stmt *st = db_stmt(db, q);
	int r;

	*count = 0;
	*oldest_ms = -1;
	if (st == NULL)
		return DB_ERROR;
	db_bind_text(st, 1, username);
	sqlite3_bind_int64(st, 2, util_now_ms() - (int64_t)window_s * 1000);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		*count = sqlite3_column_int64(st, 0);
		if (sqlite3_column_type(st, 1) != SQLITE_NULL)
			*oldest_ms = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return r == SQLITE_ROW ? DB_OK : db_map(r);
}

enum db_rc
users_login_attempt(struct db *db, const char *username, int window_s, int max, int *admitted,
    int64_t *count, int64_t *oldest_ms)
{
	static const char q_ins[] = "INSERT INTO login_failures (username, ts) VALUES (?, ?)";
	/* Old rows are trimmed as we go: the table stays small. */
	static const char q_trim[] = "DELETE FROM login_failures WHERE ts < ?";
	sqlite3_stmt *st;
	enum db_rc rc;
	int64_t now = util_now_ms();

	*admitted = 0;
	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	if ((rc = users_failures(db, username, window_s, count, oldest_ms)) != DB_OK)
		goto fail;
	if (*count >= max) {
		db_rollback(db);
		return DB_OK;
	}
	if ((st = db_stmt(db, q_ins)) == NULL) {
		rc = DB_ERROR;
		goto fail;
	}
	db_bind_text(st, 1, username);
	sqlite3_bind_int64(st, 2, now);
	if ((rc = db_exec_stmt(db, st)) != DB_OK)
		goto fail;
	if ((st = db_stmt(db, q_trim)) == NULL) {
		rc = DB_ERROR;
		goto fail;
	}
	sqlite3_bind_int64(st, 1, now - 86400 * 1000LL);
	if ((rc = db_exec_stmt(db, st)) != DB_OK)
		goto fail;
	if ((rc = db_commit(db)) == DB_OK)
		*admitted = 1;
	return rc;
fail:
	db_rollback(db);
	return rc;
}

enum db_rc
users_clear_failures(struct db *db, const char *username)
{
	static const char q[] = "DELETE FROM login_failures WHERE username = ?";
	sqlite3_stmt *st = db_stmt(db, q);

	if (st == NULL)
		return DB_ERROR;
	db_bind_text(st, 1, username);
	return db_exec_stmt(db, st);
}
