"""AtomicPipelines against the real control plane: the type check in status and events,
re-run when the agents it names appear or change."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from atomic_devcluster.operator_process import OperatorProcess
from tests.support.kube import Kube, eventually
from tests.support.manifests import example, variant


@pytest.fixture
def ns(kube: Kube, operator: OperatorProcess) -> Kube:
    kube.run("create", "secret", "generic", "openai-credentials", "--from-literal=api-key=sk-x")
    return kube


def condition(kube: Kube, pipeline: str, type_: str, status: str) -> dict[str, Any] | None:
    body = kube.get("atomicpipeline", pipeline)
    for cond in (body.get("status") or {}).get("conditions") or []:
        if (cond["type"], cond["status"]) == (type_, status) and cond.get(
                "observedGeneration") == body["metadata"]["generation"]:
            return body
    return None


def test_the_example_pipeline_is_proven_compatible(ns: Kube) -> None:
    ns.apply(example("content-analyzer"))
    ns.apply(example("task-processor"))
    ns.apply(example("analysis-to-tasks"))
    body = eventually(lambda: condition(ns, "analysis-to-tasks", "SchemasCompatible", "True"),
                      what="SchemasCompatible=True")
    status = body["status"]
    assert status["stepCount"] == 2
    assert status["executionOrder"] == [["analyze"], ["make-tasks"]]
    body = eventually(lambda: condition(ns, "analysis-to-tasks", "Ready", "True"),
                      timeout=30, what="Ready=True (the runner's Deployment is available)")
    columns = eventually(lambda: (c := ns.run("get", "atomicpipeline", "analysis-to-tasks",
                                              "--no-headers").split())[1:4] == [
        "2", "True", "True"] and c, what="the printer columns")
    assert columns


def test_a_mismatched_edge_is_named_in_status_and_a_warning(ns: Kube) -> None:
    ns.apply(example("content-analyzer"))
    ns.apply(example("task-processor"))
    ns.apply(variant("analysis-to-tasks", {"spec": {"steps": [
        {"name": "analyze", "agentRef": {"name": "content-analyzer"},
         "input": {"content": {"from": "input.content"}, "analysis_type": {"value": "x"}}},
        {"name": "make-tasks", "agentRef": {"name": "task-processor"},
         "input": {"description": {"from": "steps.analyze.output.insights"}}}]}}))
    body = eventually(lambda: condition(ns, "analysis-to-tasks", "SchemasCompatible", "False"),
                      what="SchemasCompatible=False")
    cond = next(c for c in body["status"]["conditions"] if c["type"] == "SchemasCompatible")
    assert cond["reason"] == "SchemaMismatch"
    assert cond["message"].startswith("spec.steps[1].input.description.from: ")
    assert "may give an array; the consumer accepts string" in cond["message"]
    warnings = eventually(
        lambda: "SchemaMismatch" in ns.run("get", "events",
                                           "--field-selector=type=Warning") or None,
        what="a SchemaMismatch Warning event")
    assert warnings


def test_agents_arriving_or_changing_re_check_the_pipeline(ns: Kube) -> None:
    ns.apply(example("analysis-to-tasks"))
    body = eventually(lambda: condition(ns, "analysis-to-tasks", "SchemasCompatible",
                                        "Unknown"), what="SchemasCompatible=Unknown")
    cond = next(c for c in body["status"]["conditions"] if c["type"] == "SchemasCompatible")
    assert cond["reason"] == "MissingAgent" and "content-analyzer" in cond["message"]
    ns.apply(example("content-analyzer"))
    ns.apply(example("task-processor"))
    eventually(lambda: condition(ns, "analysis-to-tasks", "SchemasCompatible", "True"),
               what="True once both agents exist")
    # the consumer now wants an integer description: the same pipeline no longer fits
    ns.apply(variant("task-processor", {"spec": {"inputSchema": {"properties": {
        "description": {"type": "integer"}}}}}))
    body = eventually(lambda: condition(ns, "analysis-to-tasks", "SchemasCompatible",
                                        "False"), what="False after the agent changed")
    cond = next(c for c in body["status"]["conditions"] if c["type"] == "SchemasCompatible")
    assert "spec.steps[1].input.description.from" in cond["message"]


def _warnings(ns: Kube, pipeline: str) -> list[dict[str, Any]]:
    events = json.loads(ns.run("get", "events", "--field-selector",
                               f"involvedObject.name={pipeline},type=Warning", "-o", "json"))
    return list(events["items"])


@pytest.mark.parametrize(("patch", "field"), [
    ({"spec": {"steps": [
        {"name": "analyze", "agentRef": {"name": "content-analyzer"},
         "input": {"content": {"from": "input.content"}, "analysis_type": {"value": "x"}}},
        {"name": "make-tasks", "agentRef": {"name": "task-processor"},
         "forEach": "steps.analyse.output.recommendations",
         "input": {"description": {"from": "item"}}}]}}, "spec.steps[1].forEach"),
    ({"spec": {"steps": [
        {"name": "analyze", "agentRef": {"name": "content-analyzer"},
         "input": {"content": {"from": "input.content", "value": "x"}}}],
        "output": {"from": "steps.analyze.output"}}}, "spec.steps[0].input.content"),
])
def test_a_reference_error_is_one_warning_naming_the_field(
        ns: Kube, patch: dict[str, Any], field: str) -> None:
    """With the webhook off, what it would refuse is in status; and the agents arriving
    afterwards re-check the pipeline without repeating the same Warning."""
    # All at once, as a GitOps sync does: the agents' events race the pipeline's creation.
    ns.apply({"apiVersion": "v1", "kind": "List", "items": [
        variant("analysis-to-tasks", patch), example("content-analyzer"),
        example("task-processor")]})

    def reported() -> dict[str, Any] | None:
        body = ns.get("atomicpipeline", "analysis-to-tasks")
        for cond in (body.get("status") or {}).get("conditions") or []:
            if cond["status"] != "True" and field in cond["message"]:
                return body
        return None

    eventually(reported, what=f"{field} in a condition")
    time.sleep(3)  # the agents' events re-check the pipeline meanwhile
    warnings = _warnings(ns, "analysis-to-tasks")
    assert len(warnings) == 1 and warnings[0].get("count", 1) == 1, warnings
    assert warnings[0]["message"].startswith(field), warnings
