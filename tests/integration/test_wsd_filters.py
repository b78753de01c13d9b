"""Per-connection filters of etl-wsd: ?job_id=N passes only events whose
payload.job_id is N, ?types=a,b only those types, both combine; resync
always passes. A filter that does not parse is refused with 1008. Each test
ends with a sentinel the client must receive, so that what it did not get
was filtered, not late."""
import pytest

from harness import start_redis
import harness_wsd as hw
from harness_wsd import wsd_clean_exit  # noqa: F401 (autouse fixture)

MIX = [
    hw.event("log", job_id=11, seq=1),
    hw.event("log", job_id=12, seq=1),
    hw.event("status", sistema_id="amplis", status="RUNNING", progresso=10, mensagem=None),
    hw.event("job_status", job_id=12, status="running", worker_slot=0),
    hw.event("job_complete", job_id=11, status="completed", duracao_segundos=1.0),
    hw.event("job_status", job_id=13, status="running", worker_slot=1),
    hw.event("log", job_id=12, seq=2),
]


@pytest.fixture
def wsd(env):
    _, url = start_redis(env)
    w = hw.start_wsd(env, url)
    w.redis = hw.Redis(url)
    return w


def _relay(wsd, query, sentinel):
    async def main():
        ws = await hw.connect(wsd.url(token=hw.make_token(), **query))
        hw.wait_subscribers(wsd.redis, 1)
        wsd.redis.publish_many(MIX + [sentinel])
        got = []
        while True:
            m = await hw.recv_json(ws)
            got.append(m)
            if m["payload"].get("sentinel"):
                break
        await hw.expect_silence(ws, 0.2)
        await ws.close()
        return got
    return hw.run(main())


def _strip(msgs):
    return [(m["type"], m["payload"].get("job_id")) for m in msgs]


def test_job_id_filter(wsd):
    got = _relay(wsd, {"job_id": 12}, hw.event("log", job_id=12, sentinel=True))
    assert _strip(got) == [("log", 12), ("job_status", 12), ("log", 12), ("log", 12)]


def test_types_filter(wsd):
    got = _relay(wsd, {"types": "log,status"}, hw.event("status", sentinel=True))
    assert _strip(got) == [("log", 11), ("log", 12), ("status", None), ("log", 12),
                           ("status", None)]


def test_job_id_and_types_combined(wsd):
    got = _relay(wsd, {"job_id": 12, "types": "job_status"},
                 hw.event("job_status", job_id=12, sentinel=True))
    assert _strip(got) == [("job_status", 12), ("job_status", 12)]


def test_no_filter_gets_everything(wsd):
    got = _relay(wsd, {}, hw.event("x", sentinel=True))
    assert len(got) == len(MIX) + 1


@pytest.mark.parametrize("query", [{"job_id": "abc"}, {"job_id": "-1"}, {"job_id": ""},
                                   {"types": ""}, {"types": "a,,b"},
                                   {"types": ",".join("t%d" % i for i in range(20))}])
def test_bad_filter_refused(wsd, query):
    async def main():
        ws = await hw.connect(wsd.url(token=hw.make_token(), **query))
        return await hw.expect_close(ws)
    code, _, got = hw.run(main())
    assert code == 1008 and got == []
    assert wsd.metric('etl_wsd_rejected_total{reason="bad_filter"}') == 1
