"""The operator under the probes of issue #13: big specs, refused specs, teardown, drift."""

from __future__ import annotations

import json
from typing import Any

import pytest

from atomic_operator import GROUP
from atomic_operator.devcluster.operator_process import OperatorProcess
from tests.k8s.test_agent_operator import children, condition, wait_ready
from tests.support.kube import Kube, eventually
from tests.support.manifests import variant


@pytest.fixture
def agent_ns(kube: Kube, operator: OperatorProcess) -> Kube:
    kube.run("create", "secret", "generic", "openai-credentials", "--from-literal=api-key=k")
    return kube


def _error_lines(operator: OperatorProcess, namespace: str) -> list[str]:
    out = []
    for line in operator.logs().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("severity") in ("error", "critical") and namespace in line:
            out.append(line)
    return out


@pytest.mark.parametrize("kib", [250, 400])
def test_a_spec_beyond_the_annotation_limit_is_reconciled_and_updated(
        agent_ns: Kube, operator: OperatorProcess, kib: int) -> None:
    """kopf's record of the last handled spec used to be the spec itself, in an annotation
    capped at 256 KiB: bigger specs were handled as creations forever."""
    text = ("All work and no play makes Jack a dull boy. " * (kib * 1024 // 44 + 1))[
        : kib * 1024]
    agent = variant("task-processor", {"spec": {"contextProviders": [
        {"name": "manual", "title": "Manual", "text": text}]}})
    # Client-side apply would store the whole object in its own annotation and fail.
    code, out = agent_ns.apply(agent, "--server-side", check=False)
    assert code == 0, out
    wait_ready(agent_ns, "task-processor")
    agent_ns.apply(variant("task-processor", {"spec": {
        "contextProviders": [{"name": "manual", "title": "Manual", "text": text + " Update."}],
        "systemPrompt": {"steps": ["Be brief"]}}}), "--server-side")

    def updated() -> dict[str, Any] | None:
        body = agent_ns.get("atomicagent", "task-processor")
        generation = body["metadata"]["generation"]
        ok = (body["status"].get("observedGeneration") == generation == 2
              and condition(body, "Ready").get("status") == "True")
        return body if ok else None

    body = eventually(updated, timeout=20, what="the update reconciled")
    record = body["metadata"]["annotations"][f"{GROUP}/last-handled-configuration"]
    assert len(record) < 200, record
    config = children(agent_ns, "task-processor")["ConfigMap/task-processor-config"]
    assert "Update." in config["data"]["agent.json"]
    assert _error_lines(operator, agent_ns.namespace) == []
