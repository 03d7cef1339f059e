"""The scaling rule over synthetic series, on a fake clock (the rule takes ``now`` as input)."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field, replace

import pytest

from atomic_operator.autoscaler.decision import (
    Observation,
    PodSample,
    Policy,
    Recommendation,
    State,
    aggregate,
    decide,
)

TARGET = 4.0  # in flight per replica
POLICY = Policy(min_replicas=1, max_replicas=50, target_per_replica=TARGET,
                stable_window_seconds=300)


def sample(name: str, now: float, in_flight: float, **kw: float | None) -> PodSample:
    return PodSample(name=name, scraped_at=now, in_flight=in_flight,
                     queued=kw.pop("queued", 0.0) or 0.0, **kw)  # type: ignore[arg-type]


@dataclass
class Loop:
    """The operator's loop in miniature: observe every interval, apply what is decided.

    ``ready`` is how many pods report; new replicas become Ready ``startup`` seconds after
    the write that created them, which is what makes "starting pods count" testable.
    """

    policy: Policy = POLICY
    replicas: int = 1
    now: float = 0.0
    warm: bool = True
    startup: float = 0.0
    state: State = field(init=False)
    history: list[tuple[float, Recommendation]] = field(default_factory=list)
    pending: list[tuple[float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        started = self.now - (self.policy.stable_window_seconds if self.warm else 0)
        self.state = State(started_at=started)

    @property
    def ready(self) -> int:
        late = sum(n for at, n in self.pending if at > self.now)
        return max(0, self.replicas - late)

    def tick(self, demand: float, *, stale: int = 0, **per_pod: float | None) -> Recommendation:
        """One observation with `demand` spread over the Ready pods; `stale` of them answer
        with a sample from long ago."""
        ready = self.ready
        pods = []
        for i in range(ready):
            at = self.now - 60 if i < stale else self.now
            pods.append(sample(f"p{i}", at, demand / ready, **dict(per_pod)))
        rec, self.state = decide(self.policy, self.state,
                                 Observation(self.now, self.replicas, tuple(pods)))
        self.history.append((self.now, rec))
        if rec.desired_replicas > self.replicas:
            self.pending.append((self.now + self.startup, rec.desired_replicas - self.replicas))
        self.replicas = rec.desired_replicas
        self.now += self.policy.interval_seconds
        return rec

    def run(self, seconds: float, demand: float, stale: int = 0,
            **kw: float | None) -> list[Recommendation]:
        ticks = int(seconds / self.policy.interval_seconds)
        return [self.tick(demand, stale=stale, **kw) for _ in range(ticks)]

    def changes(self) -> list[tuple[float, Recommendation]]:
        return [(t, r) for t, r in self.history if r.changes]


def test_a_load_step_is_met_in_one_write_within_two_ticks() -> None:
    loop = Loop()
    loop.run(60, demand=TARGET * 0.8)
    assert loop.changes() == []
    step_at = loop.now
    loop.run(20, demand=TARGET * 8)
    (t, first), *_ = loop.changes()
    assert t - step_at <= 2 * POLICY.interval_seconds
    assert first.reason == "ScaleUp"
    assert first.desired_replicas >= 0.9 * 8
    assert "needs 8" in first.message and "1 -> 8" in first.message


def test_a_one_tick_spike_does_not_scale() -> None:
    loop = Loop(replicas=2)
    loop.run(30, demand=TARGET * 1.8)
    loop.tick(TARGET * 10)
    loop.run(10, demand=TARGET * 1.8)
    assert loop.changes() == []


def test_starting_pods_count_as_capacity_so_one_burst_is_scaled_once() -> None:
    # the Ready pod keeps reporting the whole burst for 30 s while nine pods start
    loop = Loop(startup=30)
    loop.run(10, demand=TARGET * 0.5)
    loop.run(40, demand=TARGET * 10)
    ups = [r for _, r in loop.changes()]
    assert [r.desired_replicas for r in ups] == [10]


def test_scale_up_is_bounded_by_the_max_step_and_by_max_replicas() -> None:
    loop = Loop(policy=replace(POLICY, max_scale_up_factor=2.0, min_scale_up_step=1))
    loop.run(12, demand=TARGET * 9)
    assert [r.desired_replicas for _, r in loop.changes()] == [2, 4, 8]
    # the last 12 % is within the fast path's tolerance: the 60 s mean takes it
    loop.run(40, demand=TARGET * 9)
    assert [r.desired_replicas for _, r in loop.changes()] == [2, 4, 8, 9]
    capped = Loop(policy=replace(POLICY, max_replicas=5))
    capped.run(10, demand=TARGET * 9)
    assert capped.replicas == 5
    assert capped.history[-1][1].reason == "AtMaximum"
    assert "maxReplicas is 5" in capped.history[-1][1].message


def test_stationary_noise_for_thirty_minutes_changes_nothing() -> None:
    rng = random.Random(7)
    loop = Loop(replicas=4)
    for _ in range(int(1800 / POLICY.interval_seconds)):
        loop.tick(TARGET * 3.5 * rng.uniform(0.8, 1.2))
    assert loop.changes() == []


def test_square_wave_scales_down_at_most_once_per_stable_window() -> None:
    loop = Loop(replicas=1)
    for _ in range(15):  # 30 minutes of 1x <-> 3x, 120 s period
        loop.run(60, demand=TARGET * 1)
        loop.run(60, demand=TARGET * 3)
    downs = [t for t, r in loop.changes() if r.desired_replicas < r.current_replicas]
    for a, b in itertools.pairwise(downs):
        assert b - a >= 300
    assert len(downs) <= 1800 / 300


def test_end_of_burst_scales_down_only_after_the_stable_window_at_most_half_per_minute(
) -> None:
    loop = Loop(replicas=1)
    loop.run(60, demand=TARGET * 8)
    assert loop.replicas == 8
    end = loop.now
    loop.run(900, demand=TARGET * 1)
    downs = [(t, r) for t, r in loop.changes() if r.reason == "ScaleDown"]
    assert downs[0][0] - end >= 300
    for (a, _), (b, _) in itertools.pairwise(downs):
        assert b - a >= POLICY.scale_down_period_seconds
    for _, r in downs:
        assert r.desired_replicas >= math.ceil(r.current_replicas / 2)
    assert loop.replicas == 1
    held = {r.reason for t, r in loop.history if end < t < downs[0][0]}
    assert "StabilizingScaleDown" in held
    assert "needed within the last 300 s" in next(
        r.message for t, r in loop.history if r.reason == "StabilizingScaleDown")


def test_missing_metrics_never_scale_down() -> None:
    loop = Loop(replicas=6)
    loop.run(600, demand=0.0, stale=1)  # one pod's sample is a minute old
    assert loop.replicas == 6
    assert loop.history[-1][1].reason == "MetricsMissing"
    assert "p0" in loop.history[-1][1].message
    # the pod comes back: no scale-down for one stable window, missing counted as needed
    back = loop.now
    loop.run(600, demand=0.0)
    first_down = next(t for t, r in loop.changes() if r.reason == "ScaleDown")
    assert first_down - back >= 300


def test_no_pod_answering_holds_and_scale_up_uses_the_pods_that_answer() -> None:
    loop = Loop(replicas=3)
    loop.run(30, demand=0.0, stale=3)
    assert loop.replicas == 3
    assert loop.history[-1][1].reason == "MetricsMissing"
    loop.run(4, demand=TARGET * 12, stale=2)  # one pod of three reports 4 x TARGET
    assert [(r.reason, r.desired_replicas) for _, r in loop.changes()] == [("ScaleUp", 4)]


def test_a_sample_older_than_three_intervals_is_missing() -> None:
    state = State(started_at=-1000)
    old = PodSample("p0", scraped_at=100 - 3 * POLICY.interval_seconds - 0.1, in_flight=0)
    rec, _ = decide(POLICY, state, Observation(100, 4, (old,)))
    assert rec.reason == "MetricsMissing"
    edge = replace(old, scraped_at=100 - 3 * POLICY.interval_seconds)
    rec, _ = decide(POLICY, state, Observation(100, 4, (edge,)))
    assert rec.reason != "MetricsMissing"


def test_no_ready_pod_waits() -> None:
    rec, _ = decide(POLICY, State(started_at=0), Observation(10, 2, ()))
    assert (rec.desired_replicas, rec.reason) == (2, "WaitingForPods")


def test_provider_throttling_freezes_scale_up() -> None:
    loop = Loop(replicas=2)
    loop.run(20, demand=TARGET * 6, upstream_error_rate=5.0, error_rate=6.0)
    assert loop.replicas == 2
    rec = loop.history[-1][1]
    assert rec.reason == "UpstreamSaturated"
    assert "83% of errors" in rec.message
    # when the errors are our own 429s (capacity), it scales
    loop.run(60, demand=TARGET * 6, upstream_error_rate=0.0, error_rate=6.0)
    assert loop.replicas == 6


def test_latency_is_a_guard_not_a_driver() -> None:
    policy = replace(POLICY, target_response_time_seconds=1.0)
    loop = Loop(policy=policy, replicas=4)
    loop.run(600, demand=TARGET * 1, p90_latency=5.0)
    assert loop.changes() == []  # neither up (demand fits) nor down (latency high)
    assert loop.history[-1][1].reason == "LatencyAboveTarget"
    assert "upstream" in loop.history[0][1].message or "no scale-down" in \
        loop.history[-1][1].message
    loop.run(400, demand=TARGET * 1, p90_latency=0.2)
    assert loop.replicas < 4


def test_cpu_is_a_guard_not_a_driver() -> None:
    loop = Loop(replicas=3)
    loop.run(600, demand=TARGET * 0.5, cpu_utilization=0.95)
    assert loop.replicas == 3
    assert loop.history[-1][1].reason == "CPUAboveGuard"
    busy = Loop(replicas=1)
    busy.run(60, demand=TARGET * 0.5, cpu_utilization=1.0)
    assert busy.changes() == []


def test_after_a_restart_no_scale_down_for_one_stable_window() -> None:
    loop = Loop(replicas=6, warm=False)
    loop.run(298, demand=0.0)
    assert loop.replicas == 6
    assert loop.history[-1][1].reason == "RestartHold"
    loop.run(10, demand=0.0)
    assert loop.replicas == 3


def test_bounds_are_applied_before_anything_else() -> None:
    policy = replace(POLICY, min_replicas=2, max_replicas=4)
    rec, _ = decide(policy, State(started_at=0), Observation(1, 1, ()))
    assert (rec.desired_replicas, rec.reason) == (2, "BelowMinimum")
    rec, _ = decide(policy, State(started_at=0), Observation(1, 9, ()))
    assert (rec.desired_replicas, rec.reason) == (4, "AboveMaximum")


def twice(policy: Policy, pod: PodSample, replicas: int = 1) -> Recommendation:
    """The same sample seen on two ticks: a level held over the fast window."""
    _, state = decide(policy, State(started_at=-300),
                      Observation(-2, replicas, (replace(pod, scraped_at=-2),)))
    rec, _ = decide(policy, state, Observation(0, replicas, (pod,)))
    return rec


def test_littles_law_when_only_rate_and_latency_are_known() -> None:
    pod = PodSample("p0", scraped_at=0, request_rate=10.0, mean_latency=2.0)
    assert aggregate([pod], 0, TARGET).demand == pytest.approx(20.0)
    assert twice(POLICY, pod).desired_replicas == 5


def test_rejected_requests_and_the_backlog_add_to_the_need() -> None:
    # a saturated pod: 4 in flight, 4 queued, 8 rejections/s at 1 s -> demand 16
    pod = sample("p0", 0, 4.0, queued=4.0, rejected_rate=8.0, request_rate=4.0,
                 mean_latency=1.0)
    inputs = aggregate([pod], 0, TARGET)
    assert inputs.demand == pytest.approx(16.0)
    rec = twice(POLICY, pod)
    assert rec.desired_replicas == math.ceil(16 / TARGET)  # the queue is in the demand
    assert "rejected 8.0/s" in rec.message
    # the drain term adds headroom only from 10 replicas on, at most 10 % of them:
    # 40 in flight + 40 queued at 1 s is 20 replicas, +2 (not +4) to drain in 5 s
    big = sample("p0", 0, 40.0, queued=40.0, request_rate=40.0, mean_latency=1.0)
    rec = twice(replace(POLICY, drain_seconds=5.0), big, replicas=3)
    assert rec.desired_replicas == 20 + 2


def test_a_step_to_48_in_flight_asks_for_the_8_replicas_it_needs() -> None:
    # 6 per replica, a 32-request queue at 10 s per call: the drain term alone would ask
    # for ceil(32 x 10 / (6 x 30)) = 2 more (10, +25 %); bounded, the write is the need
    policy = replace(POLICY, target_per_replica=6.0, max_replicas=10)
    pod = sample("p0", 0, 16.0, queued=32.0, request_rate=1.6, mean_latency=10.0)
    rec = twice(policy, pod, replicas=2)
    assert rec.reason == "ScaleUp"
    assert rec.desired_replicas == 8
    assert "needs 8" in rec.message


def test_inputs_go_to_status_in_camel_case_without_absent_figures() -> None:
    pod = sample("p0", 0, 3.0, request_rate=2.0, mean_latency=1.5)
    rec, _ = decide(POLICY, State(started_at=-300), Observation(0, 1, (pod,)))
    assert rec.inputs is not None
    status = rec.inputs.as_status()
    assert status["inFlight"] == 3.0 and status["meanLatencySeconds"] == 1.5
    assert "p90LatencySeconds" not in status and "cpuUtilization" not in status
    assert status["podsReporting"] == 1 and status["podsMissing"] == 0


def test_the_first_sample_after_a_start_scales_nothing_up() -> None:
    loop = Loop(replicas=2, warm=False)
    first = loop.tick(TARGET * 2.5)  # a lone high sample
    assert not first.changes
    assert loop.tick(TARGET * 2.5).desired_replicas == 3  # held over the fast window


def test_inputs_fit_the_status_model_field_for_field() -> None:
    from atomic_operator.api.agent import AutoscalingInputs

    pod = sample("p0", 0, 3.0, request_rate=2.0, mean_latency=1.5, p90_latency=2.0,
                 upstream_error_rate=1.0, error_rate=2.0, cpu_utilization=0.5)
    rec, _ = decide(POLICY, State(started_at=-300), Observation(0, 1, (pod,)))
    assert rec.inputs is not None
    wire = rec.inputs.as_status()
    model = AutoscalingInputs.model_validate(wire)
    assert model.model_dump(by_alias=True, exclude_none=True) == wire
    assert set(wire) == {f.alias for f in AutoscalingInputs.model_fields.values()}
