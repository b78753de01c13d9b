"""valgrind (memcheck) over one etl-worker running several jobs of every
kind (success, failure, many lines, garbage bytes, a cancel, Redis events),
then SIGTERM: no error, nothing definitely lost. (Timeouts are left to
test_worker_kill: under valgrind a short ETL_JOB_TIMEOUT raced the cancel.)"""
import os
import re
import shutil
import signal

import pytest

from harness import binary, start_redis, wait_for
from harness_worker import cancel, enqueue, init_db, wait_status

pytestmark = [
    pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed"),
    # valgrind and AddressSanitizer do not run together: the SAN run has its own checks
    pytest.mark.skipif(bool(os.environ.get("SAN")), reason="sanitizer build"),
]


def test_worker_under_valgrind(env):
    init_db(env)
    _, url = start_redis(env)
    log = env.path("valgrind.txt")
    p = env.start(["valgrind", "--tool=memcheck", "--leak-check=full", "--errors-for-leak-kinds=definite",
                   "--error-exitcode=99", "--track-fds=no", f"--log-file={log}",
                   binary("etl-worker"), "-f"], "worker",
                  env={"ETL_MAX_CONCURRENT_JOBS": "2", "ETL_JOB_TIMEOUT": "600", "ETL_KILL_GRACE": "1",
                       "REDIS_ENABLED": "true", "REDIS_URL": url, "ETL_LEASE_INTERVAL": "1"})
    wait_for(lambda: p.pid in {r[0] for r in env.sql("SELECT pid FROM workers")} or not p.alive(),
             timeout=60, what="worker under valgrind registered")
    assert p.alive(), p.log()
    ids = [
        enqueue(env, "amplis", params={"lines": 5, "format": "json"}),
        enqueue(env, "maps", params={"lines": 2, "exit": 3, "stderr": "boom"}),
        enqueue(env, "quantum", params={"lines": 2000}),
        enqueue(env, "sap", params={"big_line": 100000, "binary": True}),
    ]
    slow = enqueue(env, "cetip", params={"sleep": 30, "lines": 1})  # cancelled
    for i in ids:
        wait_status(env, i, ("completed", "error"), timeout=120)
    wait_status(env, slow, "running", timeout=120)
    cancel(env, slow)
    wait_status(env, slow, "cancelled", timeout=120)
    p.signal(signal.SIGTERM)
    rc = p.wait(120)
    text = open(log).read()
    assert rc == 0, text[-4000:]
    assert re.search(r"ERROR SUMMARY: 0 errors", text), text[-4000:]
    m = re.search(r"definitely lost: ([\d,]+) bytes", text)
    assert m is None or m.group(1) == "0", text[-4000:]
