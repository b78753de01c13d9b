"""etl-wsd authorises at the handshake: a missing, malformed, forged or
expired token gets a close 1008 and nothing else, even while events flow;
/ws and / are both accepted (proxies keep or strip the prefix), other paths
are refused; a token that expires on an open connection closes it with
4001; WSD_ALLOWED_ORIGINS is enforced; inbound frames are ignored up to 4 KiB
and close the connection (1009) past it."""
import base64
import json
import time

import pytest

from harness import start_redis, wait_for
import harness_wsd as hw
from harness_wsd import wsd_clean_exit  # noqa: F401 (autouse fixture)


@pytest.fixture
def wsd(env):
    _, url = start_redis(env)
    w = hw.start_wsd(env, url)
    w.redis = hw.Redis(url)
    return w


def _alg_none_token():
    head = hw.b64url(b'{"alg":"none","typ":"JWT"}')
    body = hw.b64url(json.dumps({"sub": "eve", "role": "admin", "iat": int(time.time()),
                                 "exp": int(time.time()) + 3600}).encode())
    return head + "." + body + "."


BAD_TOKENS = {
    "missing": None,
    "empty": "",
    "garbage": "not-a-token",
    "forged": hw.make_token(secret="another-secret-0123456789abcdef0123456789"),
    "expired": hw.make_token(iat=int(time.time()) - 7200, ttl=3600),
    "alg_none": _alg_none_token(),
    "tampered": None,  # filled below
    "too_long": "a" * 3000,
}
_t = hw.make_token(role="viewer").split(".")
_claims = json.loads(base64.urlsafe_b64decode(_t[1] + "=="))
_claims["role"] = "admin"
BAD_TOKENS["tampered"] = _t[0] + "." + hw.b64url(json.dumps(_claims).encode()) + "." + _t[2]


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_bad_token_closed_1008_nothing_sent(wsd, kind):
    token = BAD_TOKENS[kind]

    async def main():
        good = await hw.connect(wsd.url(token=hw.make_token()))
        hw.wait_subscribers(wsd.redis, 1)
        ws = await hw.connect(wsd.url(token=token) if token is not None else wsd.url())
        # Events flowing while it is being refused must not reach it.
        wsd.redis.publish_many([hw.event("log", job_id=1, seq=i) for i in range(20)])
        res = await hw.expect_close(ws)
        assert len(await hw.recv_n(good, 20)) == 20
        await good.close()
        return res

    code, _, got = hw.run(main())
    assert code == 1008 and got == []
    reason = {"missing": "missing_token", "empty": "missing_token",
              "expired": "expired_token"}.get(kind, "invalid_token")
    assert wsd.metric(f'etl_wsd_rejected_total{{reason="{reason}"}}') == 1


@pytest.mark.parametrize("path", ["/ws", "/", "/ws/"])
def test_accepted_paths(wsd, path):
    async def main():
        ws = await hw.connect(wsd.url(path=path, token=hw.make_token()))
        hw.wait_subscribers(wsd.redis, 1)
        wsd.redis.publish(hw.event("job_status", job_id=3, status="running", worker_slot=0))
        got = await hw.recv_json(ws)
        await ws.close()
        return got
    assert hw.run(main())["type"] == "job_status"


def test_other_path_refused(wsd):
    import websockets

    async def main():
        with pytest.raises((websockets.InvalidStatusCode, websockets.InvalidHandshake)):
            await hw.connect(wsd.url(path="/api/ws", token=hw.make_token()))
    hw.run(main())


def test_token_expiring_on_open_connection_closes_4001(wsd):
    now = int(time.time())
    token = hw.make_token(iat=now, exp=now + 2)

    async def main():
        ws = await hw.connect(wsd.url(token=token))
        hw.wait_subscribers(wsd.redis, 1)
        wsd.redis.publish(hw.event("log", job_id=1))
        first = await hw.recv_json(ws)
        t0 = time.monotonic()
        code, reason, _ = await hw.expect_close(ws, timeout=6)
        return first, code, reason, time.monotonic() - t0

    first, code, reason, waited = hw.run(main())
    assert first["type"] == "log"
    assert code == 4001 and "expired" in reason
    assert waited < 4
    assert wsd.metric("etl_wsd_token_expired_closes_total") == 1


def test_allowed_origins(env):
    _, url = start_redis(env)
    w = hw.start_wsd(env, url, extra_env={
        "WSD_ALLOWED_ORIGINS": "https://etl.example.com,http://localhost:8080"})
    r = hw.Redis(url)
    tok = hw.make_token()

    async def main():
        ok = await hw.connect(w.url(token=tok), origin="https://etl.example.com")
        ok2 = await hw.connect(w.url(token=tok), origin="http://localhost:8080")
        no_origin = await hw.connect(w.url(token=tok))  # not a browser
        evil = await hw.connect(w.url(token=tok), origin="https://evil.example.net")
        code, _, got = await hw.expect_close(evil)
        hw.wait_subscribers(r, 1)
        r.publish(hw.event("log", job_id=1))
        res = [await hw.recv_json(ws) for ws in (ok, ok2, no_origin)]
        for ws in (ok, ok2, no_origin):
            await ws.close()
        return code, got, res

    code, got, res = hw.run(main())
    assert code == 1008 and got == []
    assert all(m["type"] == "log" for m in res)
    assert w.metric('etl_wsd_rejected_total{reason="origin"}') == 1


def test_inbound_frames_ignored_then_closed_past_4k(wsd):
    async def main():
        ws = await hw.connect(wsd.url(token=hw.make_token()))
        other = await hw.connect(wsd.url(token=hw.make_token()))
        hw.wait_subscribers(wsd.redis, 1)
        await ws.send("hello")          # ignored
        await ws.send(b"\x00\x01" * 100)  # ignored
        await ws.ping()
        wsd.redis.publish(hw.event("log", job_id=1))
        first = await hw.recv_json(ws)
        await ws.send("x" * 5000)
        code, _, _ = await hw.expect_close(ws)
        wsd.redis.publish(hw.event("log", job_id=2))
        o = await hw.recv_n(other, 2)
        await other.close()
        return first, code, o

    first, code, o = hw.run(main())
    assert first["payload"] == {"job_id": 1}
    assert code == 1009
    assert [m["payload"]["job_id"] for m in o] == [1, 2]
    assert wsd.metric("etl_wsd_inbound_closes_total") == 1


def test_garbage_closes_only_that_connection(wsd):
    """Protocol garbage on a websocket (a reserved opcode, an absurd length,
    random bytes) or on plain HTTP ends that connection only."""
    import os
    import socket

    def raw_ws():
        c = hw.RawClient(wsd.port, "/ws?token=" + hw.make_token())
        assert c.status == 101
        return c

    async def main():
        good = await hw.connect(wsd.url(token=hw.make_token()))
        hw.wait_subscribers(wsd.redis, 1)
        # (lws 4.1 takes an unmasked client frame; it is ignored like any other)
        payloads = [
            b"\x83\x80\x00\x00\x00\x00",              # reserved opcode 3, masked
            b"\x81\xff" + b"\xff" * 8 + b"\x00" * 4,  # absurd 64-bit length
            os.urandom(2048),
        ]
        for p in payloads:
            c = raw_ws()
            c.s.sendall(p)
            wait_for(c.closed_by_peer, timeout=10, what=f"close after {p[:8]!r}")
            c.close()
        for junk in (os.urandom(3000), b"GET /health HTTP/9.9\r\n\r\n", b"\r\n\r\n\x00\x01"):
            s = socket.create_connection(("127.0.0.1", wsd.port), timeout=5)
            try:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                while s.recv(4096):
                    pass
            except OSError:
                pass
            s.close()
        wsd.redis.publish(hw.event("log", job_id=1))
        m = await hw.recv_json(good)
        await good.close()
        return m

    assert hw.run(main())["payload"] == {"job_id": 1}
    assert wsd.health()[0] == 200
