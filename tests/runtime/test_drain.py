"""SIGTERM under load: readiness 503 at once, every admitted request finishes, exit 0."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx

from .conftest import VALID_INPUT, Fake, make_config
from .rawhttp import connect, parse, read_until_closed


def wait_for_upstream_in_flight(fake: Fake, n: int) -> None:
    deadline = time.monotonic() + 10
    while fake.state()["in_flight"] < n:
        assert time.monotonic() < deadline, fake.state()
        time.sleep(0.02)


async def test_drain_under_load_fails_no_inflight_request(fake: Fake, spawn: Any) -> None:
    config = make_config(
        fake.base_url, concurrency={"maxInFlight": 8, "queueSize": 16}, requestTimeoutSeconds=10
    )
    rt = spawn(config, env={"ATOMIC_AGENT_DRAIN_DELAY_SECONDS": "0.5"})
    fake.control(latency=1.0)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client:
        tasks = [asyncio.create_task(client.post(f"{rt.url}/run", json=VALID_INPUT))
                 for _ in range(20)]  # fmt: skip
        await asyncio.to_thread(wait_for_upstream_in_flight, fake, 8)  # and 12 queued
        rt.sigterm()
        t0 = time.monotonic()
        ready = await client.get(f"{rt.url}/readyz")
        assert ready.status_code == 503 and ready.text == "draining"
        assert time.monotonic() - t0 < 1.0
        # a request routed to the pod during the drain delay is still served
        late = await client.post(f"{rt.url}/run", json=VALID_INPUT)
        responses = await asyncio.gather(*tasks)
    codes = Counter(r.status_code for r in responses)
    assert codes == {200: 20}, codes
    assert late.status_code == 200
    assert await asyncio.to_thread(rt.wait, 15) == 0
    assert len(fake.requests()) == 21
    logs = rt.logs()
    assert '"msg": "draining"' in logs and '"msg": "stopped"' in logs


def test_second_signal_forces_exit(fake: Fake, spawn: Any) -> None:
    rt = spawn(make_config(fake.base_url), env={"ATOMIC_AGENT_DRAIN_DELAY_SECONDS": "30"})
    rt.sigterm()
    time.sleep(0.3)
    assert httpx.get(f"{rt.url}/readyz").status_code == 503
    rt.sigterm()
    assert rt.wait(10) == 0


def test_sigterm_with_a_stalled_upload_exits_within_the_drain_delay(
    fake: Fake, spawn: Any
) -> None:
    """The upload is answered 503 when the listener closes; no 500, no traceback, exit 0."""
    rt = spawn(make_config(fake.base_url, requestTimeoutSeconds=30),
               env={"ATOMIC_AGENT_DRAIN_DELAY_SECONDS": "0.5"})  # fmt: skip
    with connect(rt.port, timeout=20) as sock:
        sock.sendall(b"POST /run HTTP/1.1\r\nHost: t\r\nX-Request-ID: stalled\r\n"
                     b'Content-Length: 3000\r\n\r\n{"request": "')  # fmt: skip
        time.sleep(0.3)  # the app is now waiting for the rest of the body
        t0 = time.monotonic()
        rt.sigterm()
        raw, _ = read_until_closed(sock)
        code = rt.wait(10)
        took = time.monotonic() - t0
    assert code == 0
    assert took <= 0.5 + 1.0, took
    response = parse(raw)
    assert response.status == 503
    assert response.json()["error"]["type"] == "draining"
    assert response.json()["error"]["requestId"] == "stalled"
    logs = rt.logs()
    assert "Traceback" not in logs and '"status": 500' not in logs
