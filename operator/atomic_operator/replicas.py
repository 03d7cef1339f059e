"""Who owns an agent's replica count, and what the operator may write: the one rule.

Every writer asks here; nothing else decides. The rule (docs/architecture.md, "Replicas",
has it as a table):

- mode none: the agent's `spec.replicas` owns it (the agent's scale subresource, so
  `kubectl scale aa/x` and an HPA or KEDA pointed at the *agent* work); the operator copies
  it to the Deployment's scale subresource whenever they differ.
- mode hpa: the HorizontalPodAutoscaler the operator renders owns it; the operator only
  lifts a fresh Deployment to its initial count. ScalingActive is the HPA's own word on
  itself (`HpaCondition`): False with the HPA's reason and message when it cannot scale
  (e.g. `FailedGetResourceMetric` where no metrics API is served), True when it can.
- mode custom: the operator's autoscaler owns it and writes the Deployment's scale
  subresource under its own field manager, never the agent's `spec.replicas` (so a GitOps
  tool sees no diff).
- any mode, with an HPA or KEDA ScaledObject of someone else on the *Deployment*: that
  autoscaler owns it; the operator writes nothing (and drops its own HPA) and reports
  ScalingActive=False, reason ExternalAutoscaler, naming it.
- an HPA or ScaledObject on the *agent* (its scale subresource) writes the agent's
  `spec.replicas`, so the agent owns the count in every mode: the Deployment follows it,
  the operator's own HPA and autoscaler stand down (ScalingActive=False,
  ExternalAutoscaler, naming it), and in mode none ScalingActive=True says who scales.

A pipeline's runner has no autoscaling modes: its `spec.runner.replicas` owns the count,
copied like an agent's in mode none, and an external autoscaler on the runner's Deployment
wins in the same way (`plan_runner_replicas`).

Until the custom autoscaler has an opinion (`AutoscalerObservation` is None: the operator
just started, or the mode just became custom), custom mode holds the Deployment's count
as it is (only a new Deployment gets spec.replicas, and a count outside
minReplicas..maxReplicas is brought inside), so a restart never resets what the
autoscaler had reached; ScalingActive says so.

Pure: the observed world comes in as data (`ReplicaObservation`). Detecting external
autoscalers is the handlers' indexes' job; the custom autoscaler (`autoscaler/`) passes its
recommendation as `ReplicaObservation.autoscaler`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from atomic_operator.api.agent import AtomicAgentSpec, AutoscalingStatus
from atomic_operator.conditions import Cond, Status
from atomic_operator.k8s.kinds import TARGETS_AGENT, TARGETS_DEPLOYMENT, ScaleTarget
from atomic_operator.settings import AUTOSCALER_FIELD_MANAGER, FIELD_MANAGER

ReplicaOwner = Literal["agent", "hpa", "autoscaler", "external", "pipeline"]

SCALING_ACTIVE = "ScalingActive"
EXTERNAL_AUTOSCALER = "ExternalAutoscaler"


@dataclass(frozen=True)
class ExternalAutoscaler:
    """An HPA or KEDA ScaledObject that someone else points at an agent's Deployment, or
    at the agent itself."""

    kind: str
    name: str
    target: ScaleTarget = TARGETS_DEPLOYMENT

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class AutoscalerObservation:
    """What the operator's own autoscaler (custom mode) wants now.

    The custom autoscaler (`autoscaler/controller.py`) fills this from the agent's metrics;
    `plan_replicas` turns it into the write (under AUTOSCALER_FIELD_MANAGER) and the
    ScalingActive condition, and the status function copies `desired` into
    `status.desiredReplicas`.
    """

    desired: int
    """Replicas wanted, already within minReplicas..maxReplicas."""

    condition: Cond
    """ScalingActive as the autoscaler explains it (reason and message say why)."""

    explanation: AutoscalingStatus | None = None
    """The decision for status.autoscaling; it changes only when the decision does."""


@dataclass(frozen=True)
class HpaCondition:
    """What the operator's own HPA (mode hpa) says of itself in its status conditions."""

    name: str
    status: str
    reason: str
    message: str


def hpa_condition(hpa: Mapping[str, Any]) -> HpaCondition | None:
    """The HPA's first failing condition among AbleToScale and ScalingActive, else its
    ScalingActive; None before the HPA controller has said anything."""
    name = str((hpa.get("metadata") or {}).get("name", ""))
    found = {c.get("type"): c for c in (hpa.get("status") or {}).get("conditions") or []
             if isinstance(c, Mapping)}
    for kind in ("AbleToScale", "ScalingActive"):
        cond = found.get(kind)
        if cond is not None and cond.get("status") == "False":
            break
    else:
        cond = found.get("ScalingActive")
    if cond is None:
        return None
    return HpaCondition(name, str(cond.get("status", "Unknown")),
                        str(cond.get("reason") or kind), str(cond.get("message") or ""))


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

    hpa: HpaCondition | None = None
    """What the operator's own HPA says of itself (mode hpa), once it has said anything."""


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

    explanation: AutoscalingStatus | None = None
    """status.autoscaling while the operator's autoscaler owns the count; None otherwise."""

    @property
    def operator_hpa(self) -> bool:
        """Whether the operator's own HPA is wanted (hpa mode, nobody else scaling)."""
        return applies_hpa(self.owner)


def _split(external: Sequence[ExternalAutoscaler]
           ) -> tuple[list[ExternalAutoscaler], list[ExternalAutoscaler]]:
    on_deployment = [a for a in external if a.target == TARGETS_DEPLOYMENT]
    return on_deployment, [a for a in external if a.target == TARGETS_AGENT]


def custom_mode(mode: str | None) -> bool:
    """The operator's autoscaler is asked for counts (it ticks, scrapes and decides); whether
    its count is written is still `replica_owner`'s call (someone else's HPA wins)."""
    return mode == "custom"


def renders_hpa(spec: AtomicAgentSpec) -> bool:
    """The operator renders an HPA for the agent (mode hpa); it applies it only while the
    HPA owns the count (`applies_hpa`)."""
    return spec.autoscaling.mode == "hpa"


def applies_hpa(owner: ReplicaOwner) -> bool:
    """The operator's HPA is applied (kept) while it owns the count, deleted otherwise."""
    return owner == "hpa"


def wants_pdb(spec: AtomicAgentSpec) -> bool:
    """A PodDisruptionBudget only where more than one replica is ever wanted: with one, a
    budget of maxUnavailable 1 would guard nothing and block node drains for no reason."""
    least = spec.autoscaling.min_replicas if spec.autoscaling.mode != "none" else 0
    return max(spec.replicas, least) > 1


def replica_owner(spec: AtomicAgentSpec, external: Sequence[ExternalAutoscaler] = ()
                  ) -> ReplicaOwner:
    """Who owns the count; needs no live state, so rendering can ask it before applying.

    In custom mode the autoscaler owns it even before its first recommendation (it is
    then holding the count), so that nothing else writes in between."""
    on_deployment, on_agent = _split(external)
    if on_deployment:
        return "external"
    if on_agent:
        return "agent"
    mode = spec.autoscaling.mode
    if mode == "hpa":
        return "hpa"
    if mode == "custom":
        return "autoscaler"
    return "agent"


def plan_replicas(spec: AtomicAgentSpec, seen: ReplicaObservation) -> ReplicaPlan:
    """Who owns the count, what readiness compares against, and what to write now."""
    owner = replica_owner(spec, seen.external)
    live = seen.live
    on_deployment, on_agent = _split(seen.external)
    if owner == "external":
        names = ", ".join(sorted(map(str, on_deployment)))
        return ReplicaPlan(owner, live if live is not None else spec.replicas, None,
                           FIELD_MANAGER, Cond(
                               SCALING_ACTIVE, "False", EXTERNAL_AUTOSCALER,
                               f"{names} scales the Deployment: the operator writes no "
                               "replicas"))
    if on_agent:
        names = ", ".join(sorted(map(str, on_agent)))
        mode = spec.autoscaling.mode
        wanted = spec.replicas
        if mode == "none":
            scaling = Cond(SCALING_ACTIVE, "True", EXTERNAL_AUTOSCALER,
                           f"{names} scales the agent; the Deployment follows spec.replicas")
        else:
            scaling = Cond(SCALING_ACTIVE, "False", EXTERNAL_AUTOSCALER,
                           f"{names} scales the agent: the operator's {mode} autoscaling "
                           "stands down and the Deployment follows spec.replicas")
        return ReplicaPlan("agent", wanted, None if live == wanted else wanted,
                           FIELD_MANAGER, scaling)
    if owner == "hpa":
        initial = max(spec.replicas, spec.autoscaling.min_replicas)
        lift = seen.fresh and live is not None and live < initial
        return ReplicaPlan(owner, initial if lift or live is None else live,
                           initial if lift else None, FIELD_MANAGER, _hpa_scaling(seen.hpa))
    if owner == "autoscaler" and seen.autoscaler is not None:
        wanted = seen.autoscaler.desired
        return ReplicaPlan(owner, wanted, None if live == wanted else wanted,
                           AUTOSCALER_FIELD_MANAGER, seen.autoscaler.condition,
                           seen.autoscaler.explanation)
    if owner == "autoscaler":
        low, high = spec.autoscaling.min_replicas, spec.autoscaling.max_replicas
        start = min(max(spec.replicas, low), high)
        held = start if live is None or seen.fresh else min(max(live, low), high)
        return ReplicaPlan(owner, held, None if live == held else held,
                           AUTOSCALER_FIELD_MANAGER, Cond(
                               SCALING_ACTIVE, "False", "AutoscalerNotRunning",
                               "the operator's autoscaler has no recommendation for this "
                               f"agent yet; holding {held} replicas"))
    wanted = spec.replicas
    return ReplicaPlan(owner, wanted, None if live == wanted else wanted, FIELD_MANAGER, None)


def _hpa_scaling(hpa: HpaCondition | None) -> Cond | None:
    """ScalingActive in mode hpa: the HPA's own status, reason and message, naming it."""
    if hpa is None:
        return None
    status: Status = ("True" if hpa.status == "True" else
                      "False" if hpa.status == "False" else "Unknown")
    return Cond(SCALING_ACTIVE, status, hpa.reason,
                f"HorizontalPodAutoscaler/{hpa.name}: {hpa.message}")


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
                       autoscaler: AutoscalerObservation | None = None,
                       hpa: HpaCondition | None = None) -> ReplicaObservation:
    """The observation a live Deployment gives (an empty mapping: none exists yet)."""
    if not deployment:
        return ReplicaObservation(None, False, tuple(external), autoscaler, hpa)
    live = (deployment.get("spec") or {}).get("replicas")
    fresh = (deployment.get("metadata") or {}).get("generation") == 1
    return ReplicaObservation(live, fresh, tuple(external), autoscaler, hpa)
