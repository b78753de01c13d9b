"""etl-worker, single mode and the pipeline contract: what the pipeline gets
(argv, clean environment, fds, cwd, session), what its lines become (log
rows with contiguous seq, sistema status and progress), exit codes, and
how fast an enqueue reaches an idle worker."""
import time

from harness import PIPELINE_SIM
from harness_worker import (enqueue, init_db, job, logs, pipeline, sistema, start_worker,
                            wait_status)


def test_single_mode_runs_one_job_at_a_time(env):
    init_db(env)
    start_worker(env, ETL_PIPELINE_CMD=pipeline("ran.sh"), ETL_PIPELINE_CWD=env.dir)
    ids = [enqueue(env, s, params={"sleep": 0.3}) for s in ("amplis", "maps", "quantum")]
    for i in ids:
        wait_status(env, i, "completed")
    runs = sorted(
        (int(a), int(b), float(c), float(d))
        for a, b, c, d, _ in (line.split() for line in open(env.path("ran.txt"))))
    assert [r[0] for r in runs] == ids
    for prev, nxt in zip(runs, runs[1:]):
        assert nxt[2] >= prev[3], f"job {nxt[0]} started before job {prev[0]} ended"
    assert {r[1] for r in runs} == {0}, "single mode uses slot 0 only"
    for i in ids:
        j = job(env, i)
        assert j["worker_slot"] == 0 and j["exit_code"] == 0 and j["error_message"] is None
        assert j["started_at"].endswith("Z") and j["finished_at"] >= j["started_at"]


def test_pipeline_gets_args_clean_env_fds_cwd_session(env):
    init_db(env)
    env.env["SECRET_THING"] = "must-not-leak"
    env.env["HOME"] = "/home/nobody-test"
    w = start_worker(env, ETL_PIPELINE_CMD=pipeline("env.sh") + "  --flag\textra",
                     ETL_PIPELINE_CWD="/tmp")
    i = enqueue(env, "amplis", "maps", params={"k": [1, 2]})
    wait_status(env, i, "completed")
    lines = [m for _, _, _, m in logs(env, i)]
    assert lines[0] == "args=--flag extra amplis maps"
    env_lines = {m[4:].split("=", 1)[0]: m[4:].split("=", 1)[1] for m in lines if m.startswith("env ")}
    assert env_lines["ETL_JOB_ID"] == str(i)
    assert env_lines["ETL_SLOT_ID"] == "0"
    assert env_lines["ETL_SISTEMAS"] == "amplis,maps"
    assert env_lines["ETL_JOB_PARAMS"].replace(" ", "") == '{"k":[1,2]}'
    assert env_lines["HOME"] == "/home/nobody-test"
    assert "PATH" in env_lines
    extra = set(env_lines) - {"ETL_JOB_ID", "ETL_SLOT_ID", "ETL_SISTEMAS", "ETL_JOB_PARAMS",
                              "PATH", "HOME", "LANG", "PWD", "SHLVL", "_", "OLDPWD"}
    assert not extra, f"environment not clean: {extra}"
    fds = sorted(int(m.split()[1]) for m in lines if m.startswith("fd "))
    # 0, 1, 2 and the one ls opens to read /proc/self/fd itself.
    assert fds == [0, 1, 2, 3], lines
    assert "cwd=/tmp" in lines
    assert "stdin=/dev/null" in lines
    pl = [m for m in lines if m.startswith("pid=")][0].split()
    pid = pl[0].split("=")[1]
    assert pl[1] == "pgrp=" + pid and pl[2] == "sid=" + pid, "own session and process group"
    assert w.alive()


def test_lines_status_and_progress(env):
    init_db(env)
    start_worker(env)
    i = enqueue(env, "amplis", "maps", params={"lines": 4, "format": "json", "fail": "maps",
                                               "stderr": "a warning on stderr"})
    j = wait_status(env, i, "completed")
    rows = logs(env, i)
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1)), "contiguous seq"
    assert ("INFO", "amplis", "etapa 1/4 de amplis") == rows[0][1:]
    assert ("SUCCESS", "amplis", "amplis concluido") in [r[1:] for r in rows]
    assert ("ERROR", "maps", "falha em maps") in [r[1:] for r in rows]
    assert ("ERROR", "stderr", "a warning on stderr") in [r[1:] for r in rows]
    a, m = sistema(env, "amplis"), sistema(env, "maps")
    assert (a["status"], a["progresso"]) == ("SUCCESS", 100)
    # maps said ERROR itself: it keeps it even though the job completed.
    assert (m["status"], m["mensagem"]) == ("ERROR", "falha em maps")
    assert m["progresso"] == 100  # its etapa lines moved it to 100 before the ERROR
    assert a["ultima_execucao"] == j["finished_at"] == m["ultima_execucao"]


def test_progress_never_goes_backwards(env):
    init_db(env)
    start_worker(env, ETL_PIPELINE_CMD=pipeline("progress.sh"))
    i = enqueue(env, "amplis")
    wait_status(env, i, "error")
    s = sistema(env, "amplis")
    # 10, 60, then 30 (ignored), then exit 1 with no own final status.
    assert (s["status"], s["progresso"], s["mensagem"]) == ("ERROR", 60, "exit code 1")


def test_exit_codes(env):
    init_db(env)
    start_worker(env)
    ok = enqueue(env, "amplis", params={"lines": 1})
    bad = enqueue(env, "maps", params={"lines": 1, "exit": 3})
    j_ok, j_bad = wait_status(env, ok, "completed"), wait_status(env, bad, "error")
    assert (j_ok["exit_code"], j_ok["error_message"]) == (0, None)
    assert (j_bad["exit_code"], j_bad["error_message"]) == (3, "exit code 3")
    # maps printed its own SUCCESS line: it keeps it even though the job failed.
    assert sistema(env, "maps")["status"] == "SUCCESS"


def test_exit_code_without_own_status_makes_sistemas_error(env):
    init_db(env)
    start_worker(env, ETL_PIPELINE_CMD="/bin/false")
    i = enqueue(env, "amplis")
    j = wait_status(env, i, "error")
    assert (j["exit_code"], j["error_message"]) == (1, "exit code 1")
    s = sistema(env, "amplis")
    assert (s["status"], s["mensagem"]) == ("ERROR", "exit code 1")


def test_bad_cwd_is_a_job_error(env):
    init_db(env)
    start_worker(env, ETL_PIPELINE_CWD=env.path("no-such-dir"))
    j = wait_status(env, enqueue(env, "amplis"), "error")
    assert j["error_message"].startswith("cannot start the pipeline: "), j


def test_unrunnable_command_is_a_job_error_not_a_crash(env):
    init_db(env)
    w = start_worker(env, ETL_PIPELINE_CMD=env.path("does-not-exist"))
    i = enqueue(env, "amplis")
    j = wait_status(env, i, "error")
    assert j["error_message"].startswith("cannot start the pipeline: "), j
    assert "No such file" in j["error_message"] and j["exit_code"] is None
    assert sistema(env, "amplis")["status"] == "ERROR"
    assert w.alive()
    j2 = enqueue(env, "maps")
    wait_status(env, j2, "error")


def test_enqueue_wakes_an_idle_worker_at_once(env):
    init_db(env)
    w = start_worker(env, ETL_POLL_INTERVAL=60, ETL_PIPELINE_CMD="/bin/true")
    time.sleep(0.2)  # let it settle into its idle poll (60 s)
    lat = []
    for s in ("amplis", "maps", "quantum", "sap", "bacen"):
        t0 = time.time()
        i = enqueue(env, s, use_sql=True)
        wait_status(env, i, "completed", timeout=5)
        lat.append(time.time() - t0)
    assert max(lat) < 1.0, lat
    assert w.alive()


def test_no_pipeline_cmd_refuses_to_start(env):
    init_db(env)
    env.env.pop("ETL_PIPELINE_CMD")
    from harness import binary
    p = env.start([binary("etl-worker")], "worker")
    assert p.wait(10) != 0
    assert "ETL_PIPELINE_CMD" in p.log()


def test_legacy_database_recovered_on_first_start(env):
    import subprocess
    from harness import FIXTURES
    with open(f"{FIXTURES}/legacy-v1.sql") as f:
        subprocess.run(["sqlite3", env.db], stdin=f, check=True)
    start_worker(env, ETL_PIPELINE_CMD=PIPELINE_SIM)
    # The job the crash left running (3) is closed; the pending one (4) runs.
    j3 = wait_status(env, 3, "error")
    assert j3["error_message"] == "orphaned"
    j4 = wait_status(env, 4, "completed")
    assert j4["started_at"] >= j3["finished_at"], "recovery comes before new work"
    assert sistema(env, "quantum")["status"] == "ERROR"
    assert (sistema(env, "amplis")["status"], sistema(env, "maps")["status"]) == ("SUCCESS", "SUCCESS")
    assert [r[0] for r in env.sql("SELECT id FROM jobs ORDER BY id")] == [1, 2, 3, 4, 5]
    rows = logs(env, 4)
    assert [r[0] for r in rows] == list(range(1, 9)), rows
    assert rows[-1][1:] == ("SUCCESS", "maps", "maps concluido")
