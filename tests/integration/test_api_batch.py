"""One etl-api process, many request threads: concurrent enqueues share a
transaction (fcgi/conn.c). Each client gets its own job, with its own
params, and only after the commit; a member that fails (an unknown or
inactive sistema) changes nothing and harms no other member; a raced
Idempotency-Key still makes one job; reads run beside the writes."""
import json
import os
import re
import socket
import struct
import threading
import time

import pytest

from harness import binary, free_port, run_threads, wait_for
from harness_web import Fcgi, make_env, populate


def start_api(env):
    """etl-api of env on a free TCP port, answering, with populate's users
    and sistemas. Returns (port, {role: token})."""
    port = free_port()
    env.start([binary("etl-api"), "-p", f"127.0.0.1:{port}"], "etl-api")
    c = Fcgi(("127.0.0.1", port))
    wait_for(lambda: c.get("/api/health")[0] == 200, what="etl-api")
    return port, populate(c)


@pytest.fixture(scope="module")
def one():
    env = make_env(ETL_API_THREADS="8", ETL_LOG_LEVEL="debug")
    port, tokens = start_api(env)
    yield env, port, tokens
    env.close()


def batches(env):
    with open(env.path("etl-api.log"), errors="replace") as f:
        return [int(n) for n in re.findall(r"batch of (\d+) committed \(rc=0\)", f.read())]


def test_each_member_gets_its_own_job_and_failures_stay_alone(one):
    env, port, tokens = one
    before = env.sql("SELECT count(*) FROM jobs")[0][0]
    batched_before = sum(batches(env))

    def client(i):
        c = Fcgi(("127.0.0.1", port))
        c.token = tokens["operator"]
        got = []
        for k in range(40):
            # every fifth request names an inactive sistema: a 422 member
            bad = (i + k) % 5 == 0
            body = {"sistemas": ["velho" if bad else "amplis"], "params": {"t": i, "k": k}}
            st, _, js, _ = c.post("/api/execute", body)
            if bad:
                assert st == 422 and "velho" in js["detail"], (st, js)
            else:
                assert st == 202, (st, js)
                got.append((js["job_id"], i, k))
        return got

    got = [g for r in run_threads(16, client) for g in r]
    assert len(got) == 16 * 32
    assert len({j for j, _, _ in got}) == len(got), "a job id was given twice"
    assert env.sql("SELECT count(*) FROM jobs")[0][0] - before == len(got)
    rows = dict(env.sql("SELECT id, params FROM jobs WHERE id > 0"))
    for job_id, i, k in got:  # each client's own params, not a neighbour's
        assert json.loads(rows[job_id]) == {"t": i, "k": k}
    assert env.sql("SELECT count(*) FROM jobs WHERE sistemas LIKE '%velho%'")[0][0] == 0
    # the point of it: transactions were shared (16 clients, 8 threads)
    assert sum(batches(env)) - batched_before > 0


def new_user(port, tokens, name, role):
    """Creates user name (password gone-pass-1) through the admin; returns
    (the admin's client, a client logged in as the new user)."""
    admin = Fcgi(("127.0.0.1", port))
    admin.token = tokens["admin"]
    assert admin.post("/api/users", {"username": name, "password": "gone-pass-1",
                                     "role": role})[0] == 201
    u = Fcgi(("127.0.0.1", port))
    u.login(name, "gone-pass-1")
    return admin, u


def test_a_deleted_account_is_refused_inside_the_batch_alone(one):
    """A member's account is read in the batch's transaction: the members
    of a deleted account get 401 and leave nothing; the others keep their
    jobs."""
    env, port, tokens = one
    admin, g = new_user(port, tokens, "gone", "operator")
    gone_token = g.token
    assert admin.request("DELETE", "/api/users/gone")[0] == 204
    before = env.sql("SELECT count(*) FROM jobs")[0][0]
    batched_before = sum(batches(env))

    def client(i):
        c = Fcgi(("127.0.0.1", port))
        ok = 0
        for k in range(30):
            gone = (i + k) % 3 == 0
            c.token = gone_token if gone else tokens["operator"]
            st, _, js, _ = c.post("/api/execute", {"sistemas": ["amplis"]})
            if gone:
                assert st == 401 and js["detail"] == "user no longer exists", (st, js)
            else:
                assert st == 202, (st, js)
                ok += 1
        return ok

    ok = sum(run_threads(16, client))
    assert ok == 16 * 20
    assert env.sql("SELECT count(*) FROM jobs")[0][0] - before == ok
    assert env.sql("SELECT count(*) FROM jobs WHERE created_by = 'gone'")[0][0] == 0
    assert sum(batches(env)) - batched_before > 0


def test_a_member_failing_alone_does_not_strand_the_batch():
    """A good and a bad enqueue at the same moment, then silence: the good
    one's batch is committed and it is answered at once, although the
    member that failed (its sistema inactive) was the last to hold the
    connection. Two threads, so a batch has these two and nobody else to
    come and commit it."""
    env = make_env(ETL_API_THREADS="2", ETL_DB_BUSY_TIMEOUT="500")
    try:
        port, tokens = start_api(env)

        def post(i):
            f = Fcgi(("127.0.0.1", port))
            f.token = tokens["operator"]
            return f.post("/api/execute", {"sistemas": ["amplis" if i == 0 else "velho"]},
                          timeout=5)[0]

        for _ in range(60):  # run_threads starts the two together
            assert sorted(run_threads(2, post)) == [202, 422]
        # and the write lock is free for everybody else
        assert env.sql("SELECT count(*) FROM jobs")[0][0] == 60
    finally:
        env.close()


def test_raced_idempotency_key_in_one_batch_makes_one_job(one):
    env, port, tokens = one

    def once(i):
        c = Fcgi(("127.0.0.1", port))
        c.token = tokens["operator"]
        st, _, js, _ = c.post("/api/execute", {"sistemas": ["maps"]},
                              headers={"Idempotency-Key": "batch-race-1"})
        assert st == 202, (st, js)
        return js["job_id"]

    ids = run_threads(16, once)
    assert len(set(ids)) == 1
    assert env.sql("SELECT count(*) FROM jobs WHERE idempotency_key = 'batch-race-1'")[0][0] == 1


def test_reads_beside_writes_see_only_committed_jobs(one):
    """Readers use their thread's own connection: every job a list shows
    was committed (it is in the database afterwards), and the total never
    goes down while enqueues go on."""
    env, port, tokens = one
    stop = threading.Event()
    seen, errs = set(), []

    def reader():
        c = Fcgi(("127.0.0.1", port))
        c.token = tokens["viewer"]
        last = 0
        while not stop.is_set():
            st, _, js, _ = c.get("/api/jobs?limit=20")
            if st != 200 or js["total"] < last:
                errs.append((st, js.get("total"), last))
                return
            last = js["total"]
            seen.update(it["id"] for it in js["items"])

    rs = [threading.Thread(target=reader) for _ in range(3)]
    for t in rs:
        t.start()

    def writer(i):
        c = Fcgi(("127.0.0.1", port))
        c.token = tokens["operator"]
        for k in range(30):
            st, _, js, _ = c.post("/api/execute", {"sistemas": ["amplis"], "params": {"r": i}})
            assert st == 202, (st, js)

    try:
        run_threads(8, writer)
    finally:
        stop.set()
        for t in rs:
            t.join(30)
    assert not errs, errs[:3]
    present = {r[0] for r in env.sql("SELECT id FROM jobs")}
    assert seen and seen <= present


def slow_body_request(port, token, sent):
    """A POST /api/execute whose body stops after its first bytes: returns
    the socket (the rest is sent by the caller)."""
    from harness_web import FCGI_BEGIN, FCGI_PARAMS, FCGI_STDIN, _nv, _rec
    body = b'{"sistemas": ["amplis"]}'
    params = {"REQUEST_METHOD": "POST", "REQUEST_URI": "/api/execute", "QUERY_STRING": "",
              "SCRIPT_NAME": "/api/execute", "SERVER_PROTOCOL": "HTTP/1.1",
              "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json"}
    if token:
        params["HTTP_AUTHORIZATION"] = "Bearer " + token
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    msg = _rec(FCGI_BEGIN, 1, struct.pack(">HB5x", 1, 0))
    msg += _rec(FCGI_PARAMS, 1, b"".join(_nv(k, v) for k, v in params.items()))
    msg += _rec(FCGI_PARAMS, 1, b"") + _rec(FCGI_STDIN, 1, body[:sent])
    s.sendall(msg)
    return s, _rec(FCGI_STDIN, 1, body[sent:]) + _rec(FCGI_STDIN, 1, b"")


@pytest.mark.parametrize("token", ["operator", None])
def test_a_slow_body_holds_nothing(one, token):
    """A client that sends 3 bytes of its body and stops (with a token or
    without one) holds neither the connection nor SQLite's write lock:
    other enqueues are answered, and another process can write."""
    import sqlite3
    env, port, tokens = one
    s, rest = slow_body_request(port, tokens[token] if token else None, 3)
    try:
        time.sleep(0.3)  # a request thread is now reading that body

        def client(i):
            c = Fcgi(("127.0.0.1", port))
            c.token = tokens["operator"]
            for _ in range(5):
                st, _, js, _ = c.post("/api/execute", {"sistemas": ["maps"]}, timeout=5)
                assert st == 202, (st, js)
        t0 = time.monotonic()
        run_threads(6, client)
        assert time.monotonic() - t0 < 5
        con = sqlite3.connect(env.db, timeout=1.0)  # another process's write
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("UPDATE sistemas SET descricao = descricao WHERE id = 'maps'")
            con.commit()
        finally:
            con.close()
        s.sendall(rest)
        head = s.recv(65536)
        assert b"Status: 202" in head or b"Status: 401" in head, head[:200]
    finally:
        s.close()


def test_logins_beside_a_batch_load_answer_401_not_500(one):
    """A login checks its password without the connection, and takes it
    back when enqueues may have opened a batch meanwhile."""
    env, port, tokens = one
    stop = threading.Event()

    def load():
        c = Fcgi(("127.0.0.1", port))
        c.token = tokens["operator"]
        while not stop.is_set():
            c.post("/api/execute", {"sistemas": ["amplis"]})

    ls = [threading.Thread(target=load) for _ in range(6)]
    for t in ls:
        t.start()
    try:
        codes = []
        for i in range(4):  # under the failure limit: each is checked
            c = Fcgi(("127.0.0.1", port))
            st, _, js, _ = c.post("/api/auth/login", {"username": "view", "password": "nope-%d" % i})
            codes.append(st)
        c = Fcgi(("127.0.0.1", port))
        c.login("view", "view-pass-1")  # clears them
    finally:
        stop.set()
        for t in ls:
            t.join(30)
    assert codes == [401] * 4, codes


def test_creating_users_holds_no_enqueue_behind_its_hashing(one):
    """POST /users hashes the new password (yescrypt: about 30 ms, on
    purpose) without the connection, as a login checks one: enqueues beside
    a stream of user creations wait for none of it. Were the hashing done
    holding the connection, nearly every enqueue would wait for one."""
    import statistics
    env, port, tokens = one
    done = threading.Event()
    made, waits = [], []

    def creator():
        a = Fcgi(("127.0.0.1", port))
        a.token = tokens["admin"]
        try:
            for i in range(12):
                t0 = time.monotonic()
                st, _, js, _ = a.post("/api/users", {"username": f"hash-{os.getpid()}-{i}",
                                                     "password": "a-long-password", "role": "viewer"})
                made.append((st, time.monotonic() - t0))
        finally:
            done.set()

    def enqueuer():
        c = Fcgi(("127.0.0.1", port))
        c.token = tokens["operator"]
        while not done.is_set():
            t0 = time.monotonic()
            assert c.post("/api/execute", {"sistemas": ["amplis"]})[0] == 202
            waits.append(time.monotonic() - t0)

    ts = [threading.Thread(target=creator), threading.Thread(target=enqueuer)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert [st for st, _ in made] == [201] * 12, made
    hashing = statistics.median(d for _, d in made)
    assert len(waits) >= 12 and statistics.median(waits) < hashing / 3, (hashing, waits)


def test_an_admin_deleted_during_the_hashing_creates_no_user(one):
    """POST /users hashes without the connection, so its admin may go
    before the insert: the account is read again inside the insert's
    transaction. The deletion is made to land in that gap: this test holds
    SQLite's write lock with the deletion in it (readers still see the
    admin), so the request passes its first check, hashes, and then waits
    for the lock; the deletion commits; the request must get 401 and
    create nothing."""
    import sqlite3
    env, port, tokens = one
    _, g = new_user(port, tokens, "admin-gone", "admin")
    holder = sqlite3.connect(env.db, timeout=10, isolation_level=None)
    answer = []
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("DELETE FROM users WHERE username = 'admin-gone'")
        t = threading.Thread(target=lambda: answer.append(g.post(
            "/api/users", {"username": "made-by-gone", "password": "a-long-password",
                           "role": "viewer"})))
        t.start()
        t.join(1.5)  # the hashing takes about 30 ms; then it waits for the lock
        assert t.is_alive() and not answer, answer
        holder.execute("COMMIT")
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
    t.join(30)
    st, _, js, _ = answer[0]
    assert st == 401 and js.get("detail") == "user no longer exists", (st, js)
    assert env.sql("SELECT count(*) FROM users WHERE username = 'made-by-gone'") == [(0,)]


def test_parallel_wrong_guesses_keep_the_limit(one):
    """Guesses for one user in parallel: no more than the limit (5) are
    checked in the window, whatever the number of threads."""
    env, port, tokens = one
    env.sql("DELETE FROM login_failures")

    def guess(i):
        c = Fcgi(("127.0.0.1", port))
        st, _, js, _ = c.post("/api/auth/login", {"username": "oper", "password": "wrong-%d" % i})
        assert st in (401, 429), (st, js)
        return st

    codes = run_threads(24, guess)
    assert codes.count(401) == 5 and codes.count(429) == 19, sorted(codes)
    env.sql("DELETE FROM login_failures")


def test_stop_closes_a_kept_connection():
    """A connection the web server keeps open (FCGI_KEEP_CONN) between
    requests does not hold up a stop: SIGTERM ends the process at once and
    closes it."""
    import signal
    from harness_web import FCGI_BEGIN, FCGI_END, FCGI_PARAMS, FCGI_STDIN, _nv, _rec
    env = make_env(ETL_API_THREADS="2")
    try:
        port = free_port()
        p = env.start([binary("etl-api"), "-p", f"127.0.0.1:{port}"], "etl-api")
        c = Fcgi(("127.0.0.1", port))
        wait_for(lambda: c.get("/api/health")[0] == 200, what="etl-api")
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        params = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/api/health", "QUERY_STRING": "",
                  "SCRIPT_NAME": "/api/health", "SERVER_PROTOCOL": "HTTP/1.1"}
        msg = _rec(FCGI_BEGIN, 1, struct.pack(">HB5x", 1, 1))  # flags: keep the connection
        msg += _rec(FCGI_PARAMS, 1, b"".join(_nv(k, v) for k, v in params.items()))
        msg += _rec(FCGI_PARAMS, 1, b"") + _rec(FCGI_STDIN, 1, b"")
        s.sendall(msg)
        got = b""
        while True:  # read up to the end of the request; the connection stays
            got += s.recv(65536)
            i = 0
            ends = False
            while i + 8 <= len(got):
                _, t, _, clen, plen = struct.unpack(">BBHHBx", got[i:i + 8])
                ends = ends or t == FCGI_END
                i += 8 + clen + plen
            if ends:
                break
        assert b"Status: 200" in got
        t0 = time.monotonic()
        os.kill(p.pid, signal.SIGTERM)
        assert s.recv(65536) == b""  # closed by the stop
        wait_for(lambda: not p.alive(), timeout=5, what="etl-api stopped")
        assert time.monotonic() - t0 < 3
        s.close()
    finally:
        env.close()


@pytest.mark.parametrize("addrs,served", [("10.9.9.9", False), ("10.9.9.9,127.0.0.1", True)])
def test_web_server_addrs_are_honoured(addrs, served):
    """FCGI_WEB_SERVER_ADDRS, as libfcgi's own accept had it: TCP
    connections from other addresses are closed unanswered."""
    env = make_env()
    try:
        port = free_port()
        env.start([binary("etl-api"), "-p", f"127.0.0.1:{port}"], "etl-api",
                  env={"FCGI_WEB_SERVER_ADDRS": addrs})
        c = Fcgi(("127.0.0.1", port))
        wait_for(lambda: os.path.exists(env.db), what="etl-api started")
        if served:
            wait_for(lambda: c.get("/api/health")[0] == 200, what="etl-api")
        else:
            time.sleep(0.5)
            with pytest.raises((ConnectionError, OSError)):
                c.get("/api/health", timeout=5)
            wait_for(lambda: "FCGI_WEB_SERVER_ADDRS" in open(env.path("etl-api.log")).read(),
                     what="the refusal logged")
    finally:
        env.close()


def test_a_hanging_redis_delays_no_other_request():
    """Redis's connect hangs (its accept queue is full, SYNs are dropped).
    An enqueue waits for it at most REDIS_SOCKET_TIMEOUT, after its
    transaction and outside the shared connection: meanwhile another
    thread's write (PUT /sistemas, which publishes nothing) is answered at
    once, and a second enqueue is answered within its own timeout."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    fillers = []
    for _ in range(4):  # fill the accept queue: later SYNs are dropped
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(hole.getsockname())
        fillers.append(f)
    time.sleep(0.2)
    env = make_env(ETL_API_THREADS="4", REDIS_ENABLED="true", REDIS_SOCKET_TIMEOUT="4",
                   REDIS_URL="redis://127.0.0.1:%d/0" % hole.getsockname()[1])
    try:
        port, tokens = start_api(env)
        out = {}

        def enqueue(name):
            e = Fcgi(("127.0.0.1", port))
            e.token = tokens["operator"]
            t0 = time.monotonic()
            out[name] = (e.post("/api/execute", {"sistemas": ["amplis"]})[0],
                         time.monotonic() - t0)

        first = threading.Thread(target=enqueue, args=("first",))
        first.start()
        time.sleep(0.5)  # the first is waiting on Redis now
        second = threading.Thread(target=enqueue, args=("second",))
        second.start()
        a = Fcgi(("127.0.0.1", port))
        a.token = tokens["admin"]
        t0 = time.monotonic()
        st, _, js, _ = a.request("PUT", "/api/sistemas/amplis",
                                 {"nome": "AMPLIS", "descricao": "d", "ativo": True})
        put_s = time.monotonic() - t0
        first.join(30)
        second.join(30)
        assert st == 200, (st, js)
        assert put_s < 1.5, put_s  # not behind the enqueue's wait (about 3.5 s)
        for name in ("first", "second"):
            code, secs = out[name]
            assert code == 202 and secs < 4 + 1.5, (name, code, secs)
        assert env.sql("SELECT count(*) FROM jobs")[0][0] == 2
    finally:
        env.close()
        for f in fillers:
            f.close()
        hole.close()
