"""Admission: maxInFlight + queueSize, 429 + Retry-After beyond, nothing lost below."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from .conftest import VALID_INPUT, Fake, Runtime, metric_value


async def burst(url: str, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n + 10)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        return await asyncio.gather(
            *(client.post(f"{url}/run", json=VALID_INPUT) for _ in range(n))
        )


async def test_burst_beyond_limits_gets_429_and_nothing_below_is_lost(
    runtime: Runtime, fake: Fake
) -> None:
    fake.control(latency=0.6)  # maxInFlight 4 + queueSize 4 = 8 admitted at once
    responses = await burst(runtime.url, 20)
    codes = Counter(r.status_code for r in responses)
    assert codes == {200: 8, 429: 12}, codes
    for r in responses:
        if r.status_code == 429:
            assert r.json()["error"]["type"] == "overloaded"
            assert int(r.headers["retry-after"]) >= 1
    state = fake.state()
    assert state["max_in_flight"] == 4  # never more than maxInFlight calls upstream
    assert len(fake.requests()) == 8
    text = runtime.metrics()
    assert metric_value(text, "agent_requests_total", agent="planner", status="429") >= 12


async def test_exactly_at_the_limit_everything_succeeds(runtime: Runtime, fake: Fake) -> None:
    fake.control(latency=0.3)
    responses = await burst(runtime.url, 8)
    assert [r.status_code for r in responses] == [200] * 8


async def test_gauges_show_in_flight_and_queued_while_busy(runtime: Runtime, fake: Fake) -> None:
    fake.control(latency=0.8)
    task = asyncio.create_task(burst(runtime.url, 6))
    await asyncio.sleep(0.4)
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{runtime.metrics_url}/metrics")).text
    assert metric_value(text, "agent_inflight_requests", agent="planner") == 4
    assert metric_value(text, "agent_queued_requests", agent="planner") == 2
    assert metric_value(text, "agent_max_concurrency", agent="planner") == 4
    responses = await task
    assert all(r.status_code == 200 for r in responses)
    after = await asyncio.to_thread(runtime.metrics)
    assert metric_value(after, "agent_inflight_requests", agent="planner") == 0
    assert metric_value(after, "agent_queued_requests", agent="planner") == 0
