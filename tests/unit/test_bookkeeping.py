"""kopf's bookkeeping: the last handled state is status.observedGeneration, and recording
progress writes nothing kopf does not need."""

from __future__ import annotations

from typing import Any

import kopf

from atomic_operator import GROUP
from atomic_operator.bookkeeping import ObservedGenerationDiffBase
from atomic_operator.compat.kopf import UnbrandedProgressStorage
from tests.support.manifests import variant


def _body(generation: int, status: dict[str, Any] | None = None, **meta: Any) -> kopf.Body:
    raw = variant("task-processor", {"metadata": {"generation": generation, **meta}})
    if status is not None:
        raw["status"] = status
    return kopf.Body(raw)


def test_new_object_has_no_record_so_kopf_sees_a_creation() -> None:
    assert ObservedGenerationDiffBase().fetch(body=_body(1)) is None
    # a status without observedGeneration (only conditions so far) is no record either
    assert ObservedGenerationDiffBase().fetch(body=_body(1, {"conditions": []})) is None


def test_record_equals_the_state_exactly_when_the_generation_was_observed() -> None:
    storage = ObservedGenerationDiffBase()
    handled = _body(3, {"observedGeneration": 3, "replicas": 2})
    assert storage.fetch(body=handled) == storage.build(body=handled)
    changed = _body(4, {"observedGeneration": 3})
    assert storage.fetch(body=changed) != storage.build(body=changed)
    # metadata alone is not a change: nothing rendered reads the owner's labels
    relabelled = _body(3, {"observedGeneration": 3}, labels={"team": "a"},
                       annotations={f"{GROUP}/reconcile": '{"retries": 1}'})
    assert storage.fetch(body=relabelled) == storage.build(body=relabelled)


def test_storing_the_record_writes_nothing() -> None:
    storage = ObservedGenerationDiffBase()
    patch = kopf.Patch()
    body = _body(2, {"observedGeneration": 1})
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    assert not patch


def test_progress_is_recorded_and_purged_without_kopfs_brand() -> None:
    storage = UnbrandedProgressStorage(prefix=GROUP)
    body = _body(1)
    patch = kopf.Patch()
    record: kopf.ProgressRecord = {"started": "2026-01-01T00:00:00", "retries": 1}
    storage.store(key=kopf.HandlerId("reconcile"), record=record, body=body, patch=patch)
    annotations = patch["metadata"]["annotations"]
    assert f"{GROUP}/reconcile" in annotations
    assert not [k for k in annotations if k.endswith("/kopf-managed")]
    assert storage.fetch(key=kopf.HandlerId("reconcile"), body=kopf.Body(
        {"metadata": {"annotations": annotations}})) == record
    # A handler that succeeds at once: stored, then purged in the same cycle. The patch
    # must end empty, or kopf writes the object once more for nothing.
    storage.purge(key=kopf.HandlerId("reconcile"), body=body, patch=patch)
    assert not patch.get("metadata", {}).get("annotations")
