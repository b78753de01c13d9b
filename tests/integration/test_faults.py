"""Faults on the whole stack (web server, etl-api, etl-worker, etl-wsd,
Redis, SQLite) and convergence after each: kill -9 of the worker mid-job,
of etl-wsd, of Redis, of etl-api processes; the web server stopped and
started; the database write-locked by another process past the busy
timeout; the data folder's disk full. After each fault every accepted job
reaches exactly one final state, none is lost and none runs twice: the
pipeline is count-runs.sh (pipelines/), which records every start."""
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time

import pytest

from harness import wait_for
from harness_e2e import FINAL, SHORT, E2EStack, assert_converged
from harness_worker import group_members, kill_group, pipeline_pid

SERVERS = ("lighttpd", "apache-proxy")
LONG = {"lines": 6, "sleep": 3}  # still running when the fault hits


def seqs_complete(lines, n):
    return [x["seq"] for x in lines] == list(range(1, n + 1))


def sim_lines(sistemas, lines):
    """What pipeline-sim prints for these sistemas (brackets format)."""
    out = []
    for s in sistemas:
        out += [f"etapa {i + 1}/{lines} de {s}" for i in range(lines)] + [f"{s} concluido"]
    return out


def dead(pid):
    """True once pid has exited (gone, or a zombie not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return True
    return st[st.rindex(")") + 2] in "ZX"


def wait_running(stack, c, jid):
    stack.wait_job(c, jid, ("running",), timeout=15)
    wait_for(lambda: any(e[0] == "start" for e in stack.runs().get(jid, [])),
             what=f"job {jid} started")


# ---- etl-worker ---------------------------------------------------------------

def test_worker_kill9_mid_job_closed_once_never_rerun():
    stack = E2EStack("lighttpd", slots=2, count_runs=True)
    pgid = None
    try:
        c = stack.oper()
        ws = stack.ws(c.token)
        a = stack.execute(c, ["amplis"], LONG)
        wait_running(stack, c, a)
        pgid = pipeline_pid(stack.worker, a)
        stack.worker.kill9()
        # accepted while no worker runs: it waits, it is not lost
        b = stack.execute(c, ["maps"], SHORT)
        assert stack.job(c, b)["status"] == "pending"
        assert stack.job(c, a)["status"] == "running"  # nobody has noticed yet
        stack.start_worker()
        ja = stack.wait_job(c, a, timeout=10)
        assert (ja["status"], ja["error_message"]) == ("error", "orphaned: worker died"), ja
        # the orphaned pipeline dies at its next write (its stdout pipe is gone)
        wait_for(lambda: group_members(pgid) == [], timeout=15, what="old pipeline gone")
        k = stack.execute(c, ["amplis"], SHORT)  # the sistema is free again
        done = assert_converged(stack, c, [a, b, k])
        assert [done[i]["status"] for i in (a, b, k)] == ["error", "completed", "completed"]
        r = stack.runs()
        assert [e[0] for e in r[a]][:1] == ["start"] and len(r[a]) <= 2, r
        assert stack.sql("SELECT count(*) FROM jobs")[0][0] == 3
        # one job_complete each, through the proxy
        wait_for(lambda: ws.of("job_complete", job_id=k), what="job_complete of the new job")
        assert [x["status"] for x in ws.of("job_complete", job_id=a)] == ["error"]
        assert [x["status"] for x in ws.of("job_complete", job_id=b)] == ["completed"]
        assert [x["status"] for x in ws.of("job_complete", job_id=k)] == ["completed"]
        assert stack.http().get("/api/health")[2]["worker"] == "alive"
        assert c.get("/api/sistemas/maps")[2]["status"] == "SUCCESS"
    finally:
        if pgid:
            kill_group(pgid)
        stack.close()


def test_worker_restart_announces_the_orphaned_job():
    """The successor publishes the closed job's events once its Redis
    connection is up (it failed before worker commit 9269c1f: they were
    published while still connecting, and dropped)."""
    stack = E2EStack("lighttpd", slots=1, count_runs=True)
    pgid = None
    try:
        c = stack.oper()
        ws = stack.ws(c.token)
        a = stack.execute(c, ["amplis"], LONG)
        wait_running(stack, c, a)
        pgid = pipeline_pid(stack.worker, a)
        stack.worker.kill9()
        stack.start_worker()
        assert stack.wait_job(c, a)["status"] == "error"
        # the dashboard learns it without polling: job_status and job_complete
        wait_for(lambda: ws.of("job_complete", job_id=a), timeout=5,
                 what="job_complete of the orphaned job")
        assert [x["status"] for x in ws.of("job_complete", job_id=a)] == ["error"]
        assert ws.of("job_status", job_id=a)[-1]["status"] == "error"
        assert ws.of("status", sistema_id="amplis")[-1]["status"] == "ERROR"
    finally:
        if pgid:
            kill_group(pgid)
        stack.close()


# ---- etl-wsd ------------------------------------------------------------------

@pytest.mark.parametrize("server", SERVERS)
def test_wsd_kill9_clients_reconnect_and_catch_up(server):
    stack = E2EStack(server, slots=1, count_runs=True)
    try:
        c = stack.oper()
        ws = stack.ws(c.token, reconnect=True)
        stack.wsd.proc.kill9()
        wait_for(lambda: ws.closes, what="client sees the connection drop")
        # a job runs while nobody relays: its events are lost, not its log
        a = stack.execute(c, ["amplis"], SHORT)
        assert stack.wait_job(c, a)["status"] == "completed"
        stack.start_wsd()
        wait_for(lambda: ws.connects >= 2, timeout=15, what="client reconnected through the proxy")
        stack.ws_ready(ws)
        # catch-up through REST: the whole log, as the job wrote it
        lines = stack.rest_logs(c, a)
        assert seqs_complete(lines, 4) and [x["mensagem"] for x in lines] == sim_lines(["amplis"], 3)
        assert ws.of("log", job_id=a) == []
        b = stack.execute(c, ["maps"], SHORT)
        assert_converged(stack, c, [a, b])
        wait_for(lambda: ws.of("job_complete", job_id=b), what="events on the new connection")
        streamed = ws.of("log", job_id=b)
        assert [(x["seq"], x["mensagem"]) for x in streamed] == \
            [(x["seq"], x["mensagem"]) for x in stack.rest_logs(c, b)]
    finally:
        stack.close()


# ---- Redis --------------------------------------------------------------------

def test_redis_kill9_jobs_complete_and_events_resume():
    stack = E2EStack("lighttpd", slots=1, count_runs=True, REDIS_SOCKET_TIMEOUT="0.5")
    try:
        c = stack.oper()
        ws = stack.ws(c.token, reconnect=True)
        a = stack.execute(c, ["amplis"], LONG)
        wait_for(lambda: len(ws.of("log", job_id=a)) >= 1, what="first streamed line")
        stack.redis_proc.kill9()
        # the API keeps accepting work and says Redis is down
        b = stack.execute(c, ["maps"], SHORT)
        h = wait_for(lambda: (h := stack.http().get("/api/health")[2])["redis"] == "down" and h,
                     what="health: redis down")
        assert h["status"] == "ok" and h["db"] == "ok"
        ja = stack.wait_job(c, a, timeout=30)
        jb = stack.wait_job(c, b, timeout=30)
        assert (ja["status"], jb["status"]) == ("completed", "completed")
        lines = stack.rest_logs(c, a)
        assert seqs_complete(lines, 7) and [x["mensagem"] for x in lines] == sim_lines(["amplis"], 6)
        stack.restart_redis()
        wait_for(lambda: stack.wsd.health()[0] == 200, timeout=20, what="etl-wsd resubscribed")
        wait_for(lambda: stack.http().get("/api/health")[2]["redis"] == "ok", timeout=20,
                 what="health: redis ok")
        stack.ws_ready(ws)
        assert "resync" in ws.types(), ws.types()  # the relay told its clients to catch up
        # the worker's publisher reconnects on its own (backoff up to 5 s)
        wait_for(lambda: stack.worker.log().count("pub: connected to Redis") >= 2, timeout=15,
                 what="the worker reconnected to Redis")
        # events resume, from the worker and from the API
        k = stack.execute(c, ["amplis"], SHORT)
        wait_for(lambda: ws.of("job_complete", job_id=k), timeout=20,
                 what=f"job_complete {k} after the outage\n{stack.logs()}")
        assert [x["status"] for x in ws.of("job_status", job_id=k)] == \
            ["pending", "running", "completed"]
        assert len(ws.of("log", job_id=k)) == 4
        assert_converged(stack, c, [a, b, k])
    finally:
        stack.close()


# ---- etl-api ------------------------------------------------------------------

@pytest.mark.parametrize("server", SERVERS)
def test_api_process_killed_next_request_served(server):
    """lighttpd (max-procs 1) respawns a dead etl-api at the next request;
    behind Apache the prefork parent (etl-api -n 2) replaces its child, and
    meanwhile the other child answers."""
    stack = E2EStack(server, redis=False, slots=1, count_runs=True, api_children=2)
    want = 1 if server == "lighttpd" else 2
    try:
        c = stack.oper()
        before = stack.api_children_pids()
        assert len(before) == want, before
        os.kill(before[0], signal.SIGKILL)
        # (a request that process had already accepted would fail with it)
        wait_for(lambda: dead(before[0]), what="the killed etl-api gone")
        if want == 1:
            wait_for(lambda: c.get("/api/auth/me")[0] == 200, timeout=15,
                     what="served again after the respawn")
        for _ in range(5):
            st, _, js, raw = c.get("/api/auth/me")
            assert st == 200, (st, raw)
        a = stack.execute(c, ["amplis"], SHORT)
        wait_for(lambda: len(stack.api_children_pids()) == want, timeout=15,
                 what="a replacement etl-api")
        # every serving process at once: served again after the respawn
        victims = stack.api_children_pids()
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: all(dead(p) for p in victims), what="the killed etl-api gone")
        wait_for(lambda: c.get("/api/auth/me")[0] == 200, timeout=15, what="served again")
        b = stack.execute(c, ["maps"], SHORT)
        assert_converged(stack, c, [a, b])
        assert set(stack.api_children_pids()).isdisjoint(before)
    finally:
        stack.close()


# ---- the web server -----------------------------------------------------------

@pytest.mark.parametrize("server", SERVERS)
def test_web_server_stopped_and_started(server):
    stack = E2EStack(server, slots=1, count_runs=True)
    try:
        c = stack.oper()
        ws = stack.ws(c.token, reconnect=True)
        a = stack.execute(c, ["amplis"], {"lines": 4, "sleep": 2})
        wait_running(stack, c, a)
        stack.stop_web()
        with pytest.raises(OSError):
            stack.http().get("/api/health", timeout=2)
        # the worker does not need the web server
        wait_for(lambda: stack.sql("SELECT status FROM jobs WHERE id = ?", a)[0][0] in FINAL,
                 timeout=20, what="job finished while the web server was down")
        stack.start_web()
        assert c.get("/api/auth/me")[0] == 200  # the same token still works
        wait_for(lambda: ws.connects >= 2, timeout=15, what="websocket back through the proxy")
        stack.ws_ready(ws)
        lines = stack.rest_logs(c, a)
        assert seqs_complete(lines, 5)
        b = stack.execute(c, ["maps"], SHORT)
        wait_for(lambda: ws.of("job_complete", job_id=b), what="events after the restart")
        done = assert_converged(stack, c, [a, b])
        assert {j["status"] for j in done.values()} == {"completed"}
    finally:
        stack.close()


# ---- SQLite locked --------------------------------------------------------------

def test_database_write_locked_past_busy_timeout():
    stack = E2EStack("lighttpd", redis=False, slots=1, count_runs=True,
                     ETL_DB_BUSY_TIMEOUT=300)
    con = None
    try:
        c = stack.oper()
        assert stack.sql("PRAGMA journal_mode")[0][0] == "wal"
        a = stack.execute(c, ["amplis"], LONG)
        wait_running(stack, c, a)
        n_jobs = stack.sql("SELECT count(*) FROM jobs")[0][0]
        con = sqlite3.connect(stack.env.db, timeout=5, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        t0 = time.monotonic()
        st, h, js, raw = c.post("/api/execute", {"sistemas": ["maps"], "params": SHORT})
        took = time.monotonic() - t0
        assert st == 503, (st, raw)
        assert js == {"detail": "database busy, retry later"}, js
        assert int(h["retry-after"]) >= 1
        assert h["content-type"].startswith("application/json")
        assert 0.25 < took < 3, took  # waited the 300 ms busy timeout, not forever
        # readers are not blocked (WAL): the page still shows the running job
        st, _, j, _ = c.get(f"/api/jobs/{a}")
        assert st == 200 and j["status"] == "running"
        time.sleep(1.5)  # the pipeline keeps writing lines the worker cannot commit
        con.execute("COMMIT")
        con.close()
        con = None
        assert stack.sql("SELECT count(*) FROM jobs")[0][0] == n_jobs  # the 503 wrote nothing
        b = stack.execute(c, ["maps"], SHORT)
        done = assert_converged(stack, c, [a, b])
        assert done[a]["status"] == "completed" and done[b]["status"] == "completed"
        lines = stack.rest_logs(c, a)
        assert seqs_complete(lines, 7) and [x["mensagem"] for x in lines] == sim_lines(["amplis"], 6)
        assert "busy" in stack.worker.log() or "locked" in stack.worker.log(), stack.worker.log()
    finally:
        if con is not None:
            con.close()
        stack.close()


# ---- disk full --------------------------------------------------------------------

def _mount_tmpfs(size="2m"):
    d = tempfile.mkdtemp(prefix="etl-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", d],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(d)
        return None, r.stderr.strip() or f"mount exited {r.returncode}"
    return d, None


def _fill(path):
    """Writes zeros to path until the file system is full; returns bytes written."""
    n = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        chunk = b"\0" * 4096
        while True:
            n += os.write(fd, chunk)
    except OSError:
        pass
    finally:
        os.close(fd)
    return n


def test_disk_full_clear_errors_no_corruption():
    data, why = _mount_tmpfs()
    if data is None:
        pytest.skip(f"cannot mount a tmpfs for the data folder ({why}): disk-full test not run")
    stack = None
    try:
        stack = E2EStack("lighttpd", redis=False, slots=1, count_runs=True, db_dir=data)
        c = stack.oper()
        a = stack.execute(c, ["amplis"], SHORT)
        assert stack.wait_job(c, a)["status"] == "completed"
        # a job that keeps writing lines while the disk is full
        r = stack.execute(c, ["sap"], LONG)
        wait_running(stack, c, r)
        # empty the WAL so that the next write must grow a file, then fill the disk
        stack.sql("PRAGMA wal_checkpoint(TRUNCATE)")
        filler = os.path.join(data, "filler")
        assert _fill(filler) > 0
        accepted, refused = [], None
        for _ in range(50):
            st, h, js, raw = c.post("/api/execute", {"sistemas": ["maps"], "params": SHORT})
            if st == 202:
                accepted.append(js["job_id"])
                continue
            refused = (st, h, js, raw)
            break
        assert refused is not None, "every write was accepted on a full disk"
        st, h, js, raw = refused
        assert st == 503 and int(h["retry-after"]) >= 1, refused
        assert js == {"detail": "database full"}, refused
        # the worker says why it cannot write, keeps the lines and stays up
        wait_for(lambda: "database or disk is full" in stack.worker.log(), timeout=10,
                 what="the worker's log names the full disk")
        assert stack.worker.alive(), stack.worker.log()
        assert stack.job(c, r)["status"] == "running"
        # free the space: nothing corrupt, nothing lost, work goes on
        os.unlink(filler)
        assert stack.integrity() == [("ok",)]
        b = stack.execute(c, ["sac"], SHORT)
        ids = [a, r, *accepted, b]
        done = assert_converged(stack, c, ids, timeout=60)
        assert done[r]["status"] == "completed" and done[b]["status"] == "completed", done
        lines = stack.rest_logs(c, r)
        assert seqs_complete(lines, 7) and [x["mensagem"] for x in lines] == sim_lines(["sap"], 6)
        for jid in ids:
            if done[jid]["status"] == "completed" and jid != r:
                assert seqs_complete(stack.rest_logs(c, jid), 4), jid
        assert stack.integrity() == [("ok",)]
    finally:
        if stack is not None:
            stack.close()
        subprocess.run(["umount", data], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
