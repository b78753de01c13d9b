/* evt, pub and wake: event shapes; publishing to a real redis-server
 * (started here on a unix socket), Redis down never blocking; wake-ups. */
#include "unit.h"

#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "conf.h"
#include "evt.h"
#include "pub.h"
#include "util.h"
#include "wake.h"

static void
event_shapes(void **state)
{
	(void)state;
	char *s = evt_log(12, 0, 3, 1795891893123, "INFO", "amplis", "a/b \"q\"");
	struct json_object *o = json_tokener_parse(s), *p;
	assert_non_null(o);
	assert_string_equal(json_object_get_string(json_object_object_get(o, "type")), "log");
	assert_non_null(json_object_object_get(o, "source_instance"));
	p = json_object_object_get(o, "payload");
	assert_int_equal(json_object_get_int(json_object_object_get(p, "job_id")), 12);
	assert_int_equal(json_object_get_int(json_object_object_get(p, "seq")), 3);
	assert_string_equal(
	    json_object_get_string(json_object_object_get(p, "ts")), "2026-11-28T18:51:33.123Z");
	assert_string_equal(
	    json_object_get_string(json_object_object_get(p, "mensagem")), "a/b \"q\"");
	assert_null(strstr(s, "\\/"));
	json_object_put(o);
	free(s);
	s = evt_status("maps", "RUNNING", 40, NULL);
	assert_non_null(strstr(s, "\"mensagem\":null"));
	free(s);
	s = evt_job_status(5, "pending", -1);
	assert_non_null(strstr(s, "\"worker_slot\":null"));
	free(s);
	s = evt_job_complete(5, "completed", 1.23456);
	assert_non_null(strstr(s, "\"duracao_segundos\":1.235"));
	free(s);
}

static void
url_parsing(void **state)
{
	struct pub_url u;
	(void)state;
	assert_int_equal(pub_parse_url("redis://localhost:6379/0", &u), 0);
	assert_string_equal(u.host, "localhost");
	assert_int_equal(u.port, 6379);
	assert_int_equal(pub_parse_url("redis://:pw@10.0.0.1:7000/3", &u), 0);
	assert_string_equal(u.password, "pw");
	assert_int_equal(u.db, 3);
	assert_int_equal(u.port, 7000);
	assert_int_equal(pub_parse_url("redis://h", &u), 0);
	assert_int_equal(u.port, 6379);
	assert_int_equal(pub_parse_url("unix:///run/redis.sock", &u), 0);
	assert_string_equal(u.path, "/run/redis.sock");
	assert_int_equal(pub_parse_url("unix:///run/redis.sock?db=2", &u), 0);
	assert_int_equal(u.db, 2);
	assert_int_equal(pub_parse_url("http://x", &u), -1);
	assert_int_equal(pub_parse_url("redis://h:99999", &u), -1);
	assert_int_equal(pub_parse_url("redis://:6379", &u), -1);
	assert_int_equal(pub_parse_url("unix://relative", &u), -1);
}

static pid_t redis_pid = -1; /* killed by the teardown whatever happens */

static pid_t
start_redis(const char *sock)
{
	pid_t pid = fork();
	if (pid == 0) {
		/* not our stdout: a leftover server must not hold a pipe open */
		int fd = open("/dev/null", O_RDWR);
		dup2(fd, 1);
		dup2(fd, 2);
		execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock,
		    "--save", "", "--appendonly", "no", "--loglevel", "warning", (char *)NULL);
		_exit(127);
	}
	redis_pid = pid;
	for (int i = 0; i < 2000; i++) {
		struct stat sb;
		if (stat(sock, &sb) == 0)
			return pid;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	redis_pid = -1;
	return -1;
}

static int
kill_redis(void **state)
{
	(void)state;
	if (redis_pid > 0) {
		kill(redis_pid, SIGKILL);
		waitpid(redis_pid, NULL, 0);
		redis_pid = -1;
	}
	return 0;
}

/* A private redis-server on "/tmp/etl-unit-redis-<tag><pid>.sock" (into
 * sock) and c, a configuration publishing to it with whatever REDIS_*
 * the caller has set. Skips the test when there is no redis-server. */
static pid_t
redis_conf(const char *tag, char *sock, size_t n, struct conf *c)
{
	char err[256], url[160];
	snprintf(sock, n, "/tmp/etl-unit-redis-%s%d.sock", tag, (int)getpid());
	pid_t rp = start_redis(sock);
	if (rp < 0)
		skip();
	snprintf(url, sizeof(url), "unix://%s", sock);
	setenv("REDIS_ENABLED", "true", 1);
	setenv("REDIS_URL", url, 1);
	assert_int_equal(conf_load(c, err, sizeof(err)), 0);
	return rp;
}

static void
redis_stop(pid_t rp, const char *sock)
{
	kill(rp, SIGKILL);
	waitpid(rp, NULL, 0);
	redis_pid = -1;
	unlink(sock);
}

/* A connection that completed while nobody polled it (an etl-api process
 * idle since it started) is up, not timed out, at the next tick. */
static void
idle_connect_is_not_a_timeout(void **state)
{
	char sock[128], err[256];
	struct conf c;
	(void)state;
	setenv("REDIS_SOCKET_TIMEOUT", "0.1", 1);
	pid_t rp = redis_conf("idle-", sock, sizeof(sock), &c);
	struct pub *p = pub_open(&c, err, sizeof(err));
	assert_non_null(p);
	usleep(300000); /* three timeouts, never polled */
	pub_tick(p);
	assert_int_equal(pub_state(p), PUB_UP);
	pub_close(p);
	redis_stop(rp, sock);
	conf_free(&c);
	unsetenv("REDIS_SOCKET_TIMEOUT");
	unsetenv("REDIS_ENABLED");
}

static void
publish_to_real_redis(void **state)
{
	char sock[128], err[256];
	struct conf c;
	(void)state;
	setenv("REDIS_CHANNEL_PREFIX", "unit", 1);
	pid_t rp = redis_conf("", sock, sizeof(sock), &c);

	redisContext *sub = redisConnectUnix(sock);
	assert_non_null(sub);
	assert_int_equal(sub->err, 0);
	struct timeval tv = { 5, 0 }; /* a lost message fails the test, never hangs it */
	assert_int_equal(redisSetTimeout(sub, tv), REDIS_OK);
	redisReply *r = redisCommand(sub, "SUBSCRIBE unit:ws");
	freeReplyObject(r);

	struct pub *p = pub_open(&c, err, sizeof(err));
	assert_non_null(p);
	/* published while still connecting: sent once the connection is up */
	char *early = evt_job_status(-1, "early", -1);
	assert_int_equal(pub_publish(p, early), 0);
	free(early);
	assert_int_equal(pub_flush(p, 2000), 0);
	assert_int_equal(pub_state(p), PUB_UP);
	assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
	assert_non_null(strstr(r->element[2]->str, "\"early\""));
	freeReplyObject(r);
	assert_string_equal(pub_state_name(p), "ok");
	for (int i = 0; i < 100; i++) {
		char *m = evt_job_status(i, "pending", -1);
		assert_int_equal(pub_publish(p, m), 0);
		free(m);
	}
	assert_int_equal(pub_flush(p, 2000), 0);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
		assert_int_equal(r->type, REDIS_REPLY_ARRAY);
		assert_non_null(strstr(r->element[2]->str, "\"job_status\""));
		freeReplyObject(r);
	}
	assert_int_equal(pub_published(p), 101);
	assert_int_equal(pub_dropped(p), 0);

	/* Redis gone: publishing drops and counts, and never blocks. */
	redis_stop(rp, sock);
	int64_t t0 = util_mono_ms();
	for (int i = 0; i < 1000; i++) {
		char *m = evt_job_status(i, "pending", -1);
		pub_publish(p, m);
		free(m);
		struct pollfd pfd;
		if (pub_pollfd(p, &pfd) && poll(&pfd, 1, 0) > 0)
			pub_handle(p, pfd.revents);
		pub_tick(p);
	}
	pub_flush(p, 200);
	assert_true(util_mono_ms() - t0 < 2000);
	assert_true(pub_dropped(p) > 0);
	assert_string_equal(pub_state_name(p), "down");

	/* Redis back: reconnects after the backoff */
	rp = start_redis(sock);
	assert_true(rp > 0);
	int up = 0;
	for (int i = 0; i < 300 && !up; i++) {
		pub_tick(p);
		struct pollfd pfd;
		if (pub_pollfd(p, &pfd) && poll(&pfd, 1, 20) > 0)
			pub_handle(p, pfd.revents);
		else if (!pub_pollfd(p, &pfd))
			usleep(20000);
		up = pub_state(p) == PUB_UP;
	}
	assert_true(up);
	pub_close(p);
	redisFree(sub);
	redis_stop(rp, sock);
	conf_free(&c);
	unsetenv("REDIS_ENABLED");
}

/* pub_sync returns once Redis has answered, SELECT (a db in the URL)
 * counted: a PUBLISH another client sends then comes after the event. */
static void
sync_orders_before_another_client(void **state)
{
	char sock[128], err[256], url[200];
	struct conf c;
	(void)state;
	pid_t rp = redis_conf("sync-", sock, sizeof(sock), &c);
	snprintf(url, sizeof(url), "unix://%s?db=1", sock);
	free(c.redis_url);
	c.redis_url = xstrdup(url);
	redisContext *sub = redisConnectUnix(sock), *other = redisConnectUnix(sock);
	assert_true(sub != NULL && sub->err == 0 && other != NULL && other->err == 0);
	struct timeval tv = { 5, 0 };
	assert_int_equal(redisSetTimeout(sub, tv), REDIS_OK);
	redisReply *r = redisCommand(sub, "SUBSCRIBE %s:ws", c.redis_channel_prefix);
	freeReplyObject(r);

	struct pub *p = pub_open(&c, err, sizeof(err));
	assert_non_null(p);
	for (int i = 0; i < 20; i++) {
		char *m = evt_job_status(i, "pending", -1);
		assert_int_equal(pub_publish(p, m), 0);
		free(m);
		assert_int_equal(pub_sync(p, 2000), 0);
		r = redisCommand(other, "PUBLISH %s:ws after-%d", c.redis_channel_prefix, i);
		freeReplyObject(r);
		for (int k = 0; k < 2; k++) {
			assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
			const char *got = r->element[2]->str;
			if (k == 0)
				assert_non_null(strstr(got, "\"pending\""));
			else
				assert_true(strncmp(got, "after-", 6) == 0);
			freeReplyObject(r);
		}
	}
	assert_int_equal(pub_dropped(p), 0);
	pub_close(p);
	redisFree(other);
	redisFree(sub);
	redis_stop(rp, sock);
	conf_free(&c);
	unsetenv("REDIS_ENABLED");
}

/* A "Redis" that takes the bytes and never answers: pub_flush is content,
 * pub_sync gives up after its timeout and drops the connection, so that
 * the next callers do not wait on it too. */
static void
sync_gives_up_on_a_mute_redis(void **state)
{
	char sock[96], err[256], url[200];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct conf c;
	(void)state;
	snprintf(sock, sizeof(sock), "/tmp/etl-unit-mute-%d.sock", (int)getpid());
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	unlink(sock);
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 4), 0); /* connects complete; nobody reads */
	snprintf(url, sizeof(url), "unix://%s", sock);
	setenv("REDIS_ENABLED", "true", 1);
	setenv("REDIS_URL", url, 1);
	assert_int_equal(conf_load(&c, err, sizeof(err)), 0);

	struct pub *p = pub_open(&c, err, sizeof(err));
	assert_non_null(p);
	assert_int_equal(pub_flush(p, 2000), 0); /* the connect */
	assert_int_equal(pub_state(p), PUB_UP);
	assert_int_equal(pub_publish(p, "{}"), 0);
	assert_int_equal(pub_flush(p, 2000), 0); /* left: in the socket */
	assert_int_equal(pub_publish(p, "{}"), 0);
	int64_t t0 = util_mono_ms();
	assert_int_equal(pub_sync(p, 300), -1);
	int64_t took = util_mono_ms() - t0;
	assert_true(took >= 290 && took < 2000);
	assert_int_equal(pub_state(p), PUB_DOWN);
	/* It connects again (the listener takes it) after its back-off, and
	 * the connect does not reset the back-off, Redis having never
	 * answered: after the next failure the retry waits twice as long
	 * (150-250 ms with the jitter, not 75-125). */
	for (int round = 0; round < 2; round++) {
		int64_t down = util_mono_ms();
		while (pub_state(p) != PUB_UP && util_mono_ms() - down < 3000) {
			(void)pub_flush(p, 50);
			usleep(2000);
		}
		assert_int_equal(pub_state(p), PUB_UP);
		if (round == 1)
			assert_true(util_mono_ms() - down >= 140);
		assert_int_equal(pub_publish(p, "{}"), 0);
		assert_int_equal(pub_sync(p, 100), -1);
	}
	close(l); /* a reconnect is refused from now on */
	unlink(sock);
	/* down: the next caller does not wait */
	t0 = util_mono_ms();
	assert_int_equal(pub_publish(p, "{}"), -1);
	assert_int_equal(pub_sync(p, 300), 0);
	assert_true(util_mono_ms() - t0 < 100);
	pub_close(p);
	conf_free(&c);
	unsetenv("REDIS_ENABLED");
	unsetenv("REDIS_URL");
}

static void
disabled_publishes_nothing(void **state)
{
	struct conf c;
	char err[128];
	(void)state;
	unsetenv("REDIS_ENABLED");
	assert_int_equal(conf_load(&c, err, sizeof(err)), 0);
	struct pub *p = pub_open(&c, err, sizeof(err));
	assert_int_equal(pub_publish(p, "{}"), 0);
	assert_int_equal(pub_published(p), 0);
	assert_int_equal(pub_dropped(p), 0);
	assert_string_equal(pub_state_name(p), "disabled");
	struct pollfd pfd;
	assert_int_equal(pub_pollfd(p, &pfd), 0);
	pub_close(p);
	conf_free(&c);
}

/* The caching sender finds a worker that binds after it has scanned (also
 * within the same clock tick), forgets one that is gone, and copes with the
 * directory coming and going. */
static void
wake_sender_follows_the_directory(void **state)
{
	char dir[64], b;
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/etl-unit-wakes-%d", (int)getpid());
	struct wake_sender *w = wake_sender_open(dir);
	assert_int_equal(wake_sender_notify(w), 0); /* no directory yet */
	int fd = wake_listen(dir);
	assert_true(fd >= 0);
	assert_int_equal(wake_sender_notify(w), 1);
	assert_int_equal(recv(fd, &b, 1, 0), 1);
	for (int i = 0; i < 3; i++) /* from the cache */
		assert_int_equal(wake_sender_notify(w), 1);
	wake_drain(fd);
	/* a second worker (another pid's name) binds right after a scan */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int f2 = wake_listen(dir);
		char c;
		struct pollfd pf = { f2, POLLIN, 0 };
		/* answer the parent's wake-up by exiting 0 */
		_exit(f2 >= 0 && poll(&pf, 1, 10000) == 1 && recv(f2, &c, 1, 0) == 1 ? 0 : 1);
	}
	char p2[128];
	struct stat sb;
	snprintf(p2, sizeof(p2), "%s/worker-%d.sock", dir, (int)pid);
	for (int i = 0; i < 5000 && stat(p2, &sb) != 0; i++)
		usleep(1000);
	assert_int_equal(stat(p2, &sb), 0);
	int n = wake_sender_notify(w);
	assert_int_equal(n, 2);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* its worker gone: the socket is removed, and the next sends skip it */
	assert_int_equal(wake_sender_notify(w), 1);
	assert_int_equal(stat(p2, &sb), -1);
	assert_int_equal(wake_sender_notify(w), 1);
	close(fd);
	wake_unlink(dir);
	rmdir(dir);
	assert_int_equal(wake_sender_notify(w), 0);
	wake_sender_close(w);
}

/* A worker that binds in the same clock tick as the sender's scan leaves
 * the directory's mtime as the scan saw it (kernels before 6.13 stamp
 * files from a clock that ticks every few ms; simulated here by setting
 * the mtime back): it is still found once the tick is over. */
static void
wake_sender_same_tick(void **state)
{
	char dir[64], b;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/etl-unit-waket-%d", (int)getpid());
	int fd = wake_listen(dir);
	assert_true(fd >= 0);
	struct wake_sender *w = wake_sender_open(dir);
	assert_int_equal(stat(dir, &sb), 0);
	assert_int_equal(wake_sender_notify(w), 1); /* scanned: one worker */
	int fd2 = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd2 >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/worker-999999.sock", dir);
	assert_int_equal(bind(fd2, (struct sockaddr *)&sa, sizeof(sa)), 0);
	struct timespec same[2] = { sb.st_atim, sb.st_mtim };
	assert_int_equal(utimensat(AT_FDCWD, dir, same, 0), 0);
	usleep(150000); /* the tick is long over */
	assert_int_equal(wake_sender_notify(w), 2);
	assert_int_equal(recv(fd2, &b, 1, MSG_DONTWAIT), 1);
	wake_sender_close(w);
	close(fd2);
	unlink(sa.sun_path);
	close(fd);
	wake_unlink(dir);
	rmdir(dir);
}

static void
wake_roundtrip(void **state)
{
	char dir[64];
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/etl-unit-wake-%d", (int)getpid());
	int fd = wake_listen(dir);
	assert_true(fd >= 0);
	assert_int_equal(wake_notify(dir), 1);
	char b;
	assert_int_equal(recv(fd, &b, 1, 0), 1);
	wake_drain(fd);
	assert_true(recv(fd, &b, 1, 0) < 0);
	/* a stale socket (its worker gone) is removed by the next notify */
	close(fd);
	assert_int_equal(wake_notify(dir), 0);
	char p[128];
	snprintf(p, sizeof(p), "%s/worker-%d.sock", dir, (int)getpid());
	struct stat sb;
	assert_int_equal(stat(p, &sb), -1);
	rmdir(dir);
	char *d = wake_dir_for(NULL, "/var/lib/etl/etl.db");
	assert_string_equal(d, "/var/lib/etl/wake");
	free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(event_shapes),
		cmocka_unit_test(url_parsing),
		cmocka_unit_test_teardown(publish_to_real_redis, kill_redis),
		cmocka_unit_test_teardown(sync_orders_before_another_client, kill_redis),
		cmocka_unit_test(sync_gives_up_on_a_mute_redis),
		cmocka_unit_test(disabled_publishes_nothing),
		cmocka_unit_test_teardown(idle_connect_is_not_a_timeout, kill_redis),
		cmocka_unit_test(wake_roundtrip),
		cmocka_unit_test(wake_sender_follows_the_directory),
		cmocka_unit_test(wake_sender_same_tick),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
