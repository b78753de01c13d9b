"""End to end through the web server, behind lighttpd and behind Apache
(mod_proxy_fcgi): log in -> POST /api/execute -> the worker runs the job ->
log, status, job_status and job_complete events reach a websocket client on
/ws THROUGH the web server's proxy -> the REST log equals the streamed one
(same seq, same text) -> pool status right; with ETL_MAX_CONCURRENT_JOBS=1
and 3; with REDIS_ENABLED=false (everything works, no events, REST
catch-up); and on a database left by the original Python version
(fixtures/legacy-v1.sql), migrated in place on first start."""
import os

import pytest

from harness import FIXTURES, binary, wait_for
from harness_e2e import ADMIN, OPER, SHORT, E2EStack
from harness_wsd import Wsd

SERVERS = ("lighttpd", "apache-proxy")


def key(line):
    """What the REST log and the streamed log must agree on."""
    return (line["seq"], line["ts"], line["level"], line["sistema"], line["mensagem"])


def check_streamed_equals_rest(stack, c, ws, jid):
    rest = stack.rest_logs(c, jid)
    assert [x["seq"] for x in rest] == list(range(1, len(rest) + 1)), rest
    # every line published after its commit: all of them arrive, in order
    wait_for(lambda: len(ws.of("log", job_id=jid)) >= len(rest), timeout=10,
             what=f"{len(rest)} log events of job {jid}")
    streamed = ws.of("log", job_id=jid)
    assert [key(x) for x in streamed] == [key(x) for x in rest]
    assert all(x["slot_id"] == stack.job(c, jid)["worker_slot"] for x in streamed)
    return rest


def check_job_events(ws, jid, sistemas, slot):
    wait_for(lambda: ws.of("job_complete", job_id=jid), timeout=10, what=f"job_complete {jid}")
    done = ws.of("job_complete", job_id=jid)
    assert len(done) == 1 and done[0]["status"] == "completed", done
    assert 0 < done[0]["duracao_segundos"] < 30
    js = ws.of("job_status", job_id=jid)
    assert [x["status"] for x in js] == ["pending", "running", "completed"], js
    assert [x["worker_slot"] for x in js[1:]] == [slot, slot]
    for s in sistemas:
        st = [(x["status"], x["progresso"]) for x in ws.of("status", sistema_id=s)]
        assert ("RUNNING", 0) in st and st[-1] == ("SUCCESS", 100), (s, st)
        progress = [p for status, p in st if status == "RUNNING"]
        assert progress == sorted(progress), st  # never backwards


@pytest.mark.parametrize("slots", [1, 3])
@pytest.mark.parametrize("server", SERVERS)
def test_job_streams_through_the_web_server(server, slots):
    stack = E2EStack(server, redis=True, slots=slots)
    try:
        c = stack.oper()
        assert c.get("/api/auth/me")[2] == {"username": OPER, "role": "operator"}
        ws = stack.ws(c.token)
        sets = [["amplis"], ["maps", "sac"], ["sap"]]
        params = {"lines": 3, "sleep": 1.5}  # long enough to see the pool busy
        ids = [stack.execute(c, s, params) for s in sets]

        def pool_running():
            st, _, p, _ = c.get("/api/pool/status")
            assert st == 200
            return p
        if slots == 1:
            p = wait_for(lambda: (p := pool_running())["current_job_id"] == ids[0] and p,
                         what="single mode showing the first job")
            assert p == {"mode": "single", "current_job_id": ids[0]}
            assert [stack.job(c, i)["status"] for i in ids[1:]] == ["pending", "pending"]
        else:
            p = wait_for(lambda: (p := pool_running()) and
                         sorted(s["job_id"] for s in p["slots"] if s["job_id"]) == ids and p,
                         what="three busy slots")
            assert p["mode"] == "pool" and p["max_workers"] == 3 and p["running"] is True
            assert sorted(s["slot_id"] for s in p["slots"]) == [0, 1, 2]
            assert all(s["status"] == "running" and s["started_at"].endswith("Z")
                       for s in p["slots"])
        jobs = [stack.wait_job(c, i, timeout=30) for i in ids]
        assert [j["status"] for j in jobs] == ["completed"] * 3, jobs
        if slots == 1:
            assert [j["worker_slot"] for j in jobs] == [0, 0, 0]
            # FIFO, one at a time
            assert jobs[0]["finished_at"] <= jobs[1]["started_at"] <= jobs[1]["finished_at"] \
                <= jobs[2]["started_at"]
        else:
            assert sorted(j["worker_slot"] for j in jobs) == [0, 1, 2]
            assert max(j["started_at"] for j in jobs) < min(j["finished_at"] for j in jobs)
        for jid, s, j in zip(ids, sets, jobs):
            rest = check_streamed_equals_rest(stack, c, ws, jid)
            assert len(rest) == 3 * len(s) + len(s)  # 3 steps + SUCCESS per sistema
            check_job_events(ws, jid, s, j["worker_slot"])
            assert j["sistemas"] == s and j["params"] == params and j["created_by"] == OPER
            assert j["exit_code"] == 0 and j["duracao_segundos"] > 0
        # after: the pool is idle again, the sistemas say SUCCESS
        p = pool_running()
        if slots == 1:
            assert p == {"mode": "single", "current_job_id": None}
        else:
            assert all(s["status"] == "idle" and s["job_id"] is None for s in p["slots"]), p
        st, _, sis, _ = c.get("/api/sistemas")
        assert {x["id"]: (x["status"], x["progresso"]) for x in sis} == \
            {s: ("SUCCESS", 100) for s in ("amplis", "maps", "sac", "sap")}
        h = c.get("/api/health")[2]
        assert (h["status"], h["db"], h["redis"], h["worker"]) == ("ok", "ok", "ok", "alive")
        assert not ws.closes and ws.connects == 1, (ws.closes, ws.errors)
    finally:
        stack.close()


@pytest.mark.parametrize("server", SERVERS)
def test_redis_disabled_everything_works_without_events(server):
    """REDIS_ENABLED=false: jobs run, nothing is published (an etl-wsd with
    Redis off relays nothing), and the REST routes give the whole log, page
    by page with ?after= as a reconnecting client would catch up."""
    stack = E2EStack(server, redis=False, slots=1)
    try:
        p = stack.env.start([binary("etl-wsd"), "-l", f"127.0.0.1:{stack.web.wsport}"], "wsd")
        w = Wsd(stack.env, p, port=stack.web.wsport)
        wait_for(lambda: not p.alive() or w.health()[0] in (200, 503), what="etl-wsd up")
        assert p.alive(), p.log()
        c = stack.oper()
        h = c.get("/api/health")[2]
        assert (h["status"], h["redis"], h["worker"]) == ("ok", "disabled", "alive"), h
        ws = stack.ws(c.token, ready=False)
        wait_for(lambda: ws.connects == 1 or ws.errors, what="ws connected")
        a = stack.execute(c, ["amplis"], SHORT)
        b = stack.execute(c, ["maps"], {"lines": 5, "sleep": 0.5})
        ja, jb = stack.wait_job(c, a), stack.wait_job(c, b)
        assert (ja["status"], jb["status"]) == ("completed", "completed")
        # catch-up in small pages: no line missed, none repeated
        got, after = [], 0
        while True:
            st, _, page, _ = c.get(f"/api/jobs/{b}/logs?after={after}&limit=2")
            assert st == 200
            if not page["lines"]:
                assert page["next"] == after
                break
            assert page["next"] == page["lines"][-1]["seq"]
            got += page["lines"]
            after = page["next"]
        assert [x["seq"] for x in got] == list(range(1, 7))
        assert got == stack.rest_logs(c, b)
        assert [x["mensagem"] for x in got][-1] == "maps concluido"
        # the page polls these instead of events
        assert c.get("/api/sistemas/amplis")[2]["status"] == "SUCCESS"
        assert c.get("/api/pool/status")[2] == {"mode": "single", "current_job_id": None}
        assert ws.connects == 1 and ws.msgs == [], (ws.msgs, ws.errors)
        # no Redis, no counted publications either
        st, _, _, raw = c.get("/api/metrics")
        assert st == 200 and b"etl_events_published_total 0" in raw, raw
    finally:
        stack.close()


@pytest.mark.parametrize("server", SERVERS)
def test_legacy_database_migrated_in_place(server):
    """The stack started on a copy of the Python version's database: old jobs
    and logs readable, the legacy admin logs in with its bcrypt password, the
    job the crash left running is closed as error, the pending job (amplis,
    maps) runs, and new jobs run after it."""
    stack = E2EStack(server, redis=True, slots=1, populate=False,
                     sql=os.path.join(FIXTURES, "legacy-v1.sql"))
    try:
        c = stack.http(ADMIN, "legacy-pass-1")
        assert c.get("/api/auth/me")[2] == {"username": "admin", "role": "admin"}
        assert stack.http().post("/api/auth/login", {"username": "admin",
                                                     "password": "admin-pass-123"})[0] == 401
        st, _, page, _ = c.get("/api/jobs?limit=500")
        assert st == 200 and page["total"] == 5, page
        by = {j["id"]: j for j in page["items"]}
        assert (by[1]["status"], by[1]["sistemas"], by[1]["created_at"]) == \
            ("completed", ["amplis"], "2026-10-01T03:00:00.000Z")
        assert (by[2]["status"], by[2]["error_message"]) == ("error", "exit code 2")
        assert by[5]["status"] == "completed"  # params that are not JSON: still listed
        assert [x["mensagem"] for x in stack.rest_logs(c, 1)] == \
            ["Extraindo posicoes", "Concluido"]
        assert [(x["level"], x["sistema"]) for x in stack.rest_logs(c, 2)] == \
            [("INFO", "maps"), ("ERROR", "maps")]
        # the stranded running job: closed by the worker's first sweep
        j3 = stack.wait_job(c, 3, ("error",), timeout=15)
        assert j3["error_message"].startswith("orphaned"), j3
        assert c.get("/api/sistemas/quantum")[2]["status"] == "ERROR"
        # the pending job runs (pipeline-sim with the legacy params: 3 lines each)
        j4 = stack.wait_job(c, 4, timeout=20)
        assert j4["status"] == "completed" and j4["sistemas"] == ["amplis", "maps"], j4
        assert len(stack.rest_logs(c, 4)) == 8
        # and the migrated database takes new work, with events through the proxy
        ws = stack.ws(c.token)
        n = stack.execute(c, ["maps"], SHORT)
        assert n == 6
        assert stack.wait_job(c, n)["status"] == "completed"
        check_streamed_equals_rest(stack, c, ws, n)
        assert stack.sql("PRAGMA user_version")[0][0] >= 2
        assert stack.sql("SELECT count(*) FROM jobs")[0][0] == 6
        assert stack.integrity() == [("ok",)]
        st, _, users, _ = c.get("/api/users")
        assert [u["username"] for u in users] == ["admin"]
    finally:
        stack.close()
