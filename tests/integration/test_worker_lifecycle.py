"""etl-worker as a daemon: SIGTERM lets running jobs finish within
ETL_SHUTDOWN_GRACE then cancels them and exits 0; SIGHUP reopens the log
file; -p writes a pid file; --once drains the queue and exits, and two
--once runs never overlap."""
import os
import signal
import subprocess
import time

from harness import binary, wait_for
from harness_worker import (enqueue, group_members, init_db, job, kill_group,
                            pipeline_pid, start_worker, wait_status)


def test_sigterm_lets_the_running_job_finish(env):
    init_db(env)
    w = start_worker(env, ETL_SHUTDOWN_GRACE=10)
    i = enqueue(env, "amplis", params={"lines": 2, "sleep": 1})
    k = enqueue(env, "maps")
    wait_status(env, i, "running")
    w.signal(signal.SIGTERM)
    assert w.wait(15) == 0
    assert job(env, i)["status"] == "completed"
    assert job(env, k)["status"] == "pending", "no new job after SIGTERM"
    assert env.sql("SELECT count(*) FROM workers")[0][0] == 0, "unregistered"


def test_sigterm_past_the_grace_cancels_and_exits_0(env):
    init_db(env)
    w = start_worker(env, ETL_SHUTDOWN_GRACE=1, ETL_KILL_GRACE=1)
    i = enqueue(env, "amplis", params={"lines": 1, "sleep": 60, "child_sleep": 60})
    pid = pipeline_pid(w, i)
    wait_for(lambda: len(group_members(pid)) == 2, what="pipeline running")
    try:
        t0 = time.monotonic()
        w.signal(signal.SIGTERM)
        assert w.wait(15) == 0
        assert time.monotonic() - t0 < 5
        j = job(env, i)
        assert (j["status"], j["error_message"]) == ("cancelled", "worker shutdown")
        assert group_members(pid) == []
    finally:
        kill_group(pid)


def test_sighup_reopens_the_log_and_pidfile(env):
    init_db(env)
    log = env.path("w.log")
    pidf = env.path("w.pid")
    w = start_worker(env, args=("-p", pidf), ETL_LOG_FILE=log)
    assert int(open(pidf).read()) == w.pid
    wait_for(lambda: os.path.exists(log) and "registered" in open(log).read(), what="log file")
    os.rename(log, log + ".1")
    w.signal(signal.SIGHUP)
    wait_for(lambda: os.path.exists(log), what="log reopened")
    i = enqueue(env, "amplis")
    wait_status(env, i, "completed")
    wait_for(lambda: f"job={i}" in open(log).read(), what="new lines in the new file")
    w.signal(signal.SIGTERM)
    assert w.wait(10) == 0
    assert not os.path.exists(pidf)


def test_once_drains_the_queue_and_exits(env):
    init_db(env)
    ids = [enqueue(env, s, params={"lines": 1}) for s in ("amplis", "maps", "quantum")]
    e = dict(env.env, ETL_MAX_CONCURRENT_JOBS="2")
    r = subprocess.run([binary("etl-worker"), "--once"], env=e, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert [job(env, i)["status"] for i in ids] == ["completed"] * 3
    assert env.sql("SELECT count(*) FROM workers")[0][0] == 0


def test_two_once_runs_never_overlap(env):
    init_db(env)
    i = enqueue(env, "amplis", params={"sleep": 1.5})
    k = enqueue(env, "maps", params={"sleep": 0.1})
    first = env.start([binary("etl-worker"), "--once"], "once1",
                      env={"ETL_MAX_CONCURRENT_JOBS": 4})
    wait_status(env, i, "running")
    t0 = time.monotonic()
    r = subprocess.run([binary("etl-worker"), "--once"], env=dict(env.env, ETL_MAX_CONCURRENT_JOBS="4"),
                       capture_output=True, timeout=30, text=True)
    assert r.returncode == 0 and time.monotonic() - t0 < 1, "the second run gives way at once"
    assert "another run holds the lock" in r.stderr
    assert first.wait(30) == 0
    assert job(env, i)["status"] == job(env, k)["status"] == "completed"
    assert env.sql("SELECT count(DISTINCT worker_id) FROM jobs")[0][0] == 1


def test_idle_worker_does_not_spin(env):
    init_db(env)
    w = start_worker(env, ETL_POLL_INTERVAL=2)
    t = lambda: sum(int(x) for x in open(f"/proc/{w.pid}/stat").read().rsplit(")", 1)[1].split()[11:13])
    a = t()
    time.sleep(1.0)
    assert t() - a <= 5, "an idle worker uses (almost) no CPU"
