"""The API on a database the original single-job dashboard left
(fixtures/legacy-v1.sql): the first etl-api to open it migrates it in
place, the legacy bcrypt admin logs in, and every old row reads back in
the contract's shapes (times with ms and Z, sistemas from params, text
logs as log lines, a params text that is not JSON as null)."""
import os
import subprocess

import pytest

from harness import FIXTURES, binary, free_port, wait_for
from harness_web import Fcgi, make_env


@pytest.fixture(scope="module")
def legacy():
    env = make_env(ETL_ADMIN_USER="", ETL_ADMIN_PASSWORD="")
    with open(os.path.join(FIXTURES, "legacy-v1.sql")) as f:
        subprocess.run(["sqlite3", env.db], stdin=f, check=True, timeout=30)
    port = free_port()
    env.start([binary("etl-api"), "-p", f"127.0.0.1:{port}"], "etl-api")
    c = Fcgi(("127.0.0.1", port))
    wait_for(lambda: c.get("/api/health")[0] == 200, what="etl-api on the legacy database")
    c.login("admin", "legacy-pass-1")
    yield env, c
    env.close()


def test_legacy_admin_logs_in_with_bcrypt(legacy):
    env, c = legacy
    st, _, me, _ = c.get("/api/auth/me")
    assert st == 200 and me == {"username": "admin", "role": "admin"}
    users = c.get("/api/users")[2]
    assert users == [{"username": "admin", "role": "admin", "created_at": "2026-09-30T12:00:00.000Z"}]


def test_legacy_jobs_read_back_in_the_contract_shape(legacy):
    env, c = legacy
    st, _, page, _ = c.get("/api/jobs?limit=500")
    assert st == 200 and page["total"] == 5
    by_id = {j["id"]: j for j in page["items"]}
    assert [j["id"] for j in page["items"]] == [4, 3, 2, 1, 5]  # newest first
    j1 = by_id[1]
    assert j1["status"] == "completed" and j1["sistemas"] == ["amplis"]
    assert j1["created_at"] == "2026-10-01T03:00:00.000Z"
    assert j1["finished_at"] == "2026-10-01T03:00:41.000Z" and j1["duracao_segundos"] == 40.0
    assert j1["params"] == {"sistemas": ["amplis"]}
    assert by_id[2]["error_message"] == "exit code 2"
    assert by_id[4]["sistemas"] == ["amplis", "maps"] and by_id[4]["status"] == "pending"
    assert by_id[5]["params"] is None and by_id[5]["sistemas"] == []
    for j in page["items"]:
        assert j["worker_slot"] is None and j["created_by"] is None
    assert c.get("/api/jobs?status=pending")[2]["total"] == 1


def test_legacy_text_logs_are_log_lines(legacy):
    env, c = legacy
    st, _, logs, _ = c.get("/api/jobs/2/logs")
    assert st == 200 and logs["job_id"] == 2
    assert [(l["seq"], l["level"], l["sistema"], l["mensagem"]) for l in logs["lines"]] == [
        (1, "INFO", "maps", "Conectando"), (2, "ERROR", "maps", "Timeout na API")]
    assert logs["next"] == 2
    assert c.get("/api/jobs/2/logs?after=2")[2]["lines"] == []


def test_legacy_sistemas_and_new_work(legacy):
    env, c = legacy
    sist = c.get("/api/sistemas")[2]
    assert [s["id"] for s in sist] == ["amplis", "maps", "quantum", "sap"]
    amplis = c.get("/api/sistemas/amplis")[2]
    assert amplis["ultima_execucao"] == "2026-10-01T03:00:41.000Z" and amplis["status"] == "SUCCESS"
    assert c.post("/api/execute", {"sistemas": ["sap"]})[0] == 422  # inactive
    st, _, js, _ = c.post("/api/execute", {"sistemas": ["amplis"]})
    assert st == 202 and js["job_id"] == 6
    assert c.post("/api/jobs/1/cancel")[0] == 409
    assert c.post("/api/jobs/4/cancel")[0] == 200
