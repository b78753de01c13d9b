"""One etl-api process, many request threads: concurrent enqueues share a
transaction (fcgi/conn.c). Each client gets its own job, with its own
params, and only after the commit; a member that fails (an unknown or
inactive sistema) changes nothing and harms no other member; a raced
Idempotency-Key still makes one job; reads run beside the writes."""
import json
import re
import threading

import pytest

from harness import binary, free_port, run_threads, wait_for
from harness_web import Fcgi, make_env, populate


@pytest.fixture(scope="module")
def one():
    env = make_env(ETL_API_THREADS="8", ETL_LOG_LEVEL="debug")
    port = free_port()
    env.start([binary("etl-api"), "-p", f"127.0.0.1:{port}"], "etl-api")
    c = Fcgi(("127.0.0.1", port))
    wait_for(lambda: c.get("/api/health")[0] == 200, what="etl-api, 8 threads")
    tokens = populate(c)
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
