"""The replica-ownership table: every autoscaling mode against every writer of replicas.

Each row is one situation: the agent's mode, who just wrote a replica count and where
(its effect on the agent's spec.replicas, the Deployment's live count, the external
autoscalers the indexes found, the custom autoscaler's recommendation), and what the
policy must answer: who owns the count, what the operator writes to the Deployment's scale
subresource and under which field manager, and what ScalingActive says.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from atomic_operator.api import AtomicAgent
from atomic_operator.conditions import Cond
from atomic_operator.replicas import (
    AutoscalerObservation,
    ExternalAutoscaler,
    ReplicaObservation,
    plan_replicas,
)
from atomic_operator.settings import AUTOSCALER_FIELD_MANAGER, FIELD_MANAGER
from tests.support.manifests import variant

OPERATOR = FIELD_MANAGER
AUTOSCALER = AUTOSCALER_FIELD_MANAGER
USER_HPA = ExternalAutoscaler("HorizontalPodAutoscaler", "user-hpa")
KEDA = ExternalAutoscaler("ScaledObject", "keda-so")
KEDA_HPA = ExternalAutoscaler("HorizontalPodAutoscaler", "keda-hpa-keda-so")
AGENT_HPA = ExternalAutoscaler("HorizontalPodAutoscaler", "agent-hpa", target="AtomicAgent")


@dataclass(frozen=True)
class Row:
    mode: str
    writer: str
    spec_replicas: int
    live: int
    owner: str
    write: int | None
    manager: str = OPERATOR
    scaling: str | None = None
    fresh: bool = False
    external: tuple[ExternalAutoscaler, ...] = ()
    recommends: int | None = None


TABLE = [
    # mode none: the agent's spec.replicas (its scale subresource) is the truth.
    Row("none", "kubectl scale aa", 3, 1, "agent", 3),
    Row("none", "HPA on the agent", 4, 3, "agent", 4),
    Row("none", "HPA on the Deployment", 1, 5, "external", None,
        scaling="ExternalAutoscaler", external=(USER_HPA,)),
    Row("none", "KEDA on the Deployment", 1, 5, "external", None,
        scaling="ExternalAutoscaler", external=(KEDA, KEDA_HPA)),
    Row("none", "operator's autoscaler", 1, 1, "agent", None, recommends=4),
    Row("none", "kubectl scale deployment", 1, 4, "agent", 1),
    # mode hpa: the operator's HPA owns it; the operator only lifts a fresh Deployment.
    Row("hpa", "kubectl scale aa", 3, 2, "hpa", None),
    Row("hpa", "HPA on the agent", 4, 2, "hpa", None),
    Row("hpa", "HPA on the Deployment", 1, 5, "external", None,
        scaling="ExternalAutoscaler", external=(USER_HPA,)),
    Row("hpa", "KEDA on the Deployment", 1, 5, "external", None,
        scaling="ExternalAutoscaler", external=(KEDA,)),
    Row("hpa", "operator's autoscaler", 1, 2, "hpa", None, recommends=4),
    Row("hpa", "a fresh Deployment", 1, 1, "hpa", 2, fresh=True),
    Row("hpa", "the HPA itself", 1, 6, "hpa", None),
    # mode custom: the operator's autoscaler owns it, under its own field manager.
    Row("custom", "kubectl scale aa", 3, 2, "autoscaler", None, AUTOSCALER,
        scaling="Scaling", recommends=2),
    Row("custom", "HPA on the agent", 4, 2, "autoscaler", None, AUTOSCALER,
        scaling="Scaling", recommends=2),
    Row("custom", "HPA on the Deployment", 1, 5, "external", None,
        scaling="ExternalAutoscaler", external=(USER_HPA,), recommends=2),
    Row("custom", "KEDA on the Deployment", 1, 5, "external", None,
        scaling="ExternalAutoscaler", external=(KEDA,), recommends=2),
    Row("custom", "operator's autoscaler", 1, 1, "autoscaler", 4, AUTOSCALER,
        scaling="Scaling", recommends=4),
    # Until the autoscaler has a recommendation (the operator just restarted) the count it
    # reached holds; only a count outside min..max (2..8) is brought inside.
    Row("custom", "kubectl scale aa, no autoscaler yet", 3, 6, "autoscaler", None, AUTOSCALER,
        scaling="AutoscalerNotRunning"),
    Row("custom", "below minReplicas, no autoscaler yet", 3, 1, "autoscaler", 2, AUTOSCALER,
        scaling="AutoscalerNotRunning"),
    Row("custom", "a fresh Deployment, no autoscaler yet", 3, 1, "autoscaler", 3, AUTOSCALER,
        scaling="AutoscalerNotRunning", fresh=True),
    # An HPA or ScaledObject on the agent writes spec.replicas: the Deployment follows it,
    # whatever the mode, and the operator's own autoscaling stands down.
    Row("none", "HPA found on the agent", 4, 3, "agent", 4, scaling="ExternalAutoscaler",
        external=(AGENT_HPA,)),
    Row("hpa", "HPA found on the agent", 4, 2, "agent", 4, scaling="ExternalAutoscaler",
        external=(AGENT_HPA,)),
    Row("custom", "HPA found on the agent", 4, 2, "agent", 4, scaling="ExternalAutoscaler",
        external=(AGENT_HPA,), recommends=7),
    Row("custom", "KEDA on both", 4, 2, "external", None, scaling="ExternalAutoscaler",
        external=(AGENT_HPA, KEDA), recommends=7),
]


def _spec(mode: str, replicas: int) -> AtomicAgent:
    return AtomicAgent.model_validate(variant("task-processor", {"spec": {
        "replicas": replicas, "autoscaling": {"mode": mode, "minReplicas": 2,
                                              "maxReplicas": 8}}}))


@pytest.mark.parametrize("row", TABLE, ids=[f"{r.mode}-{r.writer}" for r in TABLE])
def test_replica_ownership(row: Row) -> None:
    recommendation = None if row.recommends is None else AutoscalerObservation(
        row.recommends, Cond("ScalingActive", "True", "Scaling", "in-flight 3.1/replica"))
    plan = plan_replicas(_spec(row.mode, row.spec_replicas).spec, ReplicaObservation(
        live=row.live, fresh=row.fresh, external=row.external, autoscaler=recommendation))
    assert (plan.owner, plan.write) == (row.owner, row.write)
    if plan.write is not None:
        assert plan.field_manager == row.manager
    assert (plan.scaling.reason if plan.scaling else None) == row.scaling
    # The operator renders its own HPA only while it owns the count.
    assert plan.operator_hpa == (row.owner == "hpa")


def test_external_autoscaler_is_named_and_wins_in_every_mode() -> None:
    for mode in ("none", "hpa", "custom"):
        plan = plan_replicas(_spec(mode, 3).spec, ReplicaObservation(
            live=7, external=(KEDA, USER_HPA)))
        assert plan.write is None and plan.desired == 7
        assert plan.scaling is not None and plan.scaling.status == "False"
        assert "HorizontalPodAutoscaler/user-hpa" in plan.scaling.message
        assert "ScaledObject/keda-so" in plan.scaling.message


def test_readiness_counts_against_the_owner() -> None:
    hpa = plan_replicas(_spec("hpa", 1).spec, ReplicaObservation(live=6))
    assert hpa.desired == 6  # the HPA's count, not spec.replicas
    none = plan_replicas(_spec("none", 3).spec, ReplicaObservation(live=1))
    assert none.desired == 3


def test_an_autoscaler_on_the_agent_is_named_and_stands_the_operator_down() -> None:
    plan = plan_replicas(_spec("custom", 4).spec, ReplicaObservation(
        live=2, external=(AGENT_HPA,)))
    assert plan.scaling is not None and plan.scaling.status == "False"
    assert "HorizontalPodAutoscaler/agent-hpa scales the agent" in plan.scaling.message
    none = plan_replicas(_spec("none", 4).spec, ReplicaObservation(
        live=4, external=(AGENT_HPA,)))
    assert none.scaling is not None and none.scaling.status == "True"
    assert none.write is None


def test_in_hpa_mode_scaling_active_is_the_hpas_own_word() -> None:
    from atomic_operator.replicas import hpa_condition, observe_deployment

    agent = AtomicAgent.model_validate(variant("task-processor", {"spec": {"autoscaling": {
        "mode": "hpa", "minReplicas": 1, "maxReplicas": 4}}}))
    hpa = {"metadata": {"name": "task-processor"}, "status": {"conditions": [
        {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale",
         "message": "the HPA controller was able to get the target's current scale"},
        {"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric",
         "message": "the HPA was unable to compute the replica count: failed to get cpu "
                    "utilization: unable to get metrics for resource cpu: no metrics "
                    "returned from resource metrics API"}]}}
    deployment = {"metadata": {"generation": 2}, "spec": {"replicas": 2}}
    plan = plan_replicas(agent.spec, observe_deployment(deployment, hpa=hpa_condition(hpa)))
    assert (plan.owner, plan.write) == ("hpa", None)
    assert plan.scaling == Cond(
        "ScalingActive", "False", "FailedGetResourceMetric",
        "HorizontalPodAutoscaler/task-processor: the HPA was unable to compute the replica "
        "count: failed to get cpu utilization: unable to get metrics for resource cpu: no "
        "metrics returned from resource metrics API")
    # a failing AbleToScale comes first; a working HPA says True; none said yet: nothing
    hpa["status"]["conditions"][0].update(status="False", reason="FailedGetScale")
    failing = hpa_condition(hpa)
    assert failing is not None and failing.reason == "FailedGetScale"
    hpa["status"]["conditions"] = [{"type": "ScalingActive", "status": "True",
                                    "reason": "ValidMetricFound", "message": "ok"}]
    plan = plan_replicas(agent.spec, observe_deployment(deployment, hpa=hpa_condition(hpa)))
    assert plan.scaling is not None and (plan.scaling.status, plan.scaling.reason) == (
        "True", "ValidMetricFound")
    assert hpa_condition({"metadata": {"name": "x"}}) is None
    assert plan_replicas(agent.spec, observe_deployment(deployment)).scaling is None
