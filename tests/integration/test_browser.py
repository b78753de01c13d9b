"""Browser tests of the dashboard page: headless Debian Chromium driven by
playwright-core (tests/browser/dashboard.mjs, one scenario a test) against
the real stack behind lighttpd (harness_stack.FullStack). Screenshots land
in tests/artifacts/. Without Chromium, Node.js or playwright-core (and no way
to install it with npm) every test here is skipped, saying why."""
import json
import os
import shutil
import subprocess
import threading

import pytest

from harness import ROOT
from harness_stack import USERS, FullStack

BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")
CHROMIUM = os.environ.get("ETL_CHROMIUM", "/usr/bin/chromium")
SCRIPT = os.path.join(BROWSER_DIR, "dashboard.mjs")


def _missing():
    """Why the browser tests cannot run here, or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    node = shutil.which("node")
    if not node:
        return "Node.js not found (apt-get install nodejs npm)"
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        npm = shutil.which("npm")
        if npm:
            subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=BROWSER_DIR,
                           capture_output=True, timeout=300)
        if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
            return "playwright-core is not installed and `npm ci` in tests/browser failed"
    return None


MISSING = _missing()
pytestmark = pytest.mark.skipif(MISSING is not None,
                                reason=f"BROWSER TESTS SKIPPED, NOT RUN: {MISSING}")


def run_scenario(stack, name, timeout=240):
    """Runs one scenario; answers its CTL requests; returns its RESULT."""
    env = dict(os.environ)
    env.update({
        "ETL_BASE_URL": stack.base_url,
        "ETL_USERS": json.dumps(USERS),
        "ETL_ARTIFACTS": ARTIFACTS,
        "ETL_CHROMIUM": CHROMIUM,
    })
    p = subprocess.Popen(["node", SCRIPT, name], cwd=BROWSER_DIR, env=env, text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    killed = []

    def watchdog():
        killed.append(True)
        p.kill()
    timer = threading.Timer(timeout, watchdog)
    timer.start()
    err = []
    t_err = threading.Thread(target=lambda: err.extend(p.stderr), daemon=True)
    t_err.start()
    result = None
    try:
        for line in p.stdout:
            if line.startswith("CTL "):
                reply = control(stack, json.loads(line[4:]))
                p.stdin.write(json.dumps(reply) + "\n")
                p.stdin.flush()
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
        rc = p.wait(30)
    finally:
        timer.cancel()
        if p.poll() is None:
            p.kill()
            p.wait(10)
        t_err.join(10)
    stderr = "".join(err)
    assert not killed, f"scenario {name} timed out after {timeout}s\n{stderr[-4000:]}"
    assert rc == 0 and result is not None, \
        f"scenario {name} failed (rc={rc}):\n{stderr[-6000:]}\n{stack.logs()}"
    print(f"{name}: {json.dumps(result)}")
    return result


def control(stack, req):
    """What a scenario may ask of the stack."""
    try:
        cmd = req["cmd"]
        if cmd == "stop_wsd":
            stack.stop_wsd()
            return {"ok": True}
        if cmd == "start_wsd":
            stack.start_wsd()
            return {"ok": True}
        if cmd == "enqueue":
            c = stack.login("operator")
            st, _, js, _ = c.post("/api/execute", {"sistemas": req["sistemas"],
                                                   "params": req.get("params", {})})
            assert st == 202, (st, js)
            return {"ok": True, "job": js["job_id"]}
        return {"ok": False, "error": f"unknown command {cmd}"}
    except Exception as e:  # reported to the scenario, which fails with it
        return {"ok": False, "error": repr(e)}


@pytest.fixture
def stack():
    s = FullStack(redis=True, slots=2)
    yield s
    s.close()


@pytest.fixture
def stack_no_redis():
    s = FullStack(redis=False, slots=1)
    yield s
    s.close()


def test_browser_execute_live_log_and_progress(stack):
    r = run_scenario(stack, "execute")
    assert r["lines"] >= 80 and len(r["progress_values"]) >= 3


def test_browser_cancel_pending_and_running(stack):
    run_scenario(stack, "cancel")
    c = stack.login("operator")
    st, _, js, _ = c.get("/api/jobs?status=cancelled")
    assert st == 200 and js["total"] == 2, js


def test_browser_wsd_restart_mid_job_no_lost_or_repeated_line(stack):
    r = run_scenario(stack, "wsd_restart")
    assert r["at_stop"] < r["while_down"] <= r["at_reconnect"] < r["lines"]


def test_browser_markup_in_log_and_names_is_text(stack):
    run_scenario(stack, "xss")


def test_browser_viewer_sees_no_execute_or_cancel(stack):
    run_scenario(stack, "viewer")


def test_browser_session_login_expiry_logout(stack):
    run_scenario(stack, "session")


def test_browser_polls_rest_when_redis_disabled(stack_no_redis):
    run_scenario(stack_no_redis, "polling")


def test_browser_100k_log_lines(stack):
    r = run_scenario(stack, "bigLog", timeout=400)
    assert r["lines"] >= 100000 and r["rows"] < 300
