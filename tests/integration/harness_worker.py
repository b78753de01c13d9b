"""Helpers for the etl-worker suites (test_worker_*.py): start workers on a
test env, enqueue and cancel jobs the way etl-api does (etlctl job add, or
the same SQL as jobq_enqueue/jobq_cancel plus a wake-up datagram), read jobs
and logs back, find a pipeline's process group, and a tiny Redis subscriber
on a raw socket (no redis-py needed)."""
import json
import os
import re
import socket
import threading
import time
from datetime import datetime

from harness import PIPELINE_SIM, binary, proc_stats, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
PIPELINES = os.path.join(HERE, "pipelines")


def pipeline(name):
    return os.path.join(PIPELINES, name)


def iso_now():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def iso_seconds(iso):
    """A stored or answered time (2026-01-02T03:04:05.678Z) in seconds since the epoch."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def waited_to_start(j):
    """Seconds from a job's creation to its start (a job row or an API answer)."""
    return iso_seconds(j["started_at"]) - iso_seconds(j["created_at"])


def have_etlctl():
    return os.access(binary("etlctl"), os.X_OK)


def init_db(env, sistemas=("amplis", "maps", "quantum", "sap", "bacen", "cetip")):
    """Creates and migrates the database, then the sistemas (all active)."""
    if have_etlctl():
        env.ctl("migrate")
        for s in sistemas:
            env.add_sistema(s)
        return
    # Fallback: the worker itself migrates a new database (--once, empty queue).
    import subprocess
    subprocess.run([binary("etl-worker"), "--once"], env=env.env, check=True, timeout=30,
                   capture_output=True)
    for s in sistemas:
        env.sql("INSERT OR REPLACE INTO sistemas (id, nome, descricao, ativo) VALUES (?, ?, ?, 1)",
                s, s.upper(), "sistema " + s)


def wake(env):
    """What wake_notify does: one datagram to every worker socket."""
    d = env.env.get("ETL_WAKE_DIR") or os.path.join(os.path.dirname(env.db), "wake")
    n = 0
    if not os.path.isdir(d):
        return 0
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.setblocking(False)
    try:
        for name in os.listdir(d):
            try:
                s.sendto(b"!", os.path.join(d, name))
                n += 1
            except OSError:
                pass
    finally:
        s.close()
    return n


def enqueue(env, *sistemas, params=None, use_sql=False, wake_up=True, announce=False):
    """Enqueues a job as etl-api would; returns its id. The worker is woken
    (wake_up=False: not, as if the API ran on another host). announce: as
    etl-api with events on marks it (jobs.announce); nobody publishes its
    pending here."""
    if have_etlctl() and not use_sql and wake_up and not announce:
        args = ["job", "add", *sistemas]
        if params is not None:
            args += ["--params", json.dumps(params)]
        r = env.ctl(*args)
        return int(r.stdout.strip().splitlines()[-1])
    import sqlite3
    con = sqlite3.connect(env.db, timeout=10, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        cur = con.execute(
            "INSERT INTO jobs (tipo, params, status, created_at, sistemas, created_by, announce) "
            "VALUES ('execucao', ?, 'pending', ?, ?, 'test', ?)",
            (json.dumps(params) if params is not None else None, iso_now(), json.dumps(list(sistemas)),
             int(announce)))
        jid = cur.lastrowid
        for s in sistemas:
            con.execute("UPDATE sistemas SET status = 'PENDING', progresso = 0, mensagem = NULL "
                        "WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM jobs j, json_each(j.sistemas) e "
                        "WHERE e.value = ?1 AND j.status = 'running')", (s,))
        con.execute("COMMIT")
    finally:
        con.close()
    if wake_up:
        wake(env)
    return jid


def cancel(env, job_id):
    """jobq_cancel then wake_notify, as the API's POST /api/jobs/{id}/cancel does.
    Returns 'cancelled', 'requested' or 'finished'."""
    import sqlite3
    con = sqlite3.connect(env.db, timeout=10, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        st = con.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
        if st == "pending":
            con.execute("UPDATE jobs SET status = 'cancelled', finished_at = ?, "
                        "error_message = 'cancelled' WHERE id = ?", (iso_now(), job_id))
            res = "cancelled"
        elif st == "running":
            con.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            res = "requested"
        else:
            res = "finished"
        con.execute("COMMIT")
    finally:
        con.close()
    wake(env)
    return res


JOB_COLS = ("id", "status", "sistemas", "params", "created_at", "started_at", "finished_at",
            "worker_slot", "exit_code", "error_message", "worker_id", "cancel_requested")


def job(env, job_id):
    rows = env.sql("SELECT " + ", ".join(JOB_COLS) + " FROM jobs WHERE id = ?", job_id)
    return dict(zip(JOB_COLS, rows[0])) if rows else None


def jobs(env):
    return [dict(zip(JOB_COLS, r)) for r in
            env.sql("SELECT " + ", ".join(JOB_COLS) + " FROM jobs ORDER BY id")]


def logs(env, job_id):
    return env.sql("SELECT seq, level, sistema, mensagem FROM job_logs WHERE job_id = ? ORDER BY seq",
                   job_id)


def sistema(env, sid):
    r = env.sql("SELECT status, progresso, mensagem, ultima_execucao FROM sistemas WHERE id = ?", sid)
    return dict(zip(("status", "progresso", "mensagem", "ultima_execucao"), r[0]))


def wait_status(env, job_id, statuses, timeout=20):
    if isinstance(statuses, str):
        statuses = (statuses,)
    return wait_for(lambda: (j := job(env, job_id)) and j["status"] in statuses and j,
                    timeout=timeout, what=f"job {job_id} in {statuses}")


def start_worker(env, name="worker", args=(), **envover):
    """Starts etl-worker with env overrides; waits until it registered."""
    p = env.start([binary("etl-worker"), "-f", *args], name, env=envover)

    def registered():
        import sqlite3
        try:
            return p.pid in {r[0] for r in env.sql("SELECT pid FROM workers")}
        except sqlite3.OperationalError:  # not migrated yet
            return False
    wait_for(lambda: not p.alive() or registered(), what="worker registered")
    assert p.alive(), p.log()
    return p


def pipeline_pid(proc, job_id, timeout=10):
    """The leader pid of job_id's pipeline, from the worker's log."""
    pat = re.compile(r"job=%d slot=\d+ pid=(\d+) started" % job_id)
    return int(wait_for(lambda: (m := pat.search(proc.log())) and m.group(1), timeout=timeout,
                        what=f"pipeline pid of job {job_id}"))


def group_members(pgid):
    """Live (non-zombie) processes whose process group is pgid."""
    return [p for p, f in proc_stats() if int(f[2]) == pgid and f[0] != "Z"]


def kill_group(pgid):
    import signal
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def redis_publish(url, channel, msg):
    """PUBLISH msg (a dict, sent as JSON) on a raw socket; returns the receiver count."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(url[len("unix://"):])
    try:
        parts = [b"PUBLISH", channel.encode(), json.dumps(msg).encode()]
        s.sendall(b"*3\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
        return int(s.makefile("rb").readline()[1:])
    finally:
        s.close()


class RedisSub:
    """SUBSCRIBE to a channel on a raw socket in a thread; messages (parsed
    JSON) collect in self.msgs. Reconnects when the server goes away."""

    def __init__(self, url, channel="etl:ws"):
        assert url.startswith("unix://")
        self.path = url[len("unix://"):]
        self.channel = channel
        self.msgs = []
        self.lock = threading.Lock()
        self.stopped = False
        self.connected = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        assert self.connected.wait(10), "subscriber did not connect"

    def _run(self):
        while not self.stopped:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.path)
            except OSError:
                time.sleep(0.05)
                continue
            self.sock = s
            try:
                ch = self.channel.encode()
                s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(ch), ch))
                f = s.makefile("rb")
                self._read_loop(f)
            except OSError:
                pass
            finally:
                self.connected.clear()
                s.close()

    def _read_value(self, f):
        line = f.readline()
        if not line:
            raise OSError("closed")
        t, rest = line[:1], line[1:-2]
        if t == b"*":
            return [self._read_value(f) for _ in range(int(rest))]
        if t == b"$":
            n = int(rest)
            data = f.read(n + 2)
            return data[:-2]
        if t == b":":
            return int(rest)
        return rest

    def _read_loop(self, f):
        while not self.stopped:
            v = self._read_value(f)
            if isinstance(v, list) and v and v[0] == b"subscribe":
                self.connected.set()
            elif isinstance(v, list) and len(v) == 3 and v[0] == b"message":
                with self.lock:
                    self.msgs.append(json.loads(v[2]))

    def of(self, typ, **match):
        with self.lock:
            return [m for m in self.msgs if m["type"] == typ and
                    all(m["payload"].get(k) == v for k, v in match.items())]

    def close(self):
        self.stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.t.join(2)


__all__ = ["PIPELINE_SIM", "PIPELINES", "pipeline", "init_db", "enqueue", "cancel", "wake",
           "job", "jobs", "logs", "sistema", "wait_status", "start_worker", "pipeline_pid",
           "group_members", "kill_group", "RedisSub", "iso_now", "redis_publish"]
