"""Configuration: .env.example is the table in lib/conf.c, covers every
variable API.md names, and a bad value stops a program with a message that
names the variable."""
import os
import re
import subprocess

from harness import ROOT, SHARED, binary


def example_text():
    r = subprocess.run([binary("etlctl"), "config", "example"], capture_output=True, text=True,
                       env={"PATH": os.environ["PATH"]}, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_env_example_is_generated_from_the_table():
    with open(os.path.join(ROOT, ".env.example")) as f:
        assert f.read() == example_text(), "regenerate: build/etlctl config example > .env.example"


def test_every_api_variable_is_documented():
    with open(os.path.join(SHARED, "API.md")) as f:
        api = f.read()
    section = api.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"^\| `([A-Z_]+)`", section, re.M))
    names |= {"ETL_ADMIN_USER", "ETL_ADMIN_PASSWORD"}
    assert len(names) >= 24
    text = example_text()
    missing = [n for n in sorted(names) if f"#{n}=" not in text]
    assert not missing, missing


def test_bad_value_names_variable_and_range():
    env = {"PATH": os.environ["PATH"], "ETL_MAX_CONCURRENT_JOBS": "0",
           "ETL_DB_PATH": "/nonexistent/x.db"}
    r = subprocess.run([binary("etlctl"), "queue"], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode != 0
    assert "ETL_MAX_CONCURRENT_JOBS" in r.stderr and "1 to 256" in r.stderr
    env["ETL_MAX_CONCURRENT_JOBS"] = "2"
    env["REDIS_ENABLED"] = "maybe"
    r = subprocess.run([binary("etlctl"), "queue"], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode != 0 and "REDIS_ENABLED" in r.stderr
