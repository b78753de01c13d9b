"""Helpers for the etl-wsd suites: HS256 tokens (the format lib/tok.c
signs), a minimal RESP client to publish on the private Redis, the daemon
started on a free port (or a unix socket) and waited for, websocket clients
(python3-websockets, asyncio) and a raw client that never reads."""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import time

import pytest

from harness import SECRET, HTTP, binary, free_port, wait_for

CHANNEL = "etl:ws"
WSCLIENT = binary("wsclient")


# ---- tokens ---------------------------------------------------------------
def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_token(sub="alice", role="viewer", ttl=3600, secret=SECRET, iat=None, exp=None):
    """A token as lib/tok.c makes it: header exactly {"alg":"HS256","typ":"JWT"},
    compact JSON, base64url without padding, claims sub, role, iat, exp."""
    now = int(time.time())
    iat = now if iat is None else iat
    exp = iat + ttl if exp is None else exp
    head = b64url(b'{"alg":"HS256","typ":"JWT"}')
    claims = json.dumps({"sub": sub, "role": role, "iat": iat, "exp": exp},
                        separators=(",", ":")).encode()
    signing = head + "." + b64url(claims)
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64url(sig)


# ---- redis ----------------------------------------------------------------
class Redis:
    """Just enough RESP to PUBLISH and ask INFO-ish questions, over the unix
    socket start_redis() makes."""

    def __init__(self, url):
        assert url.startswith("unix://")
        self.path = url[len("unix://"):]
        self.s = None

    def _conn(self):
        if self.s is None:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(10)
            self.s.connect(self.path)
            self.f = self.s.makefile("rb")
        return self.s

    def close(self):
        if self.s is not None:
            self.f.close()
            self.s.close()
            self.s = None

    def _read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("redis closed")
        t, rest = line[:1], line[1:-2]
        if t in (b"+", b"-"):
            if t == b"-":
                raise RuntimeError(rest.decode())
            return rest.decode()
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2]
        if t == b"*":
            return [self._read() for _ in range(int(rest))]
        raise ValueError(line)

    @staticmethod
    def _enc(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def command(self, *args):
        s = self._conn()
        s.sendall(self._enc(args))
        return self._read()

    def publish(self, msg, channel=CHANNEL):
        """msg: bytes, str, or a dict (dumped). Returns the subscriber count."""
        if isinstance(msg, dict):
            msg = json.dumps(msg)
        return self.command("PUBLISH", channel, msg)

    def publish_many(self, msgs, channel=CHANNEL):
        """Pipelined PUBLISH of every msg; returns the subscriber counts."""
        s = self._conn()
        buf = b"".join(self._enc(["PUBLISH", channel,
                                  json.dumps(m) if isinstance(m, dict) else m]) for m in msgs)
        s.sendall(buf)
        return [self._read() for _ in msgs]

    def subscribers(self, channel=CHANNEL):
        r = self.command("PUBSUB", "NUMSUB", channel)
        return int(r[1])


def event(type_, source="test-00000000", **payload):
    return {"type": type_, "payload": payload, "source_instance": source}


# ---- the daemon ---------------------------------------------------------
class Wsd:
    def __init__(self, env, proc, port=None, sock=None):
        self.env, self.proc, self.port, self.sock = env, proc, port, sock
        self.http = HTTP("127.0.0.1", port) if port else None

    def url(self, path="/ws", token=None, **query):
        q = dict(query)
        if token is not None:
            q["token"] = token
        qs = "&".join(f"{k}={v}" for k, v in q.items())
        return f"ws://127.0.0.1:{self.port}{path}" + (("?" + qs) if qs else "")

    def health(self):
        st, _, js, _ = self.http.get("/health", timeout=5)
        return st, js

    def metrics(self):
        st, _, _, raw = self.http.get("/metrics", timeout=5)
        assert st == 200
        out = {}
        for line in raw.decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def metric(self, key):
        return self.metrics().get(key, 0.0)

    def wait_up(self, timeout=10):
        wait_for(lambda: self.health()[0] == 200, timeout=timeout, what="wsd redis ok")


_started = []


@pytest.fixture(autouse=True)
def wsd_clean_exit(env):
    """Import into a test module: after each test, every etl-wsd that
    start_wsd() made is stopped with SIGTERM and must exit 0 with no
    sanitizer report in its log (leaks included, under SAN=...)."""
    _started.clear()
    yield
    bad = []
    for w in _started:
        rc = w.proc.stop()
        log = w.proc.log()
        if rc != 0 or "Sanitizer" in log or "runtime error" in log:
            bad.append((w.proc.argv, rc, log[-3000:]))
    _started.clear()
    assert not bad, bad


def start_wsd(env, redis_url, name="wsd", extra_env=None, wait_redis=True, args=None):
    """Starts etl-wsd on a free 127.0.0.1 port subscribed to redis_url and
    waits until it answers /health (200 when wait_redis)."""
    port = free_port()
    e = {"REDIS_ENABLED": "true", "REDIS_URL": redis_url}
    if extra_env:
        e.update(extra_env)
    argv = [binary("etl-wsd"), "-l", f"127.0.0.1:{port}", "-p", env.path(name + ".pid")]
    if args:
        argv += args
    p = env.start(argv, name, env=e)
    w = Wsd(env, p, port=port)
    _started.append(w)
    wait_for(lambda: w.health()[0] in (200, 503) or not p.alive(), what="wsd listening")
    assert p.alive(), p.log()
    if wait_redis:
        w.wait_up()
    return w


def wait_subscribers(redis, n, timeout=10):
    wait_for(lambda: redis.subscribers() >= n, timeout=timeout, what=f"{n} subscribers")


# ---- websocket clients ----------------------------------------------------
def run(coro):
    return asyncio.run(coro)


async def connect(url, **kw):
    import websockets
    return await websockets.connect(url, open_timeout=10, close_timeout=5,
                                    max_size=2 ** 20, **kw)


async def recv_json(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_n(ws, n, timeout=10):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"got {len(out)} of {n} messages: {out[-3:]}")
        out.append(await recv_json(ws, left))
    return out


async def expect_close(ws, timeout=10):
    """Waits for the server to close ws; returns (code, reason) and the
    messages that arrived before the close."""
    import websockets
    got = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("server did not close")
            got.append(await asyncio.wait_for(ws.recv(), left))
    except websockets.ConnectionClosed as e:
        return (e.rcvd.code if e.rcvd else 1006), (e.rcvd.reason if e.rcvd else ""), got


async def expect_silence(ws, seconds=0.3):
    """Asserts nothing arrives for `seconds` (used after a filter check where
    a later message proves ordering; never the only evidence)."""
    try:
        m = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected message {m!r}")


class RawClient:
    """A websocket client on a bare socket that completes the handshake and
    then never reads: the kernel buffers fill and it stalls."""

    def __init__(self, port, path):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.s.settimeout(10)
        self.s.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n")
        self.s.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.s.recv(1)
            if not chunk:
                raise ConnectionError("closed during handshake")
            head += chunk
        self.status = int(head.split(b" ", 2)[1])

    def closed_by_peer(self):
        """Drains what is buffered; True once the server has closed (EOF/RST)."""
        self.s.setblocking(False)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
        except BlockingIOError:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


def wsclient(args, timeout=120):
    """Runs the C client; returns its JSON summary."""
    import subprocess
    r = subprocess.run([WSCLIENT, *args], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])
