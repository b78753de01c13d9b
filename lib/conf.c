/*
 * conf: the configuration table (redis config.c shape): each variable once,
 * with its type, default, range and meaning; conf_load() fills struct conf
 * from the defaults, then ETL_ENV_FILE, then the environment (which wins),
 * and checks every value against its range.
 */
#include "conf.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

enum conf_type { CT_INT, CT_DOUBLE, CT_BOOL, CT_STR };

struct conf_var {
	const char *name;
	enum conf_type type;
	const char *def; /* NULL: unset */
	double min, max; /* numbers: accepted range */
	size_t off;
	const char *help;
};

#define F(field) offsetof(struct conf, field)

static const struct conf_var vars[] = {
	{ "ETL_MAX_CONCURRENT_JOBS", CT_INT, "1", 1, 256, F(max_concurrent_jobs),
	    "slots in the worker pool; 1 is the original single mode" },
	{ "ETL_JOB_SLOT_TIMEOUT", CT_INT, "7200", 10, 604800, F(job_slot_timeout),
	    "seconds after which a job whose worker stopped renewing its lease is orphaned" },
	{ "ETL_JOB_CLEANUP_INTERVAL", CT_INT, "300", 1, 86400, F(job_cleanup_interval),
	    "seconds between orphan sweeps" },
	{ "ETL_JOB_TIMEOUT", CT_INT, "3600", 1, 604800, F(job_timeout),
	    "wall-clock limit of one job, seconds" },
	{ "ETL_POLL_INTERVAL", CT_DOUBLE, "2.0", 0.05, 3600, F(poll_interval),
	    "fallback polling period of the worker, seconds" },
	{ "ETL_SISTEMA_EXCLUSIVE", CT_BOOL, "true", 0, 1, F(sistema_exclusive),
	    "a sistema runs in at most one job at a time" },
	{ "ETL_DB_PATH", CT_STR, "./var/etl.db", 1, 4096, F(db_path), "the SQLite database" },
	{ "ETL_PIPELINE_CMD", CT_STR, NULL, 1, 4096, F(pipeline_cmd),
	    "the command a job runs (split on blanks, no shell)" },
	{ "ETL_PIPELINE_CWD", CT_STR, NULL, 1, 4096, F(pipeline_cwd),
	    "working directory of the pipeline (default: the worker's)" },
	{ "ETL_SECRET", CT_STR, NULL, 32, 4096, F(secret),
	    "key that signs tokens, at least 32 bytes (required)" },
	{ "ETL_TOKEN_TTL", CT_INT, "3600", 60, 604800, F(token_ttl), "token lifetime, seconds" },
	{ "REDIS_ENABLED", CT_BOOL, "false", 0, 1, F(redis_enabled), "publish events to Redis" },
	{ "REDIS_URL", CT_STR, "redis://localhost:6379/0", 1, 1024, F(redis_url),
	    "redis://[:password@]host[:port][/db] or unix:///path/redis.sock" },
	{ "REDIS_CHANNEL_PREFIX", CT_STR, "etl", 1, 128, F(redis_channel_prefix),
	    "channel is <prefix>:ws" },
	{ "REDIS_POOL_SIZE", CT_INT, "10", 1, 1000, F(redis_pool_size),
	    "connections kept by a publishing process (each C process needs one)" },
	{ "REDIS_SOCKET_TIMEOUT", CT_DOUBLE, "5.0", 0.01, 60, F(redis_socket_timeout),
	    "seconds a Redis operation may take" },
	{ "ETL_KILL_GRACE", CT_INT, "10", 0, 3600, F(kill_grace),
	    "seconds between SIGTERM and SIGKILL on timeout or cancel" },
	{ "ETL_SHUTDOWN_GRACE", CT_INT, "30", 0, 86400, F(shutdown_grace),
	    "seconds a stopping worker lets running jobs finish" },
	{ "ETL_MAX_LINE", CT_INT, "8192", 256, 1048576, F(max_line),
	    "bytes kept of one output line (longer lines are truncated, marked)" },
	{ "ETL_MAX_BODY", CT_INT, "65536", 1024, 16777216, F(max_body), "bytes of a request body" },
	{ "ETL_API_THREADS", CT_INT, "4", 1, 64, F(api_threads),
	    "requests one etl-api process serves at once (its threads)" },
	{ "ETL_ENV_FILE", CT_STR, NULL, 1, 4096, F(env_file),
	    "a KEY=value file read before the environment's own values" },
	{ "ETL_ADMIN_USER", CT_STR, NULL, 1, 64, F(admin_user),
	    "the first admin, created when the database has none" },
	{ "ETL_ADMIN_PASSWORD", CT_STR, NULL, 8, 1024, F(admin_password),
	    "the first admin's password" },
	{ "WSD_MAX_BACKLOG", CT_INT, "1024", 16, 1048576, F(wsd_max_backlog),
	    "messages a websocket client may lag before it is closed (4008)" },
	{ "WSD_ALLOWED_ORIGINS", CT_STR, NULL, 1, 4096, F(wsd_allowed_origins),
	    "comma-separated origins allowed to open /ws (default: any)" },
	{ "ETL_DB_BUSY_TIMEOUT", CT_INT, "5000", 0, 600000, F(db_busy_timeout),
	    "ms a database access waits for a lock before giving up (503)" },
	{ "ETL_WAKE_DIR", CT_STR, NULL, 1, 100, F(wake_dir),
	    "folder of the worker wake-up sockets (default: <db dir>/wake)" },
	{ "ETL_API_BASE", CT_STR, "/api", 1, 256, F(api_base),
	    "URL prefix the API is routed under" },
	{ "ETL_LOG_LEVEL", CT_STR, "info", 1, 16, F(log_level), "error, warn, info or debug" },
	{ "ETL_LOG_FILE", CT_STR, NULL, 1, 4096, F(log_file),
	    "log file (default: stderr); reopened on SIGHUP" },
	{ "ETL_LEASE_INTERVAL", CT_INT, "10", 1, 3600, F(lease_interval),
	    "seconds between worker heartbeats and lease renewals" },
	{ "ETL_METRICS_TOKEN", CT_STR, NULL, 16, 1024, F(metrics_token),
	    "if set, /api/metrics needs Authorization: Bearer <this>" },
	{ "ETL_CORS_ORIGIN", CT_STR, NULL, 1, 1024, F(cors_origin),
	    "if set, the one origin allowed by CORS (default: CORS off)" },
};

int
conf_parse_bool(const char *s, int *out)
{
	static const char *const t[] = { "true", "1", "yes", "on" };
	static const char *const f[] = { "false", "0", "no", "off" };

	for (size_t i = 0; i < UTIL_ARRAY_LEN(t); i++) {
		if (strcasecmp(s, t[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, f[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

static const struct conf_var *
var_find(const char *name)
{
	for (size_t i = 0; i < UTIL_ARRAY_LEN(vars); i++)
		if (strcmp(vars[i].name, name) == 0)
			return &vars[i];
	return NULL;
}

static void
range_text(const struct conf_var *v, char *out, size_t n)
{
	switch (v->type) {
	case CT_INT:
		snprintf(out, n, "an integer from %.0f to %.0f", v->min, v->max);
		break;
	case CT_DOUBLE:
		snprintf(out, n, "a number from %g to %g", v->min, v->max);
		break;
	case CT_BOOL:
		snprintf(out, n, "true/false/1/0/yes/no");
		break;
	case CT_STR:
		snprintf(out, n, "a string of %.0f to %.0f bytes", v->min, v->max);
		break;
	}
}

/* Sets one variable from text. Returns 0 or -1 with err. */
static int
var_set(struct conf *c, const struct conf_var *v, const char *s, char *err, size_t errlen)
{
	char *p = (char *)c + v->off, range[96], *end;
	size_t len = strlen(s);

	switch (v->type) {
	case CT_INT: {
		int64_t x;
		if (util_parse_i64(s, (int64_t)v->min, (int64_t)v->max, &x) == -1)
			goto bad;
		*(int *)(void *)p = (int)x;
		return 0;
	}
	case CT_DOUBLE: {
		errno = 0;
		double d = strtod(s, &end);
		if (*s == '\0' || *end != '\0' || errno || !isfinite(d) || d < v->min || d > v->max)
			goto bad;
		*(double *)(void *)p = d;
		return 0;
	}
	case CT_BOOL:
		if (conf_parse_bool(s, (int *)(void *)p) == -1)
			goto bad;
		return 0;
	case CT_STR:
		if (len < (size_t)v->min || len > (size_t)v->max)
			goto bad;
		free(*(char **)(void *)p);
		*(char **)(void *)p = xstrdup(s);
		return 0;
	}
bad:
	range_text(v, range, sizeof(range));
	snprintf(err, errlen, "%s: invalid value (expected %s)", v->name, range);
	return -1;
}

int
conf_parse_env_text(const char *text, size_t len,
    int (*fn)(const char *key, const char *value, void *arg), void *arg, char *err, size_t errlen)
{
	size_t pos = 0;
	int lineno = 0;
	char line[4097];

	while (pos < len) {
		size_t start = pos, n;
		while (pos < len && text[pos] != '\n')
			pos++;
		n = pos - start;
		pos++; /* past the newline */
		lineno++;
		if (n > 4096) {
			snprintf(err, errlen, "line %d: longer than 4096 bytes", lineno);
			return -1;
		}
		memcpy(line, text + start, n);
		line[n] = '\0';
		if (memchr(line, '\0', n)) {
			snprintf(err, errlen, "line %d: NUL byte", lineno);
			return -1;
		}
		if (n && line[n - 1] == '\r')
			line[--n] = '\0';
		char *s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0' || *s == '#')
			continue;
		if (strncmp(s, "export ", 7) == 0)
			for (s += 7; *s == ' '; s++)
				;
		char *eq = strchr(s, '=');
		if (eq == NULL) {
			snprintf(err, errlen, "line %d: expected KEY=value", lineno);
			return -1;
		}
		*eq = '\0';
		char *key = s, *val = eq + 1;
		size_t kl = strlen(key);
		while (kl && (key[kl - 1] == ' ' || key[kl - 1] == '\t'))
			key[--kl] = '\0';
		if (kl == 0 || !((key[0] >= 'A' && key[0] <= 'Z') ||
		                   (key[0] >= 'a' && key[0] <= 'z') || key[0] == '_')) {
			snprintf(err, errlen, "line %d: invalid key", lineno);
			return -1;
		}
		for (size_t i = 1; i < kl; i++)
			if (!((key[i] >= 'A' && key[i] <= 'Z') ||
			        (key[i] >= 'a' && key[i] <= 'z') ||
			        (key[i] >= '0' && key[i] <= '9') || key[i] == '_')) {
				snprintf(err, errlen, "line %d: invalid key", lineno);
				return -1;
			}
		while (*val == ' ' || *val == '\t')
			val++;
		size_t vl = strlen(val);
		if (vl && (val[0] == '"' || val[0] == '\'')) {
			if (vl < 2 || val[vl - 1] != val[0]) {
				snprintf(err, errlen, "line %d: unterminated quote", lineno);
				return -1;
			}
			val[vl - 1] = '\0';
			val++;
		} else {
			while (vl && (val[vl - 1] == ' ' || val[vl - 1] == '\t'))
				val[--vl] = '\0';
		}
		if (fn(key, val, arg) == -1) {
			snprintf(err, errlen, "line %d: rejected", lineno);
			return -1;
		}
	}
	return 0;
}

struct file_ctx {
	struct conf *c;
	char *err;
	size_t errlen;
	int failed;
};

static int
file_pair(const char *key, const char *value, void *arg)
{
	struct file_ctx *fc = arg;
	const struct conf_var *v = var_find(key);

	if (v == NULL || getenv(key) != NULL)
		return 0; /* unknown keys are ignored; the environment wins */
	if (var_set(fc->c, v, value, fc->err, fc->errlen) == -1) {
		fc->failed = 1;
		return -1;
	}
	return 0;
}

static int
load_env_file(struct conf *c, const char *path, char *err, size_t errlen)
{
	struct buf b = { 0 };
	char chunk[4096], perr[256];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd == -1) {
		snprintf(err, errlen, "ETL_ENV_FILE: cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		buf_append(&b, chunk, (size_t)n);
		if (b.len > 1 << 20) {
			snprintf(err, errlen, "ETL_ENV_FILE: %s is larger than 1 MiB", path);
			goto fail;
		}
	}
	if (n < 0) {
		snprintf(err, errlen, "ETL_ENV_FILE: cannot read %s: %s", path, strerror(errno));
		goto fail;
	}
	struct file_ctx fc = { c, err, errlen, 0 };
	if (conf_parse_env_text(b.data ? b.data : "", b.len, file_pair, &fc, perr, sizeof(perr)) ==
	    -1) {
		if (!fc.failed)
			snprintf(err, errlen, "ETL_ENV_FILE %s: %s", path, perr);
		goto fail;
	}
	close(fd);
	buf_free(&b);
	return 0;
fail:
	close(fd);
	buf_free(&b);
	return -1;
}

int
conf_load(struct conf *c, char *err, size_t errlen)
{
	const char *ef;

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < UTIL_ARRAY_LEN(vars); i++)
		if (vars[i].def && var_set(c, &vars[i], vars[i].def, err, errlen) == -1)
			goto fail;
	ef = getenv("ETL_ENV_FILE");
	if (ef && *ef && load_env_file(c, ef, err, errlen) == -1)
		goto fail;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(vars); i++) {
		const char *s = getenv(vars[i].name);
		if (s == NULL)
			continue;
		if (*s == '\0' && vars[i].type == CT_STR && vars[i].def == NULL)
			continue; /* VAR= means unset for optional strings */
		if (var_set(c, &vars[i], s, err, errlen) == -1)
			goto fail;
	}
	if (strcmp(c->log_level, "error") && strcmp(c->log_level, "warn") &&
	    strcmp(c->log_level, "info") && strcmp(c->log_level, "debug")) {
		snprintf(err, errlen,
		    "ETL_LOG_LEVEL: invalid value (expected error, warn, info or debug)");
		goto fail;
	}
	if (c->api_base[0] != '/') {
		snprintf(
		    err, errlen, "ETL_API_BASE: invalid value (expected a path starting with /)");
		goto fail;
	}
	return 0;
fail:
	conf_free(c);
	return -1;
}

void
conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(vars); i++)
		if (vars[i].type == CT_STR) {
			char **p = (char **)(void *)((char *)c + vars[i].off);
			free(*p);
			*p = NULL;
		}
}

void
conf_print_example(void)
{
	char range[96];

	printf("# Every variable the ETL dashboard reads, with its default.\n"
	       "# Sources, later wins: defaults < ETL_ENV_FILE < the environment.\n"
	       "# Generated by `etlctl config example`.\n");
	for (size_t i = 0; i < UTIL_ARRAY_LEN(vars); i++) {
		range_text(&vars[i], range, sizeof(range));
		printf("\n# %s (%s)\n", vars[i].help, range);
		if (vars[i].def)
			printf("#%s=%s\n", vars[i].name, vars[i].def);
		else
			printf("#%s=\n", vars[i].name);
	}
}
