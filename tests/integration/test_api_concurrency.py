"""Several etl-api processes writing one database at once: no request is
lost or doubled, an Idempotency-Key raced from many clients makes one
job, and every answer is a clean 202 or a 503 (never a 500)."""
import pytest

from harness import binary, free_port, run_threads, wait_for
from harness_web import Fcgi, make_env, populate


@pytest.fixture(scope="module")
def farm():
    env = make_env()
    port = free_port()
    env.start([binary("etl-api"), "-p", f"127.0.0.1:{port}", "-n", "4"], "etl-api")
    c = Fcgi(("127.0.0.1", port))
    wait_for(lambda: c.get("/api/health")[0] == 200, what="etl-api -n 4")
    tokens = populate(c)
    yield env, port, tokens
    env.close()


def test_parallel_enqueues_are_neither_lost_nor_doubled(farm):
    env, port, tokens = farm
    before = env.sql("SELECT count(*) FROM jobs")[0][0]

    def worker(i):
        c = Fcgi(("127.0.0.1", port))
        c.token = tokens["operator"]
        res = []
        for k in range(20):
            st, h, js, _ = c.post("/api/execute", {"sistemas": ["amplis", "maps"], "params": {"t": i, "k": k}})
            assert st in (202, 503), (st, js)
            if st == 503:
                assert h["retry-after"]
            res.append(js["job_id"] if st == 202 else None)
        return res

    results = [j for r in run_threads(8, worker) for j in r]
    ok = [j for j in results if j is not None]
    assert len(ok) == len(set(ok)), "a job id was returned twice"
    assert len(ok) >= len(results) * 0.9
    assert env.sql("SELECT count(*) FROM jobs")[0][0] - before == len(ok)
    rows = env.sql("SELECT sum(json_array_length(sistemas)) FROM jobs WHERE id IN (%s)"
                   % ",".join(map(str, ok)))
    assert rows[0][0] == 2 * len(ok)


def test_raced_idempotency_key_makes_one_job(farm):
    env, port, tokens = farm

    def once(i):
        c = Fcgi(("127.0.0.1", port))
        c.token = tokens["operator"]
        for _ in range(20):  # a 503 is a retry, as a client would
            st, _, js, _ = c.post("/api/execute", {"sistemas": ["maps"]},
                                  headers={"Idempotency-Key": "raced-key-1"})
            if st == 202:
                return js["job_id"]
            assert st == 503, (st, js)
        raise AssertionError("never accepted")

    ids = run_threads(16, once)
    assert len(set(ids)) == 1, ids
    assert env.sql("SELECT count(*) FROM jobs WHERE idempotency_key = 'raced-key-1'") == [(1,)]
