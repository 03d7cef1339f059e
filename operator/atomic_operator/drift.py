"""Tell a hand edit of a child from the operator's and Kubernetes' own writes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atomic_operator.settings import FIELD_MANAGER

SYSTEM_MANAGERS = frozenset({"kube-controller-manager", "kube-scheduler", "kubelet"})
"""Controllers that legitimately write children (revision annotations, status)."""


def edited_by_others(obj: Mapping[str, Any], field_manager: str = FIELD_MANAGER) -> bool:
    """True when someone else changed the object itself after our last apply.

    Writes through subresources (status, scale) are not drift: status is the system's, and
    replicas belong to whoever scales. Managed-field times have one-second resolution, so
    an edit in the same second as our apply counts as newer; re-applying then is a no-op
    that costs one request and triggers no further event.
    """
    entries = (obj.get("metadata") or {}).get("managedFields") or []
    ours = [e.get("time", "") for e in entries
            if e.get("manager") == field_manager and e.get("operation") == "Apply"]
    if not ours:
        return False
    last_apply = max(ours)
    return any(
        e.get("manager") not in SYSTEM_MANAGERS | {field_manager}
        and not e.get("subresource")
        and e.get("time", "") >= last_apply
        for e in entries)
