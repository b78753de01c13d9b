"""etl-wsd under trouble: a stalled client is closed with 4008 while the
others miss nothing; Redis killed and restarted (or frozen) is noticed
within 3 s (/health 503), resubscribed with backoff, clients get a resync
and delivery resumes; malformed Redis messages are dropped and counted."""
import json
import os
import signal
import time

from harness import start_redis, wait_for
import harness_wsd as hw
from harness_wsd import wsd_clean_exit  # noqa: F401 (autouse fixture)


def test_stalled_client_closed_others_miss_nothing(env):
    _, url = start_redis(env)
    w = hw.start_wsd(env, url, extra_env={"WSD_MAX_BACKLOG": "64"})
    r = hw.Redis(url)
    n = 3000
    filler = "x" * 4000

    async def main():
        readers = [await hw.connect(w.url(token=hw.make_token())) for _ in range(2)]
        stalled = hw.RawClient(w.port, "/ws?token=" + hw.make_token())
        assert stalled.status == 101
        # Never reads either, but nothing matches its filter: not behind.
        quiet = hw.RawClient(w.port, "/ws?job_id=999&token=" + hw.make_token())
        assert quiet.status == 101
        wait_for(lambda: w.metric("etl_wsd_clients") == 4, what="4 clients")

        # Published in steps of 20 the readers take before the next step
        # (Python readers are slow): they never lag, the stalled one does.
        got = [[] for _ in readers]
        for i in range(0, n, 20):
            r.publish_many([hw.event("log", job_id=1, seq=j, pad=filler)
                            for j in range(i, i + 20)])
            for k, ws in enumerate(readers):
                got[k] += await hw.recv_n(ws, 20, timeout=20)
        wait_for(stalled.closed_by_peer, timeout=10, what="stalled client closed")
        assert not quiet.closed_by_peer()
        r.publish(hw.event("log", job_id=999, seq=-1))
        quiet.s.setblocking(True)
        quiet.s.settimeout(5)
        frame = quiet.s.recv(4096)
        assert frame[0] == 0x81 and b'"job_id":999' in frame, frame
        for ws in readers:
            await ws.close()
        stalled.close()
        quiet.close()
        return got

    got = hw.run(main())
    for g in got:
        assert [m["payload"]["seq"] for m in g] == list(range(n))
    assert w.metric("etl_wsd_slow_consumer_closes_total") == 1
    assert w.metric("etl_wsd_deliveries_total") >= 2 * n + 1
    assert w.proc.alive()


def read_frames(sock, n, timeout=20):
    """Reads n server frames (unmasked) off a raw socket; returns the text
    payloads in order, skipping pings."""
    sock.setblocking(True)
    sock.settimeout(timeout)
    buf, out = b"", []
    while len(out) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed after {len(out)} of {n} frames")
        buf += chunk
        while len(buf) >= 2:
            op, ln, h = buf[0], buf[1] & 0x7F, 2
            assert buf[1] & 0x80 == 0, "server frames are never masked"
            if ln == 126:
                if len(buf) < 4:
                    break
                ln, h = int.from_bytes(buf[2:4], "big"), 4
            elif ln == 127:
                if len(buf) < 10:
                    break
                ln, h = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < h + ln:
                break
            if op == 0x81:
                out.append(buf[h:h + ln].decode())
            else:
                assert op == 0x89, f"unexpected opcode {op:#x}"
            buf = buf[h + ln:]
    return out


def test_paused_reader_resumes_with_every_frame_intact(env):
    """A client that stops reading until its socket is full (lws keeps the
    rest of a short send) but stays under the backlog: when it reads again
    it gets every frame, whole and in order, while another client is
    written to at once all along (sends outside lws' writeable callback)."""
    _, url = start_redis(env)
    w = hw.start_wsd(env, url, extra_env={"WSD_MAX_BACKLOG": "4096"})
    r = hw.Redis(url)
    n, filler = 1500, "y" * 3000

    async def main():
        reader = await hw.connect(w.url(token=hw.make_token()))
        paused = hw.RawClient(w.port, "/ws?token=" + hw.make_token())
        assert paused.status == 101
        wait_for(lambda: w.metric("etl_wsd_clients") == 2, what="2 clients")
        got = []
        for i in range(0, n, 50):
            r.publish_many([hw.event("log", seq=j, pad=filler) for j in range(i, i + 50)])
            got += await hw.recv_n(reader, 50, timeout=20)
        frames = read_frames(paused.s, n)
        await reader.close()
        paused.close()
        return got, frames

    got, frames = hw.run(main())
    assert [m["payload"]["seq"] for m in got] == list(range(n))
    assert [json.loads(f)["payload"]["seq"] for f in frames] == list(range(n))
    assert all(json.loads(f)["payload"]["pad"] == filler for f in frames)
    assert w.metric("etl_wsd_slow_consumer_closes_total") == 0


def test_redis_killed_and_restarted(env):
    rp, url = start_redis(env)
    w = hw.start_wsd(env, url)
    r = hw.Redis(url)

    async def main():
        ws = await hw.connect(w.url(token=hw.make_token()))
        hw.wait_subscribers(r, 1)
        r.publish(hw.event("log", job_id=1, seq=1))
        assert (await hw.recv_json(ws))["payload"]["seq"] == 1
        r.close()
        rp.kill9()
        t0 = time.monotonic()
        wait_for(lambda: w.health()[0] == 503, timeout=3, what="/health 503")
        st, js = w.health()
        assert js["redis"] == "down"
        assert time.monotonic() - t0 < 3
        start_redis(env)  # same socket path
        wait_for(lambda: w.health()[0] == 200, timeout=10, what="/health 200 again")
        assert await hw.recv_json(ws) == {"type": "resync"}
        r2 = hw.Redis(url)
        hw.wait_subscribers(r2, 1)
        r2.publish(hw.event("log", job_id=1, seq=2))
        m = await hw.recv_json(ws)
        await ws.close()
        return m

    m = hw.run(main())
    assert m["payload"]["seq"] == 2
    assert w.metric("etl_wsd_redis_reconnects_total") == 1
    assert w.metric("etl_wsd_redis_up") == 1


def test_frozen_redis_detected_within_3s(env):
    rp, url = start_redis(env)
    w = hw.start_wsd(env, url)
    r = hw.Redis(url)

    async def main():
        ws = await hw.connect(w.url(token=hw.make_token()))
        hw.wait_subscribers(r, 1)
        rp.signal(signal.SIGSTOP)  # the socket stays open; only PINGs notice
        try:
            t0 = time.monotonic()
            wait_for(lambda: w.health()[0] == 503, timeout=4, what="/health 503")
            detected = time.monotonic() - t0
        finally:
            rp.signal(signal.SIGCONT)
        wait_for(lambda: w.health()[0] == 200, timeout=15, what="/health 200 again")
        assert await hw.recv_json(ws, timeout=10) == {"type": "resync"}
        hw.wait_subscribers(r, 1)
        r.publish(hw.event("log", job_id=5))
        m = await hw.recv_json(ws)
        await ws.close()
        return detected, m

    detected, m = hw.run(main())
    assert detected <= 3.0, detected
    assert m["payload"] == {"job_id": 5}


def test_starts_without_redis_then_connects(env):
    port_env = {}
    sock = env.path("late.sock")
    w = hw.start_wsd(env, "unix://" + sock, wait_redis=False, extra_env=port_env)
    st, js = w.health()
    assert st == 503 and js["redis"] == "down"
    _, url = start_redis(env, name="late")
    w.wait_up()
    r = hw.Redis(url)

    async def main():
        ws = await hw.connect(w.url(token=hw.make_token()))
        hw.wait_subscribers(r, 1)
        r.publish(hw.event("log", job_id=9))
        m = await hw.recv_json(ws)
        await ws.close()
        return m
    assert hw.run(main())["payload"] == {"job_id": 9}


MALFORMED = {
    "not_json": [b"hello", b"{\"type\":", b"{} trailing", b'{"type":"log","payload":{}} x'],
    "invalid_utf8": [b'{"type":"log","payload":{"m":"\xff\xfe"}}', b"\xc0\xaf"],
    "not_object": [b"[1,2]", b'"str"', b"null", b"42"],
    "no_type": [b'{"payload":{}}', b'{"type":5,"payload":{}}', b'{"type":"","payload":{}}',
                b'{"type":null,"payload":{}}', ('{"type":"%s","payload":{}}' % ("t" * 65)).encode()],
    "bad_payload": [b'{"type":"log"}', b'{"type":"log","payload":[1]}',
                    b'{"type":"log","payload":"x"}', b'{"type":"log","payload":null}'],
    "too_big": [json.dumps({"type": "log", "payload": {"m": "x" * 70000}}).encode()],
}


def test_malformed_messages_dropped_and_counted(env):
    _, url = start_redis(env)
    w = hw.start_wsd(env, url)
    r = hw.Redis(url)
    deep = b'{"type":"log","payload":' + b'{"a":' * 100 + b"1" + b"}" * 100 + b"}"
    nul = b'{"type":"lo\\u0000g","payload":{}}'

    async def main():
        ws = await hw.connect(w.url(token=hw.make_token()))
        hw.wait_subscribers(r, 1)
        for msgs in MALFORMED.values():
            r.publish_many(msgs)
        r.publish_many([deep, nul])
        r.publish(hw.event("log", job_id=1, ok=True))
        m = await hw.recv_json(ws)  # the first thing it gets is the valid one
        await hw.expect_silence(ws, 0.2)
        await ws.close()
        return m

    m = hw.run(main())
    assert m == {"type": "log", "payload": {"job_id": 1, "ok": True}}
    met = w.metrics()
    for reason, msgs in MALFORMED.items():
        assert met[f'etl_wsd_messages_dropped_total{{reason="{reason}"}}'] >= len(msgs), reason
    total = sum(v for k, v in met.items() if k.startswith("etl_wsd_messages_dropped_total"))
    assert total == sum(len(v) for v in MALFORMED.values()) + 2
    assert met["etl_wsd_messages_in_total"] == 1
    assert w.proc.alive()


def test_huge_message_drops_subscription_not_memory(env):
    """A message of several MB is not buffered whole: the subscription is
    dropped and made again (clients get a resync), delivery goes on."""
    _, url = start_redis(env)
    w = hw.start_wsd(env, url)
    r = hw.Redis(url)

    async def main():
        ws = await hw.connect(w.url(token=hw.make_token()))
        hw.wait_subscribers(r, 1)
        r.publish(b'{"type":"log","payload":{"m":"' + b"x" * (4 << 20) + b'"}}')
        assert await hw.recv_json(ws, timeout=10) == {"type": "resync"}
        hw.wait_subscribers(r, 1)
        r.publish(hw.event("log", job_id=3))
        m = await hw.recv_json(ws)
        await ws.close()
        return m

    assert hw.run(main()) == {"type": "log", "payload": {"job_id": 3}}
    assert w.metric('etl_wsd_messages_dropped_total{reason="too_big"}') == 1
    assert w.metric("etl_wsd_redis_reconnects_total") == 1
    assert w.proc.alive()


def test_redis_over_tcp_with_password(env):
    """REDIS_URL redis://:password@127.0.0.1:PORT/0: AUTH then SUBSCRIBE over
    TCP; a wrong password keeps /health at 503 and says why in the log."""
    from harness import free_port
    port = free_port()
    sock = env.path("redis-pw.sock")
    env.start(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
               "--unixsocket", sock, "--unixsocketperm", "777", "--requirepass", "s3cret",
               "--save", "", "--appendonly", "no", "--dir", env.dir], "redis-pw")
    wait_for(lambda: os.path.exists(sock), what="redis socket")
    good = hw.start_wsd(env, f"redis://:s3cret@127.0.0.1:{port}/0", name="wsd-good")
    bad = hw.start_wsd(env, f"redis://:wrong@127.0.0.1:{port}/0", name="wsd-bad",
                       wait_redis=False)
    r = hw.Redis("unix://" + sock)
    assert r.command("AUTH", "s3cret") == "OK"

    async def main():
        ws = await hw.connect(good.url(token=hw.make_token()))
        hw.wait_subscribers(r, 1)
        r.publish(hw.event("job_status", job_id=4, status="running", worker_slot=0))
        m = await hw.recv_json(ws)
        await ws.close()
        return m

    assert hw.run(main())["payload"]["job_id"] == 4
    st, js = bad.health()
    assert st == 503 and js["redis"] == "down"
    wait_for(lambda: "AUTH" in bad.proc.log(), what="AUTH failure logged")
