"""One autoscaler per agent in custom mode: its scraper, its rule's memory, its last answer.

The autoscaler loop (handlers/autoscaler.py) calls `AgentScaler.step` every interval; the
reconciles read the last recommendation from `Autoscalers` so that every path that writes
replicas (a reconcile, a Deployment event, the loop) writes the same count. Nothing here
talks to the API server.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import aiohttp

from atomic_operator.api.agent import AtomicAgentSpec, AutoscalingInputs, AutoscalingStatus
from atomic_operator.autoscaler.decision import (
    STALE_INTERVALS,
    Observation,
    Policy,
    Recommendation,
    State,
    decide,
)
from atomic_operator.autoscaler.scrape import Failure, Scraper, Target
from atomic_operator.conditions import Cond, now_iso
from atomic_operator.replicas import SCALING_ACTIVE, AutoscalerObservation

INTERVAL_SECONDS = 2.0
"""How often an autoscaled agent is scraped and decided (Knative's tick)."""
SCRAPE_TIMEOUT_SECONDS = 1.0
TARGET_UTILIZATION = 0.8
"""targetInFlightPerReplica defaults to this share of concurrency.maxInFlight."""
EXPLAIN_EVERY_SECONDS = 30.0
"""status.autoscaling is refreshed at most this often without a new count (a count change
always reaches it at once): its figures are never older than this, and a load hovering at a
boundary, or figures that move every tick, cost at most one status write per period."""
UNREACHABLE_WARNING_SECONDS = 30.0
"""A pod whose /metrics has not answered for this long is reported: a Warning event, and
ScalingActive's message names the pod and the error (settings: metrics_warning_seconds)."""
WRITE_MEMORY_SECONDS = 120.0
"""How long, at most, our own write outranks a Deployment count that does not show it yet
(a lagging watch on a busy operator): until a copy of the Deployment shows it, the rule
decides from it and the policy holds it, so a stale copy never makes us write an old count
back."""

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


def unreachable_message(failure: Failure, seconds: float) -> str:
    """What to check when a pod's metrics cannot be read, naming the pod and the error."""
    return (f"the operator cannot read the metrics of pod {failure.pod} at {failure.url} "
            f"for {seconds:g} s or more ({failure.error}): check that the operator can reach "
            "the pods' metrics port (NetworkPolicies, the operator's HTTP_PROXY/NO_PROXY, "
            "the pod's metrics server)")


def scaling_condition(rec: Recommendation, unreachable: Failure | None = None,
                      seconds: float = UNREACHABLE_WARNING_SECONDS) -> Cond:
    """ScalingActive from a decision, in words that do not change with the figures (the
    figures go to status.autoscaling), so a steady agent's condition is never rewritten.
    While no pod answers and one has not answered for `seconds`, the message names it."""
    if rec.reason == "MetricsMissing" and rec.inputs is None:
        if unreachable is not None:
            return Cond(SCALING_ACTIVE, "False", "MetricsMissing",
                        unreachable_message(unreachable, seconds)
                        + ": holding the count, no scale-down")
        return Cond(SCALING_ACTIVE, "False", "MetricsMissing",
                    "no Ready pod answered /metrics within three intervals: holding the "
                    "count, no scale-down")
    if rec.reason == "WaitingForPods":
        return Cond(SCALING_ACTIVE, "False", "WaitingForPods",
                    "no Ready pod to read metrics from yet: holding the count")
    if rec.reason == "UpstreamSaturated":
        return Cond(SCALING_ACTIVE, "True", "UpstreamSaturated",
                    "most errors are the model provider's 429/5xx: scale-up is frozen, more "
                    "replicas would only add to the throttling")
    return Cond(SCALING_ACTIVE, "True", "Autoscaling",
                "the operator's autoscaler sets the replicas from in-flight and queued "
                "requests")


def scale_event(rec: Recommendation) -> tuple[str, str] | None:
    """(reason, message) of the Event a decision that changes the count deserves."""
    if not rec.changes:
        return None
    verb = "ScaledUp" if rec.desired_replicas > rec.current_replicas else "ScaledDown"
    return verb, f"{rec.reason}: {rec.message}"


@dataclass
class AgentScaler:
    """The autoscaler of one agent between ticks."""

    scraper: Scraper
    state: State
    clock: Callable[[], float]
    written: tuple[float, int] | None = None
    """(time, replicas) of the last count this autoscaler wrote."""
    last: Recommendation | None = None
    explained: AutoscalingStatus | None = None
    explained_at: float = 0.0
    decided_at: float = float("-inf")
    confirmed: bool = False
    """A copy of the Deployment has shown our last write."""
    seen: tuple[int, int] | None = None
    """(generation, replicas) of the newest copy of the Deployment seen."""
    warning_seconds: float = UNREACHABLE_WARNING_SECONDS
    unreachable: Failure | None = None
    """The pod whose metrics have not answered for warning_seconds (longest first)."""
    warned: bool = False
    """The Warning of the current unreachable spell has been given."""

    def current(self, live: int, generation: int | None = None) -> int:
        """The Deployment's count, or ours while no copy of the Deployment has shown it.

        Copies arrive out of order (watch events and the index are updated apart): one
        with an older `metadata.generation` than a copy already seen is stale, and the
        count of the newest one stands (every replica change bumps the generation)."""
        if generation is not None:
            if self.seen is not None and generation < self.seen[0]:
                live = self.seen[1]
            else:
                self.seen = (generation, live)
        if self.written is None:
            return live
        if live == self.written[1]:
            self.confirmed = True  # the watch has caught up: later copies are newer
        if self.confirmed or self.clock() - self.written[0] >= WRITE_MEMORY_SECONDS:
            return live
        return self.written[1]

    async def step(self, spec: AtomicAgentSpec, live: int, targets: Iterable[Target],
                   generation: int | None = None) -> Recommendation:
        """Scrape the Ready pods, decide, remember; the caller writes."""
        samples = await self.scraper.scrape(targets)
        policy = policy_for(spec)
        self.scraper.cpu_cores = cpu_cores(spec)
        observation = Observation(self.clock(), self.current(live, generation), samples)
        rec, self.state = decide(policy, self.state, observation)
        self.last = rec
        self.decided_at = observation.now
        failing = self.scraper.unreachable(self.warning_seconds)
        self.unreachable = failing[0] if failing else None
        self._explain(rec)
        return rec

    def warning(self) -> tuple[str, str] | None:
        """(reason, message) of the Warning event a spell of unreachable metrics deserves:
        once when it has lasted warning_seconds, again only after the pods answered."""
        if self.unreachable is None:
            self.warned = False
            return None
        if self.warned:
            return None
        self.warned = True
        return "MetricsUnreachable", unreachable_message(self.unreachable,
                                                         self.warning_seconds)

    def condition(self, rec: Recommendation) -> Cond:
        return scaling_condition(rec, self.unreachable, self.warning_seconds)

    def _explain(self, rec: Recommendation) -> None:
        """Freeze the decision for status when it changes the count, else at most every
        EXPLAIN_EVERY_SECONDS (a new reason or new figures alike): the figures of every tick
        are not status material, but figures older than that period are wrong."""
        now = self.clock()
        old = self.explained
        if old is not None and not rec.changes and now - self.explained_at < EXPLAIN_EVERY_SECONDS:
            return
        inputs = AutoscalingInputs.model_validate(rec.inputs.as_status()) if rec.inputs else None
        last_scale = now_iso() if rec.changes else (old.last_scale_time if old else None)
        self.explained = AutoscalingStatus(reason=rec.reason, message=rec.message,
                                           inputs=inputs, last_scale_time=last_scale)
        self.explained_at = now

    def observation(self) -> AutoscalerObservation | None:
        """What the replica policy needs from this autoscaler: its decision, or, when a
        count was written for it after that decision (or before the first one), that count,
        so a decision made from an older copy of the Deployment never undoes the write;
        None when it has neither."""
        newer_write = self.written is not None and self.written[0] > self.decided_at
        if self.last is not None:
            # a write after the decision (most often the decision's own) changes the count
            # held, not what the autoscaler says: no AutoscalerNotRunning after each write
            desired = self.written[1] if newer_write and self.written else \
                self.last.desired_replicas
            return AutoscalerObservation(desired, self.condition(self.last), self.explained)
        if self.written is not None:
            return AutoscalerObservation(self.written[1], Cond(
                SCALING_ACTIVE, "False", "AutoscalerNotRunning",
                "the operator's autoscaler has no recommendation for this agent yet; "
                f"holding {self.written[1]} replicas"))
        return None

    def wrote(self, replicas: int) -> None:
        self.written = (self.clock(), replicas)
        self.confirmed = False


@dataclass
class Autoscalers:
    """Every agent's autoscaler, shared by the loop and the reconciles of one operator."""

    session: aiohttp.ClientSession
    clock: Callable[[], float] = time.monotonic
    scalers: dict[Key, AgentScaler] = field(default_factory=dict)
    warning_seconds: float = UNREACHABLE_WARNING_SECONDS

    def scaler(self, key: Key) -> AgentScaler:
        """The agent's autoscaler; a new one starts its rule's memory now (no scale-down
        for one stable window: what it saw before a restart is gone)."""
        found = self.scalers.get(key)
        if found is None:
            found = self.scalers[key] = AgentScaler(
                Scraper(self.session, SCRAPE_TIMEOUT_SECONDS, clock=self.clock,
                        max_rate_seconds=STALE_INTERVALS * INTERVAL_SECONDS),
                State(started_at=self.clock()), self.clock,
                warning_seconds=self.warning_seconds)
        return found

    def observation(self, key: Key) -> AutoscalerObservation | None:
        found = self.scalers.get(key)
        return found.observation() if found else None

    def drop(self, key: Key) -> None:
        """The agent left custom mode or is gone: its history must not outlive it."""
        self.scalers.pop(key, None)
