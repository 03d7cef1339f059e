"""The one writer of AtomicAgent and AtomicPipeline status.

Each kind's status function says what the status should be (a model from `api/`); this
writes only what differs from what is stored, with one merge patch to the status
subresource, counts it, and posts the events that explain the change. An unchanged status
is not written, and its events are not posted again: an event says what changed.

It also remembers what it wrote, because the bodies the handlers get from kopf's watches
and indexes lag behind the operator's own writes: `latest(body)` is the body with the
status as the API server stored it at our last write. That memory cannot be stale while
the operator is the only writer of these statuses (the CRDs' status subresource is written
by nobody else): an entry is the server's answer to our last write; it is dropped when the
watch delivers that very version (from then on the body is as new), when the write's
outcome is unknown (an error), when the object is recreated (another uid) and when it is
deleted. `tests/unit/test_status_writer.py` shows each case.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from atomic_operator import API_VERSION
from atomic_operator.api.common import CommonStatus
from atomic_operator.k8s import Api, ApiError, resource_path
from atomic_operator.metrics import STATUS_WRITES
from atomic_operator.settings import FIELD_MANAGER

Event = tuple[Literal["Normal", "Warning"], str, str]
"""(type, reason, message) of a Kubernetes event about the object."""

Emit = Callable[[Mapping[str, Any], Event], None]
"""Posts one event about an object; the operator passes kopf's, tests their own."""


def wire(status: CommonStatus) -> dict[str, Any]:
    """The status as the API server stores it: camelCase, no unset fields."""
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


def _without_times(conditions: Any) -> list[Any]:
    return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conditions or []]


def status_patch(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]
                 ) -> dict[str, Any] | None:
    """The fields of `wanted` that differ from `current`, or None when nothing does.

    Conditions are compared without lastTransitionTime: a recomputed condition whose status
    did not flip is the same condition, and rewriting it would only move its timestamp.
    When they differ, the whole list is written (a merge patch replaces lists).
    """
    current = current or {}
    diff = {}
    for key, value in wanted.items():
        if key == "conditions":
            if _without_times(current.get(key)) != _without_times(value):
                diff[key] = value
        elif current.get(key) != value:
            diff[key] = value
    return diff or None


Key = tuple[str, str]


@dataclass(frozen=True)
class _Written:
    uid: str
    resource_version: str
    status: dict[str, Any]


def _key(body: Mapping[str, Any]) -> Key:
    return (str(body["kind"]), f"{body['metadata']['namespace']}/{body['metadata']['name']}")


class StatusWriter:
    """Writes status for the handlers of both kinds, and remembers what it wrote."""

    def __init__(self, client: Api, emit: Emit) -> None:
        self.client = client
        self.emit = emit
        self._written: dict[Key, _Written] = {}
        self._locks: dict[Key, asyncio.Lock] = {}

    def latest(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """`body`, with the status of our last write if the body predates it."""
        key = _key(body)
        entry = self._written.get(key)
        if entry is None:
            return body
        meta = body["metadata"]
        if meta.get("uid") != entry.uid or meta.get("resourceVersion") == entry.resource_version:
            del self._written[key]  # another object, or the watch has caught up
            return body
        return {**body, "status": entry.status}

    def forget(self, body: Mapping[str, Any]) -> None:
        """The object is gone: nothing of it is kept."""
        self._written.pop(_key(body), None)
        lock = self._locks.get(_key(body))
        if lock is not None and not lock.locked():
            del self._locks[_key(body)]

    async def write(self, body: Mapping[str, Any], wanted: CommonStatus,
                    events: Sequence[Event] = ()) -> dict[str, Any] | None:
        """Patch what changed and post `events` with it; the patch written, or None when
        nothing changed or the object is gone (404: its deletion is under way).

        A 409 is retried once: a merge patch carries no resourceVersion, so a conflict
        means the API server's own retries ran out, not that our view was stale. Any other
        error is raised for the caller's retry policy. Writes of one object are serialized,
        so the memory always holds the answer to the last one.
        """
        patch = status_patch(body.get("status"), wire(wanted))
        if patch is None:
            return None
        key = _key(body)
        async with self._locks.setdefault(key, asyncio.Lock()):
            return await self._patch(key, body, patch, events)

    async def _patch(self, key: Key, body: Mapping[str, Any], patch: dict[str, Any],
                     events: Sequence[Event]) -> dict[str, Any] | None:
        meta = body["metadata"]
        kind = str(body["kind"])
        path = resource_path(API_VERSION, kind, meta["namespace"], meta["name"], "status")
        self._written.pop(key, None)  # until the server answers, what it stores is unknown
        for attempt in (1, 2):
            try:
                stored = await self.client.merge_patch(path, {"status": patch}, FIELD_MANAGER)
                break
            except ApiError as err:
                if err.status == 404:
                    return None
                if err.status != 409 or attempt == 2:
                    raise
        stored_meta = stored.get("metadata") or {}
        self._written[key] = _Written(str(stored_meta.get("uid")),
                                      str(stored_meta.get("resourceVersion")),
                                      dict(stored.get("status") or {}))
        STATUS_WRITES.labels(kind).inc()
        for event in events:
            self.emit(body, event)
        return patch
