"""The REST API (API.md) through each real web server setup: lighttpd
(mod_fastcgi spawning etl-api), Apache mod_proxy_fcgi (external socket)
and Apache mod_fcgid (shared-hosting .htaccess). Every route, every status
of the error table, the roles. One server and database per setup
(module scope) to keep the suite fast; tests use their own names/ids."""
import base64
import hashlib
import hmac
import json
import sqlite3
import time

import pytest

from harness import SECRET
from harness_web import STACKS, WebStack, db_fingerprint, make_env, populate


@pytest.fixture(scope="module", params=STACKS)
def stack(request):
    env = make_env(ETL_DB_BUSY_TIMEOUT=500)
    try:
        st = WebStack(request.param, env).start()
        st.tokens = populate(st.http())
        yield st
    finally:
        env.close()


def client(st, role=None):
    c = st.http()
    c.token = st.tokens[role] if role else None
    return c


def jwt(sub, role, iat, exp, secret=SECRET):
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=")
    h = b64(b'{"alg":"HS256","typ":"JWT"}')
    p = b64(json.dumps({"sub": sub, "role": role, "iat": iat, "exp": exp},
                       separators=(",", ":")).encode())
    sig = b64(hmac.new(secret.encode(), h + b"." + p, hashlib.sha256).digest())
    return (h + b"." + p + b"." + sig).decode()


def is_error(resp, status):
    st, hdrs, js, raw = resp
    assert st == status, (st, raw[:300])
    assert hdrs["content-type"].startswith("application/json"), hdrs
    assert isinstance(js, dict) and isinstance(js.get("detail"), str), raw[:300]
    return hdrs


# ---- health, metrics, headers ----

def test_health_is_public_and_well_formed(stack):
    st, hdrs, js, _ = client(stack).get("/api/health")
    assert st == 200
    assert js["status"] == "ok" and js["db"] == "ok" and js["redis"] == "disabled"
    assert js["worker"] in ("alive", "stale", "absent") and js["version"]
    assert hdrs["cache-control"] == "no-store"
    assert hdrs["x-content-type-options"] == "nosniff"


def test_metrics_prometheus_text(stack):
    st, hdrs, _, raw = client(stack).get("/api/metrics")
    assert st == 200 and hdrs["content-type"].startswith("text/plain")
    text = raw.decode()
    for needle in ('etl_jobs{status="pending"}', "etl_queue_depth ", "etl_slots_busy ",
                   'etl_job_duration_seconds_bucket{le="+Inf"}', "etl_job_duration_seconds_count",
                   "etl_events_published_total "):
        assert needle in text, needle


def test_head_is_get_without_body(stack):
    st, hdrs, _, raw = client(stack).request("HEAD", "/api/health")
    assert st == 200 and raw == b"" and hdrs["cache-control"] == "no-store"
    st, hdrs, _, raw = client(stack).request("HEAD", "/api/jobs")
    assert st == 401 and raw == b""


def test_static_page_served(stack):
    st, hdrs, _, raw = client(stack).get("/")
    assert st == 200 and hdrs["content-type"].startswith("text/html")


# ---- auth ----

def test_login_me_and_wrong_credentials(stack):
    c = client(stack)
    js = c.login("view", "view-pass-1")
    assert js["token_type"] == "bearer" and js["expires_in"] == 3600
    assert js["user"] == {"username": "view", "role": "viewer"}
    st, _, me, _ = c.get("/api/auth/me")
    assert st == 200 and me == {"username": "view", "role": "viewer"}
    c.token = None
    a = c.post("/api/auth/login", {"username": "view", "password": "wrong-password"})
    b = c.post("/api/auth/login", {"username": "nobody-here", "password": "wrong-password"})
    ha, hb = is_error(a, 401), is_error(b, 401)
    assert ha["www-authenticate"] == hb["www-authenticate"] == "Bearer"
    assert a[2] == b[2], "the answer must not tell whether the user exists"


def test_login_body_types_422(stack):
    c = client(stack)
    is_error(c.post("/api/auth/login", {"username": "view"}), 422)
    is_error(c.post("/api/auth/login", {"username": 5, "password": "x"}), 422)
    is_error(c.post("/api/auth/login", ["view", "pw"]), 422)


def test_every_protected_route_needs_a_valid_token(stack):
    now = int(time.time())
    bad_tokens = [None, "garbage", "a.b.c", jwt("view", "viewer", now, now + 600, secret="x" * 40),
                  jwt("view", "viewer", now - 7200, now - 3600), jwt("ghost", "admin", now, now + 600)]
    routes = [("GET", "/api/auth/me"), ("GET", "/api/users"), ("GET", "/api/sistemas"),
              ("GET", "/api/sistemas/amplis"), ("GET", "/api/jobs"), ("GET", "/api/jobs/1"),
              ("GET", "/api/jobs/1/logs"), ("POST", "/api/jobs/1/cancel"),
              ("GET", "/api/pool/status"), ("DELETE", "/api/users/view")]
    c = client(stack)
    for tok in bad_tokens:
        c.token = tok
        for method, path in routes:
            h = is_error(c.request(method, path), 401)
            assert h["www-authenticate"] == "Bearer"
    # the same forged-looking construction with the right secret does work
    c.token = jwt("view", "viewer", now, now + 600)
    assert c.get("/api/auth/me")[0] == 200
    # a malformed Authorization scheme
    is_error(c.get("/api/auth/me", headers={"Authorization": "Basic dmlldzp4"}), 401)


def test_an_accepted_token_still_expires_and_near_misses_fail(stack):
    """A token that worked stops at its expiry, to the second; one byte off
    in the signature of a token that worked is refused; tokens used in
    turn each keep working (a guard for any caching of verified tokens)."""
    now = int(time.time())
    c = client(stack)
    short = jwt("view", "viewer", now, now + 3)
    other = jwt("view", "viewer", now, now + 600)
    for _ in range(3):
        for tok in (short, other):
            c.token = tok
            assert c.get("/api/auth/me")[0] == 200
    c.token = short
    assert c.get("/api/auth/me")[0] == 200
    sig = short.rsplit(".", 1)[1]
    c.token = short[:-len(sig)] + ("A" if sig[0] != "A" else "B") + sig[1:]
    h = is_error(c.get("/api/auth/me"), 401)
    assert h["www-authenticate"] == "Bearer"
    c.token = short
    time.sleep(max(0.0, now + 3.1 - time.time()))  # the token's own clock
    for _ in range(3):  # each web server process may have it cached
        st, _, js, _ = c.get("/api/auth/me")
        assert st == 401 and js["detail"] == "token expired", (st, js)
    c.token = other
    assert c.get("/api/auth/me")[0] == 200


def test_role_comes_from_the_database_not_the_token(stack):
    now = int(time.time())
    c = client(stack)
    c.token = jwt("view", "admin", now, now + 600)  # claims admin, is a viewer
    is_error(c.get("/api/users"), 403)
    st, _, me, _ = c.get("/api/auth/me")
    assert me["role"] == "viewer"


def test_roles(stack):
    v, o, a = client(stack, "viewer"), client(stack, "operator"), client(stack, "admin")
    is_error(v.post("/api/execute", {"sistemas": ["amplis"]}), 403)
    is_error(v.post("/api/jobs/1/cancel"), 403)
    is_error(v.get("/api/users"), 403)
    is_error(o.get("/api/users"), 403)
    is_error(o.request("PUT", "/api/sistemas/zz", {"nome": "ZZ"}), 403)
    is_error(o.request("DELETE", "/api/users/view"), 403)
    is_error(o.post("/api/users", {"username": "x1", "password": "12345678", "role": "admin"}), 403)
    assert v.get("/api/sistemas")[0] == 200 and v.get("/api/pool/status")[0] == 200
    assert a.get("/api/users")[0] == 200


def test_users_crud_and_deleted_token_stops_at_once(stack):
    a = client(stack, "admin")
    st, hdrs, js, _ = a.post("/api/users", {"username": "tmp.user-1", "password": "tmp-pass-1",
                                            "role": "operator"})
    assert st == 201 and js["username"] == "tmp.user-1" and js["role"] == "operator"
    assert js["created_at"].endswith("Z")
    is_error(a.post("/api/users", {"username": "tmp.user-1", "password": "tmp-pass-1",
                                   "role": "viewer"}), 409)
    is_error(a.post("/api/users", {"username": "bad name", "password": "12345678", "role": "viewer"}), 422)
    is_error(a.post("/api/users", {"username": "x" * 65, "password": "12345678", "role": "viewer"}), 422)
    is_error(a.post("/api/users", {"username": "okname", "password": "1234567", "role": "viewer"}), 422)
    is_error(a.post("/api/users", {"username": "okname", "password": "12345678", "role": "root"}), 422)
    users = a.get("/api/users")[2]
    assert [u["username"] for u in users] == sorted(u["username"] for u in users)
    assert {"username", "role", "created_at"} <= set(users[0])
    u = client(stack)
    u.login("tmp.user-1", "tmp-pass-1")
    assert u.get("/api/auth/me")[0] == 200
    st, _, _, raw = a.request("DELETE", "/api/users/tmp.user-1")
    assert st == 204 and raw == b""
    is_error(u.get("/api/auth/me"), 401)
    is_error(a.request("DELETE", "/api/users/tmp.user-1"), 404)
    is_error(a.request("DELETE", "/api/users/bad%20name"), 422)
    is_error(a.request("DELETE", "/api/users/admin"), 409)  # the last admin stays


def test_an_enqueue_is_refused_for_its_account_before_its_body(stack):
    """An enqueue reads its account inside the batch (hauth_defer_account),
    but a refusal for the account still comes before any other answer, and
    changes nothing."""
    a = client(stack, "admin")
    jobs = lambda: stack.env.sql("SELECT count(*) FROM jobs")[0][0]
    bad_bodies = ({"sistemas": []}, {"sistemas": ["nao-existe"]}, {"sistemas": ["velho"]})
    name = "tmp.enq-1"
    assert a.post("/api/users", {"username": name, "password": "tmp-pass-1",
                                 "role": "operator"})[0] == 201
    u = client(stack)
    u.login(name, "tmp-pass-1")
    assert u.post("/api/execute", {"sistemas": ["amplis"]})[0] == 202
    assert a.request("DELETE", "/api/users/" + name)[0] == 204
    before = jobs()
    hdrs = is_error(u.post("/api/execute", {"sistemas": ["amplis"]}), 401)
    assert hdrs.get("www-authenticate", "").startswith("Bearer")
    for body in bad_bodies:
        is_error(u.post("/api/execute", body), 401)
    is_error(u.request("POST", "/api/execute", raw=b'{"sistemas": [',
                       headers={"Content-Type": "application/json"}), 401)
    is_error(u.request("POST", "/api/execute", raw=b"x", headers={"Content-Type": "text/plain"}),
             401)
    is_error(u.post("/api/execute", {"sistemas": ["amplis"]},
                    headers={"Idempotency-Key": "bad key"}), 401)
    # the same name made again: the old token names another account
    time.sleep(1.1)
    assert a.post("/api/users", {"username": name, "password": "tmp-pass-1",
                                 "role": "operator"})[0] == 201
    st, _, js, _ = u.post("/api/execute", {"sistemas": ["amplis"]})
    assert st == 401 and js["detail"] == "invalid token", (st, js)
    for body in bad_bodies:
        is_error(u.post("/api/execute", body), 401)
    # a token that claims more than its account has (the account decides)
    now = int(time.time())
    v = client(stack)
    v.token = jwt("view", "operator", now, now + 600)
    # refused in the batch: the 403 carries none of the headers of the
    # 401 it replaced
    hdrs = is_error(v.post("/api/execute", {"sistemas": ["amplis"]}), 403)
    assert "www-authenticate" not in hdrs, hdrs
    for body in bad_bodies:
        is_error(v.post("/api/execute", body), 403)
    assert jobs() == before
    assert a.request("DELETE", "/api/users/" + name)[0] == 204


def test_failed_login_limit_429(stack):
    a = client(stack, "admin")
    assert a.post("/api/users", {"username": "locky", "password": "locky-pass-1",
                                 "role": "viewer"})[0] == 201
    c = client(stack)
    for _ in range(5):
        is_error(c.post("/api/auth/login", {"username": "locky", "password": "nope-nope"}), 401)
    h = is_error(c.post("/api/auth/login", {"username": "locky", "password": "locky-pass-1"}), 429)
    assert 1 <= int(h["retry-after"]) <= 900
    # other users are not affected
    assert c.post("/api/auth/login", {"username": "view", "password": "view-pass-1"})[0] == 200


# ---- routing ----

def test_unknown_routes_404_json(stack):
    c = client(stack, "viewer")
    for p in ("/api/nope", "/api/jobs/1/nope", "/api/auth", "/api/jobs/", "/api//jobs"):
        is_error(c.get(p), 404)


def test_wrong_method_405_with_allow(stack):
    c = client(stack, "admin")
    h = is_error(c.request("DELETE", "/api/jobs"), 405)
    assert h["allow"] == "GET"
    h = is_error(c.get("/api/execute"), 405)
    assert h["allow"] == "POST"
    h = is_error(c.request("PATCH", "/api/sistemas/amplis", {"nome": "x"}), 405)
    assert set(h["allow"].replace(" ", "").split(",")) == {"GET", "PUT"}


# ---- sistemas ----

def test_sistemas_list_get_put(stack):
    v, a = client(stack, "viewer"), client(stack, "admin")
    st, _, js, _ = v.get("/api/sistemas")
    ids = [s["id"] for s in js]
    assert st == 200 and ids == sorted(ids) and {"amplis", "maps", "velho"} <= set(ids)
    st, _, s, _ = v.get("/api/sistemas/amplis")
    assert st == 200 and s["nome"] == "AMPLIS" and s["ativo"] is True
    assert set(s) == {"id", "nome", "descricao", "ativo", "status", "progresso", "mensagem",
                      "ultima_execucao"}
    assert s["status"] in ("IDLE", "PENDING", "RUNNING", "SUCCESS", "ERROR")
    is_error(v.get("/api/sistemas/nao-existe"), 404)
    is_error(v.get("/api/sistemas/UPPER"), 422)
    st, _, s, _ = a.request("PUT", "/api/sistemas/novo_1", {"nome": "Novo", "descricao": None})
    assert st == 200 and s["id"] == "novo_1" and s["ativo"] is True and s["descricao"] is None
    st, _, s, _ = a.request("PUT", "/api/sistemas/novo_1", {"nome": "Novo 2", "ativo": False})
    assert st == 200 and s["nome"] == "Novo 2" and s["ativo"] is False
    st, _, s, _ = a.request("PUT", "/api/sistemas/novo_1", {"nome": "Novo 3", "descricao": "D"})
    assert s["ativo"] is False, "an update without ativo keeps it"
    st, _, s, _ = a.request("PUT", "/api/sistemas/novo_1", {"nome": "Novo 4"})
    assert s["descricao"] == "D" and s["nome"] == "Novo 4", "an update without descricao keeps it"
    st, _, s, _ = a.request("PUT", "/api/sistemas/novo_1", {"nome": "Novo 4", "descricao": None})
    assert st == 200 and s["descricao"] is None
    is_error(a.request("PUT", "/api/sistemas/novo_1", {"nome": ""}), 422)
    is_error(a.request("PUT", "/api/sistemas/novo_1", {"nome": "x", "ativo": "yes"}), 422)
    is_error(a.request("PUT", "/api/sistemas/novo_1", {"descricao": "x"}), 422)


# ---- jobs ----

def test_execute_get_list_logs(stack):
    o, v = client(stack, "operator"), client(stack, "viewer")
    st, hdrs, js, _ = o.post("/api/execute", {"sistemas": ["amplis", "maps"],
                                              "params": {"duration": 0.1, "nested": {"a": [1]}}})
    assert st == 202 and js["status"] == "pending" and isinstance(js["job_id"], int)
    jid = js["job_id"]
    st, _, job, _ = v.get(f"/api/jobs/{jid}")
    assert st == 200 and job["id"] == jid and job["sistemas"] == ["amplis", "maps"]
    assert job["params"] == {"duration": 0.1, "nested": {"a": [1]}} and job["created_by"] == "oper"
    assert job["created_at"].endswith("Z") and job["finished_at"] is None
    st, _, lst, _ = v.get("/api/jobs?limit=500&offset=0")
    assert st == 200 and lst["total"] >= 1 and lst["items"][0]["id"] >= jid
    ids = [j["id"] for j in lst["items"]]
    assert ids == sorted(ids, reverse=True)
    assert v.get("/api/jobs?status=&limit=500")[2]["total"] == lst["total"]
    st, _, pend, _ = v.get("/api/jobs?status=pending&limit=1")
    assert st == 200 and len(pend["items"]) == 1 and pend["items"][0]["status"] == "pending"
    st, _, logs, _ = v.get(f"/api/jobs/{jid}/logs?after=0&limit=10")
    assert st == 200 and logs["job_id"] == jid and logs["lines"] == [] and logs["next"] == 0
    is_error(v.get("/api/jobs/999999"), 404)
    is_error(v.get("/api/jobs/999999/logs"), 404)
    is_error(v.get("/api/jobs/abc"), 422)
    is_error(v.get("/api/jobs/0"), 422)


def test_logs_paging_with_after(stack):
    o, v = client(stack, "operator"), client(stack, "viewer")
    jid = o.post("/api/execute", {"sistemas": ["maps"]})[2]["job_id"]
    rows = [(jid, i, f"2026-01-01T00:00:0{i % 10}.000Z", "INFO", "maps", f"linha {i}")
            for i in range(1, 8)]
    for r in rows:
        stack.env.sql("INSERT INTO job_logs (job_id, seq, ts, level, sistema, mensagem) "
                      "VALUES (?, ?, ?, ?, ?, ?)", *r)
    st, _, p1, _ = v.get(f"/api/jobs/{jid}/logs?limit=3")
    assert st == 200 and [l["seq"] for l in p1["lines"]] == [1, 2, 3] and p1["next"] == 3
    assert p1["lines"][0]["mensagem"] == "linha 1" and p1["lines"][0]["level"] == "INFO"
    p2 = v.get(f"/api/jobs/{jid}/logs?after={p1['next']}&limit=100")[2]
    assert [l["seq"] for l in p2["lines"]] == [4, 5, 6, 7] and p2["next"] == 7
    p3 = v.get(f"/api/jobs/{jid}/logs?after=7")[2]
    assert p3["lines"] == [] and p3["next"] == 7


def test_execute_validation_422(stack):
    o = client(stack, "operator")
    for body in ({}, {"sistemas": []}, {"sistemas": "amplis"}, {"sistemas": [1]},
                 {"sistemas": ["amplis", "amplis"]}, {"sistemas": ["nao-existe"]},
                 {"sistemas": ["velho"]}, {"sistemas": ["Bad Id"]},
                 {"sistemas": [f"s{i}" for i in range(65)]},
                 {"sistemas": ["amplis"], "params": [1, 2]}, {"sistemas": ["amplis"], "params": "x"}):
        is_error(o.post("/api/execute", body), 422)


def test_idempotency_key_returns_the_same_job(stack):
    o = client(stack, "operator")
    h = {"Idempotency-Key": "req-abc-123"}
    a = o.post("/api/execute", {"sistemas": ["amplis"]}, headers=h)
    b = o.post("/api/execute", {"sistemas": ["amplis"]}, headers=h)
    assert a[0] == b[0] == 202 and a[2]["job_id"] == b[2]["job_id"]
    c = o.post("/api/execute", {"sistemas": ["amplis"]}, headers={"Idempotency-Key": "other-key"})
    assert c[2]["job_id"] != a[2]["job_id"]


def test_cancel_pending_running_finished(stack):
    o = client(stack, "operator")
    jid = o.post("/api/execute", {"sistemas": ["maps"]})[2]["job_id"]
    st, _, job, _ = o.post(f"/api/jobs/{jid}/cancel")
    assert st == 200 and job["status"] == "cancelled" and job["id"] == jid
    is_error(o.post(f"/api/jobs/{jid}/cancel"), 409)
    jid2 = o.post("/api/execute", {"sistemas": ["amplis"]})[2]["job_id"]
    stack.env.sql("UPDATE jobs SET status='running', worker_slot=0, started_at=?, locked_at=? "
                  "WHERE id=?", "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z", jid2)
    st, _, job, _ = o.post(f"/api/jobs/{jid2}/cancel")
    assert st == 202 and job["status"] == "running"
    assert stack.env.sql("SELECT cancel_requested FROM jobs WHERE id=?", jid2) == [(1,)]
    st, _, pool, _ = o.get("/api/pool/status")
    assert st == 200 and pool == {"mode": "single", "current_job_id": jid2}
    stack.env.sql("UPDATE jobs SET status='error', finished_at=? WHERE id=?",
                  "2026-01-01T00:00:05.000Z", jid2)
    is_error(o.post(f"/api/jobs/{jid2}/cancel"), 409)
    is_error(o.post("/api/jobs/999999/cancel"), 404)
    st, _, pool, _ = o.get("/api/pool/status")
    assert pool == {"mode": "single", "current_job_id": None}


# ---- body checks ----

def test_content_type_415_and_size_413(stack):
    o = client(stack, "operator")
    body = json.dumps({"sistemas": ["amplis"]}).encode()
    is_error(o.request("POST", "/api/execute", raw=body, headers={"Content-Type": "text/plain"}), 415)
    is_error(o.request("POST", "/api/execute", raw=body,
                       headers={"Content-Type": "application/x-www-form-urlencoded"}), 415)
    ok = o.request("POST", "/api/execute", raw=body,
                   headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok[0] == 202
    big = json.dumps({"sistemas": ["amplis"], "params": {"x": "a" * 70000}}).encode()
    is_error(o.request("POST", "/api/execute", raw=big, headers={"Content-Type": "application/json"}), 413)
    # the limit also holds for routes without a body, and before authentication
    is_error(client(stack).request("POST", "/api/jobs/1/cancel", raw=b"x" * 70000,
                                   headers={"Content-Type": "application/json"}), 413)


def test_database_locked_503_retry_after(stack):
    o = client(stack, "operator")
    before = db_fingerprint(stack.env)
    con = sqlite3.connect(stack.env.db, timeout=5, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    try:
        h = is_error(o.post("/api/execute", {"sistemas": ["amplis"]}), 503)
        assert int(h["retry-after"]) >= 1
    finally:
        con.execute("ROLLBACK")
        con.close()
    assert db_fingerprint(stack.env) == before
    assert o.post("/api/execute", {"sistemas": ["amplis"]})[0] == 202
