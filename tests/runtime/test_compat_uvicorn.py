"""Contract tests for atomic_runtime/compat/uvicorn.py: each patch still takes effect.

They run uvicorn itself (the pinned version) with a trivial ASGI app, so a uvicorn release
that renames a hooked method or stops calling it fails here by name, not as a vaguer failure
of the runtime tests.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from atomic_runtime import compat
from atomic_runtime.compat.uvicorn import HeadLimits, http_protocol, request_exit
from tests.fakes.openai_server import free_port

from .conftest import REPO
from .rawhttp import connect, exchange, read_until_closed, request


async def hello(scope: Any, receive: Any, send: Any) -> None:
    """Answers at once, without reading the body (like a 415 or a 404 would)."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"ok"})


class Recorder:
    def __init__(self) -> None:
        self.refused: list[tuple[int, str]] = []
        self.timeouts: list[str] = []

    def refuse(self, status: int, kind: str, message: str) -> bytes:
        self.refused.append((status, kind))
        return f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()

    def timed_out(self, phase: str) -> None:
        self.timeouts.append(phase)


@contextmanager
def serving(http: Any) -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(hello, host="127.0.0.1", port=port, http=http, log_config=None,
                            lifespan="off", timeout_keep_alive=30)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)  # no signal handlers off-main
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    try:
        yield port
    finally:
        request_exit(server, force=True)
        thread.join(10)


def test_head_limits_take_effect() -> None:
    rec = Recorder()
    protocol = http_protocol(HeadLimits(0.5, 2048), rec.refuse, rec.timed_out)
    assert protocol != "httptools" and compat.ACTIVE["uvicorn.head_limits"]
    with serving(protocol) as port:
        # normal requests, two on one kept-alive connection
        with connect(port) as sock:
            for _ in range(2):
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                answer = b""
                while not answer.endswith(b"\r\n\r\nok"):
                    chunk = sock.recv(4096)
                    assert chunk, answer
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 200")
        # the size limit, checked before the head is complete (one 4 KiB header line)
        assert exchange(port, request("GET", "/", X_Big="a" * 4096)).status == 431
        assert rec.refused == [(431, "headers_too_large")]
        # a head that never completes: refused at the header timeout
        t0 = time.monotonic()
        assert exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n").status == 408
        assert 0.4 <= time.monotonic() - t0 < 1.5
        assert rec.refused[-1] == (408, "client_timeout") and rec.timeouts == ["headers"]
        # a connection that sends nothing: closed at the same timeout, no answer
        with connect(port) as sock:
            assert read_until_closed(sock)[0] == b""
        assert rec.timeouts == ["headers", "headers"]
        # answered before the body arrived: the connection does not wait for the rest
        early = exchange(port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nab")
        assert early.status == 200 and early.closed_after < 0.4


def test_plain_httptools_has_none_of_it() -> None:
    """The contract above is the patch's doing: uvicorn alone waits for ever."""
    with serving("httptools") as port, connect(port, timeout=1.5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        try:
            data = sock.recv(4096)
        except TimeoutError:
            data = None
        assert data is None  # still open, still waiting, after three header timeouts


SCRIPT = """
import asyncio, sys
import uvicorn
from atomic_runtime import compat
from atomic_runtime.compat.uvicorn import request_exit, signal_hooked_server

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

seen = []

def on_signal(sig):
    seen.append(sig)
    print("hooked", sig, flush=True)
    asyncio.get_running_loop().call_later(1.0, request_exit, server)

config = uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None,
                        lifespan="off")
server = signal_hooked_server(config, on_signal)
print("active", compat.ACTIVE["uvicorn.signal_hook"], flush=True)
server.run()
print("exited", seen, flush=True)
"""


def test_signal_hook_takes_effect() -> None:
    """SIGTERM reaches our callback and uvicorn keeps serving until asked to stop."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(port)], cwd=REPO,
        env={"PYTHONPATH": f"{REPO}:{REPO / 'agent_image'}"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            assert time.monotonic() < deadline and proc.poll() is None
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # uvicorn alone would have closed its listener by now
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text == "ok"
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out  # not re-raised as a signal death (-15)
    assert "active True" in out and "hooked 15" in out and "exited [15]" in out
