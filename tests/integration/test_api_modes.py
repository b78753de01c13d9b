"""etl-api's ways of running and its process-level behaviour, straight over
FastCGI (no web server): plain CGI, the external socket with pre-forked
children and graceful SIGTERM, refusing a weak secret, the first admin,
legacy bcrypt users, the failed-login limit across processes, DB busy ->
503, events to Redis and the worker wake-up, metrics and pool status."""
import os
import signal
import socket
import sqlite3
import subprocess
import time

import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import crypt  # bcrypt hashes as the Python dashboard made them (libxcrypt)
    except ImportError:
        crypt = None

from harness import binary, free_port, start_redis, wait_for
from harness_web import (ADMIN, ADMIN_PW, Fcgi, Subscriber, db_fingerprint, make_env,
                         populate, start_api, wake_socket)


@pytest.fixture
def menv():
    e = make_env()
    yield e
    e.close()


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


def cgi(env, method, uri, body=b"", ctype=None, extra=None):
    e = dict(env.env)
    e.update({"REQUEST_METHOD": method, "REQUEST_URI": uri, "CONTENT_LENGTH": str(len(body)),
              "QUERY_STRING": uri.partition("?")[2]})
    if ctype:
        e["CONTENT_TYPE"] = ctype
    e.update(extra or {})
    r = subprocess.run([binary("etl-api")], env=e, input=body, capture_output=True, timeout=30)
    return r


def test_plain_cgi_one_request(menv):
    r = cgi(menv, "GET", "/api/health")
    assert r.returncode == 0 and r.stdout.startswith(b"Status: 200 OK\r\n"), r
    assert b"Cache-Control: no-store" in r.stdout
    r = cgi(menv, "POST", "/api/auth/login", b'{"username":"%s","password":"%s"}' % (
        ADMIN.encode(), ADMIN_PW.encode()), "application/json")
    assert r.stdout.startswith(b"Status: 200") and b"access_token" in r.stdout, r
    r = cgi(menv, "GET", "/api/jobs")
    assert r.stdout.startswith(b"Status: 401") and b"WWW-Authenticate: Bearer" in r.stdout


@pytest.mark.parametrize("secret", [None, "too-short-secret"])
def test_refuses_to_start_without_a_strong_secret(menv, secret):
    e = dict(menv.env)
    e.pop("ETL_SECRET")
    if secret:
        e["ETL_SECRET"] = secret
    r = subprocess.run([binary("etl-api"), "-p", f"127.0.0.1:{free_port()}"], env=e,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "ETL_SECRET" in r.stderr


def test_prefork_children_graceful_sigterm_and_respawn(menv):
    p, c = start_api(menv, "-n", "3")
    wait_for(lambda: len(children(p.pid)) == 3, what="3 children")
    kids = children(p.pid)
    os.kill(kids[0], signal.SIGKILL)
    wait_for(lambda: len(children(p.pid)) == 3 and kids[0] not in children(p.pid),
             what="a replacement child")
    for _ in range(20):
        assert c.get("/api/health")[0] == 200
    kids = children(p.pid)
    p.signal(signal.SIGTERM)
    assert p.wait(15) == 0
    assert "Sanitizer" not in p.log()
    for k in kids:
        assert not os.path.exists(f"/proc/{k}") or open(f"/proc/{k}/stat").read().split()[2] == "Z"
    with pytest.raises(OSError):
        c.get("/api/health", timeout=2)


def test_every_thread_runs_under_sched_batch(menv):
    """main.c's batch_scheduling: set before any thread or child starts, so
    the parent, each pre-forked child and each of their threads (request
    threads, checkpointer) inherit it."""
    if os.sched_getscheduler(0) != os.SCHED_OTHER:
        pytest.skip("the tests themselves run under another policy: etl-api keeps it")
    p, c = start_api(menv, "-n", "2")
    wait_for(lambda: len(children(p.pid)) == 2, what="2 children")
    assert c.get("/api/health")[0] == 200

    def tasks(pid):
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    # each child: its main thread, 4 request threads, the checkpointer
    wait_for(lambda: all(len(tasks(k)) >= 6 for k in children(p.pid)),
             what="every child's threads")
    tids = tasks(p.pid) + [t for k in children(p.pid) for t in tasks(k)]
    assert {t: os.sched_getscheduler(t) for t in tids} == {t: os.SCHED_BATCH for t in tids}

    # a policy set by whoever started it is kept
    p.signal(signal.SIGTERM)
    assert p.wait(15) == 0
    p, c = start_api(menv, argv_prefix=("chrt", "--idle", "0"))
    assert c.get("/api/health")[0] == 200
    assert {os.sched_getscheduler(t) for t in tasks(p.pid)} == {os.SCHED_IDLE}


def test_single_process_graceful_sigterm(menv):
    p, c = start_api(menv)
    assert c.get("/api/health")[0] == 200
    p.signal(signal.SIGTERM)
    assert p.wait(15) == 0
    assert "stopping after" in p.log()
    assert "Sanitizer" not in p.log() and "runtime error" not in p.log()


def test_login_limit_holds_across_processes(menv):
    p, c = start_api(menv, "-n", "3")
    populate(c)
    for _ in range(5):
        st, _, _, _ = c.post("/api/auth/login", {"username": "view", "password": "wrong-wrong"})
        assert st == 401
    st, h, js, _ = c.post("/api/auth/login", {"username": "view", "password": "view-pass-1"})
    assert st == 429 and int(h["retry-after"]) > 0 and js["detail"]
    # the counter lives in the database, not in one process
    n = menv.sql("SELECT count(*) FROM login_failures WHERE username='view'")[0][0]
    assert n == 5
    # a fresh process sees it too
    r = cgi(menv, "POST", "/api/auth/login", b'{"username":"view","password":"view-pass-1"}',
            "application/json")
    assert r.stdout.startswith(b"Status: 429"), r.stdout[:100]
    # once the window has passed, the right password works again
    menv.sql("UPDATE login_failures SET ts = ts - 16*60*1000")
    assert c.post("/api/auth/login", {"username": "view", "password": "view-pass-1"})[0] == 200


def test_first_admin_only_when_there_is_none(menv):
    assert cgi(menv, "GET", "/api/health").stdout.startswith(b"Status: 200")
    assert menv.sql("SELECT username, role FROM users") == [(ADMIN, "admin")]
    r = cgi(menv, "GET", "/api/health", extra={"ETL_ADMIN_USER": "second", "ETL_ADMIN_PASSWORD": "x" * 12})
    assert r.stdout.startswith(b"Status: 200")
    assert menv.sql("SELECT username FROM users") == [(ADMIN,)]


def test_legacy_bcrypt_user_logs_in(menv):
    if crypt is None:
        pytest.skip("python crypt module missing")
    cgi(menv, "GET", "/api/health")
    h = crypt.crypt("legacy-pass-1", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    assert h.startswith("$2b$")
    menv.sql("INSERT INTO users (username, password_hash, role, created_at) VALUES (?,?,?,?)",
             "velho", h, "operator", "2020-01-01T00:00:00.000Z")
    p, c = start_api(menv)
    js = c.login("velho", "legacy-pass-1")
    assert js["user"] == {"username": "velho", "role": "operator"}
    c.token = None
    assert c.post("/api/auth/login", {"username": "velho", "password": "wrong-pass"})[0] == 401


def test_db_locked_gives_503_and_changes_nothing(menv):
    p, c = start_api(menv, ETL_DB_BUSY_TIMEOUT=200)
    tokens = populate(c)
    c.token = tokens["operator"]
    before = db_fingerprint(menv)
    con = sqlite3.connect(menv.db, timeout=5, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    try:
        t0 = time.monotonic()
        st, h, js, _ = c.post("/api/execute", {"sistemas": ["amplis"]})
        assert st == 503 and h["retry-after"] and js["detail"]
        assert time.monotonic() - t0 < 3
        assert c.get("/api/jobs")[0] == 200  # reads go on (WAL)
    finally:
        con.execute("ROLLBACK")
        con.close()
    assert db_fingerprint(menv) == before
    assert c.post("/api/execute", {"sistemas": ["amplis"]})[0] == 202


def test_unusable_database_health_503(menv):
    p, c = start_api(menv, ETL_DB_PATH="/nonexistent-dir/x/etl.db")
    st, h, js, _ = c.get("/api/health")
    assert st == 503 and js["db"] == "down" and js["status"] == "error" and h["retry-after"]
    st, h, js, _ = c.get("/api/jobs")
    assert st == 503 and h["retry-after"] and set(js) == {"detail"}
    assert "/nonexistent" not in js["detail"]


def test_events_published_and_worker_woken(menv):
    import json
    _, url = start_redis(menv)
    w = wake_socket(menv, 4242, timeout=5)
    p, c = start_api(menv, REDIS_ENABLED="true", REDIS_URL=url)
    tokens = populate(c)
    sub = Subscriber(url[len("unix://"):], "etl:ws")
    try:
        assert c.get("/api/health")[2]["redis"] == "ok"
        c.token = tokens["operator"]
        jid = c.post("/api/execute", {"sistemas": ["amplis", "maps"]})[2]["job_id"]
        assert w.recv(16) == b"w"
        got = [json.loads(sub.message()[2]) for _ in range(3)]
        # the job's pending last: a worker may start it once it sees that (README)
        assert got[2]["type"] == "job_status"
        assert got[2]["payload"] == {"job_id": jid, "status": "pending", "worker_slot": None}
        assert got[2]["source_instance"]
        st = sorted((m["payload"]["sistema_id"], m["payload"]["status"]) for m in got[:2])
        assert [m["type"] for m in got[:2]] == ["status", "status"]
        assert st == [("amplis", "PENDING"), ("maps", "PENDING")]
        assert c.post(f"/api/jobs/{jid}/cancel")[0] == 200
        assert w.recv(16) == b"w"
        m = json.loads(sub.message()[2])
        assert m["type"] == "job_status" and m["payload"]["status"] == "cancelled"
        m = json.loads(sub.message()[2])
        assert m["type"] == "status" and m["payload"]["status"] == "IDLE"
    finally:
        sub.close()
        w.close()


def test_a_host_name_in_redis_url_resolves(menv):
    """etl-api is a static program (fcgi/module.mk): its getaddrinfo uses the
    files and dns sources built into the static glibc. "localhost" comes
    from /etc/hosts."""
    port = free_port()
    start_redis(menv, port=port)
    p, c = start_api(menv, REDIS_ENABLED="true", REDIS_URL=f"redis://localhost:{port}/0")
    assert c.get("/api/health")[2]["redis"] == "ok"


def test_redis_down_never_fails_or_delays_a_request(menv):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    p, c = start_api(menv, REDIS_ENABLED="true", REDIS_URL=dead, REDIS_SOCKET_TIMEOUT="2.0")
    tokens = populate(c)
    c.token = tokens["operator"]
    t0 = time.monotonic()
    assert c.post("/api/execute", {"sistemas": ["amplis"]})[0] == 202
    assert time.monotonic() - t0 < 1.5
    assert c.get("/api/health")[2]["redis"] == "down"


def test_pool_mode_and_metrics(menv):
    p, c = start_api(menv, ETL_MAX_CONCURRENT_JOBS=3, ETL_METRICS_TOKEN="scrape-token-0123456789")
    tokens = populate(c)
    c.token = tokens["operator"]
    j1 = c.post("/api/execute", {"sistemas": ["amplis"]})[2]["job_id"]
    j2 = c.post("/api/execute", {"sistemas": ["maps"]})[2]["job_id"]
    menv.sql("UPDATE jobs SET status='running', worker_slot=1, started_at=?, locked_at=? WHERE id=?",
             "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z", j1)
    menv.sql("UPDATE jobs SET status='completed', started_at=?, finished_at=? WHERE id=?",
             "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:03.000Z", j2)
    menv.sql("INSERT INTO workers (host, pid, boot_id, started_at, heartbeat_at, slots, "
             "events_published, events_dropped) VALUES ('h', 1, 'b', ?, ?, 3, 41, 2)",
             "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z")
    st, _, pool, _ = c.get("/api/pool/status")
    assert st == 200 and pool["mode"] == "pool" and pool["max_workers"] == 3
    assert pool["running"] is False  # the registered worker's heartbeat is old
    assert [s["slot_id"] for s in pool["slots"]] == [0, 1, 2]
    assert pool["slots"][1] == {"slot_id": 1, "status": "running", "job_id": j1,
                                "started_at": "2026-01-01T00:00:00.000Z"}
    assert pool["slots"][0] == {"slot_id": 0, "status": "idle", "job_id": None, "started_at": None}
    c.token = None
    assert c.get("/api/metrics")[0] == 401
    c.token = "scrape-token-0123456789"
    st, h, _, raw = c.get("/api/metrics")
    text = raw.decode()
    assert st == 200
    assert 'etl_jobs{status="running"} 1' in text and 'etl_jobs{status="completed"} 1' in text
    assert "etl_slots_busy 1" in text and "etl_slots_total 3" in text and "etl_queue_depth 0" in text
    assert 'etl_job_duration_seconds_bucket{le="1"} 0' in text
    assert 'etl_job_duration_seconds_bucket{le="5"} 1' in text
    assert "etl_job_duration_seconds_count 1" in text
    assert "etl_events_published_total 41" in text and "etl_events_dropped_total 2" in text


def test_api_base_is_configurable(menv):
    p, c = start_api(menv, ETL_API_BASE="/app/api")
    assert c.get("/app/api/health")[0] == 200
    assert c.get("/api/health")[0] == 404
    assert c.get("/app/apix/health")[0] == 404


def test_sigterm_lets_the_request_in_hand_finish(menv):
    """A request half-sent when SIGTERM arrives is still answered in full;
    then the process exits 0."""
    import json
    import struct
    from harness_web import FCGI_BEGIN, FCGI_PARAMS, FCGI_STDIN, _nv, _rec
    p, c = start_api(menv)
    port = c.addr[1]

    def sockets():
        return {l for l in (os.readlink(f"/proc/{p.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{p.pid}/fd"))
                if l.startswith("socket:")}
    idle = sockets()
    body = json.dumps({"username": ADMIN, "password": ADMIN_PW}).encode()
    params = {"REQUEST_METHOD": "POST", "REQUEST_URI": "/api/auth/login", "QUERY_STRING": "",
              "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body))}
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(_rec(FCGI_BEGIN, 1, struct.pack(">HB5x", 1, 0)) +
                  _rec(FCGI_PARAMS, 1, b"".join(_nv(k, v) for k, v in params.items())) +
                  _rec(FCGI_PARAMS, 1, b"") + _rec(FCGI_STDIN, 1, body[:10]))
        wait_for(lambda: sockets() - idle, what="the connection accepted")
        p.signal(signal.SIGTERM)
        s.sendall(_rec(FCGI_STDIN, 1, body[10:]) + _rec(FCGI_STDIN, 1, b""))
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    assert b"Status: 200 OK" in out and b"access_token" in out
    assert p.wait(15) == 0
    assert "Sanitizer" not in p.log()


def test_cors_only_when_configured(menv):
    p, c = start_api(menv)
    st, h, _, _ = c.request("OPTIONS", "/api/jobs")
    assert st == 405 and "access-control-allow-origin" not in h
    p.stop()
    p, c = start_api(menv, ETL_CORS_ORIGIN="https://dash.example")
    st, h, _, raw = c.request("OPTIONS", "/api/sistemas/amplis")
    assert st == 204 and raw == b""
    assert h["access-control-allow-origin"] == "https://dash.example"
    assert set(h["access-control-allow-methods"].replace(" ", "").split(",")) == {"GET", "PUT"}
    assert "Authorization" in h["access-control-allow-headers"]
    assert c.get("/api/health")[1]["access-control-allow-origin"] == "https://dash.example"
    assert c.request("OPTIONS", "/api/nope")[0] == 404


def test_sighup_reopens_the_log_file(menv):
    """After a rotation (rename + SIGHUP) every child writes to the new file."""
    log = menv.path("api-file.log")
    p, c = start_api(menv, "-n", "2", ETL_LOG_FILE=log, ETL_LOG_LEVEL="debug")
    wait_for(lambda: len(children(p.pid)) == 2, what="2 children")
    os.rename(log, log + ".1")
    p.signal(signal.SIGHUP)
    for _ in range(10):
        assert c.get("/api/health")[0] == 200
    # a child just started may serve these before its main thread takes
    # the signal (slow to start its threads under SAN=thread): keep asking
    wait_for(lambda: c.get("/api/health")[0] == 200 and os.path.exists(log)
             and "GET /health -> 200" in open(log).read(),
             what="request lines in the new log file")
    assert p.alive() and len(children(p.pid)) == 2


def test_sighup_reopens_the_log_file_in_idle_children(menv):
    """Children that get no request after a rotation still move to the new
    file (their checkpointer thread takes the held SIGHUP within a second)."""
    log = menv.path("api-idle.log")
    p, c = start_api(menv, "-n", "2", ETL_LOG_FILE=log)
    wait_for(lambda: len(children(p.pid)) == 2, what="2 children")
    kids = children(p.pid)

    def writes_to(pid, path):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                    return True
            except OSError:
                pass
        return False

    assert all(writes_to(k, log) for k in kids)
    os.rename(log, log + ".1")
    p.signal(signal.SIGHUP)
    wait_for(lambda: all(writes_to(k, log) for k in kids), timeout=10,
             what="every idle child on the new log file")
    assert p.alive() and children(p.pid) == kids


def test_signals_right_after_the_fork_are_not_lost(menv):
    """The pre-forking parent takes SIGHUP and SIGTERM even when they come
    the moment its children exist, before it waits for them: a SIGHUP
    reaches every child (each moves to the new log file), a SIGTERM stops
    them all. Were a signal taken by a handler and the parent then blocked
    in waitpid, it would wait for the next child to end."""
    log = menv.path("api-race.log")
    for i in range(15):
        port = free_port()
        p = menv.start([binary("etl-api"), "-p", f"127.0.0.1:{port}", "-n", "2"], f"etl-api-{i}",
                       env={"ETL_LOG_FILE": log})
        wait_for(lambda: len(children(p.pid)) == 2, interval=0.001, what="2 children")
        kids = children(p.pid)
        if i % 2 == 0:
            os.rename(log, log + ".1")
            p.signal(signal.SIGHUP)
            wait_for(lambda: all(os.path.exists(f"/proc/{k}/fd") and any(
                os.readlink(f"/proc/{k}/fd/{fd}") == log for fd in os.listdir(f"/proc/{k}/fd"))
                for k in kids), timeout=5, what=f"round {i}: both children on the new log")
        p.signal(signal.SIGTERM)
        assert p.wait(10) == 0, f"round {i}"


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_sighup_before_the_request_arrives_loses_nothing(menv, transport):
    """Log rotation's SIGHUP lands while a request thread holds an accepted
    connection whose request has not arrived yet (its read of the first
    bytes). In libfcgi's own accept a signal interrupting that wait dropped
    the connection; the request must still be answered, and the log
    reopened at once (the main thread takes the signal)."""
    log = menv.path("api-file.log")
    if transport == "unix":
        addr = menv.path("api.sock")
        p = menv.start([binary("etl-api"), "-s", addr, "-n", "1"], "etl-api",
                       env={"ETL_LOG_FILE": log, "ETL_LOG_LEVEL": "debug"})
    else:
        port = free_port()
        addr = ("127.0.0.1", port)
        p = menv.start([binary("etl-api"), "-p", f"127.0.0.1:{port}", "-n", "1"], "etl-api",
                       env={"ETL_LOG_FILE": log, "ETL_LOG_LEVEL": "debug"})
    c = Fcgi(addr)
    wait_for(lambda: c.get("/api/health")[0] == 200, what="etl-api")
    child = p.pid  # -n 1: the process serves itself

    def reading():  # some thread of the process is in read (0) or poll (7)
        for t in os.listdir(f"/proc/{child}/task"):
            try:
                with open(f"/proc/{child}/task/{t}/syscall") as f:
                    w = f.read().split()
            except OSError:
                continue
            if w and w[0] in ("0", "7"):
                return True
        return False

    def hup_taken():  # not left pending: taken (by the main thread) or delivered
        f = {}
        with open(f"/proc/{child}/status") as fh:
            for line in fh:
                k, _, v = line.partition(":")
                f[k] = int(v.split()[0], 16) if k in ("SigPnd", "ShdPnd") else 0
        return not ((f["SigPnd"] | f["ShdPnd"]) & (1 << (signal.SIGHUP - 1)))

    def rotate_now():
        # accepted, now waiting for the request
        wait_for(reading, what="a thread waiting for the request")
        os.rename(log, log + ".1")
        os.kill(child, signal.SIGHUP)
        wait_for(hup_taken, what="SIGHUP taken")

    st, _, js, _ = c.request("GET", "/api/health", before_send=rotate_now)
    assert st == 200 and js["status"] in ("ok", "degraded")
    for _ in range(3):
        assert c.get("/api/health")[0] == 200
    wait_for(lambda: os.path.exists(log) and "GET /health -> 200" in open(log).read(),
             what="request lines in the new log file")
    assert p.alive()


def test_run_by_hand_prints_usage(menv):
    r = subprocess.run([binary("etl-api")], env=menv.env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage:" in r.stderr


def test_unix_socket_mode(menv):
    sock = menv.path("api.sock")
    p = menv.start([binary("etl-api"), "-s", sock, "-m", "0660", "-n", "2"], "etl-api")
    c = Fcgi(sock)
    wait_for(lambda: c.get("/api/health")[0] == 200, what="etl-api -s")
    assert os.stat(sock).st_mode & 0o777 == 0o660
    p.signal(signal.SIGTERM)
    assert p.wait(15) == 0
    assert not os.path.exists(sock), "the socket file is removed at exit"
