"""One autoscaler per agent in custom mode: its scraper, its rule's memory, its last answer.

The timer calls `AgentScaler.step` every interval; the reconciles read the last
recommendation from `Autoscalers` so that every path that writes replicas (a reconcile, a
Deployment event, the timer) writes the same count. Nothing here talks to the API server.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import aiohttp

from atomic_operator.api.agent import AtomicAgentSpec
from atomic_operator.autoscaler.decision import Observation, Policy, Recommendation, State, decide
from atomic_operator.autoscaler.scrape import Scraper, Target

INTERVAL_SECONDS = 2.0
"""How often an autoscaled agent is scraped and decided (Knative's tick)."""
SCRAPE_TIMEOUT_SECONDS = 1.0
TARGET_UTILIZATION = 0.8
"""targetInFlightPerReplica defaults to this share of concurrency.maxInFlight."""
WRITE_MEMORY_SECONDS = 10.0
"""How long our own write is trusted over a Deployment count the watch has not caught up
with, so a lagging cache never makes the rule decide the same step twice."""

Key = tuple[str, str]

_CPU = re.compile(r"^([0-9.]+)(m?)$")


def cpu_cores(spec: AtomicAgentSpec) -> float:
    """The container's CPU request in cores (1 when unset): what 100 % CPU means."""
    requests = (spec.resources.requests if spec.resources else None) or {}
    match = _CPU.match(str(requests.get("cpu", "")))
    if not match:
        return 1.0
    value = float(match.group(1)) / (1000 if match.group(2) else 1)
    return value if value > 0 else 1.0


def policy_for(spec: AtomicAgentSpec, interval: float = INTERVAL_SECONDS) -> Policy:
    """The rule's knobs from the agent's spec; everything else keeps the rule's defaults."""
    scaling = spec.autoscaling
    target = (scaling.target_in_flight_per_replica
              or TARGET_UTILIZATION * spec.concurrency.max_in_flight)
    return Policy(min_replicas=scaling.min_replicas, max_replicas=scaling.max_replicas,
                  target_per_replica=target,
                  stable_window_seconds=float(scaling.scale_down_stabilization_seconds),
                  target_response_time_seconds=scaling.target_response_time_seconds,
                  interval_seconds=interval,
                  fast_window_seconds=2 * interval)


@dataclass
class AgentScaler:
    """The autoscaler of one agent between ticks."""

    scraper: Scraper
    state: State
    clock: Callable[[], float]
    written: tuple[float, int] | None = None
    """(time, replicas) of the last count this autoscaler wrote."""
    last: Recommendation | None = None

    def current(self, live: int) -> int:
        """The Deployment's count, or ours while the cache may not show our write yet."""
        if self.written is not None and self.clock() - self.written[0] < WRITE_MEMORY_SECONDS:
            return self.written[1]
        return live

    async def step(self, spec: AtomicAgentSpec, live: int, targets: Iterable[Target]
                   ) -> Recommendation:
        """Scrape the Ready pods, decide, remember; the caller writes."""
        samples = await self.scraper.scrape(targets)
        policy = policy_for(spec)
        self.scraper.cpu_cores = cpu_cores(spec)
        observation = Observation(self.clock(), self.current(live), samples)
        rec, self.state = decide(policy, self.state, observation)
        self.last = rec
        return rec

    def wrote(self, replicas: int) -> None:
        self.written = (self.clock(), replicas)


@dataclass
class Autoscalers:
    """Every agent's autoscaler, shared by the timer and the reconciles of one operator."""

    session: aiohttp.ClientSession
    clock: Callable[[], float] = time.monotonic
    scalers: dict[Key, AgentScaler] = field(default_factory=dict)

    def scaler(self, key: Key) -> AgentScaler:
        """The agent's autoscaler; a new one starts its rule's memory now (no scale-down
        for one stable window: what it saw before a restart is gone)."""
        found = self.scalers.get(key)
        if found is None:
            found = self.scalers[key] = AgentScaler(
                Scraper(self.session, SCRAPE_TIMEOUT_SECONDS, clock=self.clock),
                State(started_at=self.clock()), self.clock)
        return found

    def recommendation(self, key: Key) -> Recommendation | None:
        found = self.scalers.get(key)
        return found.last if found else None

    def drop(self, key: Key) -> None:
        """The agent left custom mode or is gone: its history must not outlive it."""
        self.scalers.pop(key, None)
