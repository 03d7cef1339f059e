"""The scaling rule: one pure function from what was observed to how many replicas to want.

No I/O and no clock of its own: the caller passes ``now`` in the observation, so a test can
drive hours of synthetic load in milliseconds, and the benchmark runs this exact code.

The rule, in the order it is applied:

- **Demand** is requests in flight plus queued, summed over the pods that answered, plus
  the pods' own 429s times the service time (Little's law: a rejected arrival would have been
  in flight for that long). A pod that exports no gauges contributes rate * latency.
- **Need** is ``ceil(demand / targetPerReplica)`` plus enough replicas to drain the queue
  within ``drain_seconds``, at least minReplicas; maxReplicas bounds the write. The queued
  requests are part of the demand already, so the drain term is headroom, not capacity:
  it adds at most ``max_drain_share`` of the demand's replicas (rounded down), the band
  within which the count is not scaled back down.
- **Up, fast**: when the lowest demand of the fast window (a level held for a few seconds,
  not a spike) exceeds the capacity of the current replicas by ``fast_tolerance``, jump to
  the need in one write, bounded by ``max_scale_up_factor``. Starting pods count as capacity:
  ``replicas`` is the Deployment's count, not the ready one, so one burst is scaled once.
- **Up, stable**: the mean demand of the averaging window beyond a 10 % band (HPA's
  tolerance), while the fast window is above capacity too, catches slow growth; a spike
  that lifts the mean but is gone is not growth.
- **Down** only when the mean demand is below the band, to the highest need seen in the
  stable window (HPA's stabilization), at most ``max_scale_down_fraction`` per
  ``scale_down_period_seconds`` (so never within a stable window of a scale-up, whose
  count is recorded as a need), and never while any reporting pod is missing, the p90
  latency is above target, CPU is above the guard, or the operator started less than one
  stable window ago (history is lost on restart; Knative starts in panic mode for the same
  reason).
- **Upstream saturation**: when most errors are the provider's 429/5xx, scale-up freezes:
  more replicas would only add to the throttling.
- Latency and CPU never drive a scale-up; they only hold scale-downs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

STALE_INTERVALS = 3
"""A sample older than this many intervals counts as missing."""


@dataclass(frozen=True, slots=True)
class Policy:
    """The knobs of the rule; the agent's spec fills the first five, the rest are defaults
    taken from the HPA, Knative and KEDA (see docs/architecture.md)."""

    min_replicas: int = 1
    max_replicas: int = 10
    target_per_replica: float = 6.4
    stable_window_seconds: float = 300.0
    target_response_time_seconds: float | None = None
    interval_seconds: float = 2.0
    fast_window_seconds: float = 4.0
    averaging_window_seconds: float = 60.0
    error_window_seconds: float = 30.0
    fast_tolerance: float = 0.2
    tolerance: float = 0.1
    drain_seconds: float = 30.0
    max_drain_share: float = 0.1
    """The queue-drain term adds at most this share of the demand's replicas (rounded down:
    nothing below 10 replicas): the queue is in the demand already, and an overshoot within
    the tolerance band is one that no scale-down takes back."""
    max_scale_up_factor: float = 10.0
    min_scale_up_step: int = 4
    scale_down_period_seconds: float = 60.0
    max_scale_down_fraction: float = 0.5
    cpu_guard_utilization: float = 0.8
    upstream_error_share: float = 0.5

    @property
    def averaging_seconds(self) -> float:
        """The mean never looks further back than the stable window does."""
        return min(self.averaging_window_seconds, self.stable_window_seconds)

    @property
    def scale_down_every(self) -> float:
        """One scale-down per minute, or per stable window when that is shorter."""
        return min(self.scale_down_period_seconds, self.stable_window_seconds)


@dataclass(frozen=True, slots=True)
class PodSample:
    """What one Ready pod said at its last good scrape (rates are per second between the
    last two scrapes)."""

    name: str
    scraped_at: float | None
    """When the sample was taken; None when the pod never answered."""
    in_flight: float | None = None
    queued: float | None = None
    request_rate: float = 0.0
    rejected_rate: float = 0.0
    """The pod's own 429s (over maxInFlight + queueSize): demand it could not hold."""
    mean_latency: float | None = None
    """Seconds a request holds a concurrency slot (the mean model call)."""
    p90_latency: float | None = None
    """Of the whole request as the client sees it, queue wait included."""
    upstream_error_rate: float = 0.0
    """Provider 429s and 5xx."""
    error_rate: float = 0.0
    """Every failed model interaction plus the pod's own 429s."""
    cpu_utilization: float | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """One tick: the time, the Deployment's replica count and the Ready pods' samples."""

    now: float
    replicas: int
    pods: tuple[PodSample, ...] = ()


@dataclass(frozen=True, slots=True)
class Inputs:
    """The figures a decision was made from, for status and events."""

    demand: float
    in_flight: float
    queued: float
    rejected_rate: float
    request_rate: float
    mean_latency: float | None
    p90_latency: float | None
    upstream_error_share: float | None
    cpu_utilization: float | None
    pods_reporting: int
    pods_missing: int
    target_per_replica: float
    fast_demand: float = 0.0
    stable_demand: float = 0.0

    def as_status(self) -> dict[str, Any]:
        """camelCase, rounded, absent figures left out: what status.autoscaling shows."""
        def r(x: float) -> float:
            return round(x, 3)

        out: dict[str, Any] = {
            "demand": r(self.demand), "fastDemand": r(self.fast_demand),
            "stableDemand": r(self.stable_demand), "inFlight": r(self.in_flight),
            "queued": r(self.queued), "rejectedPerSecond": r(self.rejected_rate),
            "requestsPerSecond": r(self.request_rate),
            "targetPerReplica": r(self.target_per_replica),
            "podsReporting": self.pods_reporting, "podsMissing": self.pods_missing,
        }
        optional = {"meanLatencySeconds": self.mean_latency,
                    "p90LatencySeconds": self.p90_latency,
                    "upstreamErrorShare": self.upstream_error_share,
                    "cpuUtilization": self.cpu_utilization}
        out.update({k: r(v) for k, v in optional.items() if v is not None})
        return out


@dataclass(frozen=True, slots=True)
class Recommendation:
    """How many replicas to want, and why, in words fit for a condition and an Event."""

    desired_replicas: int
    current_replicas: int
    reason: str
    message: str
    inputs: Inputs | None = None

    @property
    def changes(self) -> bool:
        return self.desired_replicas != self.current_replicas


@dataclass(frozen=True, slots=True)
class State:
    """What the rule remembers between ticks; start one with ``State(started_at=now)``."""

    started_at: float
    demand: tuple[tuple[float, float], ...] = ()
    """(time, demand) over the averaging window."""
    needs: tuple[tuple[float, int], ...] = ()
    """(time, stable need) over the stable window: scale-down goes to their maximum."""
    errors: tuple[tuple[float, float, float], ...] = ()
    """(time, upstream error rate, error rate) over the error window."""
    last_scale_up: float | None = None
    last_scale_down: float | None = None


def fresh_samples(obs: Observation, policy: Policy) -> tuple[list[PodSample], list[str]]:
    """The samples young enough to trust, and the names of the pods that have none."""
    limit = STALE_INTERVALS * policy.interval_seconds
    fresh, missing = [], []
    for pod in obs.pods:
        if pod.scraped_at is not None and obs.now - pod.scraped_at <= limit:
            fresh.append(pod)
        else:
            missing.append(pod.name)
    return fresh, missing


def aggregate(pods: list[PodSample], missing: int, target: float) -> Inputs:
    """Sum the pods into one demand; latency is rate-weighted, p90 the worst pod's."""
    in_flight = queued = rejected = rate = demand = 0.0
    weighted_latency = 0.0
    p90: float | None = None
    cpu = [p.cpu_utilization for p in pods if p.cpu_utilization is not None]
    upstream = sum(p.upstream_error_rate for p in pods)
    errors = sum(p.error_rate for p in pods)
    for pod in pods:
        latency = pod.mean_latency or 0.0
        pod_rate = pod.request_rate
        rate += pod_rate
        weighted_latency += pod_rate * latency
        rejected += pod.rejected_rate
        if pod.in_flight is None:
            pod_demand = pod_rate * latency  # Little's law: L = λW
        else:
            in_flight += pod.in_flight
            queued += pod.queued or 0.0
            pod_demand = pod.in_flight + (pod.queued or 0.0)
        demand += pod_demand + pod.rejected_rate * latency
        if pod.p90_latency is not None:
            p90 = pod.p90_latency if p90 is None else max(p90, pod.p90_latency)
    return Inputs(
        demand=demand, in_flight=in_flight, queued=queued, rejected_rate=rejected,
        request_rate=rate, mean_latency=weighted_latency / rate if rate > 0 else None,
        p90_latency=p90, upstream_error_share=upstream / errors if errors > 0 else None,
        cpu_utilization=sum(cpu) / len(cpu) if cpu else None,
        pods_reporting=len(pods), pods_missing=missing, target_per_replica=target)


def _window[T: tuple[Any, ...]](items: tuple[T, ...], new: T, now: float,
                                seconds: float) -> tuple[T, ...]:
    return tuple(x for x in (*items, new) if now - x[0] <= seconds)


def _need(demand: float, queued: float, latency: float | None, policy: Policy) -> int:
    """Replicas for a demand, plus enough to drain the queue within drain_seconds (each
    replica completes target/latency requests per second), that extra bounded by
    max_drain_share of the demand's replicas."""
    base = math.ceil(demand / policy.target_per_replica - 1e-9)
    backlog = 0
    if latency and queued > 0:
        backlog = math.ceil(queued * latency / (policy.target_per_replica * policy.drain_seconds)
                            - 1e-9)
        backlog = min(backlog, math.floor(base * policy.max_drain_share + 1e-9))
    return max(policy.min_replicas, base + backlog)  # maxReplicas applies to the write


def _hold(current: int, reason: str, message: str, inputs: Inputs | None) -> Recommendation:
    return Recommendation(current, current, reason, message, inputs)


def _describe(i: Inputs) -> str:
    text = f"demand {i.demand:.1f} (in flight {i.in_flight:g}, queued {i.queued:g}"
    if i.rejected_rate:
        text += f", rejected {i.rejected_rate:.1f}/s"
    return text + f") at {i.target_per_replica:g} per replica"


def decide(policy: Policy, state: State, obs: Observation) -> tuple[Recommendation, State]:
    """The recommendation for this tick and the state to pass to the next one."""
    now, current = obs.now, obs.replicas
    fresh, missing = fresh_samples(obs, policy)

    if current < policy.min_replicas:
        rec = Recommendation(policy.min_replicas, current, "BelowMinimum",
                             f"{current} replicas is below minReplicas {policy.min_replicas}")
        return rec, replace(state, last_scale_up=now)
    if current > policy.max_replicas:
        rec = Recommendation(policy.max_replicas, current, "AboveMaximum",
                             f"{current} replicas is above maxReplicas {policy.max_replicas}")
        return rec, replace(state, last_scale_down=now)
    if not fresh:
        # Nothing to go on: hold, and remember the current count as a need so a scale-down
        # cannot follow straight after the metrics come back.
        needs = _window(state.needs, (now, current), now, policy.stable_window_seconds)
        if not obs.pods:
            return _hold(current, "WaitingForPods", "no Ready pod to read metrics from yet",
                         None), replace(state, needs=needs)
        names = ", ".join(sorted(missing)[:3]) + (" ..." if len(missing) > 3 else "")
        return _hold(current, "MetricsMissing",
                     f"no fresh metrics from any Ready pod ({names}): holding {current} "
                     "replicas", None), replace(state, needs=needs)

    inputs = aggregate(fresh, len(missing), policy.target_per_replica)
    demand = _window(state.demand, (now, inputs.demand), now, policy.averaging_seconds)
    errors = _window(state.errors, (now, sum(p.upstream_error_rate for p in fresh),
                                    sum(p.error_rate for p in fresh)),
                     now, policy.error_window_seconds)
    # samples inside the fast window, its far edge excluded: 4 s at 2 s ticks is 2 samples;
    # a lone sample (the first after a start) is not a level held, so it scales nothing up
    held = [d for t, d in demand if now - t < policy.fast_window_seconds - 1e-6]
    fast_demand = min(held)
    level_held = len(held) >= min(2, int(policy.fast_window_seconds / policy.interval_seconds))
    stable_demand = sum(d for _, d in demand) / len(demand)
    inputs = replace(inputs, fast_demand=fast_demand, stable_demand=stable_demand)
    fast_need = _need(fast_demand, inputs.queued, inputs.mean_latency, policy)
    stable_need = _need(stable_demand, inputs.queued, inputs.mean_latency, policy)
    # A missing pod counts as exactly at target: it can neither pull the count down now
    # nor later through the window.
    recorded = max(stable_need, fast_need) if not missing else max(stable_need, current)
    needs = _window(state.needs, (now, recorded), now, policy.stable_window_seconds)
    state = replace(state, demand=demand, needs=needs, errors=errors)
    upstream_total = sum(e[1] for e in errors)
    error_total = sum(e[2] for e in errors)
    upstream_share = upstream_total / error_total if error_total > 0 else None
    inputs = replace(inputs, upstream_error_share=upstream_share)

    capacity = current * policy.target_per_replica
    up_need, path = 0, ""
    if (level_held and fast_demand > capacity * (1 + policy.fast_tolerance)
            and fast_need > current):
        up_need, path = fast_need, f"held {policy.fast_window_seconds:g} s"
    averaged = now - demand[0][0] >= policy.averaging_seconds / 2  # a mean, not a sample
    if (level_held and averaged and stable_demand > capacity * (1 + policy.tolerance)
            and fast_demand > capacity and stable_need > up_need):
        up_need, path = stable_need, f"mean of {policy.averaging_seconds:g} s"
    if up_need > current:
        if upstream_share is not None and upstream_share > policy.upstream_error_share:
            return _hold(current, "UpstreamSaturated",
                         f"{upstream_share:.0%} of errors are the provider's 429/5xx: "
                         f"holding {current} replicas instead of {up_need}, more would "
                         "only add to the throttling", inputs), state
        step = max(policy.min_scale_up_step,
                   math.ceil(current * (policy.max_scale_up_factor - 1)))
        target = min(up_need, current + step, policy.max_replicas)
        if target <= current:
            return _hold(current, "AtMaximum", f"{_describe(inputs)} needs {up_need} "
                         f"replicas; maxReplicas is {policy.max_replicas}", inputs), state
        rec = Recommendation(target, current, "ScaleUp",
                             f"{_describe(inputs)}, {path}, needs {up_need}: "
                             f"{current} -> {target}", inputs)
        # the count written is a need too: no scale-down within a stable window of it
        needs = (*needs, (now, target))
        return rec, replace(state, needs=needs, last_scale_up=now)

    slow = ""
    if (policy.target_response_time_seconds is not None and inputs.p90_latency is not None
            and inputs.p90_latency > policy.target_response_time_seconds):
        slow = (f"p90 {inputs.p90_latency:.2f} s is above the target "
                f"{policy.target_response_time_seconds:g} s")
    if stable_demand >= capacity * (1 - policy.tolerance) or stable_need >= current:
        if slow:
            return _hold(current, "LatencyAboveTarget",
                         f"{slow} while {_describe(inputs)} fits {current} replicas: the "
                         "time is spent upstream, more replicas would not help",
                         inputs), state
        return _hold(current, "WithinTarget",
                     f"{_describe(inputs)} fits {current} replicas", inputs), state

    window_need = max(n for _, n in needs)
    stable_s = f"{policy.stable_window_seconds:g} s"
    if now - state.started_at < policy.stable_window_seconds:
        return _hold(current, "RestartHold",
                     f"started {now - state.started_at:.0f} s ago: no scale-down within the "
                     f"first {stable_s}", inputs), state
    if missing:
        return _hold(current, "MetricsMissing",
                     f"no fresh metrics from {len(missing)} Ready pod(s) "
                     f"({', '.join(missing[:3])}): no scale-down", inputs), state
    if slow:
        return _hold(current, "LatencyAboveTarget", f"{slow}: no scale-down", inputs), state
    if (inputs.cpu_utilization is not None
            and inputs.cpu_utilization > policy.cpu_guard_utilization):
        return _hold(current, "CPUAboveGuard",
                     f"CPU at {inputs.cpu_utilization:.0%} of the pods' share: no scale-down",
                     inputs), state
    if window_need >= current:
        return _hold(current, "StabilizingScaleDown",
                     f"{_describe(inputs)} needs {stable_need}, but {window_need} were needed "
                     f"within the last {stable_s}", inputs), state
    if (state.last_scale_down is not None
            and now - state.last_scale_down < policy.scale_down_every):
        return _hold(current, "ScaleDownRateLimited",
                     f"last scale-down {now - state.last_scale_down:.0f} s ago; at most one "
                     f"per {policy.scale_down_every:g} s", inputs), state
    floor = math.ceil(current * (1 - policy.max_scale_down_fraction))
    target = max(window_need, floor, policy.min_replicas)
    rec = Recommendation(target, current, "ScaleDown",
                         f"{_describe(inputs)} needed at most {window_need} replicas for "
                         f"{stable_s}: {current} -> {target}", inputs)
    return rec, replace(state, last_scale_down=now)
