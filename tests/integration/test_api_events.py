"""Events and the worker wake-up, in the order a dashboard needs them: with
REDIS_ENABLED, etl-api wakes the workers only once Redis has published the
request's events (a woken worker publishes its own at once), answers the
client before it waits on Redis, and waits on a Redis that never answers
REDIS_SOCKET_TIMEOUT at most; and a listening worker starts a job only once
its pending is on the channel, however it came to look at the queue."""
import json
import socket
import threading
import time

import pytest

from harness import start_redis, wait_for
from harness_web import Fcgi, Subscriber, WebStack, make_env, populate, start_api, wake_socket
from harness_worker import start_worker, waited_to_start
from harness_wsd import Redis


@pytest.fixture
def menv():
    e = make_env()
    yield e
    e.close()


class SlowLink:
    """A TCP proxy to a unix-socket Redis that holds each chunk its client
    sends for `delay` seconds (answers pass at once): a Redis far away, or
    behind a loaded proxy. Bytes the client has sent are not yet Redis's."""

    def __init__(self, path, delay):
        self.path, self.delay = path, delay
        self.l = socket.socket()
        self.l.bind(("127.0.0.1", 0))
        self.l.listen(8)
        self.port = self.l.getsockname()[1]
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.l.accept()
                u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                u.connect(self.path)
            except OSError:
                return
            self.socks += [c, u]
            threading.Thread(target=self._pipe, args=(c, u, self.delay), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, 0), daemon=True).start()

    @staticmethod
    def _pipe(src, dst, delay):
        while True:
            try:
                b = src.recv(65536)
            except OSError:
                b = b""
            if not b:
                break
            time.sleep(delay)
            try:
                dst.sendall(b)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        # shutdown wakes the threads blocked in accept and recv; close alone would not
        for s in [self.l] + self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def test_workers_are_woken_only_once_the_events_are_published(menv):
    """A woken worker publishes its own events at once (a job's running).
    They must not reach the channel before the API's (its pending, or a
    cancel's cancelled and IDLE), or a dashboard shows a running job as
    pending. So, with events on, the API wakes the workers only once Redis
    has answered its PUBLISHes. Here the API reaches Redis through a link
    that holds its commands 0.3 s, and a stand-in worker publishes a marker
    straight to Redis the moment it is woken: every event of the request
    comes before the marker. (Waiting only for the bytes to leave would
    not do: they would still be in the link.)"""
    redis, url = start_redis(menv)
    path = url[len("unix://"):]
    link = SlowLink(path, 0.3)
    w = wake_socket(menv, 4243)
    p, c = start_api(menv, REDIS_ENABLED="true", REDIS_URL=f"redis://127.0.0.1:{link.port}/0",
                     REDIS_SOCKET_TIMEOUT="5")
    tokens = populate(c)
    sub = Subscriber(path, "etl:ws")
    direct = Redis(url)  # the stand-in worker's own connection
    try:
        wait_for(lambda: c.get("/api/health")[2]["redis"] == "ok", what="redis up")
        jid = None
        for step in ("execute", "cancel"):
            out = {}

            def call():
                a = Fcgi(c.addr)
                a.token = tokens["operator"]
                if step == "execute":
                    out["r"] = a.post("/api/execute", {"sistemas": ["amplis"]})
                else:
                    out["r"] = a.post(f"/api/jobs/{jid}/cancel")

            t = threading.Thread(target=call)
            t.start()
            assert w.recv(16) == b"w"
            direct.publish({"type": "marker"})
            t.join(30)
            assert out["r"][0] == (202 if step == "execute" else 200), out
            got = []
            while not got or got[-1]["type"] != "marker":
                got.append(json.loads(sub.message()[2]))
            kinds = [(m["type"], m.get("payload", {}).get("status")) for m in got]
            if step == "execute":
                jid = out["r"][2]["job_id"]
                assert kinds == [("status", "PENDING"), ("job_status", "pending"),
                                 ("marker", None)], kinds
            else:
                assert kinds == [("job_status", "cancelled"), ("status", "IDLE"),
                                 ("marker", None)], kinds
    finally:
        direct.close()
        sub.close()
        w.close()
        link.close()


def test_a_mute_redis_delays_the_wake_up_not_the_answer():
    """A Redis that takes the API's commands and never answers. Through
    lighttpd the client has its answer at once (etl-api sends it before it
    publishes; Apache's mod_proxy_fcgi passes it on only at the end of the
    request, README); the workers are woken about REDIS_SOCKET_TIMEOUT
    later (not never: the publisher then gives up on that connection)."""
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)  # connects complete; nobody reads or answers
    env = make_env(REDIS_ENABLED="true", REDIS_SOCKET_TIMEOUT="1.5",
                   REDIS_URL="redis://127.0.0.1:%d/0" % mute.getsockname()[1])
    w = wake_socket(env, 4244)
    try:
        stack = WebStack("lighttpd", env).start()
        c = stack.http()
        tokens = populate(c)
        c.token = tokens["operator"]
        t0 = time.monotonic()
        st, _, js, _ = c.post("/api/execute", {"sistemas": ["amplis"]})
        answered = time.monotonic() - t0
        assert st == 202, js
        assert w.recv(16) == b"w"
        woken = time.monotonic() - t0
        assert answered < 1.0 and 1.2 <= woken < 5.0, (answered, woken)
    finally:
        w.close()
        mute.close()
        env.close()


def job_times(c, jid):
    st, _, j, _ = c.get(f"/api/jobs/{jid}")
    assert st == 200, j
    return j


def test_a_running_never_reaches_the_channel_before_its_pending(menv):
    """The wake-up comes after the events, but a worker also looks at the
    queue on its own: a poll, a job it has just started (it looks for the
    next), another request's wake-up. Here the API's link to Redis holds
    its commands 0.3 s and the worker polls every 50 ms: it finds each job
    committed long before its pending is published, and must wait for
    that event on the channel before it starts the job (jobs.announce,
    worker/remote.c). Without that wait the order was running, pending."""
    redis, url = start_redis(menv)
    path = url[len("unix://"):]
    link = SlowLink(path, 0.3)
    p, c = start_api(menv, REDIS_ENABLED="true", REDIS_URL=f"redis://127.0.0.1:{link.port}/0",
                     REDIS_SOCKET_TIMEOUT="5")
    tokens = populate(c)
    sub = Subscriber(path, "etl:ws")
    try:
        w = start_worker(menv, REDIS_ENABLED="true", REDIS_URL=url, ETL_POLL_INTERVAL="0.05",
                         ETL_MAX_CONCURRENT_JOBS="2", REDIS_SOCKET_TIMEOUT="30")
        wait_for(lambda: "subscribed to etl:ws" in w.log(), what="worker subscribed")
        wait_for(lambda: c.get("/api/health")[2]["redis"] == "ok", what="redis up")
        c.token = tokens["operator"]
        ids = []
        for s in ("amplis", "maps"):
            st, _, js, _ = c.post("/api/execute", {"sistemas": [s], "params": {"lines": 1}})
            assert st == 202, js
            ids.append(js["job_id"])
        got = []
        while sum(m["type"] == "job_complete" for m in got) < 2:
            got.append(json.loads(sub.message()[2]))
        for jid, s in zip(ids, ("amplis", "maps")):
            js = [m["payload"]["status"] for m in got
                  if m["type"] == "job_status" and m["payload"]["job_id"] == jid]
            assert js == ["pending", "running", "completed"], (jid, got)
            ss = [m["payload"]["status"] for m in got
                  if m["type"] == "status" and m["payload"]["sistema_id"] == s]
            assert ss[:2] == ["PENDING", "RUNNING"] and ss[-1] == "SUCCESS", (s, got)
            j = job_times(c, jid)
            # it waited for the link, not for the 31 s grace
            assert 0.25 <= waited_to_start(j) < 15, j
        assert "started without its pending event" not in w.log()
    finally:
        sub.close()
        link.close()


def test_a_job_whose_pending_never_comes_starts_after_the_grace(menv):
    """An API that cannot reach Redis drops its events: a listening worker
    holds the announced job REDIS_SOCKET_TIMEOUT + 1 s after its creation at
    most (longer than any API tries to publish), then starts it. A job
    nobody announces (an API with REDIS_ENABLED=false, etlctl) starts at
    once."""
    redis, url = start_redis(menv)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    p, c = start_api(menv, REDIS_ENABLED="true", REDIS_SOCKET_TIMEOUT="1",
                     REDIS_URL="redis://127.0.0.1:%d/0" % closed.getsockname()[1])
    tokens = populate(c)
    _, quiet = start_api(menv, REDIS_ENABLED="false")
    try:
        # no poll in the test's time: only the gate's own timer can start it
        w = start_worker(menv, REDIS_ENABLED="true", REDIS_URL=url, REDIS_SOCKET_TIMEOUT="1",
                         ETL_POLL_INTERVAL="60")
        wait_for(lambda: "subscribed to etl:ws" in w.log(), what="worker subscribed")
        for api, held in ((c, True), (quiet, False)):
            api.token = tokens["operator"]
            st, _, js, _ = api.post("/api/execute", {"sistemas": ["amplis"], "params": {"lines": 1}})
            assert st == 202, js
            jid = js["job_id"]
            wait_for(lambda: job_times(c, jid)["status"] == "completed", timeout=20,
                     what=f"job {jid} completed")
            j = job_times(c, jid)
            waited = waited_to_start(j)
            if held:
                assert 1.8 <= waited < 5, j  # the timer, not the 60 s poll
                assert f"job={jid}: started without its pending event, not seen within 2000 ms" \
                    in w.log()
            else:
                assert waited < 1.0, j
        assert menv.sql("SELECT announce FROM jobs ORDER BY id") == [(1,), (0,)]
    finally:
        closed.close()
