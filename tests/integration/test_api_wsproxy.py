"""The /ws route of the web server configs (lighttpd mod_proxy with
upgrade, Apache mod_proxy_wstunnel in both styles): a websocket opened on
the web server's port reaches the websocket daemon's port intact (path,
query, subprotocol-less frames both ways). A small echo server stands in
for etl-wsd, so the configs are tested on their own."""
import asyncio
import socket
import sys

import pytest

from harness import wait_for
from harness_web import STACKS, WebStack, make_env

websockets = pytest.importorskip("websockets")

ECHO = r"""
import asyncio, sys, websockets
async def echo(ws, path=None):
    path = path or ws.path
    async for m in ws:
        await ws.send(path + " " + m)
async def main():
    async with websockets.serve(echo, "127.0.0.1", int(sys.argv[1])):
        await asyncio.Future()
asyncio.run(main())
"""


@pytest.mark.parametrize("kind", STACKS)
def test_ws_is_proxied_to_the_daemon(kind):
    env = make_env()
    try:
        st = WebStack(kind, env)
        env.start([sys.executable, "-c", ECHO, str(st.wsport)], "ws-echo")
        wait_for(lambda: socket.create_connection(("127.0.0.1", st.wsport), timeout=1).close() or True,
                 what="echo server")
        st.start()

        async def talk():
            url = f"ws://127.0.0.1:{st.port}/ws?token=abc"
            async with websockets.connect(url, open_timeout=10) as ws:
                out = []
                for m in ("hello", "x" * 70000):
                    await ws.send(m)
                    out.append(await asyncio.wait_for(ws.recv(), 10))
                return out

        got = wait_for(lambda: asyncio.run(talk()), timeout=20, what="/ws echo through " + kind)
        assert got[0] == "/ws?token=abc hello"
        assert got[1] == "/ws?token=abc " + "x" * 70000
    finally:
        env.close()
