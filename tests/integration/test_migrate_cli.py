"""A database the program cannot use stops it with a clear message and a
non-zero exit, and never leaves a half-applied migration: corrupt, newer
schema, unwritable, full disk. Then: the legacy fixture migrates in place."""
import os
import shutil
import sqlite3
import subprocess
import tempfile

import pytest

from harness import FIXTURES, binary

# The schema version a migrated database ends at: one step per schema/NNN_*.sql.
LATEST = len([f for f in os.listdir(os.path.join(os.path.dirname(__file__), "..", "..", "schema"))
              if f.endswith(".sql")])


def ctl(db, *args, user=None):
    env = {"PATH": os.environ["PATH"], "ETL_DB_PATH": db, "ETL_DB_BUSY_TIMEOUT": "500"}
    argv = [binary("etlctl"), *args]
    if user:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)


def legacy_db(dirname):
    db = os.path.join(dirname, "legacy.db")
    with open(os.path.join(FIXTURES, "legacy-v1.sql")) as f:
        subprocess.run(["sqlite3", db], stdin=f, check=True)
    return db


def version(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()


def columns(db):
    con = sqlite3.connect(db)
    try:
        return {r[1] for r in con.execute("PRAGMA table_info(jobs)")}
    finally:
        con.close()


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="etlmig-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_legacy_migrates_in_place_twice(tmp):
    db = legacy_db(tmp)
    r = ctl(db, "migrate")
    assert r.returncode == 0, r.stderr
    assert version(db) == LATEST and {"worker_slot", "locked_at"} <= columns(db)
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM jobs").fetchone()[0] == 5
    assert con.execute("SELECT count(*) FROM job_logs").fetchone()[0] == 5
    idx = [r[1] for r in con.execute("PRAGMA index_list(jobs)")]
    assert "idx_jobs_status_slot" in idx
    dump1 = "\n".join(con.iterdump())
    con.close()
    assert ctl(db, "migrate").returncode == 0
    con = sqlite3.connect(db)
    assert "\n".join(con.iterdump()) == dump1
    con.close()


def test_corrupt_database(tmp):
    db = os.path.join(tmp, "bad.db")
    with open(db, "wb") as f:
        f.write(b"this is not a database" * 200)
    r = ctl(db, "migrate")
    assert r.returncode != 0
    assert "bad.db" in r.stderr and ("unreadable" in r.stderr or "not a database" in r.stderr)


def test_newer_schema(tmp):
    db = os.path.join(tmp, "new.db")
    assert ctl(db, "migrate").returncode == 0
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 42")
    con.close()
    r = ctl(db, "migrate")
    assert r.returncode != 0 and "newer" in r.stderr


def test_unwritable_database(tmp):
    db = legacy_db(tmp)
    os.chmod(db, 0o644)  # root's file: www-data may read, not write
    r = ctl(db, "migrate", user="www-data")
    assert r.returncode != 0
    assert "legacy.db" in r.stderr
    assert version(db) == 0 and "worker_slot" not in columns(db)


def test_full_disk_leaves_nothing_half_applied(tmp):
    mnt = os.path.join(tmp, "small")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here: " + r.stderr.decode().strip())
    try:
        db = legacy_db(mnt)
        # Fill the disk, leaving the database as it is.
        fd = os.open(os.path.join(mnt, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        r = ctl(db, "migrate")
        assert r.returncode != 0
        assert "full" in r.stderr or "disk" in r.stderr or "WAL" in r.stderr, r.stderr
        print("full disk:", r.stderr.strip())
        assert version(db) == 0 and "worker_slot" not in columns(db)
        os.unlink(os.path.join(mnt, "filler"))
        r = ctl(db, "migrate")
        assert r.returncode == 0, r.stderr
        assert version(db) == LATEST
        con = sqlite3.connect(db)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
    finally:
        subprocess.run(["umount", "-l", mnt])
