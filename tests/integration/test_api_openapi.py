"""openapi.yaml stays true: every documented route answers (not 404) and
every route etl-api answers (its table, `etl-api --routes`) is documented,
with the same methods. Requests go straight to an `etl-api -p` process
over FastCGI."""
import os
import re
import subprocess

import pytest
import yaml

from harness import ROOT, binary, free_port, wait_for
from harness_web import ADMIN, ADMIN_PW, Fcgi, make_env, populate

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
SAMPLE = {"id": None, "username": "view"}  # {id} depends on the path


def documented():
    with open(os.path.join(ROOT, "openapi.yaml")) as f:
        doc = yaml.safe_load(f)
    assert doc["openapi"].startswith("3.")
    out = set()
    for path, item in doc["paths"].items():
        for m in item:
            if m in METHODS:
                out.add((m.upper(), path))
    return doc, out


def route_table():
    r = subprocess.run([binary("etl-api"), "--routes"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    rows = [l.split() for l in r.stdout.splitlines() if l.strip()]
    assert rows and all(len(x) == 3 for x in rows)
    return {(m, p) for m, p, _ in rows}, {(m, p): role for m, p, role in rows}


def test_document_and_route_table_agree():
    _, doc = documented()
    table, _ = route_table()
    assert doc - table == set(), f"documented but not served: {sorted(doc - table)}"
    assert table - doc == set(), f"served but not documented: {sorted(table - doc)}"


def test_documented_security_matches_route_roles():
    doc, _ = documented()
    _, roles = route_table()
    for (m, p), role in roles.items():
        op = doc["paths"][p][m.lower()]
        public = op.get("security", doc.get("security")) == []
        assert public == (role == "public"), (m, p, role)


@pytest.fixture(scope="module")
def api():
    env = make_env()
    port = free_port()
    env.start([binary("etl-api"), "-p", f"127.0.0.1:{port}"], "etl-api")
    c = Fcgi(("127.0.0.1", port))
    wait_for(lambda: c.get("/api/health")[0] == 200, what="etl-api -p")
    tokens = populate(c)
    yield env, port, tokens
    env.close()


def concrete(path):
    if path.startswith("/api/jobs/"):
        return path.replace("{id}", "1")
    if path.startswith("/api/sistemas/"):
        return path.replace("{id}", "amplis")
    return re.sub(r"\{username\}", "view", path)


def test_every_documented_route_answers(api):
    env, port, tokens = api
    _, doc = documented()
    c = Fcgi(("127.0.0.1", port))
    c.token = tokens["admin"]
    st, _, js, _ = c.post("/api/execute", {"sistemas": ["amplis"]})
    assert st == 202 and js["job_id"] == 1
    bodies = {("PUT", "/api/sistemas/{id}"): {"nome": "Amplis"},
              ("POST", "/api/users"): {"username": "doc-user", "password": "doc-pass-1", "role": "viewer"},
              ("POST", "/api/execute"): {"sistemas": ["maps"]},
              ("POST", "/api/auth/login"): {"username": ADMIN, "password": ADMIN_PW}}
    # DELETE last: it removes the user "view"
    for m, p in sorted(doc, key=lambda x: x[0] == "DELETE"):
        st, hdrs, js, raw = c.request(m, concrete(p), body=bodies.get((m, p)))
        assert st not in (404, 405), (m, p, st, raw[:200])
        assert st < 500, (m, p, st, raw[:200])
        assert hdrs["cache-control"] == "no-store" and hdrs["x-content-type-options"] == "nosniff"
