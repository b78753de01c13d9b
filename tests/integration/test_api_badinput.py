"""Hostile and broken requests through each web server setup: malformed
JSON, a 1 MiB body, 10,000-deep nesting, NUL bytes, invalid UTF-8, wrong
types, SQL-injection-looking and path-traversal ids, huge and negative
paging. Each must get a clean 4xx; afterwards the server still serves and
the database is byte-for-byte what it was."""
import json

import pytest

from harness_web import STACKS, WebStack, db_fingerprint, make_env, populate

JSON = {"Content-Type": "application/json"}
# statuses a web server itself may answer for a path it refuses to pass on
# (lighttpd rejects control bytes in the URL with 400; Apache answers 403 for
# a path segment longer than a file name can be, before .htaccess runs)
SERVER_REFUSALS = {400, 403, 404, 414}


@pytest.fixture(scope="module", params=STACKS)
def stack(request):
    env = make_env()
    try:
        st = WebStack(request.param, env).start()
        st.tokens = populate(st.http())
        c = st.http()
        c.token = st.tokens["operator"]
        assert c.post("/api/execute", {"sistemas": ["amplis"]})[0] == 202
        yield st
    finally:
        env.close()


def deep(n, open_="[", close="]"):
    return (open_ * n + close * n).encode()


def deep_obj(n):
    return ('{"a":' * n + "1" + "}" * n).encode()


# (name, role, method, path, raw body or None, headers, allowed statuses)
CASES = [
    ("malformed-json", "operator", "POST", "/api/execute", b'{"sistemas": [', JSON, {422}),
    ("trailing-garbage", "operator", "POST", "/api/execute", b'{"sistemas":["amplis"]} x', JSON, {422}),
    ("empty-json-body", "operator", "POST", "/api/execute", b"", JSON, {422}),
    ("json-null", "operator", "POST", "/api/execute", b"null", JSON, {422}),
    ("json-array", "operator", "POST", "/api/execute", b'["amplis"]', JSON, {422}),
    ("1MiB-body", "operator", "POST", "/api/execute",
     b'{"sistemas":["amplis"],"params":{"x":"' + b"a" * (1 << 20) + b'"}}', JSON, {413}),
    ("1MiB-login", None, "POST", "/api/auth/login", b"x" * (1 << 20), JSON, {413}),
    ("1MiB-no-body-route", "operator", "POST", "/api/jobs/1/cancel", b"x" * (1 << 20), JSON, {413}),
    ("1MiB-unknown-route", "viewer", "POST", "/api/nope", b"x" * (1 << 20), JSON, {404}),
    ("1MiB-wrong-method", "viewer", "PATCH", "/api/jobs", b"x" * (1 << 20), JSON, {405}),
    ("deep-10000-arrays", "operator", "POST", "/api/execute", deep(10000), JSON, {422}),
    ("deep-10000-objects", "operator", "POST", "/api/execute", deep_obj(10000), JSON, {422}),
    ("deep-in-params", "operator", "POST", "/api/execute",
     b'{"sistemas":["amplis"],"params":' + deep_obj(40) + b"}", JSON, {422}),
    ("raw-NUL", "operator", "POST", "/api/execute", b'{"sistemas": ["amp\x00lis"]}', JSON, {422}),
    ("escaped-NUL", "operator", "POST", "/api/execute", b'{"sistemas": ["amp\\u0000lis"]}', JSON, {422}),
    ("NUL-in-password", None, "POST", "/api/auth/login",
     b'{"username":"admin","password":"admin-pass-123\\u0000"}', JSON, {422}),
    ("invalid-utf8", "operator", "POST", "/api/execute", b'{"sistemas": ["\xff\xfe"]}', JSON, {422}),
    ("overlong-utf8", "admin", "PUT", "/api/sistemas/amplis", b'{"nome": "\xc0\xaf"}', JSON, {422}),
    ("lone-surrogate", "admin", "PUT", "/api/sistemas/amplis", b'{"nome": "\xed\xa0\x80"}', JSON, {422}),
    ("wrong-type-sistemas-obj", "operator", "POST", "/api/execute", b'{"sistemas": {"a": 1}}', JSON, {422}),
    ("wrong-type-sistemas-null", "operator", "POST", "/api/execute", b'{"sistemas": null}', JSON, {422}),
    ("wrong-type-ativo", "admin", "PUT", "/api/sistemas/amplis", b'{"nome": "A", "ativo": 1}', JSON, {422}),
    ("wrong-type-nome", "admin", "PUT", "/api/sistemas/amplis", b'{"nome": ["A"]}', JSON, {422}),
    ("wrong-type-role", "admin", "POST", "/api/users",
     b'{"username": "zz", "password": "12345678", "role": 2}', JSON, {422}),
    ("huge-number", "operator", "POST", "/api/execute", b'{"sistemas": [1e999999]}', JSON, {422}),
    ("sqli-sistema-body", "operator", "POST", "/api/execute",
     json.dumps({"sistemas": ["amplis'; DROP TABLE jobs;--"]}).encode(), JSON, {422}),
    ("sqli-sistema-path", "viewer", "GET", "/api/sistemas/amplis'%20OR%20'1'='1", None, {}, {422}),
    ("sqli-sistema-put", "admin", "PUT", "/api/sistemas/x%27%3B%20DROP%20TABLE%20users%3B--",
     b'{"nome": "x"}', JSON, {422}),
    ("sqli-job-path", "viewer", "GET", "/api/jobs/1%20OR%201=1", None, {}, {422}),
    ("sqli-job-cancel", "operator", "POST", "/api/jobs/1;DELETE%20FROM%20jobs/cancel", None, {}, {422}),
    ("sqli-user-delete", "admin", "DELETE", "/api/users/view'%20--", None, {}, {422}),
    ("sqli-login", None, "POST", "/api/auth/login",
     json.dumps({"username": "admin' OR '1'='1", "password": "x' OR '1'='1"}).encode(), JSON, {401}),
    ("traversal-encoded", "viewer", "GET", "/api/sistemas/..%2F..%2Fetc%2Fpasswd", None, {},
     {422} | SERVER_REFUSALS),
    ("traversal-dots", "viewer", "GET", "/api/sistemas/%2e%2e", None, {}, {422} | SERVER_REFUSALS),
    ("traversal-job-logs", "viewer", "GET", "/api/jobs/..%2f..%2f1/logs", None, {},
     {422} | SERVER_REFUSALS),
    ("traversal-user", "admin", "DELETE", "/api/users/..%2F..%2Fadmin", None, {},
     {422, 405} | SERVER_REFUSALS),
    ("NUL-in-path", "viewer", "GET", "/api/sistemas/amp%00lis", None, {}, {422} | SERVER_REFUSALS),
    ("long-id", "viewer", "GET", "/api/sistemas/" + "a" * 200, None, {}, {422}),
    ("very-long-id", "viewer", "GET", "/api/sistemas/" + "a" * 5000, None, {}, {422} | SERVER_REFUSALS),
    ("job-id-overflow", "viewer", "GET", "/api/jobs/99999999999999999999999", None, {}, {422}),
    ("job-id-negative", "viewer", "GET", "/api/jobs/-1", None, {}, {422}),
    ("limit-negative", "viewer", "GET", "/api/jobs?limit=-1", None, {}, {422}),
    ("limit-zero", "viewer", "GET", "/api/jobs?limit=0", None, {}, {422}),
    ("limit-too-big", "viewer", "GET", "/api/jobs?limit=501", None, {}, {422}),
    ("limit-huge", "viewer", "GET", "/api/jobs?limit=99999999999999999999999999", None, {}, {422}),
    ("limit-float", "viewer", "GET", "/api/jobs?limit=1.5", None, {}, {422}),
    ("limit-empty", "viewer", "GET", "/api/jobs?limit=", None, {}, {422}),
    ("limit-hex", "viewer", "GET", "/api/jobs?limit=0x10", None, {}, {422}),
    ("offset-negative", "viewer", "GET", "/api/jobs?offset=-5", None, {}, {422}),
    ("offset-huge", "viewer", "GET", "/api/jobs?offset=1e10", None, {}, {422}),
    ("status-unknown", "viewer", "GET", "/api/jobs?status=done", None, {}, {422}),
    ("status-NUL", "viewer", "GET", "/api/jobs?status=pend%00ing", None, {}, {422} | SERVER_REFUSALS),
    ("query-bad-escape", "viewer", "GET", "/api/jobs?limit=%zz", None, {}, {422, 400}),
    ("after-negative", "viewer", "GET", "/api/jobs/1/logs?after=-1", None, {}, {422}),
    ("logs-limit-huge", "viewer", "GET", "/api/jobs/1/logs?limit=100000000", None, {}, {422}),
    ("idem-key-too-long", "operator", "POST", "/api/execute",
     b'{"sistemas":["amplis"]}', dict(JSON, **{"Idempotency-Key": "k" * 300}), {422}),
    ("form-content-type", "operator", "POST", "/api/execute", b"sistemas=amplis",
     {"Content-Type": "application/x-www-form-urlencoded"}, {415}),
    ("no-content-type", "operator", "POST", "/api/execute", b'{"sistemas":["amplis"]}', {}, {415}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_request_is_rejected_cleanly(stack, case):
    name, role, method, path, raw, headers, allowed = case
    before = db_fingerprint(stack.env)
    c = stack.http()
    c.token = stack.tokens[role] if role else None
    st, hdrs, js, body = c.request(method, path, raw=raw, headers=dict(headers))
    assert st in allowed, (name, st, body[:200])
    if st not in SERVER_REFUSALS or hdrs.get("content-type", "").startswith("application/json"):
        # etl-api answered: always {"detail": ...}, never HTML, a path or SQL text
        assert hdrs["content-type"].startswith("application/json"), (name, hdrs)
        assert isinstance(js, dict) and set(js) == {"detail"}, (name, body[:200])
        low = js["detail"].lower()
        assert "select " not in low and "sqlite" not in low and "/tmp/" not in low
    # still serving, and nothing changed
    c.token = stack.tokens["viewer"]
    assert c.get("/api/health")[0] == 200
    assert c.get("/api/jobs?limit=1")[0] == 200
    assert db_fingerprint(stack.env) == before, name
    if stack.api is not None:
        assert stack.api.alive(), "etl-api died"


def test_no_etl_api_process_crashed(stack):
    """Runs last in the module: the logs show no crash of a spawned etl-api."""
    logs = "".join(open(stack.env.path(f), errors="replace").read()
                   for f in ("lighttpd-error.log", "apache-error.log", "lighttpd.log", "etl-api.log")
                   if __import__("os").path.exists(stack.env.path(f)))
    for bad in ("Segmentation", "signal 11", "signal 6", "core dumped", "AddressSanitizer", "LeakSanitizer", "runtime error:",
                "child exited with signal", "handler gave no response"):
        assert bad not in logs, bad
