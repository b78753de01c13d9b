"""The whole stack for the browser tests: harness_e2e.E2EStack (the web
server from the project's config, etl-api, etl-worker, redis, etl-wsd on the
port the config proxies /ws to) with what the page's scenarios add: a
sistema whose name is markup (it must come out as text), an inactive one,
logins by role, and etl-wsd stopped and started again mid-test."""
from harness import wait_for
from harness_e2e import OPER, OPER_PW, VIEW, VIEW_PW, E2EStack
from harness_web import ADMIN, ADMIN_PW

USERS = {
    "admin": {"username": ADMIN, "password": ADMIN_PW},
    "operator": {"username": OPER, "password": OPER_PW},
    "viewer": {"username": VIEW, "password": VIEW_PW},
}
# Besides E2EStack's sistemas: id -> (nome, ativo).
EXTRA_SISTEMAS = {
    "xss": ("<i>Itálico</i> & <script>window.__xss=3</script>", True),
    "velho": ("Velho", False),
}


class FullStack(E2EStack):
    """kind: 'lighttpd', 'apache-proxy' or 'apache-fcgid'. base_url is the page."""

    def __init__(self, redis=True, slots=2, kind="lighttpd", **overrides):
        o = {"ETL_SHUTDOWN_GRACE": "2"}
        o.update(overrides)
        super().__init__(server=kind, redis=redis, slots=slots, **o)
        self.base_url = f"http://127.0.0.1:{self.port}"

    def _populate(self):
        # lighttpd spawns two etl-api: /api/health may be answered by one
        # while the other is still hashing the first admin's password.
        def admin_can_log_in():
            st, _, _, _ = self.http().post("/api/auth/login",
                                           {"username": ADMIN, "password": ADMIN_PW})
            return st == 200
        wait_for(admin_can_log_in, timeout=15, interval=0.1, what="first admin can log in")
        super()._populate()
        c = self.admin()
        for sid, (nome, ativo) in EXTRA_SISTEMAS.items():
            st, _, js, _ = c.request("PUT", "/api/sistemas/" + sid,
                                     {"nome": nome, "descricao": f"Sistema {sid}", "ativo": ativo})
            assert st == 200, (st, js)

    def login(self, who):
        """An HTTP client on the web server logged in as USERS[who]."""
        u = USERS[who]
        return self.http(u["username"], u["password"])

    def stop_wsd(self):
        return self.wsd.proc.stop()
