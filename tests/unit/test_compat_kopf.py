"""Contract tests of `atomic_operator.compat.kopf`: each fails when kopf stops behaving as
the operator relies on (kopf is pinned to the tested minor)."""

from __future__ import annotations

import inspect
import logging

import kopf
from kopf._core.actions import execution  # the module whose wording the filters match

from atomic_operator.compat.kopf import (
    FAILED_PERMANENTLY,
    SUCCEEDED,
    QuietSuccesses,
    RefusalsAreInfo,
    UnbrandedProgressStorage,
)


def _record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)


def test_kopf_still_words_a_handlers_outcome_as_the_filters_expect() -> None:
    source = inspect.getsource(execution)
    assert 'f"{handler} succeeded."' in source
    assert 'f"{handler} failed permanently: ' in source
    assert inspect.getsource(execution.Handler.__str__).count('f"Handler {self.id!r}"') == 1
    assert SUCCEEDED.startswith("'") and FAILED_PERMANENTLY.startswith("'")


def test_the_filters_drop_successes_and_lower_refusals_only() -> None:
    assert not QuietSuccesses().filter(_record(logging.INFO, "Handler 'reconcile' succeeded."))
    assert QuietSuccesses().filter(_record(logging.INFO, "Handler 'reconcile' retried."))
    refused = _record(logging.ERROR, "Webhook 'validate-agent' failed permanently: no")
    assert RefusalsAreInfo().filter(refused) and refused.levelno == logging.INFO
    other = _record(logging.ERROR, "Handler 'reconcile' failed permanently: boom")
    assert RefusalsAreInfo().filter(other) and other.levelno == logging.ERROR


def test_progress_is_stored_as_kopf_stores_it_without_the_brand() -> None:
    body = kopf.Body({"apiVersion": "v1", "kind": "X",
                      "metadata": {"name": "a", "namespace": "n"}})
    record: kopf.ProgressRecord = {"started": "2026-01-01T00:00:00", "retries": 2,
                                   "delayed": None}
    theirs, ours = kopf.Patch(), kopf.Patch()
    kopf.AnnotationsProgressStorage(prefix="atomicagents.io").store(
        key=kopf.HandlerId("reconcile"), record=record, body=body, patch=theirs)
    UnbrandedProgressStorage(prefix="atomicagents.io").store(
        key=kopf.HandlerId("reconcile"), record=record, body=body, patch=ours)
    their_annotations = dict(theirs["metadata"]["annotations"])
    branded = [k for k in their_annotations if k.endswith("kopf-managed")]
    assert len(branded) == 1, their_annotations  # kopf still brands: ours still saves it
    del their_annotations[branded[0]]
    assert dict(ours["metadata"]["annotations"]) == their_annotations
