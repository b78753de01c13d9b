"""The whole stack for end-to-end (browser) tests, composed from the other
suites' helpers without changing them: lighttpd started from the project's
lighttpd/ config (harness_web.WebStack, which spawns etl-api), a private
redis-server (harness.start_redis), etl-worker (harness_worker.start_worker)
and etl-wsd on the port the config proxies /ws to. etl-wsd can be stopped
and started again on that port mid-test."""
import os

from harness import binary, start_redis, wait_for
from harness_web import ADMIN, ADMIN_PW, WebStack, make_env
from harness_worker import start_worker
from harness_wsd import Wsd

USERS = {
    "admin": {"username": ADMIN, "password": ADMIN_PW},
    "operator": {"username": "oper", "password": "oper-pass-1"},
    "viewer": {"username": "view", "password": "view-pass-1"},
}
# id -> (nome, ativo). The markup in a name must come out as text.
SISTEMAS = {
    "amplis": ("Amplis", True),
    "maps": ("MAPS", True),
    "sac": ("SAC", True),
    "xss": ("<i>Itálico</i> & <script>window.__xss=3</script>", True),
    "velho": ("Velho", False),
}


class FullStack:
    """A web server (kind: 'lighttpd', or the Apache setups of harness_web)
    + etl-api + etl-worker (+ redis + etl-wsd when redis=True). base_url is
    the page; http is an HTTP client on the web server."""

    def __init__(self, redis=True, slots=2, kind="lighttpd", **overrides):
        o = {"ETL_MAX_CONCURRENT_JOBS": slots, "ETL_POLL_INTERVAL": "1.0", "ETL_KILL_GRACE": "2",
             "ETL_SHUTDOWN_GRACE": "2"}
        o.update(overrides)
        self.env = make_env(**o)
        self.redis_url = None
        self.wsd = None
        self.worker = None
        self.web = None
        try:
            if redis:
                _, self.redis_url = start_redis(self.env)
                self.env.env.update({"REDIS_ENABLED": "true", "REDIS_URL": self.redis_url})
            self.web = WebStack(kind, self.env).start()
            self.base_url = f"http://127.0.0.1:{self.web.port}"
            self.http = self.web.http()
            self._populate()
            self.worker = start_worker(self.env)
            if redis:
                self.start_wsd()
        except BaseException:
            self.close()
            raise

    def _populate(self):
        c = self.http
        # lighttpd spawns two etl-api: /api/health may be answered by one
        # while the other is still hashing the first admin's password.
        def admin_login():
            st, _, js, _ = c.post("/api/auth/login", {"username": ADMIN, "password": ADMIN_PW})
            return js["access_token"] if st == 200 else None
        c.token = wait_for(admin_login, timeout=15, interval=0.1, what="first admin can log in")
        for who in ("operator", "viewer"):
            u = USERS[who]
            st, _, js, _ = c.post("/api/users", {"username": u["username"], "password": u["password"],
                                                 "role": who})
            assert st == 201, (st, js)
        for sid, (nome, ativo) in SISTEMAS.items():
            st, _, js, _ = c.request("PUT", "/api/sistemas/" + sid,
                                     {"nome": nome, "descricao": f"Sistema {sid}", "ativo": ativo})
            assert st == 200, (st, js)
        c.token = None

    def login(self, who):
        u = USERS[who]
        self.http.login(u["username"], u["password"])
        return self.http

    def start_wsd(self):
        """Starts etl-wsd on the port lighttpd proxies /ws to; waits for it
        to be subscribed to Redis (its /health says 200)."""
        assert self.wsd is None or not self.wsd.proc.alive()
        port = self.web.wsport
        p = self.env.start([binary("etl-wsd"), "-l", f"127.0.0.1:{port}",
                            "-p", self.env.path("wsd.pid")], "wsd",
                           env={"REDIS_ENABLED": "true", "REDIS_URL": self.redis_url})
        self.wsd = Wsd(self.env, p, port=port)
        wait_for(lambda: not p.alive() or self.wsd.health()[0] == 200, timeout=15,
                 what="etl-wsd healthy")
        assert p.alive(), p.log()[-2000:]
        return self.wsd

    def stop_wsd(self):
        return self.wsd.proc.stop()

    def logs(self):
        """The tail of every process log, for a failure message."""
        out = []
        for name in ("lighttpd-error", "lighttpd", "apache", "etl-api", "worker", "wsd", "redis"):
            p = self.env.path(name + ".log")
            if os.path.exists(p):
                with open(p, "rb") as f:
                    out.append(f"--- {name}.log\n" + f.read()[-3000:].decode("utf-8", "replace"))
        return "\n".join(out)

    def close(self):
        self.env.close()
