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
    (a condition that no longer applies, e.g. ScalingActive once nobody autoscales)."""
    gone = set(drop)
    by_type = {c["type"]: dict(c) for c in previous if c["type"] not in gone}
    stamp = now or now_iso()
    for cond in new:
        old = by_type.get(cond.type)
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
    order = {"Ready": 0, "Progressing": 1, "Degraded": 2}
    return sorted(by_type.values(), key=lambda c: (order.get(c["type"], 9), c["type"]))


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
