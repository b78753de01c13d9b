/*
 * etlctl: the administrator's tool. Works on the database named by the
 * configuration (ETL_DB_PATH, ETL_ENV_FILE, ...), through the same library
 * as the daemons, so every rule (migrations, validation, hashing) is the
 * same one. Commands are a table; each prints what it did and exits 0, or
 * prints why not and exits 1 (2 for usage errors).
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "db.h"
#include "jobq.h"
#include "js.h"
#include "log.h"
#include "migrate.h"
#include "pw.h"
#include "sist.h"
#include "tok.h"
#include "users.h"
#include "util.h"
#include "wake.h"

static struct conf conf;
static struct db *db;

static void
usage(void)
{
	fprintf(stderr,
	    "usage: etlctl COMMAND ...\n"
	    "  migrate                                   apply schema migrations\n"
	    "  user add NAME --role viewer|operator|admin [--password-stdin]\n"
	    "  user list | user del NAME | user passwd NAME [--password-stdin]\n"
	    "  sistema put ID NOME [--descricao TEXT] [--inactive]\n"
	    "  sistema list | sistema disable ID\n"
	    "  job add SISTEMA... [--params JSON] [--by USER] | job cancel JOB_ID\n"
	    "  queue                                     jobs by status, running slots\n"
	    "  requeue JOB_ID                            enqueue a finished job again\n"
	    "  prune --days N                            delete finished jobs older than N days\n"
	    "                                            (never the newest job: ids are not "
	    "reused)\n"
	    "  recount                                   count the jobs per status again\n"
	    "  token USER                                print a fresh access token\n"
	    "  config example                            print .env.example\n");
	exit(2);
}

static void
open_db(void)
{
	char err[512];

	db = db_open(conf.db_path, DB_OPEN_CREATE, conf.db_busy_timeout, err, sizeof(err));
	if (db == NULL)
		fatalx("%s", err);
}

static void
print_json(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(
	                   o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static void
check(enum db_rc rc, const char *what)
{
	static const char *const why[] = { "ok", "error", "database busy", "disk full", "conflict",
		"not found", "invalid" };
	if (rc != DB_OK)
		fatalx("%s: %s", what, why[-rc < 7 ? -rc : 1]);
}

/* Reads a password: from stdin (first line) with --password-stdin, else a
 * generated one that is printed once. Returns a malloc'd string. */
static char *
get_password(int from_stdin, int *generated)
{
	char line[PW_MAX_LEN + 2];

	*generated = 0;
	if (from_stdin) {
		if (fgets(line, sizeof(line), stdin) == NULL)
			fatalx("no password on standard input");
		line[strcspn(line, "\r\n")] = '\0';
		if (strlen(line) < PW_MIN_LEN)
			fatalx("password shorter than %d characters", PW_MIN_LEN);
		return xstrdup(line);
	}
	unsigned char r[12];
	char out[32];
	if (util_random(r, sizeof(r)) == -1)
		fatal("getrandom");
	tok_b64url_encode(r, sizeof(r), out);
	*generated = 1;
	return xstrdup(out);
}

static int
has_flag(int argc, char **argv, const char *flag)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], flag) == 0)
			return 1;
	return 0;
}

static const char *
flag_value(int argc, char **argv, const char *flag)
{
	for (int i = 0; i + 1 < argc; i++)
		if (strcmp(argv[i], flag) == 0)
			return argv[i + 1];
	return NULL;
}

static int
cmd_migrate(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	open_db();
	printf("schema version %d\n", migrate_version(db_sqlite(db)));
	return 0;
}

static int
cmd_user(int argc, char **argv)
{
	if (argc < 1)
		usage();
	open_db();
	if (strcmp(argv[0], "list") == 0) {
		struct json_object *o;
		check(users_list_json(db, &o), "user list");
		print_json(o);
		return 0;
	}
	if (argc < 2)
		usage();
	const char *name = argv[1];
	if (!util_valid_username(name, strlen(name)))
		fatalx("invalid username (expected ^[A-Za-z0-9_.-]{1,64}$)");
	if (strcmp(argv[0], "add") == 0) {
		const char *r = flag_value(argc, argv, "--role");
		enum role role;
		int gen;
		if (r == NULL || users_role_parse(r, &role) == -1)
			fatalx("--role must be viewer, operator or admin");
		char *pw = get_password(has_flag(argc, argv, "--password-stdin"), &gen);
		enum db_rc rc = users_create(db, name, pw, role);
		if (rc == DB_CONFLICT)
			fatalx("user %s exists", name);
		check(rc, "user add");
		printf("user %s created (%s)\n", name, users_role_name(role));
		if (gen)
			printf("password: %s\n", pw);
		free(pw);
		return 0;
	}
	if (strcmp(argv[0], "del") == 0) {
		check(users_delete(db, name), "user del");
		printf("user %s deleted\n", name);
		return 0;
	}
	if (strcmp(argv[0], "passwd") == 0) {
		int gen;
		char *pw = get_password(has_flag(argc, argv, "--password-stdin"), &gen);
		check(users_set_password(db, name, pw), "user passwd");
		printf("password of %s changed\n", name);
		if (gen)
			printf("password: %s\n", pw);
		free(pw);
		return 0;
	}
	usage();
	return 2;
}

static int
cmd_sistema(int argc, char **argv)
{
	int created;

	if (argc < 1)
		usage();
	open_db();
	if (strcmp(argv[0], "list") == 0) {
		struct json_object *o;
		check(sist_list_json(db, &o), "sistema list");
		print_json(o);
		return 0;
	}
	if (argc < 2)
		usage();
	const char *id = argv[1];
	if (!util_valid_sistema_id(id, strlen(id)))
		fatalx("invalid sistema id (expected ^[a-z0-9_-]{1,64}$)");
	if (strcmp(argv[0], "put") == 0) {
		if (argc < 3)
			usage();
		const char *nome = argv[2];
		if (*nome == '\0' || strlen(nome) > 200 || !utf8_valid(nome, strlen(nome)))
			fatalx("nome must be 1-200 bytes of UTF-8");
		check(sist_put(db, id, nome, flag_value(argc, argv, "--descricao"),
		          !has_flag(argc, argv, "--inactive"), &created),
		    "sistema put");
		printf("sistema %s %s\n", id, created ? "created" : "updated");
		return 0;
	}
	if (strcmp(argv[0], "disable") == 0) {
		struct json_object *o, *v;
		check(sist_get_json(db, id, &o), "sistema disable");
		const char *nome =
		    json_object_object_get_ex(o, "nome", &v) ? json_object_get_string(v) : id;
		const char *desc = json_object_object_get_ex(o, "descricao", &v) && v
		                       ? json_object_get_string(v)
		                       : NULL;
		check(sist_put(db, id, nome, desc, 0, &created), "sistema disable");
		json_object_put(o);
		printf("sistema %s disabled\n", id);
		return 0;
	}
	usage();
	return 2;
}

/* Cancels a job as POST /api/jobs/{id}/cancel does (the worker stops a
 * running one and publishes its events; a pending one ends here, unannounced). */
static int
job_cancel(const char *arg)
{
	enum jobq_cancel_result res;
	struct job j;
	int64_t id;

	if (util_parse_i64(arg, 1, INT64_MAX, &id) == -1)
		usage();
	open_db();
	check(jobq_cancel(db, id, &res, &j), "job cancel");
	jobq_job_clear(&j);
	if (res == JOBQ_CANCEL_FINISHED)
		fatalx("job %lld has already finished", (long long)id);
	char *dir = wake_dir_for(conf.wake_dir, conf.db_path);
	wake_notify(dir);
	free(dir);
	printf("job %lld %s\n", (long long)id,
	    res == JOBQ_CANCELLED_NOW ? "cancelled" : "asked to stop");
	return 0;
}

static int
cmd_job(int argc, char **argv)
{
	const char *sis[JOBQ_MAX_SISTEMAS];
	const char *params = NULL, *by = "etlctl";
	size_t n = 0;
	int64_t id;
	int existed;
	uint64_t mask;
	char bad[65] = "";

	if (argc == 2 && strcmp(argv[0], "cancel") == 0)
		return job_cancel(argv[1]);
	if (argc < 2 || strcmp(argv[0], "add") != 0)
		usage();
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--params") == 0 && i + 1 < argc) {
			params = argv[++i];
			continue;
		}
		if (strcmp(argv[i], "--by") == 0 && i + 1 < argc) {
			by = argv[++i];
			continue;
		}
		if (n == JOBQ_MAX_SISTEMAS)
			fatalx("at most %d sistemas", JOBQ_MAX_SISTEMAS);
		sis[n++] = argv[i];
	}
	if (params) {
		int ok;
		char err[128];
		struct json_object *p =
		    js_parse(params, strlen(params), 65536, JS_MAX_DEPTH, &ok, err, sizeof(err));
		if (p == NULL || !json_object_is_type(p, json_type_object))
			fatalx("--params must be a JSON object%s%s", p ? "" : ": ", p ? "" : err);
		json_object_put(p);
	}
	open_db();
	enum db_rc rc = jobq_enqueue(db, sis, n, params, by, NULL, &id, &existed, &mask, bad);
	if (rc == DB_INVALID)
		fatalx("unknown or inactive sistema: %s", bad[0] ? bad : "(none)");
	check(rc, "job add");
	char *dir = wake_dir_for(conf.wake_dir, conf.db_path);
	wake_notify(dir);
	free(dir);
	printf("%lld\n", (long long)id);
	return 0;
}

static int
cmd_queue(int argc, char **argv)
{
	int64_t counts[JOB__MAX];
	struct slot_info *slots;
	enum worker_state ws;

	(void)argc;
	(void)argv;
	open_db();
	check(jobq_counts(db, counts), "queue");
	for (int i = 0; i < JOB__MAX; i++)
		printf("%-10s %lld\n", jobq_status_name((enum job_status)i), (long long)counts[i]);
	check(jobq_worker_state(db, conf.lease_interval * 3, &ws), "queue");
	printf("worker     %s\n", jobq_worker_state_name(ws));
	slots = xcalloc((size_t)conf.max_concurrent_jobs, sizeof(*slots));
	check(jobq_slots(db, conf.max_concurrent_jobs, slots), "queue");
	for (int i = 0; i < conf.max_concurrent_jobs; i++) {
		char iso[UTIL_ISO_LEN] = "-";
		if (slots[i].started_ms >= 0)
			util_iso8601(slots[i].started_ms, iso);
		if (slots[i].job_id >= 0)
			printf(
			    "slot %d     job %lld since %s\n", i, (long long)slots[i].job_id, iso);
		else
			printf("slot %d     idle\n", i);
	}
	free(slots);
	return 0;
}

static int
cmd_requeue(int argc, char **argv)
{
	int64_t id, nid;

	if (argc < 1 || util_parse_i64(argv[0], 1, INT64_MAX, &id) == -1)
		usage();
	open_db();
	enum db_rc rc = jobq_requeue(db, id, "etlctl", &nid);
	if (rc == DB_CONFLICT)
		fatalx("job %lld is not finished", (long long)id);
	check(rc, "requeue");
	char *dir = wake_dir_for(conf.wake_dir, conf.db_path);
	wake_notify(dir);
	free(dir);
	printf("job %lld requeued as %lld\n", (long long)id, (long long)nid);
	return 0;
}

static int
cmd_prune(int argc, char **argv)
{
	const char *d = flag_value(argc, argv, "--days");
	int64_t days, deleted;

	if (d == NULL || util_parse_i64(d, 0, 36500, &days) == -1)
		usage();
	open_db();
	check(jobq_prune(db, util_now_ms() - days * 86400 * 1000, &deleted), "prune");
	printf("%lld job(s) deleted\n", (long long)deleted);
	return 0;
}

static int
cmd_recount(int argc, char **argv)
{
	int fixed;

	(void)argc;
	(void)argv;
	open_db();
	check(jobq_recount(db, &fixed), "recount");
	printf("%d status count(s) corrected\n", fixed);
	return 0;
}

static int
cmd_token(int argc, char **argv)
{
	struct user u;

	if (argc < 1)
		usage();
	if (conf.secret == NULL)
		fatalx("ETL_SECRET is not set");
	open_db();
	check(users_get(db, argv[0], &u), "token");
	char *t = tok_sign(conf.secret, strlen(conf.secret), u.username, users_role_name(u.role),
	    util_now_ms() / 1000, conf.token_ttl);
	printf("%s\n", t);
	free(t);
	users_clear(&u);
	return 0;
}

static int
cmd_config(int argc, char **argv)
{
	if (argc < 1 || strcmp(argv[0], "example") != 0)
		usage();
	conf_print_example();
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
} cmds[] = {
	{ "migrate", cmd_migrate },
	{ "user", cmd_user },
	{ "sistema", cmd_sistema },
	{ "job", cmd_job },
	{ "queue", cmd_queue },
	{ "requeue", cmd_requeue },
	{ "prune", cmd_prune },
	{ "recount", cmd_recount },
	{ "token", cmd_token },
	{ "config", cmd_config },
};

int
main(int argc, char **argv)
{
	char err[512];
	enum log_level lvl = LOG_LEVEL_WARN;
	int rc = 2;

	log_init("etlctl", lvl, NULL);
	if (argc < 2)
		usage();
	if (conf_load(&conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(cmds); i++)
		if (strcmp(argv[1], cmds[i].name) == 0) {
			rc = cmds[i].fn(argc - 2, argv + 2);
			db_close(db);
			conf_free(&conf);
			return rc;
		}
	usage();
	return rc;
}
