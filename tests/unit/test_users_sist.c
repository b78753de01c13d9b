/* users and sist: accounts, roles, failed logins; sistemas. */
#include "unit.h"

#include <json-c/json.h>

#include "db.h"
#include "pw.h"
#include "sist.h"
#include "users.h"

static char path[64];
static struct db *db;

static int
setup(void **state)
{
	char err[256];
	(void)state;
	unit_tmpdb(path, sizeof(path));
	db = db_open(path, DB_OPEN_CREATE, 5000, err, sizeof(err));
	return db ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	db_close(db);
	db_remove(path);
	return 0;
}

static void
roles(void **state)
{
	enum role r;
	(void)state;
	assert_int_equal(users_role_parse("operator", &r), 0);
	assert_int_equal(r, ROLE_OPERATOR);
	assert_int_equal(users_role_parse("root", &r), -1);
	assert_string_equal(users_role_name(ROLE_ADMIN), "admin");
}

static void
create_get_delete(void **state)
{
	struct user u;
	int64_t n;
	(void)state;
	assert_int_equal(users_create(db, "alice", "secret-pass", ROLE_ADMIN), DB_OK);
	assert_int_equal(users_create(db, "alice", "other-pass", ROLE_VIEWER), DB_CONFLICT);
	assert_int_equal(users_get(db, "alice", &u), DB_OK);
	assert_int_equal(u.role, ROLE_ADMIN);
	assert_true(pw_verify("secret-pass", u.password_hash));
	assert_null(strstr(u.password_hash, "secret-pass"));
	users_clear(&u);
	assert_int_equal(users_count_admins(db, &n), DB_OK);
	assert_int_equal(n, 1);
	assert_int_equal(users_set_password(db, "alice", "new-password"), DB_OK);
	assert_int_equal(users_get(db, "alice", &u), DB_OK);
	assert_true(pw_verify("new-password", u.password_hash));
	users_clear(&u);
	struct json_object *o;
	assert_int_equal(users_list_json(db, &o), DB_OK);
	assert_int_equal(json_object_array_length(o), 1);
	assert_null(strstr(json_object_to_json_string(o), "$y$"));
	json_object_put(o);
	assert_int_equal(users_delete(db, "alice"), DB_OK);
	assert_int_equal(users_delete(db, "alice"), DB_NOTFOUND);
	assert_int_equal(users_get(db, "alice", &u), DB_NOTFOUND);
}

static void
failed_logins_window(void **state)
{
	int64_t n, oldest;
	int admitted;
	(void)state;
	for (int i = 0; i < 5; i++) {
		assert_int_equal(
		    users_login_attempt(db, "bob", 900, 5, &admitted, &n, &oldest), DB_OK);
		assert_true(admitted);
		assert_int_equal(n, i); /* the ones before it */
	}
	/* the sixth is turned away, and not counted */
	assert_int_equal(users_login_attempt(db, "bob", 900, 5, &admitted, &n, &oldest), DB_OK);
	assert_false(admitted);
	assert_int_equal(n, 5);
	assert_int_equal(users_failures(db, "bob", 900, &n, &oldest), DB_OK);
	assert_int_equal(n, 5);
	assert_true(oldest > 0);
	assert_int_equal(users_failures(db, "carol", 900, &n, &oldest), DB_OK);
	assert_int_equal(n, 0);
	assert_int_equal(users_clear_failures(db, "bob"), DB_OK);
	assert_int_equal(users_failures(db, "bob", 900, &n, &oldest), DB_OK);
	assert_int_equal(n, 0);
}

static void
sistemas(void **state)
{
	int created;
	struct json_object *o, *v;
	(void)state;
	assert_int_equal(sist_put(db, "maps", "MAPS", "Cadastro", 1, &created), DB_OK);
	assert_true(created);
	assert_int_equal(sist_put(db, "amplis", "Amplis", NULL, 1, &created), DB_OK);
	assert_int_equal(sist_put(db, "maps", "MAPS 2", NULL, 0, &created), DB_OK);
	assert_false(created);
	assert_int_equal(sist_list_json(db, &o), DB_OK);
	assert_int_equal(json_object_array_length(o), 2);
	v = json_object_array_get_idx(o, 0);
	assert_string_equal(json_object_get_string(json_object_object_get(v, "id")), "amplis");
	json_object_put(o);
	assert_int_equal(sist_get_json(db, "maps", &o), DB_OK);
	assert_string_equal(json_object_get_string(json_object_object_get(o, "nome")), "MAPS 2");
	assert_false(json_object_get_boolean(json_object_object_get(o, "ativo")));
	assert_string_equal(json_object_get_string(json_object_object_get(o, "status")), "IDLE");
	json_object_put(o);
	assert_int_equal(sist_get_json(db, "nada", &o), DB_NOTFOUND);
	assert_int_equal(sist_set_status(db, "maps", "RUNNING", 40, "x"), DB_OK);
	assert_true(sist_status_valid("SUCCESS"));
	assert_false(sist_status_valid("success"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(roles),
		cmocka_unit_test_setup_teardown(create_get_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(failed_logins_window, setup, teardown),
		cmocka_unit_test_setup_teardown(sistemas, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
