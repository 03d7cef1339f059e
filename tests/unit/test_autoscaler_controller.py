"""The autoscaler's knobs come from the agent's spec; its own writes outrank a lagging cache."""

from __future__ import annotations

from atomic_operator.api import AtomicAgent
from atomic_operator.autoscaler.controller import (
    WRITE_MEMORY_SECONDS,
    AgentScaler,
    cpu_cores,
    policy_for,
)
from atomic_operator.autoscaler.decision import State
from atomic_operator.handlers.autoscaler import metrics_targets
from tests.support.manifests import variant


def spec(**autoscaling: object) -> AtomicAgent:
    return AtomicAgent.model_validate(variant("task-processor", {"spec": {
        "autoscaling": {"mode": "custom", "targetInFlightPerReplica": None, **autoscaling},
        "concurrency": {"maxInFlight": 10}}}))


def test_policy_from_spec_with_defaults() -> None:
    policy = policy_for(spec().spec)
    assert policy.target_per_replica == 8.0  # 80 % of maxInFlight
    assert policy.stable_window_seconds == 300
    custom = policy_for(spec(minReplicas=2, maxReplicas=7, targetInFlightPerReplica=3,
                             targetResponseTimeSeconds=4,
                             scaleDownStabilizationSeconds=20).spec)
    assert (custom.min_replicas, custom.max_replicas) == (2, 7)
    assert custom.target_per_replica == 3
    assert custom.target_response_time_seconds == 4
    assert custom.stable_window_seconds == 20
    assert custom.averaging_seconds == 20  # never longer than the stable window


def test_cpu_request_in_cores() -> None:
    def with_cpu(cpu: str | None) -> float:
        resources = {"requests": {"cpu": cpu}} if cpu else None  # merge patch: removed
        return cpu_cores(AtomicAgent.model_validate(variant("task-processor", {"spec": {
            "resources": resources}})).spec)

    assert with_cpu("250m") == 0.25
    assert with_cpu("2") == 2.0
    assert with_cpu(None) == 1.0


def test_our_write_outranks_the_cache_for_a_while() -> None:
    now = [100.0]
    scaler = AgentScaler(scraper=None, state=State(started_at=0),  # type: ignore[arg-type]
                         clock=lambda: now[0])
    assert scaler.current(3) == 3
    scaler.wrote(8)
    assert scaler.current(3) == 8  # a copy from before our write
    now[0] += 30
    assert scaler.current(3) == 8  # a watch lagging by half a minute still cannot undo it
    assert scaler.current(8) == 8  # the copy caught up
    assert scaler.current(5) == 5  # from now on a different count is someone else's
    scaler.wrote(6)
    now[0] += WRITE_MEMORY_SECONDS + 1
    assert scaler.current(3) == 3  # never forever


def test_a_copy_older_than_one_seen_is_stale() -> None:
    scaler = AgentScaler(scraper=None, state=State(started_at=0),  # type: ignore[arg-type]
                         clock=lambda: 0.0)
    assert scaler.current(2, generation=3) == 2
    assert scaler.current(1, generation=2) == 2  # an older copy (the index lagging)
    assert scaler.current(4, generation=4) == 4


def test_a_write_after_a_decision_is_held_over_that_decision() -> None:
    from atomic_operator.autoscaler.decision import Recommendation

    now = [100.0]
    scaler = AgentScaler(scraper=None, state=State(started_at=0),  # type: ignore[arg-type]
                         clock=lambda: now[0])
    assert scaler.observation() is None
    scaler.last, scaler.decided_at = Recommendation(1, 1, "WaitingForPods", "..."), 100.0
    now[0] = 101.0
    scaler.wrote(2)  # the reconcile created the Deployment at 2 after that decision
    scaler.current(2)  # and the watch shows it already
    held = scaler.observation()
    assert held is not None and held.desired == 2
    # the count held is the write's; what the autoscaler says is still its last decision
    # (not AutoscalerNotRunning, which flickered after every write)
    assert held.condition.reason == "WaitingForPods"
    fresh = AgentScaler(scraper=None, state=State(started_at=0),  # type: ignore[arg-type]
                        clock=lambda: now[0])
    fresh.wrote(3)  # a count held before any decision: that one is "not running yet"
    before = fresh.observation()
    assert before is not None and before.condition.reason == "AutoscalerNotRunning"


def test_metrics_targets_are_the_ready_endpoints_metrics_port() -> None:
    slices = [{"addressType": "IPv4", "ports": [{"name": "http", "port": 8080},
                                                {"name": "metrics", "port": 9090}],
               "endpoints": [
                   {"addresses": ["10.244.0.3"], "conditions": {"ready": True},
                    "targetRef": {"kind": "Pod", "name": "a-1"}},
                   {"addresses": ["10.244.0.4"], "conditions": {"ready": False},
                    "targetRef": {"kind": "Pod", "name": "a-2"}},
                   {"addresses": ["10.244.0.5"], "targetRef": {"kind": "Pod", "name": "a-0"}}]},
              {"addressType": "FQDN", "ports": [{"name": "metrics", "port": 9090}],
               "endpoints": [{"addresses": ["x.example"]}]}]
    assert {(t.pod, t.url) for t in metrics_targets(slices)} == {
        ("a-0", "http://10.244.0.5:9090/metrics"), ("a-1", "http://10.244.0.3:9090/metrics")}
