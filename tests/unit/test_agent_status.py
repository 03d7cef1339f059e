"""The one status function of an AtomicAgent, and the ConfigMap size check's boundary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from atomic_operator.api import AtomicAgent
from atomic_operator.checks import MAX_CONFIG_BYTES, check_agent
from atomic_operator.problems import SpecProblem
from atomic_operator.reconcile.agent_status import AgentObservation, agent_status, progress_only
from atomic_operator.reconcile.status_writer import wire
from atomic_operator.render import AgentIdentity, config_bytes, render_agent, runtime_config
from atomic_operator.replicas import ExternalAutoscaler, ReplicaObservation, plan_replicas
from atomic_operator.settings import OperatorSettings
from tests.support.manifests import variant

ROOT = Path(__file__).resolve().parent.parent.parent


def _agent(patch: dict[str, Any] | None = None) -> AtomicAgent:
    return AtomicAgent.model_validate(variant("task-processor", patch or {"spec": {
        "autoscaling": {"mode": "none"}, "replicas": 2}}))


def _deployment(ready: int, replicas: int = 2) -> dict[str, Any]:
    return {"metadata": {"generation": 2},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": 2, "replicas": replicas,
                       "updatedReplicas": replicas, "availableReplicas": ready,
                       "readyReplicas": ready}}


def _status(agent: AtomicAgent | None, previous: dict[str, Any], seen: AgentObservation,
            generation: int = 3) -> dict[str, Any]:
    return wire(agent_status(agent, "a", "ns", generation, previous, seen, "cluster.local"))


def _conds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def _plan(agent: AtomicAgent, deployment: dict[str, Any],
          external: tuple[ExternalAutoscaler, ...] = ()) -> Any:
    return plan_replicas(agent.spec, ReplicaObservation(
        deployment["spec"]["replicas"], False, external))


def test_after_apply_every_field_comes_from_the_observation() -> None:
    agent = _agent()
    dep = _deployment(ready=2)
    status = _status(agent, {}, AgentObservation(dep, _plan(agent, dep), config_hash="h1"))
    assert status["observedGeneration"] == 3 and status["configHash"] == "h1"
    assert status["endpoint"] == "http://a.ns.svc.cluster.local:80"
    assert status["selector"] == "atomicagents.io/agent=a"
    assert (status["replicas"], status["readyReplicas"], status["desiredReplicas"]) == (2, 2, 2)
    assert _conds(status)["Ready"] == ("True", "Available")
    assert "ScalingActive" not in _conds(status)
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])


def test_a_deployment_event_keeps_what_only_a_reconcile_knows() -> None:
    agent = _agent()
    dep = _deployment(ready=2)
    applied = _status(agent, {}, AgentObservation(dep, _plan(agent, dep), config_hash="h1"))
    # The spec moved to generation 4, but only the Deployment changed so far.
    followed = _status(agent, applied, AgentObservation(_deployment(ready=1),
                                                        _plan(agent, dep)), generation=4)
    assert followed["observedGeneration"] == 3 and followed["configHash"] == "h1"
    assert followed["readyReplicas"] == 1
    assert _conds(followed)["Ready"] == ("False", "Unavailable")
    assert all(c["observedGeneration"] == 3 for c in followed["conditions"])


def test_a_spec_problem_stays_until_a_reconcile_clears_it() -> None:
    agent = _agent()
    problem = SpecProblem("spec.model.apiKeySecretRef.name", "MissingSecret", "no Secret x")
    broken = _status(agent, {}, AgentObservation(problems=[problem]))
    assert _conds(broken)["Ready"] == ("False", "MissingSecret")
    assert _conds(broken)["Degraded"] == ("True", "MissingSecret")
    dep = _deployment(ready=2)
    assert _status(agent, broken, AgentObservation(dep, _plan(agent, dep))) == broken
    assert _status(None, broken, AgentObservation(dep)) == broken
    fixed = _status(agent, broken, AgentObservation(dep, _plan(agent, dep), config_hash="h"))
    assert _conds(fixed)["Ready"] == ("True", "Available")


def test_scaling_active_comes_and_goes_with_the_replica_owner() -> None:
    agent = _agent()
    dep = _deployment(ready=5, replicas=5)
    hpa = (ExternalAutoscaler("HorizontalPodAutoscaler", "theirs"),)
    taken = _status(agent, {}, AgentObservation(dep, _plan(agent, dep, hpa), config_hash="h"))
    assert _conds(taken)["ScalingActive"] == ("False", "ExternalAutoscaler")
    assert taken["desiredReplicas"] == 5  # the external autoscaler's count, not spec's 2
    assert _conds(taken)["Ready"] == ("True", "Available")
    released = _status(agent, taken, AgentObservation(dep, _plan(agent, dep),
                                                      config_hash="h"))
    assert "ScalingActive" not in _conds(released)


def test_custom_mode_says_when_its_autoscaler_has_no_say() -> None:
    agent = _agent({"spec": {"autoscaling": {"mode": "custom"}}})
    dep = _deployment(ready=1, replicas=1)
    status = _status(agent, {}, AgentObservation(dep, _plan(agent, dep), config_hash="h"))
    assert _conds(status)["ScalingActive"] == ("False", "AutoscalerNotRunning")


def test_the_autoscalers_decision_is_in_status_and_leaves_with_it() -> None:
    from atomic_operator.api.agent import AutoscalingStatus
    from atomic_operator.conditions import Cond
    from atomic_operator.reconcile.status_writer import status_patch
    from atomic_operator.replicas import AutoscalerObservation

    agent = _agent({"spec": {"autoscaling": {"mode": "custom"}}})
    dep = _deployment(ready=1, replicas=1)
    why = AutoscalingStatus(reason="ScaleUp", message="demand 30 ...: 1 -> 4",
                            last_scale_time="2026-11-25T19:00:00Z")
    decided = plan_replicas(agent.spec, ReplicaObservation(1, False, (), AutoscalerObservation(
        4, Cond("ScalingActive", "True", "Autoscaling", "the operator's autoscaler ..."), why)))
    scaled = _status(agent, {}, AgentObservation(dep, decided, config_hash="h"))
    assert scaled["desiredReplicas"] == 4
    assert scaled["autoscaling"] == {"reason": "ScaleUp", "message": "demand 30 ...: 1 -> 4",
                                     "lastScaleTime": "2026-11-25T19:00:00Z"}
    assert _conds(scaled)["ScalingActive"] == ("True", "Autoscaling")
    # back to mode none: the explanation is removed, not left behind stale
    none = _agent()
    back = _status(none, scaled, AgentObservation(dep, _plan(none, dep), config_hash="h"))
    assert "autoscaling" not in back
    patch = status_patch(scaled, back)
    assert patch is not None and patch["autoscaling"] is None


def _schema_properties(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / f"{kind}.atomicagents.io.yaml").read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema["properties"]["status"]["properties"]  # type: ignore[no-any-return]


def test_what_is_written_is_what_the_crd_declares() -> None:
    agent = _agent({"spec": {"autoscaling": {"mode": "custom"}}})
    dep = _deployment(ready=1, replicas=1)
    status = _status(agent, {}, AgentObservation(dep, _plan(agent, dep), config_hash="h"))
    declared = _schema_properties("atomicagents")
    assert set(status) <= set(declared), set(status) - set(declared)
    condition_fields = set(declared["conditions"]["items"]["properties"])
    for cond in status["conditions"]:
        assert set(cond) <= condition_fields


def _padded(length: int) -> AtomicAgent:
    return _agent({"spec": {"systemPrompt": {"background": ["x" * (length + 1)]}}})


def test_size_check_measures_the_stored_bytes_at_the_boundary() -> None:
    base = config_bytes(runtime_config(_padded(0), "a", "ns"))
    exact = _padded(MAX_CONFIG_BYTES - base)
    stored = render_agent(exact, AgentIdentity("a", "ns", "u"), OperatorSettings())
    agent_json = stored.config_map["data"]["agent.json"]
    assert len(agent_json.encode()) == MAX_CONFIG_BYTES  # the exact bytes the ConfigMap holds
    for delta, fits in ((-1, True), (0, True), (1, False)):
        agent = _padded(MAX_CONFIG_BYTES - base + delta)
        reasons = [p.reason for p in check_agent(agent, runtime_config(agent, "a", "ns"))]
        assert ("ConfigTooLarge" not in reasons) is fits, (delta, reasons)


def test_the_size_message_names_the_kubectl_apply_limit() -> None:
    """Issue 22 #20: the docs said about 900 KB, but plain `kubectl apply` refuses anything
    over 256 KiB (its last-applied annotation); the message says how to apply such specs."""
    agent = _padded(MAX_CONFIG_BYTES)
    (problem,) = [p for p in check_agent(agent, runtime_config(agent, "a", "ns"))
                  if p.reason == "ConfigTooLarge"]
    assert "kubectl apply --server-side" in problem.message
    assert "256 KiB" in problem.message


@pytest.mark.parametrize("text", ["é" * 10, "\u2028 \"quoted\" \\ \n"])
def test_size_check_counts_escapes_as_stored(text: str) -> None:
    agent = _agent({"spec": {"systemPrompt": {"background": [text]}}})
    stored = render_agent(agent, AgentIdentity("a", "ns", "u"), OperatorSettings())
    assert config_bytes(stored.config) == len(stored.config_map["data"]["agent.json"].encode())


def test_conditions_keep_their_time_when_only_the_reason_changes() -> None:
    agent = _agent()
    dep = _deployment(ready=1)
    first = _status(agent, {}, AgentObservation(dep, _plan(agent, dep), config_hash="h"))
    later = _status(agent, first, AgentObservation(_deployment(ready=0), _plan(agent, dep)))
    before = {c["type"]: c["lastTransitionTime"] for c in first["conditions"]}
    after = {c["type"]: c["lastTransitionTime"] for c in later["conditions"]}
    assert before == after


def _rollout(updated: int, available: int, replicas: int = 2) -> dict[str, Any]:
    """A Deployment of generation 2 that has observed it, mid-rollout or done."""
    return {"metadata": {"generation": 2}, "spec": {"replicas": replicas},
            "status": {"observedGeneration": 2, "replicas": replicas,
                       "updatedReplicas": updated, "availableReplicas": available,
                       "readyReplicas": available}}


def _followed(agent: AtomicAgent, previous: dict[str, Any], dep: dict[str, Any]) -> Any:
    return agent_status(agent, "a", "ns", 3, previous, AgentObservation(dep, _plan(agent, dep)),
                        "cluster.local")


def test_only_a_rollouts_own_steps_are_progress() -> None:
    agent = _agent()
    rolling = _status(agent, {}, AgentObservation(_rollout(0, 0), _plan(agent, _rollout(0, 0)),
                                                  config_hash="h1"))
    assert _conds(rolling)["Ready"] == ("False", "RollingOut")
    # 0/2 updated, then 1/2, then all updated but none available: steps on the way
    assert progress_only(rolling, _followed(agent, rolling, _rollout(1, 0)))
    assert progress_only(rolling, _followed(agent, rolling, _rollout(2, 0)))
    # becoming Ready is written at once
    assert not progress_only(rolling, _followed(agent, rolling, _rollout(2, 2)))
    # so is failing
    stuck = _rollout(1, 0)
    stuck["status"]["conditions"] = [{"type": "Progressing", "status": "False",
                                      "reason": "ProgressDeadlineExceeded", "message": "late"}]
    assert not progress_only(rolling, _followed(agent, rolling, stuck))
    # and losing replicas once Ready is no rollout step
    ready = wire(_followed(agent, rolling, _rollout(2, 2)))
    assert not progress_only(ready, _followed(agent, ready, _rollout(2, 1)))
    # a spec problem is not a rollout
    problem = _status(agent, rolling, AgentObservation(problems=[
        SpecProblem("spec", "InvalidSchema", "bad")]))
    assert not progress_only(problem, _followed(agent, problem, _rollout(1, 0)))
