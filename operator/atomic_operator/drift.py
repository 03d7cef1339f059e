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


def diverged(rendered: Any, live: Any) -> bool:
    """True when the live object no longer holds what was rendered.

    Every rendered field must be in the live object with the same value; fields the API
    server adds (defaults, clusterIP, status) do not count. Lists must match entry for
    entry, so an entry someone else added, or re-keyed (a Service port renumbered, an env
    variable renamed), counts: server-side apply keeps such an entry beside ours. Scalars
    compare as text, so a quantity written 1 matches the stored "1".
    """
    if isinstance(rendered, Mapping):
        return not isinstance(live, Mapping) or any(
            key not in live or diverged(value, live[key]) for key, value in rendered.items())
    if isinstance(rendered, list):
        return (not isinstance(live, list) or len(live) != len(rendered)
                or any(diverged(a, b) for a, b in zip(rendered, live, strict=True)))
    if isinstance(rendered, bool) or isinstance(live, bool):
        return rendered is not live
    return rendered != live and str(rendered) != str(live)
