"""etl-worker events through a real Redis: every state change and line is
published as API.md says, and Redis going away mid-job neither stalls nor
fails the job; events resume once Redis is back."""
import os

from harness import start_redis, wait_for
import time

from harness_worker import (RedisSub, enqueue, init_db, job, redis_publish, start_worker,
                            wait_status, waited_to_start)
from harness_wsd import Redis


def test_events_of_a_job(env):
    init_db(env)
    _, url = start_redis(env)
    sub = RedisSub(url)
    try:
        start_worker(env, REDIS_ENABLED="true", REDIS_URL=url)
        i = enqueue(env, "amplis", "maps", params={"lines": 2, "fail": "maps", "sleep": 0.6,
                                                     "format": "json"})
        wait_status(env, i, "completed")
        wait_for(lambda: sub.of("job_complete", job_id=i), what="job_complete event")
        js = [m["payload"]["status"] for m in sub.of("job_status", job_id=i)]
        assert js == ["running", "completed"]
        assert all(m["payload"]["worker_slot"] == 0 for m in sub.of("job_status", job_id=i))
        done = sub.of("job_complete", job_id=i)[0]["payload"]
        assert done["status"] == "completed" and 0 <= done["duracao_segundos"] < 30
        logs = sub.of("log", job_id=i)
        assert [m["payload"]["seq"] for m in logs] == list(range(1, 7))
        first = logs[0]["payload"]
        assert (first["slot_id"], first["level"], first["sistema"], first["mensagem"]) == \
            (0, "INFO", "amplis", "etapa 1/2 de amplis")
        assert first["ts"].endswith("Z")
        amplis = [(m["payload"]["status"], m["payload"]["progresso"])
                  for m in sub.of("status", sistema_id="amplis")]
        assert amplis[0] == ("RUNNING", 0)
        assert ("RUNNING", 50) in amplis and amplis[-1] == ("SUCCESS", 100)
        progress = [p for _, p in amplis]
        assert progress == sorted(progress), "never backwards"
        maps = [m["payload"] for m in sub.of("status", sistema_id="maps")]
        assert maps[-1]["status"] == "ERROR" and maps[-1]["mensagem"] == "falha em maps"
        assert all(m["source_instance"] for m in sub.msgs)
    finally:
        sub.close()


def test_redis_down_mid_job_then_back(env):
    init_db(env)
    redis, url = start_redis(env)
    sub = RedisSub(url)
    try:
        w = start_worker(env, REDIS_ENABLED="true", REDIS_URL=url)
        i = enqueue(env, "amplis", params={"lines": 30, "sleep": 1.5})
        wait_for(lambda: len(sub.of("log", job_id=i)) >= 2, what="first events")
        redis.kill9()
        os.unlink(url[len("unix://"):])
        j = wait_status(env, i, "completed", timeout=10)
        assert j["exit_code"] == 0
        n = env.sql("SELECT count(*) FROM job_logs WHERE job_id = ?", i)[0][0]
        assert n == 31, "every line stored while Redis was down"
        assert w.alive()
        # Redis comes back on the same socket: the next job's events arrive.
        start_redis(env)
        wait_for(lambda: sub.connected.is_set(), what="subscriber back")
        # The publisher reconnects by itself (backoff up to 5 s).
        wait_for(lambda: w.log().count("pub: connected to Redis") >= 2, timeout=15,
                 what="worker reconnected")
        k = enqueue(env, "maps", params={"lines": 1})
        wait_status(env, k, "completed")
        wait_for(lambda: sub.of("job_complete", job_id=k), timeout=15,
                 what="events after Redis came back")
        dropped = env.sql("SELECT events_dropped FROM workers WHERE pid = ?", w.pid)
        assert dropped  # the counters row exists (updated at each heartbeat)
    finally:
        sub.close()


def test_redis_unreachable_from_the_start_does_not_stop_jobs(env):
    init_db(env)
    start_worker(env, REDIS_ENABLED="true", REDIS_URL="unix://" + env.path("nothing.sock"))
    i = enqueue(env, "amplis", params={"lines": 2})
    wait_status(env, i, "completed", timeout=10)


def test_enqueue_on_another_host_wakes_through_redis(env):
    """The API's wake datagram cannot cross hosts: its job_status "pending"
    event on Redis wakes the worker instead of the 60 s fallback poll."""
    init_db(env)
    _, url = start_redis(env)
    w = start_worker(env, REDIS_ENABLED="true", REDIS_URL=url, ETL_POLL_INTERVAL=60)
    wait_for(lambda: "remote: subscribed" in w.log(), what="worker subscribed")
    i = enqueue(env, "amplis", params={"lines": 1}, use_sql=True, wake_up=False)
    time.sleep(0.5)
    assert job(env, i)["status"] == "pending", "no datagram, no event: it waits for the poll"
    t0 = time.monotonic()
    assert redis_publish(url, "etl:ws", {"type": "job_status", "source_instance": "api-host-1",
                                         "payload": {"job_id": i, "status": "pending",
                                                     "worker_slot": None}}) >= 1
    wait_status(env, i, ("running", "completed"), timeout=5)
    assert time.monotonic() - t0 < 1.0
    # Other events on the channel do not make it do anything.
    redis_publish(url, "etl:ws", {"type": "log", "payload": {}})
    redis_publish(url, "etl:ws", "not an event")
    assert w.alive()


def test_closed_orphans_are_announced_and_counters_stored(env):
    init_db(env)
    _, url = start_redis(env)
    sub = RedisSub(url)
    try:
        kw = dict(REDIS_ENABLED="true", REDIS_URL=url, ETL_LEASE_INTERVAL=1)
        w1 = start_worker(env, "w1", **kw)
        i = enqueue(env, "amplis", params={"lines": 2, "sleep": 30})
        wait_for(lambda: sub.of("log", job_id=i), what="job running")
        from harness_worker import pipeline_pid, kill_group
        pid = pipeline_pid(w1, i)
        w1.kill9()
        kill_group(pid)
        w2 = start_worker(env, "w2", **kw)
        wait_status(env, i, "error")
        wait_for(lambda: [m for m in sub.of("job_status", job_id=i)
                          if m["payload"]["status"] == "error"], what="job_status error event")
        done = wait_for(lambda: sub.of("job_complete", job_id=i), what="job_complete event")
        assert done[0]["payload"]["status"] == "error"
        st = wait_for(lambda: [m for m in sub.of("status", sistema_id="amplis")
                               if m["payload"]["status"] == "ERROR"], what="sistema ERROR event")
        assert st[-1]["payload"]["mensagem"] == "orphaned: worker died"
        # Counters reach the registry at the next heartbeat.
        wait_for(lambda: env.sql("SELECT events_published FROM workers WHERE pid = ?",
                                 w2.pid)[0][0] > 0, what="counters stored")
    finally:
        sub.close()


def test_subscription_over_tcp_has_keepalive(env):
    """The worker's subscription holds announced jobs until their pending
    is seen (README): one whose peer vanished without a FIN must not look
    alive forever. Over TCP it has keepalive on, as etl-wsd's has: the
    kernel's keepalive timer (timer kind 2 in /proc/net/tcp) runs on it."""
    from harness import free_port
    init_db(env)
    port = free_port()
    _, url = start_redis(env, port=port)
    w = start_worker(env, REDIS_ENABLED="true", REDIS_URL=f"redis://127.0.0.1:{port}/0")
    wait_for(lambda: "remote: subscribed" in w.log(), what="worker subscribed")
    clients = Redis(url).command("CLIENT", "LIST").decode().splitlines()
    subs = [c for c in clients if "cmd=subscribe" in c]
    assert len(subs) == 1, clients
    local = int(subs[0].split("addr=")[1].split()[0].rsplit(":", 1)[1])

    def timer_kind(lport):
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if int(cols[1].split(":")[1], 16) == lport and int(cols[2].split(":")[1], 16) == port:
                    return int(cols[5].split(":")[0], 16)
        return None
    assert timer_kind(local) == 2, "no keepalive timer on the subscription"
    # the publisher's connection (the other one) has none: the check can tell
    others = [int(c.split("addr=")[1].split()[0].rsplit(":", 1)[1]) for c in clients
              if "cmd=subscribe" not in c and "cmd=client" not in c]
    assert others and all(timer_kind(p) == 0 for p in others), clients


def test_once_with_redis_starts_announced_jobs_enqueued_before_it(env):
    """A cron-driven `etl-worker --once` (shared hosting) with Redis: the
    announced jobs it finds were enqueued before it listened, and their
    pending events went by then. It holds them only until it is subscribed
    (not the REDIS_SOCKET_TIMEOUT + 1 s grace), runs them and exits."""
    import subprocess
    from harness import binary
    init_db(env)
    _, url = start_redis(env)
    ids = [enqueue(env, s, params={"lines": 1}, wake_up=False, announce=True)
           for s in ("amplis", "maps")]
    e = dict(env.env, REDIS_ENABLED="true", REDIS_URL=url, REDIS_SOCKET_TIMEOUT="30",
             ETL_MAX_CONCURRENT_JOBS="2")
    t0 = time.monotonic()
    r = subprocess.run([binary("etl-worker"), "--once"], env=e, capture_output=True, timeout=90,
                       text=True)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert [job(env, i)["status"] for i in ids] == ["completed"] * 2
    assert took < 15, (took, r.stderr[-2000:])  # the grace would be 31 s
    assert "started without its pending event" not in r.stderr


def test_not_subscribed_holds_announced_jobs_unless_it_cannot_publish(env):
    """A worker that is not subscribed cannot see a pending event. While its
    publisher can send, its running could still come first: a young
    announced job waits out the grace (here 2 s). A Redis that takes
    connections and never answers gives just that (connected, never
    subscribed). With the publisher down as well its events are dropped:
    nothing is held (a port that refuses)."""
    import socket
    init_db(env)
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)  # connects complete; nobody reads or answers
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # never listening: connections are refused
    try:
        for sock, held in ((mute, True), (closed, False)):
            url = "redis://127.0.0.1:%d/0" % sock.getsockname()[1]
            w = start_worker(env, "held" if held else "free", REDIS_ENABLED="true", REDIS_URL=url,
                             REDIS_SOCKET_TIMEOUT="1", ETL_POLL_INTERVAL="60")
            i = enqueue(env, "amplis", announce=True)
            wait_status(env, i, "completed", timeout=20)
            if held:
                assert 1.8 <= waited_to_start(job(env, i)) < 10, job(env, i)
                assert f"job={i}: started without its pending event" in w.log()
            else:
                assert waited_to_start(job(env, i)) < 1.5, job(env, i)
                assert "started without its pending event" not in w.log()
            w.stop()
    finally:
        mute.close()
        closed.close()
