"""Helpers of the API suites (test_api_*.py): the three web server setups
started from the very config files in lighttpd/ and apache/ (only the
@PLACEHOLDER@ paths and ports substituted), a small FastCGI client to talk
to etl-api without a web server, and a database fingerprint to check that
a rejected request changed nothing."""
import hashlib
import os
import pwd
import re
import shutil
import socket
import sqlite3
import struct
import subprocess

from harness import ROOT, HTTP, TestEnv, binary, free_port, wait_for

STACKS = ("lighttpd", "apache-proxy", "apache-fcgid")
ADMIN, ADMIN_PW = "admin", "admin-pass-123"
WWW_USER = "www-data"


def render(src, dst, subs):
    with open(src) as f:
        text = f.read()
    for k, v in subs.items():
        text = text.replace("@" + k + "@", str(v))
    left = [l for l in text.splitlines()
            if re.search(r"@[A-Z_]+@", l) and not l.lstrip().startswith("#")]
    assert not left, f"unsubstituted placeholder in {dst}: {left}"
    with open(dst, "w") as f:
        f.write(text)
    return dst


def write_env_file(env, path):
    """The configuration etl-api reads through ETL_ENV_FILE (web-spawned modes)."""
    with open(path, "w") as f:
        for k, v in sorted(env.env.items()):
            if k.startswith(("ETL_", "REDIS_")) and k != "ETL_ENV_FILE":
                f.write(f"{k}={v}\n")
    os.chmod(path, 0o644)


def chown_tree(path, user=WWW_USER):
    pw = pwd.getpwnam(user)
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, pw.pw_uid, pw.pw_gid)
        for n in filenames:
            os.chown(os.path.join(dirpath, n), pw.pw_uid, pw.pw_gid)


def make_env(**overrides):
    """A TestEnv whose etl-api creates the first admin itself."""
    o = {"ETL_ADMIN_USER": ADMIN, "ETL_ADMIN_PASSWORD": ADMIN_PW, "ETL_LOG_LEVEL": "info"}
    o.update(overrides)
    return TestEnv(**o)


class WebStack:
    """One web server in front of etl-api: 'lighttpd' (mod_fastcgi spawning
    etl-api), 'apache-proxy' (mod_proxy_fcgi to an external etl-api -s
    socket), 'apache-fcgid' (shared-hosting docroot with .htaccess and
    api.fcgi under mod_fcgid)."""

    def __init__(self, kind, env, api_argv_prefix=None):
        self.kind, self.env = kind, env
        self.port = free_port()
        self.wsport = free_port()
        self.run = env.dir
        self.bin = os.path.dirname(binary("etl-api"))
        self.prefix = api_argv_prefix or []
        self.api = None
        self.server = None

    def subs(self, **more):
        s = {"PORT": self.port, "WSPORT": self.wsport, "ROOT": ROOT, "BIN": self.bin,
             "RUN": self.run}
        s.update(more)
        return s

    def start(self):
        if self.kind.startswith("apache") and os.geteuid() != 0:
            import pytest
            pytest.skip("Apache setups need root (children run as www-data)")
        write_env_file(self.env, self.env.path("etl.env"))
        getattr(self, "_start_" + self.kind.replace("-", "_"))()
        wait_for(lambda: self.http().get("/api/health")[0] == 200, timeout=20,
                 what=f"{self.kind} /api/health")
        return self

    def http(self):
        return HTTP("127.0.0.1", self.port)

    def _start_lighttpd(self):
        d = self.env.path("lighttpd")
        os.makedirs(d, exist_ok=True)
        render(os.path.join(ROOT, "lighttpd", "etl.conf"), os.path.join(d, "etl.conf"), self.subs())
        conf = render(os.path.join(ROOT, "lighttpd", "lighttpd.conf"),
                      os.path.join(d, "lighttpd.conf"), self.subs())
        self.server = self.env.start(["lighttpd", "-D", "-f", conf], "lighttpd", cwd=d)

    def _apache(self, site):
        conf = render(os.path.join(ROOT, "apache", "httpd.conf"), self.env.path("httpd.conf"),
                      self.subs(SITE=site))
        self.server = self.env.start(["apache2", "-f", conf, "-DFOREGROUND"], "apache")

    def _start_apache_proxy(self):
        sock = self.env.path("etl-api.sock")
        self.api = self.env.start([*self.prefix, binary("etl-api"), "-s", sock], "etl-api")
        wait_for(lambda: os.path.exists(sock), timeout=30, what="etl-api socket")
        site = render(os.path.join(ROOT, "apache", "etl-proxy-fcgi.conf"),
                      self.env.path("site.conf"), self.subs())
        self._apache(site)

    def _start_apache_fcgid(self):
        docroot = self.env.path("htdocs")
        shutil.copytree(os.path.join(ROOT, "www"), docroot, dirs_exist_ok=True)
        sh = os.path.join(ROOT, "apache", "shared-hosting")
        shutil.copy(os.path.join(sh, ".htaccess"), os.path.join(docroot, ".htaccess"))
        render(os.path.join(sh, "api.fcgi"), os.path.join(docroot, "api.fcgi"), self.subs())
        os.chmod(os.path.join(docroot, "api.fcgi"), 0o755)
        os.makedirs(self.env.path("fcgid"), exist_ok=True)
        # the database must exist (migrated, first admin) before www-data owns the tree
        init_db(self.env)
        chown_tree(self.env.dir)
        site = render(os.path.join(ROOT, "apache", "etl-fcgid.conf"), self.env.path("site.conf"),
                      self.subs(DOCROOT=docroot))
        self._apache(site)


def init_db(env):
    """Creates and migrates the database (and the first admin) with one CGI run."""
    e = dict(env.env)
    e.update({"REQUEST_METHOD": "GET", "REQUEST_URI": "/api/health"})
    r = subprocess.run([binary("etl-api")], env=e, capture_output=True, stdin=subprocess.DEVNULL,
                       timeout=60)
    assert b"Status: 200" in r.stdout, r


def db_fingerprint(env):
    """A hash of every row of the tables a request could change (not the
    failed-login counter, which a rejected login legitimately changes)."""
    con = sqlite3.connect(env.db, timeout=10)
    try:
        h = hashlib.sha256()
        for t in ("jobs", "job_logs", "sistemas", "users"):
            for row in con.execute(f"SELECT * FROM {t} ORDER BY 1, 2"):
                h.update(repr(row).encode())
        return h.hexdigest()
    finally:
        con.close()


# ---- a FastCGI client (talks to etl-api -p / -s without a web server) ----

FCGI_BEGIN, FCGI_END, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT, FCGI_STDERR = 1, 3, 4, 5, 6, 7


def _rec(t, rid, content):
    out = b""
    for i in range(0, max(len(content), 1), 65535):
        chunk = content[i:i + 65535]
        pad = (-len(chunk)) % 8
        out += struct.pack(">BBHHBx", 1, t, rid, len(chunk), pad) + chunk + b"\0" * pad
        if not content:
            break
    return out


def _nv(k, v):
    k, v = k.encode(), v.encode() if isinstance(v, str) else v

    def ln(n):
        return struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)
    return ln(len(k)) + ln(len(v)) + k + v


class Fcgi(HTTP):
    """One FastCGI request per connection, to a unix socket path or (host,
    port); get/post/login come from harness.HTTP, only the transport differs."""

    def __init__(self, addr):
        self.addr = addr
        self.token = None

    def request(self, method, uri, body=None, headers=None, raw=None, timeout=30,
                before_send=None):
        """before_send: called once connected, before the request is sent."""
        import json as _json
        data = raw if raw is not None else (_json.dumps(body).encode() if body is not None else b"")
        path, _, qs = uri.partition("?")
        params = {"REQUEST_METHOD": method, "REQUEST_URI": uri, "QUERY_STRING": qs,
                  "SCRIPT_NAME": path, "SERVER_PROTOCOL": "HTTP/1.1",
                  "CONTENT_LENGTH": str(len(data))}
        if body is not None:
            params["CONTENT_TYPE"] = "application/json"
        if self.token:
            params["HTTP_AUTHORIZATION"] = "Bearer " + self.token
        for k, v in (headers or {}).items():
            if k.lower() == "content-type":
                params["CONTENT_TYPE"] = v
            else:
                params["HTTP_" + k.upper().replace("-", "_")] = v
        fam = socket.AF_UNIX if isinstance(self.addr, str) else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.addr)
            if before_send:
                before_send()
            msg = _rec(FCGI_BEGIN, 1, struct.pack(">HB5x", 1, 0))
            pb = b"".join(_nv(k, v) for k, v in params.items())
            msg += _rec(FCGI_PARAMS, 1, pb) + _rec(FCGI_PARAMS, 1, b"")
            msg += (_rec(FCGI_STDIN, 1, data) if data else b"") + _rec(FCGI_STDIN, 1, b"")
            s.sendall(msg)
            buf, out = b"", b""
            while True:
                while len(buf) < 8:
                    c = s.recv(65536)
                    if not c:
                        raise ConnectionError("FastCGI connection closed early")
                    buf += c
                _, t, _, clen, plen = struct.unpack(">BBHHBx", buf[:8])
                while len(buf) < 8 + clen + plen:
                    c = s.recv(65536)
                    if not c:
                        raise ConnectionError("FastCGI connection closed early")
                    buf += c
                content, buf = buf[8:8 + clen], buf[8 + clen + plen:]
                if t == FCGI_STDOUT:
                    out += content
                elif t == FCGI_END:
                    break
        finally:
            s.close()
        head, _, payload = out.partition(b"\r\n\r\n")
        hdrs = {}
        for line in head.decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        status = int(hdrs.get("status", "200").split()[0])
        try:
            js = _json.loads(payload) if payload else None
        except ValueError:
            js = None
        return status, hdrs, js, payload


# ---- populating a database through the API itself ----

def populate(client):
    """Admin logs in, creates an operator and a viewer and three sistemas
    (one inactive). Returns {role: token}."""
    client.login(ADMIN, ADMIN_PW)
    tokens = {"admin": client.token}
    for name, role in (("oper", "operator"), ("view", "viewer")):
        st, _, js, _ = client.post("/api/users", {"username": name, "password": name + "-pass-1",
                                                  "role": role})
        assert st in (201, 409), (st, js)
    for sid, ativo in (("amplis", True), ("maps", True), ("velho", False)):
        st, _, js, _ = client.request("PUT", "/api/sistemas/" + sid,
                                      {"nome": sid.upper(), "descricao": "d " + sid, "ativo": ativo})
        assert st == 200, (st, js)
    for name in ("oper", "view"):
        client.token = None
        client.login(name, name + "-pass-1")
        tokens[{"oper": "operator", "view": "viewer"}[name]] = client.token
    client.token = None
    return tokens


class Subscriber:
    """A raw RESP subscriber on a unix socket (no redis-py needed)."""

    def __init__(self, path, channel):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.s.settimeout(5)
        self.buf = b""
        ch = channel.encode()
        self.s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(ch), ch))
        assert self.message()[0] == b"subscribe"

    def _line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.s.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _value(self):
        line = self._line()
        if line[:1] == b"*":
            return [self._value() for _ in range(int(line[1:]))]
        if line[:1] == b"$":
            n = int(line[1:])
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(65536)
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        return line[1:]

    def message(self):
        return self._value()

    def close(self):
        self.s.close()


def start_api(env, *args, argv_prefix=(), **envover):
    """etl-api -p on a free port (args and environment overrides added; run
    through argv_prefix, such as a chrt, when given); returns (proc, Fcgi
    client) once it answers."""
    port = free_port()
    p = env.start([*argv_prefix, binary("etl-api"), "-p", f"127.0.0.1:{port}", *args], "etl-api",
                  env=envover)
    c = Fcgi(("127.0.0.1", port))
    wait_for(lambda: c.get("/api/health")[0] in (200, 404, 503), what="etl-api -p")
    return p, c


def wake_socket(env, pid, timeout=10):
    """A stand-in worker's wake-up socket in the env's ETL_WAKE_DIR (what
    lib/wake.c's wake_listen binds): recv(16) gets b"w" per wake-up."""
    d = env.env["ETL_WAKE_DIR"]
    os.makedirs(d, exist_ok=True)
    w = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    w.bind(os.path.join(d, f"worker-{pid}.sock"))
    os.chmod(os.path.join(d, f"worker-{pid}.sock"), 0o666)  # etl-api may run as www-data
    w.settimeout(timeout)
    return w
