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
    # Until the autoscaler has a recommendation, spec.replicas holds (and status says so).
    Row("custom", "kubectl scale aa, no autoscaler yet", 3, 1, "agent", 3,
        scaling="AutoscalerNotRunning"),
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
