"""The security headers of SECURITY.md, as each web server setup really
sends them: the page under a strict Content-Security-Policy, nosniff and no
referrer; the API never cached, never sniffed, no CORS unless configured."""
import pytest

from harness_web import STACKS, WebStack, make_env


@pytest.fixture(scope="module", params=STACKS)
def stack(request):
    env = make_env()
    try:
        yield WebStack(request.param, env).start()
    finally:
        env.close()


def test_page_headers(stack):
    st, h, _, body = stack.http().get("/")
    assert st == 200 and b"<!doctype html>" in body.lower()
    csp = h.get("content-security-policy", "")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, h
    assert "unsafe-inline" not in csp
    assert h.get("x-content-type-options") == "nosniff"
    assert h.get("referrer-policy") == "no-referrer"


def test_api_headers(stack):
    st, h, js, _ = stack.http().get("/api/health", headers={"Origin": "http://evil.example"})
    assert st == 200 and js["status"] == "ok"
    assert "no-store" in h.get("cache-control", "")
    assert h.get("x-content-type-options") == "nosniff"
    assert "access-control-allow-origin" not in h
