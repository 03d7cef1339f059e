"""Who owns an agent's replica count, and what the operator may write: the one rule.

Every writer asks here; nothing else decides. The rule (DESIGN.md, "Who owns the replica
count"):

- mode none: the agent's `spec.replicas` owns it (the agent's scale subresource, so
  `kubectl scale aa/x` and an HPA or KEDA pointed at the *agent* work); the operator copies
  it to the Deployment's scale subresource whenever they differ.
- mode hpa: the HorizontalPodAutoscaler the operator renders owns it; the operator only
  lifts a fresh Deployment to its initial count.
- mode custom: the operator's autoscaler owns it and writes the Deployment's scale
  subresource under its own field manager, never the agent's `spec.replicas` (so a GitOps
  tool sees no diff).
- any mode, with an HPA or KEDA ScaledObject of someone else on the *Deployment*: that
  autoscaler owns it; the operator writes nothing (and drops its own HPA) and reports
  ScalingActive=False, reason ExternalAutoscaler, naming it.

A pipeline's runner has no autoscaling modes: its `spec.runner.replicas` owns the count,
copied like an agent's in mode none, and an external autoscaler on the runner's Deployment
wins in the same way (`plan_runner_replicas`).

Until the custom autoscaler has an opinion (`AutoscalerObservation` is None: it does not
run, or has no metrics yet), custom mode keeps the agent's `spec.replicas`, and says so in
ScalingActive.

Pure: the observed world comes in as data (`ReplicaObservation`). Detecting external
autoscalers is the handlers' indexes' job; the autoscaler of issue #10 passes its
recommendation as `ReplicaObservation.autoscaler`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from atomic_operator.api.agent import AtomicAgentSpec
from atomic_operator.conditions import Cond
from atomic_operator.settings import AUTOSCALER_FIELD_MANAGER, FIELD_MANAGER

ReplicaOwner = Literal["agent", "hpa", "autoscaler", "external", "pipeline"]

SCALING_ACTIVE = "ScalingActive"
EXTERNAL_AUTOSCALER = "ExternalAutoscaler"


@dataclass(frozen=True)
class ExternalAutoscaler:
    """An HPA or KEDA ScaledObject that someone else points at an agent's Deployment."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class AutoscalerObservation:
    """What the operator's own autoscaler (custom mode) wants now.

    The extension point of issue #10: the autoscaler fills this from the agents' metrics;
    `plan_replicas` turns it into the write (under AUTOSCALER_FIELD_MANAGER) and the
    ScalingActive condition, and the status function copies `desired` into
    `status.desiredReplicas`.
    """

    desired: int
    """Replicas wanted, already within minReplicas..maxReplicas."""

    condition: Cond
    """ScalingActive as the autoscaler explains it (reason and message say why)."""


@dataclass(frozen=True)
class ReplicaObservation:
    """What the policy needs to know of the world besides the spec."""

    live: int | None = None
    """The Deployment's spec.replicas now; None when there is no Deployment yet."""

    fresh: bool = False
    """The Deployment was just created (generation 1): its count is the API default."""

    external: Sequence[ExternalAutoscaler] = ()
    """HPAs and ScaledObjects not rendered by the operator that target the Deployment."""

    autoscaler: AutoscalerObservation | None = None
    """The custom autoscaler's recommendation, if it has one."""


@dataclass(frozen=True)
class ReplicaPlan:
    """The policy's answer for one agent at one moment."""

    owner: ReplicaOwner
    desired: int
    """The count readiness is measured against (what the owner wants)."""

    write: int | None
    """What the operator writes to the Deployment's scale subresource now; None: nothing."""

    field_manager: str
    """The manager that write goes under."""

    scaling: Cond | None
    """ScalingActive, or None where there is nothing to say (mode none, nobody else)."""

    @property
    def operator_hpa(self) -> bool:
        """Whether the operator's own HPA is wanted (hpa mode, nobody else scaling)."""
        return self.owner == "hpa"


def replica_owner(spec: AtomicAgentSpec, external: Sequence[ExternalAutoscaler] = (),
                  autoscaler: AutoscalerObservation | None = None) -> ReplicaOwner:
    """Who owns the count; needs no live state, so rendering can ask it before applying."""
    if external:
        return "external"
    mode = spec.autoscaling.mode
    if mode == "hpa":
        return "hpa"
    if mode == "custom" and autoscaler is not None:
        return "autoscaler"
    return "agent"


def plan_replicas(spec: AtomicAgentSpec, seen: ReplicaObservation) -> ReplicaPlan:
    """Who owns the count, what readiness compares against, and what to write now."""
    owner = replica_owner(spec, seen.external, seen.autoscaler)
    live = seen.live
    if owner == "external":
        names = ", ".join(sorted(map(str, seen.external)))
        return ReplicaPlan(owner, live if live is not None else spec.replicas, None,
                           FIELD_MANAGER, Cond(
                               SCALING_ACTIVE, "False", EXTERNAL_AUTOSCALER,
                               f"{names} scales the Deployment: the operator writes no "
                               "replicas"))
    if owner == "hpa":
        initial = max(spec.replicas, spec.autoscaling.min_replicas)
        lift = seen.fresh and live is not None and live < initial
        return ReplicaPlan(owner, initial if lift or live is None else live,
                           initial if lift else None, FIELD_MANAGER, None)
    if owner == "autoscaler":
        assert seen.autoscaler is not None
        wanted = seen.autoscaler.desired
        return ReplicaPlan(owner, wanted, None if live == wanted else wanted,
                           AUTOSCALER_FIELD_MANAGER, seen.autoscaler.condition)
    scaling = None
    if spec.autoscaling.mode == "custom":
        scaling = Cond(SCALING_ACTIVE, "False", "AutoscalerNotRunning",
                       "the operator's autoscaler has no recommendation for this agent; "
                       "spec.replicas holds the count")
    wanted = spec.replicas
    return ReplicaPlan(owner, wanted, None if live == wanted else wanted, FIELD_MANAGER,
                       scaling)


def plan_runner_replicas(replicas: int, seen: ReplicaObservation) -> ReplicaPlan:
    """A pipeline runner's count: `spec.runner.replicas`, unless someone else scales it."""
    live = seen.live
    if seen.external:
        names = ", ".join(sorted(map(str, seen.external)))
        return ReplicaPlan("external", live if live is not None else replicas, None,
                           FIELD_MANAGER, Cond(
                               SCALING_ACTIVE, "False", EXTERNAL_AUTOSCALER,
                               f"{names} scales the runner's Deployment: the operator "
                               "writes no replicas"))
    return ReplicaPlan("pipeline", replicas, None if live == replicas else replicas,
                       FIELD_MANAGER, None)


def observe_deployment(deployment: Mapping[str, Any],
                       external: Sequence[ExternalAutoscaler] = (),
                       autoscaler: AutoscalerObservation | None = None) -> ReplicaObservation:
    """The observation a live Deployment gives (an empty mapping: none exists yet)."""
    if not deployment:
        return ReplicaObservation(None, False, tuple(external), autoscaler)
    live = (deployment.get("spec") or {}).get("replicas")
    fresh = (deployment.get("metadata") or {}).get("generation") == 1
    return ReplicaObservation(live, fresh, tuple(external), autoscaler)
