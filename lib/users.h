/*
 * users: accounts, roles, and the failed-login counter (kept in SQLite so
 * the limit holds across every etl-api process).
 */
#ifndef ETL_USERS_H
#define ETL_USERS_H

#include <stdint.h>

#include "db.h"

struct json_object;

enum role { ROLE_VIEWER, ROLE_OPERATOR, ROLE_ADMIN, ROLE__MAX };
const char *users_role_name(enum role r);
/* Returns 0 and sets *out, or -1 for an unknown role name. */
int users_role_parse(const char *s, enum role *out);

struct user {
	char username[65];
	enum role role;
	char *password_hash; /* malloc'd */
	int64_t created_ms;
};
void users_clear(struct user *u);

/* DB_OK with *out filled, or DB_NOTFOUND. */
enum db_rc users_get(struct db *db, const char *username, struct user *out);
/* users_get without the password hash (NULL): what every request's token
 * check reads. */
enum db_rc users_get_auth(struct db *db, const char *username, struct user *out);
/* Hashes password (pw_hash) and inserts; DB_CONFLICT if the username exists. */
enum db_rc users_create(struct db *db, const char *username, const char *password, enum role role);
/* The same with a hash already made (pw_hash), for a caller that hashes
 * without holding the database (etl-api). */
enum db_rc users_create_hashed(
    struct db *db, const char *username, const char *hash, enum role role);
/* DB_NOTFOUND if absent. */
enum db_rc users_delete(struct db *db, const char *username);
enum db_rc users_set_password(struct db *db, const char *username, const char *password);
/* [{"username","role","created_at"}...] ordered by username. */
enum db_rc users_list_json(struct db *db, struct json_object **out);
/* *n = number of admins. */
enum db_rc users_count_admins(struct db *db, int64_t *n);

/* Failed logins of username since now - window_s. */
enum db_rc users_failures(
    struct db *db, const char *username, int window_s, int64_t *count, int64_t *oldest_ms);
/*
 * A login attempt for username, counted before its password is checked,
 * in one write transaction: when fewer than max failures are recorded
 * since now - window_s, records this attempt as one (*admitted = 1; a
 * successful login then clears them, users_clear_failures); else records
 * nothing (*admitted = 0). Either way *count and *oldest_ms describe the
 * failures found. Counting first is what keeps the limit when guesses run
 * in parallel (threads, processes): each sees the ones before it.
 */
enum db_rc users_login_attempt(struct db *db, const char *username, int window_s, int max,
    int *admitted, int64_t *count, int64_t *oldest_ms);
enum db_rc users_clear_failures(struct db *db, const char *username);

#endif
