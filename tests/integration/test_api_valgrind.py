"""valgrind over one long-lived external-socket etl-api: every route, the
error table and every hostile request of test_api_badinput.py, through
one process; then SIGTERM. The process must exit 0 with no memory error
and no leak (definite or indirect): nothing a request allocates survives
it, even when the request is rejected half-way.

It runs build/tests/etl-api-dynamic, the same objects as etl-api linked with
the shared libc: etl-api itself is static (fcgi/module.mk), and valgrind
cannot replace malloc in a static program, so it would see no heap at all
and report "no leaks are possible" whatever leaked."""
import os
import re
import shutil
import signal

import pytest

from harness import binary, free_port, start_redis, wait_for
from harness_web import ADMIN, ADMIN_PW, Fcgi, make_env, populate, wake_socket
from test_api_badinput import CASES

pytestmark = [
    pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed"),
    # valgrind and AddressSanitizer do not run together: the SAN run has its own checks
    pytest.mark.skipif(bool(os.environ.get("SAN")), reason="sanitizer build"),
]


def exercise(c, tokens):
    """Drives every route and the interesting statuses. Returns the count."""
    n = 0

    def req(role, method, path, **kw):
        nonlocal n
        c.token = tokens.get(role) if role else None
        n += 1
        return c.request(method, path, **kw)

    assert req("operator", "POST", "/api/execute", body={"sistemas": ["amplis", "maps"],
                                                         "params": {"a": [1, {"b": None}]}})[0] == 202
    assert req("operator", "POST", "/api/execute", body={"sistemas": ["maps"]},
               headers={"Idempotency-Key": "k-1"})[0] == 202
    assert req("operator", "POST", "/api/execute", body={"sistemas": ["maps"]},
               headers={"Idempotency-Key": "k-1"})[0] == 202
    for role, method, path, body, want in [
        ("viewer", "GET", "/api/auth/me", None, 200),
        ("admin", "GET", "/api/users", None, 200),
        ("viewer", "GET", "/api/sistemas", None, 200),
        ("viewer", "GET", "/api/sistemas/amplis", None, 200),
        ("viewer", "GET", "/api/sistemas/nope", None, 404),
        ("admin", "PUT", "/api/sistemas/novo", {"nome": "N", "descricao": "d", "ativo": False}, 200),
        ("admin", "PUT", "/api/sistemas/novo", {"nome": "N2"}, 200),
        ("viewer", "GET", "/api/jobs?limit=10&offset=0&status=pending", None, 200),
        ("viewer", "GET", "/api/jobs/1", None, 200),
        ("viewer", "GET", "/api/jobs/1/logs?after=0&limit=5", None, 200),
        ("viewer", "GET", "/api/jobs/99/logs", None, 404),
        ("viewer", "GET", "/api/pool/status", None, 200),
        ("operator", "POST", "/api/jobs/1/cancel", None, 200),
        ("operator", "POST", "/api/jobs/1/cancel", None, 409),
        ("viewer", "POST", "/api/jobs/2/cancel", None, 403),
        (None, "GET", "/api/health", None, 200),
        (None, "GET", "/api/metrics", None, 200),
        (None, "GET", "/api/jobs", None, 401),
        ("viewer", "GET", "/api/nope", None, 404),
        ("viewer", "DELETE", "/api/jobs", None, 405),
        ("admin", "POST", "/api/users", {"username": "gone", "password": "gone-pass-1",
                                         "role": "viewer"}, 201),
        ("admin", "POST", "/api/users", {"username": "gone", "password": "gone-pass-1",
                                         "role": "viewer"}, 409),
        ("admin", "DELETE", "/api/users/gone", None, 204),
        ("admin", "DELETE", "/api/users/gone", None, 404),
        ("operator", "POST", "/api/execute", {"sistemas": ["velho"]}, 422),
    ]:
        st = req(role, method, path, body=body)[0]
        assert st == want, (method, path, st)
    c.token = "garbage.token.here"
    n += 1
    assert c.get("/api/auth/me")[0] == 401
    for _, role, method, path, raw, headers, allowed in CASES:
        st = req(role, method, path, raw=raw, headers=dict(headers))[0]
        assert st in allowed, (path, st)
    for _ in range(6):
        req(None, "POST", "/api/auth/login", body={"username": "view", "password": "wrong-pw-x"})
    assert req(None, "POST", "/api/auth/login", body={"username": ADMIN, "password": ADMIN_PW})[0] == 200
    return n


@pytest.mark.parametrize("events", [False, True], ids=["events-off", "events-on"])
def test_no_leak_no_error_under_valgrind(events):
    """With events on, every enqueue and cancel also builds its events,
    publishes them to a real Redis, waits for its answers and then wakes
    the workers (a stand-in's socket)."""
    env = make_env()
    wake = None
    try:
        if events:
            _, url = start_redis(env)
            env.env.update({"REDIS_ENABLED": "true", "REDIS_URL": url})
            wake = wake_socket(env, 4245, timeout=30)
        port = free_port()
        vlog = env.path("valgrind.log")
        argv = ["valgrind", "--error-exitcode=99", "--leak-check=full",
                "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect",
                "--log-file=" + vlog, binary("tests/etl-api-dynamic"), "-p", f"127.0.0.1:{port}"]
        p = env.start(argv, "etl-api-valgrind")
        c = Fcgi(("127.0.0.1", port))
        wait_for(lambda: c.get("/api/health", timeout=30)[0] == 200, timeout=60,
                 what="etl-api under valgrind")
        tokens = populate(c)
        n = exercise(c, tokens)
        assert n > 80
        if events:
            assert wake.recv(16) == b"w"  # woken, after the events
            assert c.get("/api/health")[2]["redis"] == "ok"
            assert "not delivered" not in p.log() and "did not answer" not in p.log()
        assert p.alive()
        p.signal(signal.SIGTERM)
        rc = p.wait(60)
        report = open(vlog).read()
        assert rc == 0, report[-4000:]
        assert re.search(r"ERROR SUMMARY: 0 errors", report), report[-4000:]
        # valgrind saw the heap (it does not in a static program)
        allocs = re.search(r"total heap usage: ([\d,]+) allocs", report)
        assert allocs and int(allocs.group(1).replace(",", "")) > 0, report[-4000:]
        assert "definitely lost: 0 bytes" in report or "All heap blocks were freed" in report, \
            report[-4000:]
        assert "stopping after" in p.log()
    finally:
        if wake is not None:
            wake.close()
        env.close()
