"""etl-worker stopping jobs: timeout and cancel escalate SIGTERM -> SIGKILL
to the whole process group and nothing of it survives; a cancel reaches
the running slot within 100 ms; a pending cancelled job never starts; a
worker killed with SIGKILL mid-job has that job closed once by its
successor and never run again."""
import os
import signal
import time

from harness import wait_for
from harness_worker import (cancel, enqueue, group_members, init_db, job,
                            kill_group, logs, pipeline, pipeline_pid, sistema, start_worker,
                            wait_status)


def test_timeout_kills_the_whole_group(env):
    init_db(env)
    # 3 s: room for the interpreter to start and fork under a loaded machine.
    w = start_worker(env, ETL_JOB_TIMEOUT=3, ETL_KILL_GRACE=1)
    i = enqueue(env, "amplis", params={"lines": 1, "sleep": 30, "child_sleep": 60,
                                       "ignore_term": True})
    pid = pipeline_pid(w, i)
    # Its first line comes after it set up SIGTERM and forked its child.
    wait_for(lambda: len(logs(env, i)) >= 1 and len(group_members(pid)) == 2,
             what="pipeline and its child")
    j = wait_status(env, i, "error", timeout=15)
    try:
        assert j["error_message"] == "timeout after 3 s"
        assert group_members(pid) == [], "no descendant survives"
        took = (_ms(j["finished_at"]) - _ms(j["started_at"])) / 1000
        assert 3.9 < took < 6, took  # 3 s timeout + 1 s grace (TERM ignored), not the 30 s sleep
        s = sistema(env, "amplis")
        assert (s["status"], s["mensagem"]) == ("ERROR", "timeout after 3 s")
        assert "SIGKILL to group" in w.log()
    finally:
        kill_group(pid)


def _ms(iso):
    import calendar
    t = time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(t) * 1000 + int(iso[20:23])


def test_cancel_running_reaches_the_slot_within_100ms(env):
    init_db(env)
    w = start_worker(env, ETL_PIPELINE_CMD=pipeline("term.py"), ETL_POLL_INTERVAL=60,
                     ETL_LEASE_INTERVAL=60)
    i = enqueue(env, "amplis")
    wait_for(lambda: len(logs(env, i)) == 1, what="pipeline ready")
    pid = pipeline_pid(w, i)
    t0 = time.time()
    assert cancel(env, i) == "requested"
    j = wait_status(env, i, "cancelled", timeout=5)
    got = [m for _, _, _, m in logs(env, i) if m.startswith("got TERM at ")]
    assert got, logs(env, i)
    latency = float(got[0].split()[-1]) - t0
    assert latency < 0.1, f"cancel took {latency * 1000:.1f} ms to reach the pipeline"
    assert j["error_message"] == "cancelled" and j["exit_code"] == 143
    assert group_members(pid) == []
    assert sistema(env, "amplis")["status"] == "ERROR"


def test_cancel_escalates_to_sigkill_and_kills_descendants(env):
    init_db(env)
    w = start_worker(env, ETL_KILL_GRACE=1)
    i = enqueue(env, "amplis", params={"lines": 1, "sleep": 30, "child_sleep": 60,
                                       "ignore_term": True})
    pid = pipeline_pid(w, i)
    # Its first line comes after it set up SIGTERM and forked its child.
    wait_for(lambda: len(logs(env, i)) >= 1 and len(group_members(pid)) == 2,
             what="pipeline and its child")
    try:
        t0 = time.monotonic()
        cancel(env, i)
        j = wait_status(env, i, "cancelled", timeout=10)
        took = time.monotonic() - t0
        assert 0.9 < took < 3, took  # SIGTERM ignored: SIGKILL after the 1 s grace
        assert j["exit_code"] is None  # killed by a signal
        assert group_members(pid) == []
    finally:
        kill_group(pid)


def test_leftover_children_are_killed_when_the_leader_exits(env):
    init_db(env)
    w = start_worker(env)
    i = enqueue(env, "amplis", params={"lines": 1, "child_sleep": 60})
    pid = pipeline_pid(w, i)
    try:
        j = wait_status(env, i, "completed", timeout=10)
        assert group_members(pid) == []
        assert j["exit_code"] == 0
    finally:
        kill_group(pid)


def test_cancel_pending_never_starts(env):
    init_db(env)
    start_worker(env, ETL_PIPELINE_CMD=pipeline("ran.sh"), ETL_PIPELINE_CWD=env.dir)
    a = enqueue(env, "amplis", params={"sleep": 0.5})
    b = enqueue(env, "maps", params={"sleep": 0.1})
    wait_status(env, a, "running")
    assert cancel(env, b) == "cancelled"
    c = enqueue(env, "quantum")
    wait_status(env, a, "completed")
    wait_status(env, c, "completed")
    jb = job(env, b)
    assert jb["status"] == "cancelled" and jb["started_at"] is None
    ran = [int(line.split()[0]) for line in open(env.path("ran.txt"))]
    assert ran == [a, c]
    assert cancel(env, a) == "finished"


def test_kill9_mid_job_then_restart_closes_it_once(env):
    init_db(env)
    kw = dict(ETL_PIPELINE_CMD=pipeline("ran.sh"), ETL_PIPELINE_CWD=env.dir)
    w = start_worker(env, "w1", **kw)
    i = enqueue(env, "amplis", params={"sleep": 30})
    pid = pipeline_pid(w, i)
    # Its line is stored: it wrote (no SIGPIPE to come) and now sleeps.
    wait_for(lambda: len(logs(env, i)) == 1, what="pipeline sleeping")
    old_id = job(env, i)["worker_id"]
    w.kill9()
    try:
        assert group_members(pid), "the pipeline outlives its worker (own session)"
        t0 = time.monotonic()
        w2 = start_worker(env, "w2", **kw)
        j = wait_status(env, i, "error", timeout=5)
        assert j["error_message"] == "orphaned: worker died"
        assert sistema(env, "amplis")["status"] == "ERROR"
        assert old_id not in [r[0] for r in env.sql("SELECT id FROM workers")]
        # The successor killed the pipeline the dead worker left running.
        wait_for(lambda: group_members(pid) == [], timeout=5, what="old pipeline killed")
        assert time.monotonic() - t0 < 5
        k = enqueue(env, "amplis")
        wait_status(env, k, "completed")
        ran = [int(line.split()[0]) for line in open(env.path("ran.txt"))]
        assert ran == [k], "the orphaned job never ran to its end, nor again"
        assert job(env, i)["status"] == "error"
        assert "still runs: SIGKILL" in w2.log()
    finally:
        kill_group(pid)


def test_successor_kills_nothing_that_is_not_the_jobs(env):
    """A stale jobs file naming a group that now belongs to something else
    (no ETL_JOB_ID of that job in it) is left alone."""
    import subprocess
    init_db(env)
    bystander = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        boot = open("/proc/sys/kernel/random/boot_id").read().strip()
        dead = 2 ** 22 + 4321
        env.sql("INSERT INTO workers (id, host, pid, boot_id, started_at, heartbeat_at, slots) "
                "VALUES (90, ?, ?, ?, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 1)",
                os.uname().nodename, dead, boot)
        os.makedirs(env.path("wake"), exist_ok=True)
        with open(env.path("wake", f"worker-{dead}.jobs"), "w") as f:
            f.write(f"5 {bystander.pid}\n")
        start_worker(env)
        wait_for(lambda: not os.path.exists(env.path("wake", f"worker-{dead}.jobs")),
                 what="stale jobs file handled")
        assert bystander.poll() is None, "an unrelated process group was killed"
    finally:
        bystander.kill()
        bystander.wait()


def test_live_workers_long_job_is_never_orphaned(env):
    init_db(env)
    # The lease timeout's minimum is 10 s: the job runs 12 s, swept every second.
    kw = dict(ETL_JOB_SLOT_TIMEOUT=10, ETL_LEASE_INTERVAL=1, ETL_JOB_CLEANUP_INTERVAL=1)
    start_worker(env, "w1", **kw)
    start_worker(env, "w2", **kw)  # sweeps too
    i = enqueue(env, "amplis", params={"lines": 4, "sleep": 12})
    j = wait_status(env, i, "completed", timeout=30)
    assert j["error_message"] is None


def test_dead_predecessor_found_by_pid(env):
    """A worker row of this host and boot whose pid is gone: its running job
    is closed at the next worker's start, before any sweep timeout."""
    init_db(env)
    i = enqueue(env, "amplis")  # no worker yet: stays pending
    boot = open("/proc/sys/kernel/random/boot_id").read().strip()
    host = os.uname().nodename
    dead = 2 ** 22 + 12345  # above pid_max on most systems: no such process
    env.sql("INSERT INTO workers (id, host, pid, boot_id, started_at, heartbeat_at, slots) "
            "VALUES (77, ?, ?, ?, '2026-01-01T00:00:00.000Z', strftime('%Y-%m-%dT%H:%M:%fZ'), 1)",
            host, dead, boot)
    env.sql("UPDATE jobs SET status = 'running', worker_id = 77, worker_slot = 0, "
            "started_at = strftime('%Y-%m-%dT%H:%M:%fZ'), locked_at = strftime('%Y-%m-%dT%H:%M:%fZ') "
            "WHERE id = ?", i)
    # A live one (our own test process) must be left alone.
    env.sql("INSERT INTO workers (id, host, pid, boot_id, started_at, heartbeat_at, slots) "
            "VALUES (78, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+1 hour'), "
            "strftime('%Y-%m-%dT%H:%M:%fZ'), 1)", host, os.getpid(), boot)
    start_worker(env, ETL_JOB_SLOT_TIMEOUT=3600)
    j = wait_status(env, i, "error", timeout=5)
    assert j["error_message"] == "orphaned: worker died"
    ids = [r[0] for r in env.sql("SELECT id FROM workers")]
    assert 77 not in ids and 78 in ids


def test_a_process_that_left_the_group_does_not_hold_the_job(env):
    """A descendant in its own session keeps the stdout pipe open: the job
    still ends when its leader does (the worker stops waiting for EOF once
    the group is empty)."""
    init_db(env)
    start_worker(env, ETL_PIPELINE_CMD=pipeline("escape.sh"), ETL_PIPELINE_CWD=env.dir)
    i = enqueue(env, "amplis")
    try:
        j = wait_status(env, i, "completed", timeout=10)
        took = (_ms(j["finished_at"]) - _ms(j["started_at"])) / 1000
        assert took < 5, took
        assert ("SUCCESS", "amplis", "done") in [r[1:] for r in logs(env, i)]
    finally:
        try:
            os.kill(int(open(env.path("escaped.pid")).read()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
