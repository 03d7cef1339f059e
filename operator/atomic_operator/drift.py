"""Tell a hand edit of a child from the operator's and Kubernetes' own writes."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

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


def owned_fields(obj: Mapping[str, Any], field_manager: str = FIELD_MANAGER) -> Any:
    """The fields our applies own in `obj` (the `fieldsV1` of our Apply entry), or None."""
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if (entry.get("manager") == field_manager and entry.get("operation") == "Apply"
                and not entry.get("subresource")):
            return entry.get("fieldsV1")
    return None


ChildKey = tuple[str, str, str]


class OwnedFields:
    """What the operator's last apply of each child owned, to see a hand edit that took a
    field away.

    Removing a field (a JSON patch `remove`, `kubectl edit` deleting a line) leaves no
    managedFields entry for the editor when it then owns nothing, so `edited_by_others`
    cannot see it; but the field also leaves the set our apply owns. So after each apply the
    set is remembered (a 16-byte digest per child) and a child whose set differs in a later
    event is reconciled: an edit of the value of a field we own moves its ownership, a
    removal drops it, and an apply that puts it back restores the digest. Unknown children
    (before the operator's first apply since it started) are not judged: resume reconciles
    them all, and `apply_child` compares what it applies with what is live field by field.
    """

    def __init__(self) -> None:
        self._digests: dict[ChildKey, bytes] = {}

    @staticmethod
    def _key(obj: Mapping[str, Any]) -> ChildKey:
        meta = obj.get("metadata") or {}
        return (str(obj.get("kind")), str(meta.get("namespace")), str(meta.get("name")))

    @staticmethod
    def _digest(fields: Any) -> bytes:
        return hashlib.blake2b(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS),
                               digest_size=16).digest()

    def record(self, live: Mapping[str, Any]) -> None:
        """After an apply: `live` is what the API server answered."""
        fields = owned_fields(live)
        if fields is not None:
            self._digests[self._key(live)] = self._digest(fields)

    def lost(self, obj: Mapping[str, Any]) -> bool:
        """True when fields our last apply owned are no longer ours in `obj` (a watch
        event's body), or ours are not what we applied: someone removed or took them."""
        known = self._digests.get(self._key(obj))
        if known is None:
            return False
        fields = owned_fields(obj)
        return fields is None or self._digest(fields) != known

    def forget(self, obj: Mapping[str, Any]) -> None:
        """The child was deleted: its next apply records it afresh."""
        self._digests.pop(self._key(obj), None)

    def __len__(self) -> int:
        return len(self._digests)
