"""The pure parts of reconciliation: conditions, drift, references, spec checks."""

from __future__ import annotations

from typing import Any

from atomic_operator.api import AtomicAgent
from atomic_operator.checks import check_agent
from atomic_operator.conditions import Cond, deployment_conditions, merge_conditions
from atomic_operator.drift import edited_by_others
from atomic_operator.references import key_digests, resolve_references
from atomic_operator.render import runtime_config
from tests.support.manifests import example, variant


def _deployment(generation: int, observed: int, updated: int, available: int,
                total: int | None = None, **conds: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"generation": generation},
            "status": {"observedGeneration": observed, "updatedReplicas": updated,
                       "availableReplicas": available, "readyReplicas": available,
                       "replicas": updated if total is None else total,
                       "conditions": [{"type": k, **v} for k, v in conds.items()]}}


def _by_type(conds: list[Cond]) -> dict[str, Cond]:
    return {c.type: c for c in conds}


def test_ready_when_rolled_out_and_available() -> None:
    conds = _by_type(deployment_conditions(_deployment(2, 2, 3, 3), desired=3))
    assert (conds["Ready"].status, conds["Ready"].reason) == ("True", "Available")
    assert conds["Progressing"].status == "False"
    assert conds["Degraded"].status == "False"


def test_rolling_out_is_not_ready() -> None:
    conds = _by_type(deployment_conditions(_deployment(3, 3, 1, 3, total=4), desired=3))
    assert (conds["Ready"].status, conds["Ready"].reason) == ("False", "RollingOut")
    assert conds["Progressing"].status == "True"


def test_stale_observed_generation_is_not_ready() -> None:
    conds = _by_type(deployment_conditions(_deployment(4, 3, 3, 3), desired=3))
    assert conds["Ready"].status == "False"


def test_progress_deadline_is_degraded() -> None:
    dep = _deployment(1, 1, 1, 0, Progressing={"status": "False",
                                                "reason": "ProgressDeadlineExceeded",
                                                "message": "timed out"})
    conds = _by_type(deployment_conditions(dep, desired=1))
    assert (conds["Degraded"].status, conds["Degraded"].reason) == (
        "True", "ProgressDeadlineExceeded")


def test_transition_time_moves_only_on_status_change() -> None:
    first = merge_conditions([], [Cond("Ready", "False", "RollingOut")], 1, now="T1")
    same = merge_conditions(first, [Cond("Ready", "False", "Unavailable", "x")], 1, now="T2")
    assert same[0]["lastTransitionTime"] == "T1" and same[0]["reason"] == "Unavailable"
    flipped = merge_conditions(same, [Cond("Ready", "True", "Available")], 2, now="T3")
    assert flipped[0]["lastTransitionTime"] == "T3"
    assert flipped[0]["observedGeneration"] == 2


def _managed(*entries: tuple[str, str, str, str]) -> dict[str, Any]:
    return {"metadata": {"managedFields": [
        {"manager": m, "operation": op, "time": t, **({"subresource": s} if s else {})}
        for m, op, t, s in entries]}}


def test_drift_detection() -> None:
    ours = ("atomic-operator", "Apply", "2026-01-01T00:00:05Z", "")
    assert not edited_by_others(_managed(ours))
    assert edited_by_others(_managed(ours, ("kubectl-edit", "Update", "2026-01-01T00:00:09Z", "")))
    assert edited_by_others(_managed(ours, ("kubectl", "Apply", "2026-01-01T00:00:05Z", "")))
    # Older foreign edits were already overwritten by our later apply.
    assert not edited_by_others(_managed(ours, ("kubectl-edit", "Update",
                                                "2026-01-01T00:00:01Z", "")))
    # Status and scale writes, and the controllers' own, are not drift.
    assert not edited_by_others(_managed(
        ours, ("kube-controller-manager", "Update", "2026-01-01T00:00:09Z", ""),
        ("kubectl", "Update", "2026-01-01T00:00:09Z", "scale"),
        ("someone", "Update", "2026-01-01T00:00:09Z", "status")))


def _agent(patch: dict[str, Any] | None = None) -> AtomicAgent:
    return AtomicAgent.model_validate(variant("task-processor", patch or {}))


SECRETS = {("ns", "openai-credentials"): key_digests({"api-key": "c2stMQ=="})}


def test_references_resolve_and_digest() -> None:
    resolved = resolve_references(_agent(), "ns", SECRETS, {})
    assert resolved.problems == []
    rotated = {("ns", "openai-credentials"): key_digests({"api-key": "c2stMg=="})}
    assert resolve_references(_agent(), "ns", rotated, {}).secrets_digest != \
        resolved.secrets_digest
    assert "c2stMQ" not in resolved.secrets_digest


def test_missing_references_name_the_field() -> None:
    missing = resolve_references(_agent(), "other-ns", SECRETS, {}).problems
    assert [(p.field, p.reason) for p in missing] == [
        ("spec.model.apiKeySecretRef.name", "MissingSecret")]
    wrong_key = resolve_references(_agent({"spec": {"model": {"apiKeySecretRef": {
        "key": "token"}}}}), "ns", SECRETS, {}).problems
    assert wrong_key[0].reason == "MissingSecretKey" and "api-key" in wrong_key[0].message
    context = _agent({"spec": {"contextProviders": [
        {"name": "g", "title": "G", "configMapKeyRef": {"name": "glossary", "key": "k"}}]}})
    problems = resolve_references(context, "ns", SECRETS, {("ns", "glossary"): {"k": "d"}})
    assert problems.problems == []


def test_spec_checks() -> None:
    good = _agent()
    assert check_agent(good, runtime_config(good, "a", "ns")) == []
    bad = _agent({"spec": {"inputSchema": {"properties": {"x": {"type": "strng"}}},
                           "model": {"mode": "gemini_json"}}})
    found = {(p.field, p.reason) for p in check_agent(bad, runtime_config(bad, "a", "ns"))}
    assert ("spec.inputSchema.properties.x.type", "InvalidSchema") in found
    assert ("spec.model.mode", "UnsupportedMode") in found


def test_examples_pass_the_checks() -> None:
    for name in ("task-processor", "content-analyzer"):
        agent = AtomicAgent.model_validate(example(name))
        assert check_agent(agent, runtime_config(agent, name, "ns")) == []
