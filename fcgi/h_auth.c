/*
 * h_auth: tokens, login, the current user and user management, and the
 * first admin at start. A token proves who signed in (lib/tok.h), but the
 * role and the account's existence are read from the database on every
 * request, so deleting a user or changing a role takes effect at once.
 * (An enqueue reads them inside its write transaction: hauth_defer_account.)
 * Failed logins are counted in SQLite (lib/users.h) so the limit holds
 * across every etl-api process; the login answer is the same, and takes
 * about the same time, whether or not the user exists.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "conn.h"
#include "db.h"
#include "handlers.h"
#include "js.h"
#include "log.h"
#include "pw.h"
#include "resp.h"
#include "route.h"
#include "tok.h"
#include "users.h"

#define LOGIN_MAX_FAILURES 5
#define LOGIN_WINDOW_S (15 * 60)

int
hauth_token(struct req *r)
{
	struct api *api = r->api;
	const char *h = req_env(r, "HTTP_AUTHORIZATION");
	enum tok_rc trc;
	size_t len;

	/* mod_fcgid behind a rewrite may hand it over as REDIRECT_HTTP_AUTHORIZATION */
	if (h == NULL || *h == '\0')
		h = req_env(r, "REDIRECT_HTTP_AUTHORIZATION");
	if (h == NULL || *h == '\0') {
		resp_error(r, 401, "not authenticated");
		return -1;
	}
	if (strncasecmp(h, "Bearer ", 7) != 0) {
		resp_error(r, 401, "malformed authorization header");
		return -1;
	}
	h += 7;
	while (*h == ' ')
		h++;
	len = strlen(h);
	while (len > 0 && (h[len - 1] == ' ' || h[len - 1] == '\t'))
		len--;
	if (len == 0 || len > TOK_MAX_LEN) {
		resp_error(r, 401, "malformed token");
		return -1;
	}
	trc = tok_verify_cached(
	    r->tokc, api->conf.secret, api->secret_len, h, len, util_now_ms() / 1000, &r->claims);
	switch (trc) {
	case TOK_OK:
		return 0;
	case TOK_EXPIRED:
		resp_error(r, 401, "token expired");
		return -1;
	case TOK_BAD_SIGNATURE:
		resp_error(r, 401, "invalid token");
		return -1;
	case TOK_MALFORMED:
	default:
		resp_error(r, 401, "malformed token");
		return -1;
	}
}

/* What the account (read on db) says of verified claims. */
enum verdict { ACCOUNT_OK, ACCOUNT_GONE, ACCOUNT_PREDATES, ACCOUNT_ROLE, ACCOUNT_DB };

static enum verdict
account_check(
    struct db *db, const struct tok_claims *c, int min_role, struct user *u, enum db_rc *rc)
{
	*rc = users_get_auth(db, c->sub, u);
	if (*rc == DB_NOTFOUND)
		return ACCOUNT_GONE;
	if (*rc != DB_OK)
		return ACCOUNT_DB;
	/* a token from before the account was (re)created names another account */
	if (u->created_ms >= 0 && c->iat < u->created_ms / 1000)
		return ACCOUNT_PREDATES;
	return (int)u->role < min_role ? ACCOUNT_ROLE : ACCOUNT_OK;
}

int
hauth_account(struct req *r, struct db *db, int min_role)
{
	enum db_rc rc;
	enum verdict v = account_check(db, &r->claims, min_role, &r->user, &rc);

	r->account_pending = 0;
	r->authed = v == ACCOUNT_OK || v == ACCOUNT_ROLE;
	switch (v) {
	case ACCOUNT_OK:
		return 0;
	case ACCOUNT_GONE:
		resp_error(r, 401, "user no longer exists");
		break;
	case ACCOUNT_PREDATES:
		users_clear(&r->user);
		resp_error(r, 401, "invalid token");
		break;
	case ACCOUNT_ROLE:
		resp_error(r, 403, "role %s may not do this", users_role_name(r->user.role));
		break;
	case ACCOUNT_DB:
		resp_db(r, rc, "user");
		break;
	}
	return -1;
}

enum db_rc
hauth_account_holds(struct db *db, const struct tok_claims *c, int min_role)
{
	struct user u;
	enum db_rc rc;
	enum verdict v = account_check(db, c, min_role, &u, &rc);

	users_clear(&u);
	return v == ACCOUNT_OK ? DB_OK : v == ACCOUNT_DB ? rc : DB_NOTFOUND;
}

int
hauth_defer_account(struct req *r, int min_role)
{
	enum role role;

	if (users_role_parse(r->claims.role, &role) != 0 || (int)role < min_role)
		return 0; /* refused, or odd: the account decides, now */
	snprintf(r->user.username, sizeof(r->user.username), "%s", r->claims.sub);
	r->user.role = role;
	r->user.created_ms = -1;
	r->authed = 1;
	r->account_pending = 1;
	return 1;
}

int
hauth_bootstrap_admin(struct api *api)
{
	const char *name = api->conf.admin_user, *pass = api->conf.admin_password;
	int64_t n = 0;
	enum db_rc rc;

	if (name == NULL || *name == '\0')
		return 0;
	if (pass == NULL || strlen(pass) < PW_MIN_LEN || strlen(pass) > PW_MAX_LEN) {
		log_warnx(
		    "ETL_ADMIN_USER set but ETL_ADMIN_PASSWORD is missing or not %d..%d bytes",
		    PW_MIN_LEN, PW_MAX_LEN);
		return -1;
	}
	if (!util_valid_username(name, strlen(name))) {
		log_warnx("ETL_ADMIN_USER must match ^[A-Za-z0-9_.-]{1,64}$");
		return -1;
	}
	/* Check and create under the write lock: a process that finds no admin
	 * creates it before any other process (lighttpd starts several at once)
	 * can see an empty table, answer /api/health and refuse the login. */
	if ((rc = db_begin(api->db)) != DB_OK) {
		log_warnx("first admin: cannot lock the database");
		return -1;
	}
	rc = users_count_admins(api->db, &n);
	if (rc != DB_OK) {
		log_warnx("counting admins: %s", db_errmsg(api->db));
		db_rollback(api->db);
		return -1;
	}
	if (n > 0) {
		db_rollback(api->db);
		return 0;
	}
	rc = users_create(api->db, name, pass, ROLE_ADMIN);
	if (rc == DB_OK)
		rc = db_commit(api->db);
	else
		db_rollback(api->db);
	if (rc == DB_CONFLICT) {
		/* another process started at the same time made it, or the name
		 * belongs to a non-admin account (left unchanged) */
		log_info("first admin: user %s exists already", name);
		return 0;
	}
	if (rc != DB_OK) {
		log_warnx("creating the first admin: %s", db_errmsg(api->db));
		return -1;
	}
	log_info("created the first admin user %s", name);
	return 0;
}

static struct json_object *
user_json(const struct user *u, int with_created)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "username", json_object_new_string(u->username));
	json_object_object_add(o, "role", json_object_new_string(users_role_name(u->role)));
	if (with_created)
		json_object_object_add(o, "created_at", js_time_or_null(u->created_ms));
	return o;
}

/* Gets a required string member; returns it, or NULL after a 422. */
static const char *
need_string(struct req *r, const char *key, size_t *len)
{
	const char *s = NULL;
	int rc = js_get_string(r->json, key, &s, len);

	if (rc == 1)
		resp_error(r, 422, "%s is required", key);
	else if (rc != 0)
		resp_error(r, 422, "%s must be a string", key);
	return rc == 0 ? s : NULL;
}

/* Checks a password (hash NULL: against a dummy, for the same time)
 * without holding the connection: yescrypt is slow on purpose, and the
 * process's other requests must not wait for it. */
static int
password_ok(struct req *r, const char *pass, const char *hash)
{
	int ok = 0;

	conn_give(r->api);
	if (hash != NULL)
		ok = pw_verify(pass, hash);
	else
		pw_dummy_verify(pass);
	conn_retake(r->api);
	return ok;
}

/* Hashes a new password the same way, without the connection (about 30
 * ms: every write of the process would wait that long). Returns the hash
 * (pw_hash_free it), or NULL after an answer. */
static char *
password_hash(struct req *r, const char *pass)
{
	char *hash;

	conn_give(r->api);
	hash = pw_hash(pass);
	conn_retake(r->api);
	if (hash == NULL)
		resp_error(r, 500, "internal error");
	return hash;
}

void
hauth_login(struct req *r)
{
	struct api *api = r->api;
	struct user u = { 0 };
	const char *name, *pass;
	size_t nlen, plen;
	int64_t fails = 0, oldest = -1, now;
	enum db_rc rc;
	char *tok = NULL;
	int ok, admitted;

	if ((name = need_string(r, "username", &nlen)) == NULL ||
	    (pass = need_string(r, "password", &plen)) == NULL)
		return;
	if (!util_valid_username(name, nlen) || plen > PW_MAX_LEN) {
		/* not a name anyone can have: same answer and time as a wrong password */
		(void)password_ok(r, plen > PW_MAX_LEN ? "" : pass, NULL);
		resp_error(r, 401, "wrong username or password");
		return;
	}
	/* counted before the password is checked (users.h says why) */
	rc = users_login_attempt(
	    r->db, name, LOGIN_WINDOW_S, LOGIN_MAX_FAILURES, &admitted, &fails, &oldest);
	if (rc != DB_OK) {
		resp_db(r, rc, "user");
		return;
	}
	now = util_now_ms();
	if (!admitted) {
		int64_t wait_ms = oldest + LOGIN_WINDOW_S * 1000LL - now;
		int64_t wait_s = wait_ms > 0 ? (wait_ms + 999) / 1000 : 1;
		resp_header(r, "Retry-After", "%lld", (long long)wait_s);
		resp_error(r, 429, "too many failed logins; retry later");
		return;
	}
	rc = users_get(r->db, name, &u);
	if (rc == DB_NOTFOUND) {
		ok = password_ok(r, pass, NULL);
	} else if (rc != DB_OK) {
		resp_db(r, rc, "user");
		return;
	} else {
		ok = password_ok(r, pass, u.password_hash);
	}
	if (!ok) { /* the attempt stays counted as a failure */
		users_clear(&u);
		log_info("login failed for %s", name);
		resp_error(r, 401, "wrong username or password");
		return;
	}
	if ((rc = users_clear_failures(r->db, name)) != DB_OK)
		log_warnx("clearing failed logins of %s: rc=%d", name, (int)rc);
	tok = tok_sign(api->conf.secret, api->secret_len, u.username, users_role_name(u.role),
	    now / 1000, api->conf.token_ttl);
	{
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "access_token", json_object_new_string(tok));
		json_object_object_add(o, "token_type", json_object_new_string("bearer"));
		json_object_object_add(o, "expires_in", json_object_new_int(api->conf.token_ttl));
		json_object_object_add(o, "user", user_json(&u, 0));
		resp_json(r, 200, o);
	}
	log_info("login %s role=%s", u.username, users_role_name(u.role));
	free(tok);
	users_clear(&u);
}

void
hauth_me(struct req *r)
{
	resp_json(r, 200, user_json(&r->user, 0));
}

void
hauth_users_list(struct req *r)
{
	struct json_object *o = NULL;
	enum db_rc rc = users_list_json(r->db, &o);

	if (rc != DB_OK) {
		resp_db(r, rc, "users");
		return;
	}
	resp_json(r, 200, o);
}

void
hauth_users_create(struct req *r)
{
	struct api *api = r->api;
	const char *name, *pass, *role;
	size_t nlen, plen, rlen;
	struct user u = { 0 };
	char *hash;
	enum role ro;
	enum db_rc rc;

	if ((name = need_string(r, "username", &nlen)) == NULL ||
	    (pass = need_string(r, "password", &plen)) == NULL ||
	    (role = need_string(r, "role", &rlen)) == NULL)
		return;
	if (!util_valid_username(name, nlen)) {
		resp_error(r, 422, "username must match ^[A-Za-z0-9_.-]{1,64}$");
		return;
	}
	if (users_role_parse(role, &ro) != 0) {
		resp_error(r, 422, "role must be viewer, operator or admin");
		return;
	}
	if (plen < PW_MIN_LEN || plen > PW_MAX_LEN) {
		resp_error(r, 422, "password must be %d to %d bytes", PW_MIN_LEN, PW_MAX_LEN);
		return;
	}
	if ((hash = password_hash(r, pass)) == NULL)
		return;
	/* the admin who asked may have gone during the hash: read the account
	 * again, in the insert's transaction */
	if ((rc = db_begin(r->db)) != DB_OK) {
		pw_hash_free(hash);
		resp_db(r, rc, "user");
		return;
	}
	if (hauth_account(r, r->db, r->route->min_role) != 0) {
		db_rollback(r->db);
		pw_hash_free(hash);
		return;
	}
	rc = users_create_hashed(r->db, name, hash, ro);
	pw_hash_free(hash);
	if (rc == DB_OK)
		rc = db_commit(r->db);
	else
		db_rollback(r->db);
	if (rc == DB_CONFLICT) {
		resp_error(r, 409, "user %s already exists", name);
		return;
	}
	if (rc != DB_OK) {
		resp_db(r, rc, "user");
		return;
	}
	log_info("user %s created by %s role=%s", name, r->user.username, users_role_name(ro));
	rc = users_get_auth(r->db, name, &u);
	if (rc != DB_OK) {
		resp_db(r, rc, "user");
		return;
	}
	resp_header(r, "Location", "%s/users/%s", api->conf.api_base, u.username);
	resp_json(r, 201, user_json(&u, 1));
	users_clear(&u);
}

void
hauth_users_delete(struct req *r)
{
	const char *name = r->params[0];
	struct user u = { 0 };
	enum db_rc rc;

	if (!util_valid_username(name, strlen(name))) {
		resp_error(r, 422, "username must match ^[A-Za-z0-9_.-]{1,64}$");
		return;
	}
	rc = users_get_auth(r->db, name, &u);
	if (rc != DB_OK) {
		resp_db(r, rc, "user");
		return;
	}
	if (u.role == ROLE_ADMIN) {
		int64_t n = 0;
		rc = users_count_admins(r->db, &n);
		if (rc != DB_OK) {
			users_clear(&u);
			resp_db(r, rc, "user");
			return;
		}
		if (n <= 1) {
			users_clear(&u);
			resp_error(r, 409, "the last admin cannot be deleted");
			return;
		}
	}
	users_clear(&u);
	rc = users_delete(r->db, name);
	if (rc != DB_OK) {
		resp_db(r, rc, "user");
		return;
	}
	log_info("user %s deleted by %s", name, r->user.username);
	resp_send(r, 204, NULL, NULL, 0);
}
