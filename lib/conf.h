/*
 * conf: every configuration variable of the system, described once in a
 * table (name, type, default, range) and parsed once into struct conf.
 * Sources, later wins: built-in default < ETL_ENV_FILE (KEY=value lines) <
 * the process environment. Errors name the variable and the accepted range.
 */
#ifndef ETL_CONF_H
#define ETL_CONF_H

#include <stddef.h>
#include <stdint.h>

struct conf {
	int max_concurrent_jobs; /* ETL_MAX_CONCURRENT_JOBS, slots */
	int job_slot_timeout; /* ETL_JOB_SLOT_TIMEOUT, s: lease age that orphans a job */
	int job_cleanup_interval; /* ETL_JOB_CLEANUP_INTERVAL, s */
	int job_timeout; /* ETL_JOB_TIMEOUT, s */
	double poll_interval; /* ETL_POLL_INTERVAL, s */
	int sistema_exclusive; /* ETL_SISTEMA_EXCLUSIVE, bool */
	char *db_path; /* ETL_DB_PATH */
	char *pipeline_cmd; /* ETL_PIPELINE_CMD, NULL if unset */
	char *pipeline_cwd; /* ETL_PIPELINE_CWD, NULL: the worker's cwd */
	char *secret; /* ETL_SECRET, NULL if unset (programs that sign or verify require it) */
	int token_ttl; /* ETL_TOKEN_TTL, s */
	int redis_enabled; /* REDIS_ENABLED, bool */
	char *redis_url; /* REDIS_URL */
	char *redis_channel_prefix; /* REDIS_CHANNEL_PREFIX */
	int redis_pool_size; /* REDIS_POOL_SIZE */
	double redis_socket_timeout; /* REDIS_SOCKET_TIMEOUT, s */
	int kill_grace; /* ETL_KILL_GRACE, s */
	int shutdown_grace; /* ETL_SHUTDOWN_GRACE, s */
	int max_line; /* ETL_MAX_LINE, bytes */
	int max_body; /* ETL_MAX_BODY, bytes */
	int api_threads; /* ETL_API_THREADS */
	char *env_file; /* ETL_ENV_FILE */
	char *admin_user; /* ETL_ADMIN_USER */
	char *admin_password; /* ETL_ADMIN_PASSWORD */
	int wsd_max_backlog; /* WSD_MAX_BACKLOG, messages */
	char *wsd_allowed_origins; /* WSD_ALLOWED_ORIGINS, NULL: any */
	int db_busy_timeout; /* ETL_DB_BUSY_TIMEOUT, ms */
	char *wake_dir; /* ETL_WAKE_DIR, NULL: "<dir of db>/wake" */
	char *api_base; /* ETL_API_BASE, URL prefix the API is routed under ("/api") */
	char *log_level; /* ETL_LOG_LEVEL */
	char *log_file; /* ETL_LOG_FILE, NULL: stderr */
	int lease_interval; /* ETL_LEASE_INTERVAL, s: heartbeat and lease renewal period */
	char *metrics_token; /* ETL_METRICS_TOKEN, NULL: /api/metrics needs no auth */
	char *cors_origin; /* ETL_CORS_ORIGIN, NULL: no CORS headers */
};

/*
 * Loads the configuration into c (zeroed first). Returns 0, or -1 with a
 * message naming the variable and its accepted range in err. On success the
 * strings in c are owned by c: release with conf_free().
 */
int conf_load(struct conf *c, char *err, size_t errlen);
void conf_free(struct conf *c);

/* Parses a boolean: true/false/1/0/yes/no/on/off (any case). Returns 0 or -1. */
int conf_parse_bool(const char *s, int *out);

/*
 * Parses an env file's text: "KEY=value" lines, '#' comments, blank lines,
 * optional "export ", values optionally in single or double quotes. Calls
 * fn(key, value, arg) for each pair. Returns 0, or -1 with "line N: reason"
 * in err. Keys must match [A-Za-z_][A-Za-z0-9_]*; lines are at most 4096 bytes.
 */
int conf_parse_env_text(const char *text, size_t len,
    int (*fn)(const char *key, const char *value, void *arg), void *arg, char *err, size_t errlen);

/* Writes the table as .env.example text (every variable, default, range, meaning). */
void conf_print_example(void);

#endif
