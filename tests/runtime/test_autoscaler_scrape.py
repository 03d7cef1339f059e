"""The autoscaler's scraper against real runtime processes talking to the fake provider.

The runtimes are started exactly as in a pod; the scraper reads their /metrics over
loopback, and the samples go through the real decision function.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx
import pytest

from atomic_operator.autoscaler.decision import Observation, Policy, State, decide
from atomic_operator.autoscaler.metrics import parse, quantile
from atomic_operator.autoscaler.scrape import Scraper, Target

from .conftest import VALID_INPUT, Fake, Runtime, make_config


async def burst(url: str, n: int) -> list[int]:
    limits = httpx.Limits(max_connections=n + 10)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        responses = await asyncio.gather(
            *(client.post(f"{url}/run", json=VALID_INPUT) for _ in range(n)))
    return [r.status_code for r in responses]


def target(rt: Runtime, name: str) -> Target:
    return Target(name, f"{rt.metrics_url}/metrics")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers: a hung pod."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def pair(fake: Fake, spawn: Any) -> tuple[Runtime, Runtime]:
    config = make_config(fake.base_url, concurrency={"maxInFlight": 2, "queueSize": 3},
                         requestTimeoutSeconds=10)
    return spawn(config), spawn(config)


def test_parse_reads_the_runtimes_families(runtime: Runtime, fake: Fake) -> None:
    httpx.post(f"{runtime.url}/run", json=VALID_INPUT, timeout=10).raise_for_status()
    reading = parse(runtime.metrics())
    assert reading.in_flight == 0 and reading.queued == 0
    assert reading.max_concurrency == 4
    assert reading.requests["200"] >= 1
    assert reading.duration_count >= 1 and reading.llm_count >= 1
    assert {"rate_limit", "upstream_5xx", "timeout", "validation"} <= set(reading.llm_errors)
    assert reading.duration_buckets[-1][0] == float("inf")
    assert reading.cpu_seconds is not None and reading.cpu_seconds > 0


def test_quantile_interpolates_like_prometheus() -> None:
    buckets = ((0.5, 0.0), (1.0, 10.0), (2.5, 10.0), (float("inf"), 10.0))
    assert quantile(0.9, buckets) == pytest.approx(0.95)
    assert quantile(0.9, ((1.0, 0.0), (float("inf"), 4.0))) == 1.0
    assert quantile(0.9, ((1.0, 0.0), (float("inf"), 0.0))) is None


async def test_scrapes_pods_concurrently_and_turns_counters_into_rates(
    pair: tuple[Runtime, Runtime], fake: Fake, session: aiohttp.ClientSession
) -> None:
    a, b = pair
    scraper = Scraper(session, timeout=1.0)
    targets = [target(a, "a"), target(b, "b")]
    first = await scraper.scrape(targets)
    assert [s.request_rate for s in first] == [0.0, 0.0]  # no rates from one reading
    fake.control(latency=1.0)
    load = asyncio.gather(burst(a.url, 5), burst(b.url, 1))
    await asyncio.sleep(0.5)
    busy = {s.name: s for s in await scraper.scrape(targets)}
    assert (busy["a"].in_flight, busy["a"].queued) == (2, 3)
    assert (busy["b"].in_flight, busy["b"].queued) == (1, 0)
    codes_a, codes_b = await load
    assert codes_a == [200] * 5 and codes_b == [200]
    done = {s.name: s for s in await scraper.scrape(targets)}
    assert done["a"].in_flight == 0
    assert done["a"].request_rate > 0 and done["b"].request_rate > 0
    assert done["a"].mean_latency == pytest.approx(1.0, abs=0.3)  # one model call
    assert done["a"].p90_latency is not None and done["a"].p90_latency > 2.0  # queue waits
    assert done["a"].error_rate == 0 and done["a"].rejected_rate == 0


async def test_own_429s_and_provider_429s_are_told_apart(
    pair: tuple[Runtime, Runtime], fake: Fake, session: aiohttp.ClientSession
) -> None:
    a, b = pair
    scraper = Scraper(session)
    targets = [target(a, "a"), target(b, "b")]
    await scraper.scrape(targets)
    fake.control(latency=0.5)
    assert (await burst(a.url, 12)).count(429) == 7  # 2 in flight + 3 queued admitted
    fake.control(latency=0, behavior="status:429", retry_after_ms=1)
    assert set(await burst(b.url, 3)) == {503}  # upstream_rate_limited
    samples = {s.name: s for s in await scraper.scrape(targets)}
    assert samples["a"].rejected_rate > 0 and samples["a"].upstream_error_rate == 0
    assert samples["a"].error_rate == pytest.approx(samples["a"].rejected_rate)
    assert samples["b"].upstream_error_rate > 0
    assert samples["b"].upstream_error_rate == pytest.approx(samples["b"].error_rate)


async def test_a_dead_or_hung_pod_keeps_its_last_sample_and_never_blocks_the_rest(
    pair: tuple[Runtime, Runtime], fake: Fake, session: aiohttp.ClientSession,
    silent_port: int
) -> None:
    a, b = pair
    scraper = Scraper(session, timeout=0.3)
    hung = Target("hung", f"http://127.0.0.1:{silent_port}/metrics")
    targets = [target(a, "a"), target(b, "b"), hung]
    first = {s.name: s for s in await scraper.scrape(targets)}
    assert first["hung"].scraped_at is None
    b.stop()
    started = time.monotonic()
    second = {s.name: s for s in await scraper.scrape(targets)}
    assert time.monotonic() - started < 1.0  # concurrent, bounded by the timeout
    assert second["a"].scraped_at is not None and first["a"].scraped_at is not None
    assert second["a"].scraped_at > first["a"].scraped_at
    assert second["b"].scraped_at == first["b"].scraped_at  # the old one, aging
    assert scraper.failures == 3


async def test_a_real_burst_scraped_from_real_pods_scales_up_and_silence_does_not_scale_down(
    pair: tuple[Runtime, Runtime], fake: Fake, session: aiohttp.ClientSession
) -> None:
    a, _ = pair
    clock = time.monotonic
    scraper = Scraper(session, timeout=1.0, clock=clock)
    policy = Policy(min_replicas=1, max_replicas=10, target_per_replica=1.6,
                    interval_seconds=0.5, fast_window_seconds=1.0, stable_window_seconds=5)
    state = State(started_at=clock() - 10)
    fake.control(latency=3.0)
    load = asyncio.ensure_future(burst(a.url, 5))
    reasons = []
    for _ in range(4):
        await asyncio.sleep(0.5)
        samples = await scraper.scrape([target(a, "a")])
        rec, state = decide(policy, state, Observation(clock(), 1, samples))
        reasons.append((rec.reason, rec.desired_replicas))
    assert ("ScaleUp", 4) in reasons  # 5 in flight + queued at 1.6 per replica
    a.stop()  # the metrics endpoint dies with the pod still listed as Ready
    await load
    for _ in range(8):
        await asyncio.sleep(0.5)
        samples = await scraper.scrape([target(a, "a")])
        rec, state = decide(policy, state, Observation(clock(), 4, samples))
        assert rec.desired_replicas == 4, rec
    assert rec.reason == "MetricsMissing"
