"""etl-wsd relays what is published on Redis <prefix>:ws to its clients:
every event type, in order, as {"type","payload"}; on exactly the address
it was given; several instances each deliver everything; /health and
/metrics on the same port; SIGTERM closes clients with 1001."""
import asyncio
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from harness import binary, free_port, start_redis, wait_for
import harness_wsd as hw
from harness_wsd import wsd_clean_exit  # noqa: F401 (autouse fixture)


def test_every_event_type_relayed_in_order(env):
    _, url = start_redis(env)
    w = hw.start_wsd(env, url)
    r = hw.Redis(url)
    sent = [
        hw.event("log", job_id=12, slot_id=0, seq=1, ts="2026-11-28T17:41:23.120Z",
                 level="INFO", sistema="amplis", mensagem="olá \u2713 \"quoted\" /path"),
        hw.event("status", sistema_id="amplis", status="RUNNING", progresso=40, mensagem=None),
        hw.event("job_complete", job_id=12, status="completed", duracao_segundos=3.5),
        hw.event("job_status", job_id=12, status="running", worker_slot=1),
        hw.event("some_future_type", anything=[1, 2, {"x": None}]),
    ]

    async def main():
        ws = await hw.connect(w.url(token=hw.make_token()))
        hw.wait_subscribers(r, 1)
        for m in sent:
            assert r.publish(m) == 1
        got = await hw.recv_n(ws, len(sent))
        await ws.close()
        return got

    got = hw.run(main())
    assert got == [{"type": m["type"], "payload": m["payload"]} for m in sent]
    assert all("source_instance" not in g for g in got)
    assert w.metric("etl_wsd_messages_in_total") == len(sent)
    assert w.metric("etl_wsd_deliveries_total") == len(sent)


def test_frame_is_compact_json_without_source_instance(env):
    _, url = start_redis(env)
    w = hw.start_wsd(env, url)
    r = hw.Redis(url)

    async def main():
        ws = await hw.connect(w.url(token=hw.make_token()))
        hw.wait_subscribers(r, 1)
        r.publish('{"source_instance":"h-1","payload":{"a":"x/y"},"type":"log"}')
        raw = await asyncio.wait_for(ws.recv(), 5)
        await ws.close()
        return raw

    raw = hw.run(main())
    assert json.loads(raw) == {"type": "log", "payload": {"a": "x/y"}}
    assert "source_instance" not in raw and "\\/" not in raw


def test_health_and_metrics(env):
    _, url = start_redis(env)
    w = hw.start_wsd(env, url)
    st, js = w.health()
    assert st == 200
    assert js["redis"] == "ok" and js["clients"] == 0 and js["uptime_s"] >= 0
    m = w.metrics()
    for k in ("etl_wsd_clients", "etl_wsd_messages_in_total", "etl_wsd_deliveries_total",
              'etl_wsd_messages_dropped_total{reason="not_json"}',
              "etl_wsd_slow_consumer_closes_total", "etl_wsd_redis_reconnects_total",
              "etl_wsd_relay_latency_seconds_count", 'etl_wsd_relay_latency_seconds_bucket{le="+Inf"}'):
        assert k in m, k
    st, _, js, _ = w.http.get("/nope")
    assert st == 404 and "detail" in js
    st, hdrs, js, _ = w.http.post("/health", {"x": 1})
    assert st == 405 and hdrs.get("allow") == "GET" and "detail" in js

    async def main():
        ws = await hw.connect(w.url(token=hw.make_token()))
        wait_for(lambda: w.health()[1]["clients"] == 1, what="clients=1 in /health")
        assert w.metric("etl_wsd_clients") == 1
        await ws.close()
    hw.run(main())
    wait_for(lambda: w.health()[1]["clients"] == 0, what="clients=0 after close")


def test_listens_only_on_the_given_address(env):
    _, url = start_redis(env)
    w = hw.start_wsd(env, url)
    # Loopback aliases and IPv6 must be refused: bound to 127.0.0.1 only.
    for fam, addr in ((socket.AF_INET, "127.0.0.2"), (socket.AF_INET6, "::1")):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            with pytest.raises(OSError):
                s.connect((addr, w.port))
        finally:
            s.close()


def test_unix_socket_listener(env):
    _, url = start_redis(env)
    sock = env.path("wsd.sock")
    p = env.start([binary("etl-wsd"), "-u", sock, "-m", "0666"], "wsd",
                  env={"REDIS_ENABLED": "true", "REDIS_URL": url})
    wait_for(lambda: os.path.exists(sock) or not p.alive(), what="wsd unix socket")
    assert p.alive(), p.log()
    # lws makes the socket, etl-wsd then chmods it: the file shows first
    wait_for(lambda: os.stat(sock).st_mode & 0o777 == 0o666, timeout=5,
             what="socket mode 0666")
    r = hw.Redis(url)

    def health():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(sock)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
        s.close()
        return data
    wait_for(lambda: b" 200 " in health().split(b"\r\n")[0], what="unix /health 200")

    async def main():
        import websockets
        ws = await websockets.unix_connect(sock, "ws://localhost/ws?token=" + hw.make_token())
        hw.wait_subscribers(r, 1)
        r.publish(hw.event("log", job_id=1))
        got = await hw.recv_json(ws)
        await ws.close()
        return got
    assert hw.run(main()) == {"type": "log", "payload": {"job_id": 1}}
    assert p.stop() == 0
    assert not os.path.exists(sock)


def test_two_instances_each_deliver_every_message(env):
    _, url = start_redis(env)
    a = hw.start_wsd(env, url, name="wsd-a")
    b = hw.start_wsd(env, url, name="wsd-b")
    r = hw.Redis(url)
    n = 200

    async def main():
        wa = [await hw.connect(a.url(token=hw.make_token())) for _ in range(2)]
        wb = [await hw.connect(b.url(token=hw.make_token())) for _ in range(2)]
        hw.wait_subscribers(r, 2)
        counts = r.publish_many([hw.event("log", job_id=1, seq=i) for i in range(n)])
        assert set(counts) == {2}
        res = [await hw.recv_n(ws, n) for ws in wa + wb]
        for ws in wa + wb:
            await ws.close()
        return res

    for got in hw.run(main()):
        assert [g["payload"]["seq"] for g in got] == list(range(n))


def test_sigterm_closes_clients_1001_and_exits_0(env):
    _, url = start_redis(env)
    w = hw.start_wsd(env, url)
    pid = env.path("wsd.pid")
    assert int(open(pid).read()) == w.proc.pid

    async def main():
        ws = await hw.connect(w.url(token=hw.make_token()))
        wait_for(lambda: w.health()[1]["clients"] == 1, what="client connected")
        w.proc.signal(signal.SIGTERM)
        return await hw.expect_close(ws)

    code, reason, got = hw.run(main())
    assert code == 1001 and got == []
    assert w.proc.wait(10) == 0
    assert not os.path.exists(pid)


def test_short_secret_refuses_to_start(env):
    _, url = start_redis(env)
    port = free_port()
    p = env.start([binary("etl-wsd"), "-l", f"127.0.0.1:{port}"], "wsd",
                  env={"REDIS_ENABLED": "true", "REDIS_URL": url, "ETL_SECRET": "short"})
    assert p.wait(10) != 0
    assert "ETL_SECRET" in p.log()


def test_bad_arguments_refused(env):
    for args in ([], ["-l", "8080"], ["-l", "127.0.0.1:0"], ["-l", "127.0.0.1:1", "-u", "/x"],
                 ["-l", "localhost:8080"], ["-l", ":8080"], ["-l", "[::1]8080"],
                 ["-u", "/x", "-m", "999"], ["-l", "127.0.0.1:1", "-k", "0"]):
        r = subprocess.run([binary("etl-wsd"), *args], env=env.env, capture_output=True,
                           timeout=10)
        assert r.returncode != 0, args


def test_1000_concurrent_clients_c_client(env):
    _, url = start_redis(env)
    w = hw.start_wsd(env, url)
    r = hw.Redis(url)
    n_clients, n_msgs = 1000, 50
    path = "/ws?token=" + hw.make_token()
    p = subprocess.Popen([hw.WSCLIENT, "-p", str(w.port), "-P", path, "-c", str(n_clients),
                          "-n", str(n_msgs), "-T", "60"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(p.stdout.readline())
        assert first == {"event": "connected", "n": n_clients}, first
        wait_for(lambda: w.metric("etl_wsd_clients") == n_clients, what="1000 clients")
        r.publish_many([hw.event("log", job_id=1, seq=i) for i in range(n_msgs)])
        out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["connected"] == n_clients, summary
    assert summary["complete"] == n_clients, summary
    assert summary["messages"] == n_clients * n_msgs, summary
    assert w.metric("etl_wsd_deliveries_total") == n_clients * n_msgs
    assert w.metric("etl_wsd_slow_consumer_closes_total") == 0


def test_server_pings_idle_clients(env):
    _, url = start_redis(env)
    w = hw.start_wsd(env, url, args=["-k", "1"])
    c = hw.RawClient(w.port, "/ws?token=" + hw.make_token())
    assert c.status == 101
    c.s.settimeout(5)
    t0 = time.monotonic()
    head = c.s.recv(2)
    assert head[0] == 0x89, head  # FIN + opcode 9 (ping)
    assert time.monotonic() - t0 < 4
    c.close()


def test_frames_of_every_header_size(env):
    """Frames are built once by the relay (2-, 4-byte headers here) and
    coalesced into one send per client: sizes around the boundaries arrive
    intact and in order."""
    _, url = start_redis(env)
    w = hw.start_wsd(env, url)
    r = hw.Redis(url)
    sizes = [0, 50, 90, 100, 125, 126, 127, 200, 5000, 16000, 16384, 20000, 60000]

    async def main():
        ws = await hw.connect(w.url(token=hw.make_token()))
        hw.wait_subscribers(r, 1)
        r.publish_many([json.dumps(hw.event("log", seq=i, m="é" * (n // 2) + "a" * (n % 2)),
                                   ensure_ascii=False).encode() for i, n in enumerate(sizes)])
        got = await hw.recv_n(ws, len(sizes))
        await ws.close()
        return got

    got = hw.run(main())
    assert [g["payload"]["seq"] for g in got] == list(range(len(sizes)))
    assert [len(g["payload"]["m"].encode()) for g in got] == \
        [n // 2 * 2 + n % 2 for n in sizes]


def test_sighup_reopens_log_file(env):
    _, url = start_redis(env)
    log = env.path("wsd-file.log")
    w = hw.start_wsd(env, url, extra_env={"ETL_LOG_FILE": log})
    wait_for(lambda: os.path.exists(log) and "listening" in open(log).read(),
             what="log file written")
    os.rename(log, log + ".1")
    w.proc.signal(signal.SIGHUP)
    wait_for(lambda: os.path.exists(log), what="log reopened")

    async def main():
        ws = await hw.connect(w.url(token=hw.make_token()))
        await ws.close()
    hw.run(main())
    wait_for(lambda: "connected" in open(log).read(), what="new lines in the new file")
    assert w.proc.alive()


def test_ipv6_listener_only_there(env):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    _, url = start_redis(env)
    port = free_port()
    p = env.start([binary("etl-wsd"), "-l", f"[::1]:{port}"], "wsd",
                  env={"REDIS_ENABLED": "true", "REDIS_URL": url})

    def health_v6():
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(("::1", port))
            s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
            return s.recv(100).startswith(b"HTTP/1.0 200")
        finally:
            s.close()
    wait_for(health_v6, what="wsd on [::1]")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    with pytest.raises(OSError):
        s.connect(("127.0.0.1", port))
    s.close()
    assert p.stop() == 0
