"""Helpers of the end-to-end and fault suites (test_e2e.py, test_faults.py):
the whole stack behind either web server, composed from the other suites'
helpers without changing them: lighttpd or Apache (mod_proxy_fcgi) started
from the project's config files (harness_web.WebStack), an optional private
redis-server, etl-worker and etl-wsd on the port the config proxies /ws to.
Every component can be killed, stopped and started again on the same
address. A websocket client (python3-websockets) runs in a thread and
collects the events that reach it THROUGH the web server, reconnecting when
asked to. count-runs.sh (pipelines/) records every start and end of a job,
so a test can prove that no job ran twice."""
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import threading

from harness import PIPELINE_SIM, SECRET, binary, start_redis, wait_for
from harness_web import ADMIN, ADMIN_PW, WebStack, make_env
from harness_worker import pipeline
from harness_wsd import Redis, Wsd, event

FINAL = ("completed", "error", "cancelled")
OPER, OPER_PW = "oper", "oper-pass-1"
VIEW, VIEW_PW = "view", "view-pass-1"
SISTEMAS = ("amplis", "maps", "sac", "sap")
SHORT = {"lines": 3, "sleep": 0.5}  # the short pipeline every e2e job runs
COUNT_RUNS = pipeline("count-runs.sh")


class WsEvents:
    """A websocket client on url in its own thread: every JSON message that
    arrives is appended to msgs (with the connection number it came on).
    With reconnect=True it connects again whenever the connection ends."""

    def __init__(self, url, reconnect=False):
        self.url = url
        self.reconnect = reconnect
        self.msgs = []
        self.connects = 0
        self.closes = []  # (code, reason) of every connection that ended
        self.errors = []
        self.lock = threading.Lock()
        self.stopped = False
        self.t = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.t.start()

    async def _main(self):
        import websockets
        while not self.stopped:
            try:
                async with websockets.connect(self.url, open_timeout=5, close_timeout=2,
                                              max_size=2 ** 22) as ws:
                    with self.lock:
                        self.connects += 1
                        n = self.connects
                    while not self.stopped:
                        try:
                            raw = await asyncio.wait_for(ws.recv(), 0.2)
                        except asyncio.TimeoutError:
                            continue
                        with self.lock:
                            self.msgs.append((n, json.loads(raw)))
            except websockets.ConnectionClosed as e:
                self.closes.append((e.rcvd.code if e.rcvd else 1006,
                                    e.rcvd.reason if e.rcvd else ""))
            except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake,
                    websockets.InvalidURI) as e:
                self.errors.append(repr(e))
            if not self.reconnect:
                return
            await asyncio.sleep(0.1)

    def of(self, typ, **match):
        """Payloads of type typ whose fields equal match, in arrival order."""
        with self.lock:
            return [m["payload"] for _, m in self.msgs if m.get("type") == typ and
                    all(m.get("payload", {}).get(k) == v for k, v in match.items())]

    def types(self):
        with self.lock:
            return [m.get("type") for _, m in self.msgs]

    def close(self):
        self.stopped = True
        self.t.join(5)


def runs(path):
    """count-runs.sh's record: {job_id: [("start"|"end", rc), ...]}."""
    out = {}
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                out.setdefault(int(parts[1]), []).append((parts[0], parts[2] if len(parts) > 2
                                                           else None))
    return out


class E2EStack:
    """web server + etl-api + etl-worker (+ redis + etl-wsd when redis).
    server: 'lighttpd' or 'apache-proxy'. sql: a file of SQL the database is
    built from before anything starts (the legacy fixture). api_children:
    etl-api -n N behind Apache (a prefork parent that replaces dead
    children). populate: create the operator, the viewer and SISTEMAS."""

    def __init__(self, server="lighttpd", redis=True, slots=1, sql=None, api_children=1,
                 populate=True, db_dir=None, count_runs=False, **overrides):
        o = {"ETL_MAX_CONCURRENT_JOBS": slots, "ETL_POLL_INTERVAL": "1.0", "ETL_KILL_GRACE": "2"}
        if count_runs:
            o["ETL_PIPELINE_CMD"] = f"{COUNT_RUNS} {PIPELINE_SIM}"
        o.update(overrides)
        self.env = make_env(**o)
        # Debian's python3 first: pipeline-sim is "#!/usr/bin/env python3" and a
        # python3 shim earlier on PATH can cost a second a job.
        self.env.env["PATH"] = "/usr/bin:/bin:" + self.env.env.get("PATH", "")
        self.server = server
        self.redis_url = self.redis = self.wsd = self.worker = self.web = None
        self.ws_clients = []
        self.n_worker = 0
        try:
            if count_runs:
                self.env.env["ETL_PIPELINE_CWD"] = self.env.dir
            if db_dir:
                self.env.env["ETL_DB_PATH"] = os.path.join(db_dir, "etl.db")
                self.env.db = self.env.env["ETL_DB_PATH"]
            if sql:
                with open(sql, "rb") as f:
                    subprocess.run(["sqlite3", self.env.db], stdin=f, check=True, timeout=30)
            if redis:
                self.redis_proc, self.redis_url = start_redis(self.env)
                self.env.env.update({"REDIS_ENABLED": "true", "REDIS_URL": self.redis_url})
                self.redis = Redis(self.redis_url)
            prefix = None
            if api_children > 1:
                # WebStack runs [*prefix, etl-api, -s, SOCK]: put -n N in front of -s.
                prefix = ["/bin/sh", "-c", f'exec "$0" -n {api_children} "$@"']
            self.web = WebStack(server, self.env, api_argv_prefix=prefix).start()
            self.port = self.web.port
            if populate:
                self._populate()
            self.start_worker()
            if redis:
                self.start_wsd()
        except BaseException:
            self.close()
            raise

    # ---- clients -----------------------------------------------------------
    def http(self, user=None, password=None):
        c = self.web.http()
        if user:
            c.login(user, password)
        return c

    def admin(self):
        return self.http(ADMIN, ADMIN_PW)

    def oper(self):
        return self.http(OPER, OPER_PW)

    def _populate(self):
        c = self.admin()
        for name, pw, role in ((OPER, OPER_PW, "operator"), (VIEW, VIEW_PW, "viewer")):
            st, _, js, _ = c.post("/api/users", {"username": name, "password": pw, "role": role})
            assert st == 201, (st, js)
        for sid in SISTEMAS:
            st, _, js, _ = c.request("PUT", "/api/sistemas/" + sid,
                                     {"nome": sid.upper(), "descricao": "d " + sid, "ativo": True})
            assert st == 200, (st, js)

    def ws(self, token, reconnect=False, ready=True):
        """A websocket client on /ws THROUGH the web server. With ready, waits
        until an event published on Redis reaches it (so nothing the test
        does afterwards can be missed for a late subscription)."""
        w = WsEvents(f"ws://127.0.0.1:{self.port}/ws?token={token}", reconnect=reconnect)
        self.ws_clients.append(w)
        if ready:
            self.ws_ready(w)
        return w

    def ws_ready(self, w, timeout=15):
        tag = os.urandom(4).hex()

        def seen():
            self.redis.publish(event("e2e_probe", tag=tag))
            return w.of("e2e_probe", tag=tag)
        wait_for(seen, timeout=timeout, interval=0.1, what="a probe event through /ws")

    def execute(self, c, sistemas, params=None, expect=202):
        body = {"sistemas": list(sistemas)}
        if params is not None:
            body["params"] = params
        st, h, js, raw = c.post("/api/execute", body)
        assert st == expect, (st, raw, self.logs())
        return js["job_id"] if st == 202 else (st, h, js)

    def job(self, c, jid):
        st, _, js, raw = c.get(f"/api/jobs/{jid}")
        assert st == 200, (st, raw)
        return js

    def wait_job(self, c, jid, statuses=FINAL, timeout=30):
        if isinstance(statuses, str):
            statuses = (statuses,)

        def done():
            st, _, js, _ = c.get(f"/api/jobs/{jid}")
            return st == 200 and js["status"] in statuses and js
        return wait_for(done, timeout=timeout, interval=0.05,
                        what=f"job {jid} in {statuses}\n{self.logs()}")

    def rest_logs(self, c, jid, after=0, page=500):
        """Every log line of job jid through the REST route, page by page."""
        out = []
        while True:
            st, _, js, raw = c.get(f"/api/jobs/{jid}/logs?after={after}&limit={page}")
            assert st == 200, (st, raw)
            out += js["lines"]
            if not js["lines"]:
                return out
            after = js["next"]

    # ---- components ----------------------------------------------------------
    def start_worker(self, **envover):
        from harness_worker import start_worker
        self.n_worker += 1
        self.worker = start_worker(self.env, name=f"worker{self.n_worker}",
                                   args=("-p", self.env.path("worker.pid")), **envover)
        return self.worker

    def start_wsd(self):
        port = self.web.wsport
        p = self.env.start([binary("etl-wsd"), "-l", f"127.0.0.1:{port}",
                            "-p", self.env.path("wsd.pid")], "wsd")
        self.wsd = Wsd(self.env, p, port=port)
        wait_for(lambda: not p.alive() or self.wsd.health()[0] == 200, timeout=15,
                 what="etl-wsd healthy")
        assert p.alive(), p.log()[-2000:]
        return self.wsd

    def restart_redis(self):
        sock = self.redis_url[len("unix://"):]
        if os.path.exists(sock):  # left by a kill -9: start_redis waits for a new one
            os.unlink(sock)
        self.redis_proc, url = start_redis(self.env)
        assert url == self.redis_url
        self.redis.close()
        return self.redis_proc

    def stop_web(self):
        self.web.server.stop()
        if self.server == "lighttpd":
            # lighttpd's spawned etl-api processes end with it
            wait_for(lambda: not self.api_pids(), timeout=15, what="etl-api processes gone")

    def start_web(self):
        if self.server == "lighttpd":
            self.web._start_lighttpd()
        else:
            self.web._apache(self.env.path("site.conf"))
        wait_for(lambda: self.http().get("/api/health")[0] == 200, timeout=20,
                 what=f"{self.server} back")

    def api_pids(self):
        """PIDs of the etl-api processes serving this stack (whoever started them)."""
        exe = os.path.realpath(binary("etl-api"))
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                if os.path.realpath(f"/proc/{d}/exe") != exe:
                    continue
                with open(f"/proc/{d}/environ", "rb") as f:
                    envb = f.read()
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if self.env.dir.encode() in envb or self.env.dir.encode() in cmd:
                out.append(int(d))
        return sorted(out)

    def api_children_pids(self):
        """etl-api processes that serve requests (not a prefork parent)."""
        pids = self.api_pids()
        parents = set()
        for p in pids:
            try:
                with open(f"/proc/{p}/stat") as f:
                    st = f.read()
                parents.add(int(st[st.rindex(")") + 2:].split()[1]))
            except OSError:
                pass
        return [p for p in pids if p not in parents]

    def sql(self, q, *args):
        return self.env.sql(q, *args)

    def integrity(self):
        con = sqlite3.connect(self.env.db, timeout=10)
        try:
            return con.execute("PRAGMA integrity_check").fetchall()
        finally:
            con.close()

    def runs(self):
        return runs(self.env.path("runs.txt"))

    def logs(self):
        out = []
        for name in sorted(os.listdir(self.env.dir)):
            if name.endswith(".log"):
                with open(self.env.path(name), "rb") as f:
                    out.append(f"--- {name}\n" + f.read()[-2500:].decode("utf-8", "replace"))
        return "\n".join(out)

    def close(self):
        for w in self.ws_clients:
            w.close()
        if self.redis is not None:
            self.redis.close()
        # etl-api children of a prefork parent or lighttpd stop with their parent;
        # a stray one (killed parent) is ours too: stop it by PID.
        for p in reversed(self.env.procs):
            p.stop()
        for pid in self.api_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.env.close()


def assert_converged(stack, c, ids, timeout=40):
    """Every job in ids reaches exactly one final state; count-runs.sh
    started none of them twice. Returns {id: job}."""
    out = {}
    for jid in ids:
        out[jid] = stack.wait_job(c, jid, timeout=timeout)
    r = stack.runs()
    for jid in ids:
        starts = [x for x in r.get(jid, []) if x[0] == "start"]
        assert len(starts) <= 1, (jid, r.get(jid))
        if out[jid]["status"] == "completed":
            assert len(starts) == 1, (jid, r.get(jid))
    for jid in ids:
        assert stack.job(c, jid)["status"] == out[jid]["status"]
    return out


__all__ = ["E2EStack", "WsEvents", "assert_converged", "runs", "FINAL", "SHORT", "SECRET",
           "ADMIN", "ADMIN_PW", "OPER", "OPER_PW", "SISTEMAS"]
