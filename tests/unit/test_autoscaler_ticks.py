"""The autoscaler of one agent over many ticks, on a fake clock: what status and events see.

The scraper is the real one, reading Prometheus text from a fake HTTP session, so the
figures reach the rule the way they do in the operator.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp

from atomic_operator.api import AtomicAgent
from atomic_operator.api.agent import AtomicAgentSpec
from atomic_operator.autoscaler.controller import (
    EXPLAIN_EVERY_SECONDS,
    INTERVAL_SECONDS,
    AgentScaler,
)
from atomic_operator.autoscaler.decision import STALE_INTERVALS, State
from atomic_operator.autoscaler.scrape import Scraper, Target
from tests.support.manifests import variant

TARGETS = [Target("tp-0", "http://10.0.0.1:9090/metrics")]


def metrics(in_flight: float = 0, queued: float = 0, ok: float = 0, rate_limited: float = 0,
            llm_calls: float = 0, llm_seconds: float = 0) -> str:
    return "\n".join([
        f'agent_inflight_requests{{agent="tp"}} {in_flight}',
        f'agent_queued_requests{{agent="tp"}} {queued}',
        'agent_max_concurrency{agent="tp"} 8',
        f'agent_requests_total{{agent="tp",status="200"}} {ok}',
        f'agent_llm_errors_total{{agent="tp",reason="rate_limit"}} {rate_limited}',
        f'agent_llm_request_duration_seconds_sum{{agent="tp"}} {llm_seconds}',
        f'agent_llm_request_duration_seconds_count{{agent="tp"}} {llm_calls}',
    ]) + "\n"


class _Response:
    def __init__(self, text: str | None) -> None:
        self.body = text
        self.status = 200

    async def __aenter__(self) -> _Response:
        if self.body is None:
            raise aiohttp.ClientConnectionError("Cannot connect to host 10.0.0.1:9090")
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None
                        ) -> None:
        return None

    async def text(self) -> str:
        assert self.body is not None
        return self.body


@dataclass
class FakeSession:
    """Answers every GET with `page` (None: the connection is refused)."""

    page: str | None = None

    def get(self, url: str, **_: Any) -> _Response:
        return _Response(self.page)


@dataclass
class World:
    """One agent's autoscaler on a fake clock; `tick` is one operator tick plus the write
    the replica policy makes of its decision."""

    spec: AtomicAgentSpec
    replicas: int = 2
    now: float = 1000.0
    session: FakeSession = field(default_factory=FakeSession)
    scaler: AgentScaler = field(init=False)
    writes: int = 0

    def __post_init__(self) -> None:
        clock: Callable[[], float] = lambda: self.now  # noqa: E731
        scraper = Scraper(self.session, clock=clock,  # type: ignore[arg-type]
                          max_rate_seconds=STALE_INTERVALS * INTERVAL_SECONDS)
        # warm: the operator has run for a stable window, so scale-downs are allowed
        self.scaler = AgentScaler(scraper, State(started_at=self.now - 600), clock,
                                  warning_seconds=30.0)

    def tick(self, page: str | None) -> None:
        self.session.page = page
        rec = asyncio.run(self.scaler.step(self.spec, self.replicas, TARGETS))
        self.now += 0.3  # the write comes a moment after the decision
        if rec.desired_replicas != self.replicas:
            self.replicas = rec.desired_replicas
            self.scaler.wrote(self.replicas)
            self.writes += 1
        self.now += INTERVAL_SECONDS - 0.3


def agent(**autoscaling: Any) -> AtomicAgentSpec:
    return AtomicAgent.model_validate(variant("task-processor", {"spec": {
        "autoscaling": {"mode": "custom", "minReplicas": 1, "maxReplicas": 10,
                        "targetInFlightPerReplica": 2, **autoscaling},
        "concurrency": {"maxInFlight": 4}}})).spec


def scaling_after_each_tick(world: World, pages: list[str]) -> list[tuple[str, str]]:
    seen = []
    for page in pages:
        world.tick(page)
        observed = world.scaler.observation()
        assert observed is not None
        seen.append((observed.condition.status, observed.condition.reason))
    return seen


def test_scaling_active_does_not_flicker_after_each_write() -> None:
    # Issue 22 item 22: each write used to turn ScalingActive False AutoscalerNotRunning
    # until the next decision ("no recommendation for this agent yet"): 11 flips, 8 writes.
    world = World(agent(scaleDownStabilizationSeconds=10), replicas=1)
    pages = []
    for level in (2, 6, 12, 20, 14, 8, 4, 2):  # in flight, each held 40 s
        pages += [metrics(in_flight=level)] * 20
    seen = scaling_after_each_tick(world, pages)
    assert world.writes >= 6
    assert ("False", "AutoscalerNotRunning") not in seen
    flips = sum(1 for a, b in itertools.pairwise(seen) if a != b)
    assert flips == 0, seen


def test_status_figures_are_never_older_than_the_period_and_rarely_written() -> None:
    # Issue 22 item 23: "demand 58.0 ... StabilizingScaleDown" stayed in status minutes after
    # demand fell, because nothing was rewritten while the reason stayed the same.
    world = World(agent(scaleDownStabilizationSeconds=600), replicas=4)
    written: list[tuple[float, str, float]] = []  # each time status.autoscaling changes
    last = None
    fell_at = None
    for i in range(300):  # 10 minutes: 8 in flight (4 replicas' worth), 5, then 1
        level = 8 if i < 20 else 5 if i < 50 else 1
        if level == 1 and fell_at is None:
            fell_at = world.now
        world.tick(metrics(in_flight=level))
        observed = world.scaler.observation()
        assert observed is not None and observed.explanation is not None
        if observed.explanation != last:
            last = observed.explanation
            assert last.inputs is not None
            written.append((world.now, last.reason, last.inputs.demand))
        assert last is not None and last.inputs is not None
        # the figures status shows are at most one period (plus a tick) old
        if fell_at is not None and world.now - fell_at > EXPLAIN_EVERY_SECONDS + INTERVAL_SECONDS:
            assert last.inputs.demand == 1, (world.now - fell_at, last)
    assert world.writes == 0  # nothing came down within the stable window
    assert last is not None and last.reason == "StabilizingScaleDown"
    assert ("StabilizingScaleDown", 5) in {(r, d) for _, r, d in written}
    # bounded: one change per period at most
    assert len(written) <= 600 / EXPLAIN_EVERY_SECONDS + 1, written


def test_rates_cover_the_last_interval_only_so_old_429s_do_not_freeze_after_a_gap() -> None:
    # Issue 22 item 24: the pod's metrics are unreadable for two minutes, the provider's
    # 429s end early in that gap, then demand steps up: the first decisions after the gap
    # must not see the old 429s as a current rate (which froze scale-up for 30 s,
    # UpstreamSaturated).
    world = World(agent(), replicas=1)
    calls = errors = 0.0
    for _ in range(15):  # 30 s of provider 429s: one call in two is rate limited
        calls += 4
        errors += 2
        world.tick(metrics(in_flight=1, ok=calls, rate_limited=errors, llm_calls=calls,
                           llm_seconds=calls * 0.5))
    assert world.scaler.last is not None
    for i in range(60):  # two minutes of no answer; the 429s go on for the first 20 s
        if i < 10:
            calls += 4
            errors += 2
        world.tick(None)
    reasons = []
    for _ in range(10):  # the step: 10 in flight, no errors any more
        calls += 20
        world.tick(metrics(in_flight=10, ok=calls, rate_limited=errors, llm_calls=calls,
                           llm_seconds=calls * 0.5))
        reasons.append(world.scaler.last.reason if world.scaler.last else "")
    assert "UpstreamSaturated" not in reasons, reasons
    assert "ScaleUp" in reasons, reasons
    assert world.replicas == 5


def test_rates_span_one_interval_and_a_gap_gives_gauges_only() -> None:
    now = [0.0]
    session = FakeSession(metrics(ok=0, rate_limited=0))
    scraper = Scraper(session, clock=lambda: now[0],  # type: ignore[arg-type]
                      max_rate_seconds=6.0)
    asyncio.run(scraper.scrape(TARGETS))
    now[0] = 2.0
    session.page = metrics(ok=10, rate_limited=10)
    (pod,) = asyncio.run(scraper.scrape(TARGETS))
    assert pod.upstream_error_rate == 5.0  # 10 in 2 s
    now[0] = 130.0  # no scrape in between: a gap, not an interval
    session.page = metrics(ok=12, rate_limited=20, in_flight=3)
    (pod,) = asyncio.run(scraper.scrape(TARGETS))
    assert (pod.upstream_error_rate, pod.request_rate, pod.in_flight) == (0.0, 0.0, 3)
    now[0] = 132.0
    session.page = metrics(ok=14, rate_limited=20, in_flight=3)
    (pod,) = asyncio.run(scraper.scrape(TARGETS))
    assert (pod.upstream_error_rate, pod.request_rate) == (0.0, 1.0)


def test_metrics_unreadable_for_the_warning_time_are_said_once_naming_pod_and_error() -> None:
    world = World(agent(), replicas=2)
    world.tick(metrics(in_flight=1))
    for _ in range(14):  # 28 s of refused connections: missing, not yet a warning
        world.tick(None)
    assert world.scaler.warning() is None
    observed = world.scaler.observation()
    assert observed is not None and observed.condition.reason == "MetricsMissing"
    assert "tp-0" not in observed.condition.message
    world.tick(None)
    world.tick(None)  # 32 s
    warning = world.scaler.warning()
    assert warning is not None
    reason, message = warning
    assert reason == "MetricsUnreachable"
    assert "pod tp-0 at http://10.0.0.1:9090/metrics" in message
    assert "Cannot connect to host 10.0.0.1:9090" in message
    assert "HTTP_PROXY" in message
    observed = world.scaler.observation()
    assert observed is not None
    assert (observed.condition.status, observed.condition.reason) == ("False", "MetricsMissing")
    assert "cannot read the metrics of pod tp-0" in observed.condition.message
    world.tick(None)
    assert world.scaler.warning() is None  # once per spell
    world.tick(metrics(in_flight=1))
    assert world.scaler.warning() is None
    observed = world.scaler.observation()
    assert observed is not None and observed.condition.status == "True"
    for _ in range(16):  # a new spell warns again
        world.tick(None)
    assert world.scaler.warning() is not None
