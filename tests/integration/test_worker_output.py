"""etl-worker output handling: a flood of lines all stored in order with a
contiguous seq; garbage (invalid UTF-8, control bytes, NUL, CR and CRLF
ends, a 100,000-byte line, no final newline) stored safely; and
backpressure: with the database locked the worker stops reading instead of
buffering, and loses nothing once it is free again."""
import sqlite3
import time

from harness import wait_for
from harness_worker import enqueue, init_db, logs, pipeline, pipeline_pid, start_worker, wait_status


def test_hundred_thousand_lines_all_stored_in_order(env):
    init_db(env)
    start_worker(env, ETL_PIPELINE_CMD=pipeline("flood.sh"))
    t0 = time.monotonic()
    i = enqueue(env, "amplis", params={"lines": 100000})
    wait_status(env, i, "completed", timeout=60)
    took = time.monotonic() - t0
    rows = env.sql("SELECT seq, mensagem FROM job_logs WHERE job_id = ? ORDER BY seq", i)
    assert len(rows) == 100000
    for k, (seq, msg) in enumerate(rows, 1):
        assert seq == k
        assert msg.startswith(f"line {k} "), (k, msg)
    print(f"100000 lines in {took:.2f} s")


def test_garbage_output(env):
    init_db(env)
    start_worker(env, ETL_PIPELINE_CMD=pipeline("garbage.sh"), ETL_MAX_LINE=1000)
    i = wait_status(env, enqueue(env, "amplis"), "completed")["id"]
    rows = logs(env, i)
    msgs = [r[3] for r in rows]
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    assert msgs[0] == "plain one"                         # CRLF
    assert msgs[1:4] == ["cr one", "cr two", "cr three"]  # bare CR
    bad = msgs[4]
    bad.encode("utf-8")  # valid UTF-8 (sqlite3 would have raised otherwise)
    assert "\x1b" not in bad and "utf8" in bad and "red" in bad
    assert "\ufffd" in bad or "\\x" in bad, bad  # invalid bytes replaced or escaped
    assert "\x00" not in msgs[5] and msgs[5].startswith("nul") and msgs[5].endswith("inside")
    big = msgs[6]
    assert big.startswith("x" * 900) and "[truncated]" in big and len(big.encode()) < 1100
    assert ("ERROR", "stderr", "[ERROR] [stderr-ish] to stderr") in [r[1:] for r in rows] or \
        ("ERROR", "stderr-ish", "to stderr") in [r[1:] for r in rows]
    # stdout and stderr are two pipes: their relative order is not defined.
    assert [m for m in msgs if m != "to stderr"][-1] == "no newline at the end"
    assert "" not in msgs  # blank lines are skipped
    assert len(rows) == 9, msgs


N = 400000
PAD = "y" * 60  # flood.sh's padding


def wchar(pid):
    with open(f"/proc/{pid}/io") as f:
        return int([line for line in f if line.startswith("wchar:")][0].split()[1])


def begin_immediate_now(con, timeout=10.0):
    """BEGIN IMMEDIATE, polling every 0.1 ms as the project's own programs
    do (lib/db.c). The sqlite3 module's busy handler sleeps up to 100 ms
    between tries, and a worker committing a flood back to back takes the
    lock again in every such gap: the flood ended before it got in."""
    con.execute("PRAGMA busy_timeout = 0")
    end = time.monotonic() + timeout
    while True:
        try:
            con.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > end:
                raise
            time.sleep(0.0001)


def test_database_locked_pauses_reading_then_catches_up(env):
    """Hold the write lock longer than the busy timeout while a pipeline
    floods: the worker keeps at most its bounded queue (memory), the
    pipeline blocks on its pipe, and after the lock is released every line
    lands, in order."""
    init_db(env)
    w = start_worker(env, ETL_PIPELINE_CMD=pipeline("flood.sh"), ETL_DB_BUSY_TIMEOUT=50)
    con = sqlite3.connect(env.db, timeout=10, isolation_level=None)
    i = enqueue(env, "amplis", params={"lines": N})
    pid = pipeline_pid(w, i)
    wait_for(lambda: len(env.sql("SELECT 1 FROM job_logs WHERE job_id = ? LIMIT 1", i)), what="lines")
    begin_immediate_now(con)
    try:
        # Lines committed before the lock (this transaction's snapshot).
        c = con.execute("SELECT count(*) FROM job_logs WHERE job_id = ?", (i,)).fetchone()[0]
        assert c < N // 2, "enough of the flood is still to come"
        committed = sum(len(f"[INFO] [amplis] line {k} {PAD}\n") for k in range(1, c + 1))
        time.sleep(0.75)
        w1 = wchar(pid)
        time.sleep(0.75)
        w2 = wchar(pid)
        # The pipeline (awk, exec'd by flood.sh) is blocked writing: the
        # worker stopped reading once its bounded queue (20,000 lines) and
        # the pipe (1 MiB) were full. Unbounded, awk would have written all
        # of its ~36 MB at once.
        assert w2 == w1, (w1, w2)
        assert w2 - committed < 4 << 20, f"{w2 - committed} bytes past the commits"
    finally:
        con.execute("COMMIT")
        con.close()
    wait_status(env, i, "completed", timeout=60)
    n, lo, hi = env.sql("SELECT count(*), min(seq), max(seq) FROM job_logs WHERE job_id = ?", i)[0]
    assert (n, lo, hi) == (N, 1, N)
