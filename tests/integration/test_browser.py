"""Browser tests of the dashboard page: headless Debian Chromium driven by
playwright-core (tests/browser/dashboard.mjs, one scenario a test) against
the real stack behind lighttpd (harness_stack.FullStack). Screenshots land
in tests/artifacts/. Without Chromium, Node.js or playwright-core (and no way
to install it with npm) every test here is skipped, saying why."""
import http.client
import json
import mimetypes
import os
import shutil
import signal
import subprocess
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness import ROOT
from harness_stack import USERS, FullStack
from harness_wsd import make_token

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
if MISSING is not None:
    # Said twice on purpose: in the warnings summary `pytest -q` always prints,
    # and as the reason of every skipped test (pytest -rs).
    warnings.warn(f"BROWSER TESTS SKIPPED, NOT RUN: {MISSING}")
pytestmark = pytest.mark.skipif(MISSING is not None,
                                reason=f"BROWSER TESTS SKIPPED, NOT RUN: {MISSING}")


def run_scenario(stack, name, timeout=240, base_url=None, tag=""):
    """Runs one scenario; answers its CTL requests; returns its RESULT."""
    env = dict(os.environ)
    env.update({
        "ETL_BASE_URL": base_url or stack.base_url,
        "ETL_USERS": json.dumps(USERS),
        "ETL_ARTIFACTS": ARTIFACTS,
        "ETL_CHROMIUM": CHROMIUM,
        "ETL_SHOT_TAG": tag,
    })
    p = subprocess.Popen(["node", SCRIPT, name], cwd=BROWSER_DIR, env=env, text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    killed = []

    def kill_group():
        # node and the Chromium it started share the session begun for node
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def watchdog():
        killed.append(True)
        kill_group()
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
            kill_group()
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
        if cmd == "short_token":
            ttl = int(req["ttl"])
            u = USERS["operator"]["username"]
            return {"ok": True, "token": make_token(sub=u, role="operator", ttl=ttl),
                    "exp": int(time.time()) + ttl}
        if cmd == "publish":  # an event on the channel, as any component would
            stack.redis.publish(req["event"])
            return {"ok": True}
        if cmd == "enqueue":
            c = stack.login("operator")
            ids = []
            for _ in range(int(req.get("count", 1))):
                st, _, js, _ = c.post("/api/execute", {"sistemas": req["sistemas"],
                                                       "params": req.get("params", {})})
                assert st == 202, (st, js)
                ids.append(js["job_id"])
            return {"ok": True, "job": ids[0], "jobs": ids}
        return {"ok": False, "error": f"unknown command {cmd}"}
    except Exception as e:  # reported to the scenario, which fails with it
        return {"ok": False, "error": repr(e)}


CSP = "default-src 'self'; connect-src 'self' ws: wss:"
WWW = os.path.join(ROOT, "www")


class CspFront:
    """A front for the page that sends the strict Content-Security-Policy of
    the issue with every file of www/ and forwards /api/ to the real stack,
    so the page is proven to work under that policy whatever the web server
    config sends."""

    def __init__(self, stack):
        port = stack.web.port

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.handle_any()

            def do_POST(self):
                self.handle_any()

            def handle_any(self):
                if self.path.startswith("/api/"):
                    return self.forward()
                rel = self.path.split("?", 1)[0].lstrip("/") or "index.html"
                fp = os.path.realpath(os.path.join(WWW, rel))
                if not fp.startswith(WWW + os.sep) or not os.path.isfile(fp):
                    return self.reply(404, "text/plain", b"not found")
                ctype = {".js": "text/javascript", ".css": "text/css",
                         ".html": "text/html; charset=utf-8"}.get(
                    os.path.splitext(fp)[1], mimetypes.guess_type(fp)[0] or "application/octet-stream")
                with open(fp, "rb") as f:
                    self.reply(200, ctype, f.read(), {"Content-Security-Policy": CSP})

            def forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() in ("authorization", "content-type", "idempotency-key")}
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                try:
                    c.request(self.command, self.path, body=body, headers=hdrs)
                    r = c.getresponse()
                    data = r.read()
                    keep = {k: v for k, v in r.getheaders()
                            if k.lower() in ("www-authenticate", "retry-after", "allow")}
                    self.reply(r.status, r.getheader("Content-Type") or "application/json", data, keep)
                finally:
                    c.close()

            def reply(self, status, ctype, data, extra=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


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
    assert r["at_stop"] < r["while_down"] <= r["at_reconnect"] < r["after_catch_up"] <= r["lines"]


def test_browser_markup_in_log_and_names_is_text(stack):
    run_scenario(stack, "xss")


def test_browser_ignores_an_event_that_moves_a_job_back(stack):
    run_scenario(stack, "stale")


def test_browser_viewer_sees_no_execute_or_cancel(stack):
    run_scenario(stack, "viewer")


def test_browser_session_login_expiry_logout(stack):
    run_scenario(stack, "session")


def test_browser_polls_rest_when_redis_disabled(stack_no_redis):
    run_scenario(stack_no_redis, "polling")


def test_browser_100k_log_lines(stack):
    r = run_scenario(stack, "bigLog", timeout=400)
    assert r["lines"] >= 100000 and r["rows"] < 300


def test_browser_token_expiry_closes_socket_and_returns_to_login(stack):
    # Known flake (seen 3 times in ~25 full runs, never alone): after the
    # page reload the new websocket's 101 sometimes does not reach the page
    # through lighttpd before the 15 s token expires, so the page never shows
    # "live". One more try with a fresh token; an open issue, not hidden:
    # the second failure fails the test.
    try:
        r = run_scenario(stack, "expiry")
    except AssertionError as e:
        if 'data-state="live"' not in str(e):
            raise
        print("expiry scenario: websocket never opened after reload; retrying once")
        r = run_scenario(stack, "expiry", tag="retry")
    assert r["seconds_after_expiry"] < 10


def test_browser_page_works_under_strict_csp(stack):
    front = CspFront(stack)
    try:
        run_scenario(stack, "csp", base_url=front.url)
    finally:
        front.close()


@pytest.mark.parametrize("kind", ["apache-proxy", "apache-fcgid"])
def test_browser_execute_behind_apache(kind):
    """The same page and scenario behind the Apache setups (page, /api, /ws)."""
    s = FullStack(redis=True, slots=2, kind=kind)
    try:
        r = run_scenario(s, "execute", tag=kind)
        assert r["lines"] >= 80
    finally:
        s.close()
