"""etlctl, the admin tool: users, sistemas, jobs, queue, requeue, prune, recount,
tokens; bad arguments refused with a message and a non-zero exit."""
import json

from harness import TestEnv


def test_users_sistemas_jobs_queue(env):
    env.add_user("alice", "alice-pass-1", "operator")
    r = env.ctl("user", "list")
    users = json.loads(r.stdout)
    assert [u["username"] for u in users] == ["alice"] and users[0]["role"] == "operator"
    assert "password" not in r.stdout and "$y$" not in r.stdout
    assert env.ctl("user", "add", "alice", "--role", "viewer", "--password-stdin",
                   input="other-pass\n", check=False).returncode != 0
    assert env.ctl("user", "add", "bob", "--role", "root", "--password-stdin",
                   input="bob-pass-12\n", check=False).returncode != 0
    assert env.ctl("user", "add", "../x", "--role", "viewer", check=False).returncode != 0
    r = env.ctl("user", "add", "carol", "--role", "viewer")
    assert "password: " in r.stdout  # generated, shown once
    env.ctl("user", "del", "carol")
    assert env.ctl("user", "del", "carol", check=False).returncode != 0

    env.add_sistema("amplis")
    env.add_sistema("maps")
    env.ctl("sistema", "disable", "maps")
    sis = {s["id"]: s for s in json.loads(env.ctl("sistema", "list").stdout)}
    assert sis["amplis"]["ativo"] and not sis["maps"]["ativo"]
    assert env.ctl("sistema", "put", "Bad Id", "x", check=False).returncode != 0

    j1 = int(env.ctl("job", "add", "amplis", "--params", '{"lines": 1}').stdout)
    r = env.ctl("job", "add", "maps", check=False)
    assert r.returncode != 0 and "maps" in r.stderr  # inactive
    assert env.ctl("job", "add", "amplis", "--params", "[1]", check=False).returncode != 0
    q = env.ctl("queue").stdout
    assert "pending    1" in q and "worker     absent" in q
    assert "cancelled" in env.ctl("job", "cancel", str(j1)).stdout
    assert env.ctl("job", "cancel", str(j1), check=False).returncode != 0
    j2 = env.ctl("requeue", str(j1)).stdout
    assert f"job {j1} requeued as" in j2
    assert env.ctl("requeue", "999999", check=False).returncode != 0
    assert "0 job(s) deleted" in env.ctl("prune", "--days", "1").stdout
    assert "1 job(s) deleted" in env.ctl("prune", "--days", "0").stdout
    rows = env.sql("SELECT status FROM jobs ORDER BY id")
    assert rows == [("pending",)]
    assert "0 status count(s) corrected" in env.ctl("recount").stdout
    env.sql("UPDATE job_counts SET n = 7 WHERE status = 'pending'")  # put off by hand
    assert "1 status count(s) corrected" in env.ctl("recount").stdout
    assert env.sql("SELECT status, n FROM job_counts WHERE n > 0") == [("pending", 1)]


def test_token_is_accepted_by_the_api_shape(env):
    env.add_user("alice", "alice-pass-1", "admin")
    tok = env.ctl("token", "alice").stdout.strip()
    assert tok.count(".") == 2 and tok.startswith("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.")
    assert env.ctl("token", "nobody", check=False).returncode != 0
    e = TestEnv(ETL_SECRET="")
    try:
        e.ctl("migrate")
        assert e.ctl("token", "x", check=False).returncode != 0
    finally:
        e.close()
