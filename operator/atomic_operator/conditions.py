"""Kubernetes-style conditions: computed purely, merged so transition times stay true."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Cond:
    """A condition before it is merged with the previous ones."""

    type: str
    status: Status
    reason: str
    message: str = ""


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_conditions(previous: Iterable[Mapping[str, Any]], new: Iterable[Cond],
                     generation: int | None, now: str | None = None,
                     drop: Iterable[str] = ()) -> list[dict[str, Any]]:
    """New conditions in place of old ones of the same type; lastTransitionTime moves only
    when status changes. Types not in `new` are kept as they were, except those in `drop`
    (a condition that no longer applies, e.g. ScalingActive once nobody autoscales).
    Reconciling and Stalled are then derived from the result (`kstatus_conditions`)."""
    gone = set(drop) | set(KSTATUS_TYPES)
    kept = {c["type"]: c for c in previous if c["type"] in KSTATUS_TYPES}
    by_type = {c["type"]: dict(c) for c in previous if c["type"] not in gone}
    stamp = now or now_iso()
    for cond in new:
        _merge(by_type, cond, by_type.get(cond.type), stamp, generation)
    for cond in kstatus_conditions(by_type):
        _merge(by_type, cond, kept.get(cond.type), stamp, generation)
    order = {"Ready": 0, "Progressing": 1, "Degraded": 2}
    return sorted(by_type.values(), key=lambda c: (order.get(c["type"], 9), c["type"]))


def _merge(by_type: dict[str, dict[str, Any]], cond: Cond, old: Mapping[str, Any] | None,
           stamp: str, generation: int | None) -> None:
    changed = old is None or old.get("status") != cond.status
    entry: dict[str, Any] = {
        "type": cond.type,
        "status": cond.status,
        "reason": cond.reason,
        "message": cond.message,
        "lastTransitionTime": stamp if changed or old is None
        else old.get("lastTransitionTime", stamp),
    }
    if generation is not None:
        entry["observedGeneration"] = generation
    by_type[cond.type] = entry


KSTATUS_TYPES = ("Reconciling", "Stalled")
"""The abnormal-true conditions kstatus (Flux's health checks, cli-utils) reads."""


def kstatus_conditions(by_type: Mapping[str, Mapping[str, Any]]) -> list[Cond]:
    """Stalled while a problem waiting cannot fix holds (Degraded, or a pipeline's schemas
    not fitting); else Reconciling until Ready. So kstatus calls an object Current exactly
    when it is Ready, InProgress while it gets there, Failed when it needs a fix."""
    degraded, compatible = by_type.get("Degraded", {}), by_type.get("SchemasCompatible", {})
    ready = by_type.get("Ready", {})
    problem = degraded if degraded.get("status") == "True" else \
        compatible if compatible.get("status") == "False" else None
    if problem is not None:
        reason, message = str(problem.get("reason")), str(problem.get("message", ""))
        return [Cond("Stalled", "True", reason, message),
                Cond("Reconciling", "False", reason, "waiting for the spec to be fixed")]
    stalled = Cond("Stalled", "False", "AsExpected", "")
    if ready.get("status") == "True":
        return [stalled, Cond("Reconciling", "False", str(ready.get("reason")), "")]
    return [stalled, Cond("Reconciling", "True", str(ready.get("reason") or "Reconciling"),
                          str(ready.get("message", "")))]


DEPLOYMENT_READY_REASONS = frozenset({"RollingOut", "Unavailable", "Available", "ScaledToZero"})
"""Ready reasons `deployment_conditions` gives; any other False reason is a spec problem."""


def find(conditions: Iterable[Mapping[str, Any]], type_: str) -> Mapping[str, Any]:
    """The condition of one type, or an empty mapping."""
    return next((c for c in conditions if c.get("type") == type_), {})


def deployment_conditions(deployment: Mapping[str, Any], desired: int) -> list[Cond]:
    """Ready, Progressing and Degraded of an agent from its Deployment's status."""
    status = deployment.get("status") or {}
    spec_generation = (deployment.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    updated = status.get("updatedReplicas", 0) or 0
    available = status.get("availableReplicas", 0) or 0
    total = status.get("replicas", 0) or 0
    dep_conds = {c.get("type"): c for c in status.get("conditions") or []}
    progress = dep_conds.get("Progressing", {})
    failure = dep_conds.get("ReplicaFailure", {})

    rolled_out = (observed == spec_generation and updated >= desired and total == updated)
    if desired == 0 and rolled_out:
        ready = Cond("Ready", "True", "ScaledToZero", "no replicas are wanted")
    elif rolled_out and available >= desired:
        ready = Cond("Ready", "True", "Available", f"{available}/{desired} replicas available")
    elif not rolled_out:
        ready = Cond("Ready", "False", "RollingOut",
                     f"{updated}/{desired} replicas updated, {available} available")
    else:
        ready = Cond("Ready", "False", "Unavailable",
                     f"{available}/{desired} replicas available")

    if rolled_out:
        progressing = Cond("Progressing", "False", "RolloutComplete",
                           "the current configuration is rolled out")
    else:
        progressing = Cond("Progressing", "True", "RollingOut",
                           f"{updated}/{desired} replicas run the current configuration")

    if progress.get("reason") == "ProgressDeadlineExceeded":
        degraded = Cond("Degraded", "True", "ProgressDeadlineExceeded",
                        str(progress.get("message", "")))
    elif failure.get("status") == "True":
        degraded = Cond("Degraded", "True", str(failure.get("reason") or "ReplicaFailure"),
                        str(failure.get("message", "")))
    else:
        degraded = Cond("Degraded", "False", "AsExpected", "")
    return [ready, progressing, degraded]


def problem_conditions(reason: str, message: str) -> list[Cond]:
    """An agent whose spec cannot be served: not ready, degraded, not progressing."""
    return [
        Cond("Ready", "False", reason, message),
        Cond("Progressing", "False", reason, "waiting for the spec to be fixed"),
        Cond("Degraded", "True", reason, message),
    ]


POD_TROUBLE_REASONS = frozenset({
    "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CrashLoopBackOff",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError"})
"""Waiting reasons of a container that will not become ready by waiting: the Deployment's
status only counts the pods unavailable, so these are read from the pods themselves."""


def pod_trouble(pods: Iterable[Mapping[str, Any]]) -> Cond | None:
    """Degraded, naming the first container of the first pod (by name) stuck for one of
    POD_TROUBLE_REASONS, and how many pods are; None when none is."""
    stuck: list[tuple[str, str, str, str]] = []
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name"))):
        status = pod.get("status") or {}
        for container in [*(status.get("initContainerStatuses") or []),
                          *(status.get("containerStatuses") or [])]:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in POD_TROUBLE_REASONS:
                stuck.append((str(pod["metadata"]["name"]), str(container.get("name")),
                              str(waiting["reason"]), str(waiting.get("message") or "")))
                break
    if not stuck:
        return None
    name, container, reason, detail = stuck[0]
    more = f" (and {len(stuck) - 1} more pods)" if len(stuck) > 1 else ""
    return Cond("Degraded", "True", reason,
                f"pod {name}{more}: container {container}: {reason}"
                + (f": {detail[:300]}" if detail else ""))
