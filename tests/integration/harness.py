"""Shared test harness: temp dirs, free ports, real processes started and
stopped by PID, waits on conditions (never bare sleeps), a small HTTP client,
a private redis-server, and the admin tool. Suite-specific helpers live in
harness_*.py beside this file."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("BUILD") or os.path.join(ROOT, "build")
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
FIXTURES = os.path.join(SHARED, "fixtures")
PIPELINE_SIM = os.path.join(FIXTURES, "pipeline-sim")
SECRET = "test-secret-0123456789abcdef0123456789abcdef"


def binary(name):
    return os.path.join(BUILD, name)


def proc_stats():
    """(pid, fields) of every process: fields are /proc/PID/stat after the
    command name, so fields[0] is the state, [1] the ppid, [2] the pgid.
    Processes that end while being read are skipped."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        yield int(d), st[st.rindex(")") + 2:].split()


def _listen_ports():
    """The ports free_port hands out, in order: outside the kernel's
    ephemeral range. A port that bind(0) picked came from that range, and
    between our closing it and a server binding it, any outgoing connection
    (a test client, Apache to etl-api, hiredis) could take it as its source
    port: that made etl-wsd fail with EADDRINUSE in a CI run. Ports outside
    the range are only ever taken by a bind; each is handed out once per
    run, starting at a random place so that concurrent runs rarely meet.
    A host whose ephemeral range leaves fewer than 2,000 ports outside it
    (say 1024-65535) gets ports from bind(0), the old way, race and all."""
    import random
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999
    span = max([(10000, lo), (hi + 1, 65536)], key=lambda s: s[1] - s[0])
    n = span[1] - span[0]
    if n < 2000:
        while True:
            yield 0
    start = random.randrange(n)
    for i in range(n):
        yield span[0] + (start + i) % n


_ports = _listen_ports()


def free_port():
    """A 127.0.0.1 TCP port nobody listens on and this run has not handed
    out before (see _listen_ports)."""
    for port in _ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("free_port: no port left outside the ephemeral range")


def wait_for(cond, timeout=10.0, interval=0.01, what="condition"):
    """Polls cond() until it returns a truthy value; returns it, or raises."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
            if last:
                return last
        except (OSError, ValueError, http.client.HTTPException):
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last={last!r})")


class Proc:
    """A process we started; stop() ends it (TERM, then KILL) by PID."""

    def __init__(self, argv, env=None, cwd=None, log=None, stdin=subprocess.DEVNULL):
        self.argv = argv
        self.log_path = log
        out = open(log, "ab") if log else subprocess.DEVNULL
        self.p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=stdin, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        if log:
            out.close()
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def kill9(self):
        self.signal(signal.SIGKILL)
        self.p.wait(10)

    def stop(self, timeout=15.0):
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait(10)
            except ProcessLookupError:
                pass
        return self.p.returncode

    def wait(self, timeout=30.0):
        return self.p.wait(timeout)

    def log(self):
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


class TestEnv:
    """A temp dir with a database path, the environment for our programs,
    and the processes started for one test (all stopped in close())."""
    __test__ = False  # a helper, not a test class (pytest collects Test*)

    def __init__(self, **overrides):
        self.dir = tempfile.mkdtemp(prefix="etltest-")
        os.chmod(self.dir, 0o755)
        self.db = os.path.join(self.dir, "etl.db")
        self.procs = []
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ETL_DB_PATH": self.db,
            "ETL_SECRET": SECRET,
            "ETL_PIPELINE_CMD": PIPELINE_SIM,
            "ETL_WAKE_DIR": os.path.join(self.dir, "wake"),
            "ETL_LOG_LEVEL": "debug",
            "REDIS_ENABLED": "false",
        }
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                self.env[k] = os.environ[k]
        self.env.update({k: str(v) for k, v in overrides.items()})

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def start(self, argv, name, env=None, **kw):
        e = dict(self.env)
        if env:
            e.update({k: str(v) for k, v in env.items()})
        p = Proc(argv, env=e, log=self.path(name + ".log"), **kw)
        self.procs.append(p)
        return p

    def ctl(self, *args, input=None, check=True):
        """Runs the admin tool (etlctl) on this env's database."""
        r = subprocess.run([binary("etlctl"), *args], env=self.env, input=input,
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"etlctl {args} failed: {r.stderr}")
        return r

    def add_user(self, name, password, role):
        self.ctl("user", "add", name, "--role", role, "--password-stdin", input=password + "\n")

    def add_sistema(self, sid, nome=None, ativo=True):
        self.ctl("sistema", "put", sid, nome or sid.upper(), "--descricao", f"sistema {sid}",
                 *([] if ativo else ["--inactive"]))

    def sql(self, query, *args):
        import sqlite3
        con = sqlite3.connect(self.db, timeout=10)
        try:
            cur = con.execute(query, args)
            rows = cur.fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    def close(self):
        for p in reversed(self.procs):
            p.stop()
        if os.environ.get("KEEP_TMP"):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def start_redis(env, name="redis", port=None):
    """A private redis-server on a unix socket (and a TCP port when given).
    Returns (proc, url)."""
    sock = env.path(name + ".sock")
    argv = ["redis-server", "--port", str(port or 0), "--bind", "127.0.0.1",
            "--unixsocket", sock, "--unixsocketperm", "777", "--save", "",
            "--appendonly", "no", "--dir", env.dir, "--daemonize", "no"]
    p = env.start(argv, name)
    wait_for(lambda: os.path.exists(sock), what="redis socket")
    return p, "unix://" + sock


class HTTP:
    """Tiny JSON-over-HTTP client on http.client (one connection a request)."""

    def __init__(self, host, port, base=""):
        self.host, self.port, self.base = host, port, base
        self.token = None

    def request(self, method, path, body=None, headers=None, raw=None, timeout=30):
        h = {}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if headers:
            h.update(headers)
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            c.request(method, self.base + path, body=data, headers=h)
            r = c.getresponse()
            payload = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            try:
                js = json.loads(payload) if payload else None
            except ValueError:
                js = None
            return r.status, hdrs, js, payload
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def login(self, user, password):
        st, _, js, _ = self.post("/api/auth/login", {"username": user, "password": password})
        assert st == 200, (st, js)
        self.token = js["access_token"]
        return js


def run_threads(n, fn):
    """Runs fn(i) for i in 0..n-1 on n threads started together (a barrier);
    returns their results in completion order; any exception fails the test."""
    out, errs = [], []
    lock = threading.Lock()
    start = threading.Barrier(n)

    def body(i):
        try:
            start.wait()
            r = fn(i)
            with lock:
                out.append(r)
        except Exception as e:  # surfaced below
            with lock:
                errs.append(repr(e))
    ts = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errs, errs[:3]
    return out
