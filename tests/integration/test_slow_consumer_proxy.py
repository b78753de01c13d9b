"""A websocket client that stops reading is closed with 4008 by etl-wsd
even behind the web server's proxy: the proxy must pass the backpressure
on, not buffer for the client without bound while etl-wsd thinks it keeps
up. lighttpd 1.4.69 does, with the shipped configuration."""
import pytest

from harness import wait_for
import harness_wsd as hw
from harness_e2e import E2EStack


# lighttpd only: behind Apache's mod_proxy_wstunnel the close came in one
# run and not in another (under ASan): Apache may buffer for the client
# (an open point in the closing note, not settled here).
@pytest.mark.parametrize("server", ["lighttpd"])
def test_stalled_client_behind_proxy_is_closed(server):
    st = E2EStack(server=server, WSD_MAX_BACKLOG="64")
    try:
        tok = st.http().post("/api/auth/login", {"username": "admin", "password": "admin-pass-123"})[2]
        stalled = hw.RawClient(st.port, "/ws?token=" + tok["access_token"])
        assert stalled.status == 101
        wait_for(lambda: st.wsd.metric("etl_wsd_clients") == 1, what="client at etl-wsd")
        filler = "x" * 4000
        for i in range(0, 6000, 100):  # ~24 MB: more than any socket buffer
            st.redis.publish_many([hw.event("log", job_id=1, seq=j, pad=filler)
                                   for j in range(i, i + 100)])
            if st.wsd.metric("etl_wsd_slow_consumer_closes_total") >= 1:
                break
        wait_for(lambda: st.wsd.metric("etl_wsd_slow_consumer_closes_total") >= 1, timeout=20,
                 what="etl-wsd closes the stalled client (4008)")
        stalled.close()
        assert st.wsd.proc.alive()
    finally:
        st.close()
