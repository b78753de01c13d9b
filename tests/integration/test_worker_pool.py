"""etl-worker, pool mode: the slot limit holds (one daemon or several on
one database), jobs start in FIFO order, a sistema never runs in two jobs
at once, and no job ever runs twice."""
import threading
import time

from harness_worker import enqueue, init_db, job, jobs, pipeline, start_worker, wait_status


def runs(env):
    """(job id, slot, start, end, sistemas) per pipeline run, from ran.txt."""
    try:
        with open(env.path("ran.txt")) as f:
            out = []
            for line in f:
                a, b, c, d, e = line.split()
                out.append((int(a), int(b), float(c), float(d), e.split(",")))
            return out
    except FileNotFoundError:
        return []


class RunningSampler:
    """Samples the number of running jobs in the database until stopped."""

    def __init__(self, env):
        self.env, self.max, self.stop = env, 0, False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            n = self.env.sql("SELECT count(*) FROM jobs WHERE status = 'running'")[0][0]
            self.max = max(self.max, n)
            time.sleep(0.005)

    def done(self):
        self.stop = True
        self.t.join(5)
        return self.max


def max_overlap(rs):
    ev = sorted([(r[2], 1) for r in rs] + [(r[3], -1) for r in rs], key=lambda e: (e[0], e[1]))
    cur = best = 0
    for _, d in ev:
        cur += d
        best = max(best, cur)
    return best


def test_pool_of_three_never_exceeds_three_and_starts_fifo(env):
    init_db(env, sistemas=[f"s{i}" for i in range(8)])
    start_worker(env, ETL_MAX_CONCURRENT_JOBS=3, ETL_PIPELINE_CMD=pipeline("ran.sh"),
                 ETL_PIPELINE_CWD=env.dir, ETL_POLL_INTERVAL=30)
    sampler = RunningSampler(env)
    ids = [enqueue(env, f"s{i}", params={"sleep": 0.4}) for i in range(8)]
    for i in ids:
        wait_status(env, i, "completed")
    assert sampler.done() <= 3
    rs = runs(env)
    assert sorted(r[0] for r in rs) == ids, "each job ran exactly once"
    assert max_overlap(rs) == 3, "three at once, not fewer, not more"
    js = {j["id"]: j for j in jobs(env)}
    started = sorted(ids, key=lambda i: (js[i]["started_at"], i))
    assert started == ids, "FIFO start order"
    assert {js[i]["worker_slot"] for i in ids} == {0, 1, 2}
    # At any moment the running jobs hold distinct slots.
    for a in rs:
        for b in rs:
            if a[0] < b[0] and a[2] < b[3] and b[2] < a[3]:
                assert a[1] != b[1], (a, b)


def test_sistema_exclusivity(env):
    init_db(env)
    start_worker(env, ETL_MAX_CONCURRENT_JOBS=3, ETL_PIPELINE_CMD=pipeline("ran.sh"),
                 ETL_PIPELINE_CWD=env.dir)
    a = enqueue(env, "amplis", "maps", params={"sleep": 0.6})
    b = enqueue(env, "maps", params={"sleep": 0.1})        # shares maps with a: waits
    c = enqueue(env, "quantum", params={"sleep": 0.1})     # free: starts before b
    for i in (a, b, c):
        wait_status(env, i, "completed")
    r = {x[0]: x for x in runs(env)}
    assert r[b][2] >= r[a][3], "b waited for a (maps)"
    assert r[c][2] < r[a][3], "c did not wait behind b"


def test_exclusivity_off(env):
    init_db(env)
    start_worker(env, ETL_MAX_CONCURRENT_JOBS=2, ETL_SISTEMA_EXCLUSIVE="false",
                 ETL_PIPELINE_CMD=pipeline("ran.sh"), ETL_PIPELINE_CWD=env.dir)
    a = enqueue(env, "maps", params={"sleep": 0.5})
    b = enqueue(env, "maps", params={"sleep": 0.5})
    for i in (a, b):
        wait_status(env, i, "completed")
    r = {x[0]: x for x in runs(env)}
    assert r[b][2] < r[a][3], "with exclusivity off both ran at once"


def test_three_daemons_one_database_never_run_a_job_twice(env):
    n = 40
    init_db(env, sistemas=[f"s{i}" for i in range(n)])
    ws = [start_worker(env, f"worker{k}", ETL_MAX_CONCURRENT_JOBS=4,
                       ETL_PIPELINE_CMD=pipeline("ran.sh"), ETL_PIPELINE_CWD=env.dir)
          for k in range(3)]
    sampler = RunningSampler(env)
    ids = [enqueue(env, f"s{i}", params={"sleep": 0.05}) for i in range(n)]
    for i in ids:
        wait_status(env, i, "completed", timeout=60)
    assert sampler.done() <= 4, "the slot limit is global"
    rs = runs(env)
    assert sorted(r[0] for r in rs) == ids, "every job ran once and only once"
    assert max_overlap(rs) <= 4
    by_worker = {j["worker_id"] for j in jobs(env)}
    assert len(by_worker) >= 2, f"the work was shared ({by_worker})"
    for w in ws:
        assert w.alive()


def test_a_freed_sistema_wakes_the_other_daemons(env):
    """Worker A finishes the job that blocked worker B's pick: B starts at
    once (A's wake-up), not at its next poll."""
    init_db(env)
    kw = dict(ETL_MAX_CONCURRENT_JOBS=2, ETL_PIPELINE_CMD=pipeline("ran.sh"),
              ETL_PIPELINE_CWD=env.dir, ETL_POLL_INTERVAL=30)
    start_worker(env, "w1", **kw)
    start_worker(env, "w2", **kw)
    a = enqueue(env, "maps", params={"sleep": 0.5})
    wait_status(env, a, "running")
    b = enqueue(env, "maps", params={"sleep": 0.0})
    wait_status(env, a, "completed")
    jb = wait_status(env, b, "completed", timeout=5)
    ja = job(env, a)
    assert jb["started_at"] >= ja["finished_at"]
