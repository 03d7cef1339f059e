"""A pipeline's runner against the real control plane: its children, Ready, AgentsReady,
the agents' view of the pipelines that use them. (Pods are made Running by the harness's
fake node here; the runner executing real calls is in tests/runtime.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from atomic_devcluster.operator_process import OperatorProcess
from tests.support.kube import Kube, eventually
from tests.support.manifests import example, variant

PIPELINE_LABEL = "atomicagents.io/pipeline"


@pytest.fixture
def ns(kube: Kube, operator: OperatorProcess) -> Kube:
    kube.run("create", "secret", "generic", "openai-credentials", "--from-literal=api-key=sk-x")
    return kube


def maybe_get(ns: Kube, kind: str, name: str) -> dict[str, Any] | None:
    """The object, or None while it does not exist yet."""
    out = ns.run("get", kind, name, "-o", "json", "--ignore-not-found")
    return json.loads(out) if out.strip() else None


def cond(body: dict[str, Any], type_: str) -> dict[str, Any]:
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), {})


def current(ns: Kube, name: str, type_: str, status: str) -> dict[str, Any] | None:
    body = ns.get("atomicpipeline", name)
    found = cond(body, type_)
    fresh = found.get("observedGeneration") == body["metadata"]["generation"]
    return body if found.get("status") == status and fresh else None


def test_the_runner_is_rendered_owned_hardened_and_becomes_ready(ns: Kube) -> None:
    for name in ("content-analyzer", "task-processor", "analysis-to-tasks"):
        ns.apply(example(name))
    body = eventually(lambda: current(ns, "analysis-to-tasks", "Ready", "True"), timeout=40,
                      what="Ready=True")
    status = body["status"]
    assert status["endpoint"] == (f"http://analysis-to-tasks.{ns.namespace}.svc."
                                  "cluster.local:80")
    assert status["readyReplicas"] == 1 and status["configHash"]
    eventually(lambda: current(ns, "analysis-to-tasks", "AgentsReady", "True"), timeout=30,
               what="AgentsReady=True")
    uid = body["metadata"]["uid"]
    deployment = ns.get("deployment", "analysis-to-tasks")
    for child in (deployment, ns.get("service", "analysis-to-tasks"),
                  ns.get("configmap", "analysis-to-tasks-config")):
        meta = child["metadata"]
        assert meta["labels"][PIPELINE_LABEL] == "analysis-to-tasks"
        assert meta["labels"]["app.kubernetes.io/component"] == "pipeline"
        (owner,) = meta["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == ("AtomicPipeline", uid,
                                                                      True)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["terminationGracePeriodSeconds"] == 300 + 15
    config = json.loads(ns.get("configmap", "analysis-to-tasks-config")["data"][
        "pipeline.json"])
    assert config["kind"] == "PipelineConfig" and config["problems"] == []
    assert config["steps"][1]["url"] == (f"http://task-processor.{ns.namespace}.svc."
                                         "cluster.local:80")
    # the agents list the pipeline that calls them
    eventually(lambda: ns.get("atomicagent", "task-processor")["status"].get(
        "pipelines") == ["analysis-to-tasks"], what="the agent lists the pipeline")
    ns.run("delete", "atomicpipeline", "analysis-to-tasks")
    eventually(lambda: ns.get("atomicagent", "task-processor")["status"].get(
        "pipelines") == [], what="the agent no longer lists the deleted pipeline")


def test_runner_settings_are_applied(ns: Kube) -> None:
    for name in ("content-analyzer", "task-processor"):
        ns.apply(example(name))
    ns.apply(variant("analysis-to-tasks", {"spec": {"runner": {
        "replicas": 2, "image": "example.com/runner:1",
        "resources": {"requests": {"cpu": "20m"}, "limits": {"memory": "200Mi"}},
        "concurrency": {"maxInFlight": 3, "queueSize": 4}}}}))
    deployment = eventually(lambda: (d := maybe_get(ns, "deployment", "analysis-to-tasks"))
                            and d["spec"].get("replicas") == 2 and d,
                            what="2 runner replicas")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "example.com/runner:1"
    assert container["resources"] == {"requests": {"cpu": "20m"},
                                      "limits": {"memory": "200Mi"}}
    config = json.loads(ns.get("configmap", "analysis-to-tasks-config")["data"][
        "pipeline.json"])
    assert config["concurrency"] == {"maxInFlight": 3, "queueSize": 4}


def test_an_agent_scaled_to_zero_makes_agents_ready_false(ns: Kube) -> None:
    ns.apply(example("content-analyzer"))
    ns.apply(example("analysis-to-tasks"))
    # mode none: the agent's spec.replicas (its scale subresource) owns the count; the
    # example's custom mode would leave it to the autoscaler, which keeps minReplicas >= 1
    ns.apply(variant("task-processor", {"spec": {"autoscaling": {"mode": "none"}}}))
    eventually(lambda: current(ns, "analysis-to-tasks", "AgentsReady", "True"), timeout=40,
               what="AgentsReady=True")
    ns.run("scale", "atomicagent/task-processor", "--replicas=0")
    # first "0 of 1 replicas ready" while the pod goes, then the agent's own count
    eventually(lambda: (b := current(ns, "analysis-to-tasks", "AgentsReady", "False"))
               and "task-processor (scaled to 0 replicas)" in cond(b, "AgentsReady")["message"],
               timeout=30, what="AgentsReady=False: task-processor scaled to 0")


def test_a_change_that_breaks_a_pipeline_warns_on_the_agent(ns: Kube) -> None:
    for name in ("content-analyzer", "task-processor", "analysis-to-tasks"):
        ns.apply(example(name))
    eventually(lambda: current(ns, "analysis-to-tasks", "Ready", "True"), timeout=40,
               what="Ready")
    ns.apply(variant("task-processor", {"spec": {"inputSchema": {"properties": {
        "description": {"type": "integer"}}}}}))
    body = eventually(lambda: (b := current(ns, "analysis-to-tasks", "Ready", "False"))
                      and cond(b, "Ready")["reason"] == "SchemaMismatch" and b,
                      timeout=20, what="Ready=False/SchemaMismatch once incompatible")
    assert cond(body, "Ready")["message"].startswith(
        "the runner stays unready while the pipeline is incompatible: ")
    config = json.loads(ns.get("configmap", "analysis-to-tasks-config")["data"][
        "pipeline.json"])
    assert config["problems"] and "description" in config["problems"][0]
    events = eventually(lambda: (out := ns.run(
        "get", "events", "--field-selector=involvedObject.kind=AtomicAgent,"
        "involvedObject.name=task-processor,reason=BreaksPipeline", "-o", "json"))
        and json.loads(out)["items"], what="a BreaksPipeline event on the agent")
    assert events[0]["type"] == "Warning"
    assert events[0]["message"].startswith("pipeline analysis-to-tasks no longer fits this "
                                           "agent: spec.steps[1].input.description.from")


def test_a_pipeline_named_like_an_agent_is_refused_without_touching_the_agent(
        ns: Kube) -> None:
    ns.apply(example("content-analyzer"))
    ns.apply(example("task-processor"))
    # (created at the same instant, whichever the operator sees first keeps the names)
    ns.run("wait", "--for=condition=Ready", "--timeout=30s", "atomicagent/task-processor")
    ns.apply(variant("analysis-to-tasks", {"metadata": {"name": "task-processor"}}))
    ready = eventually(lambda: (c := cond(ns.get("atomicpipeline", "task-processor"),
                                          "Ready")).get("reason") == "NameConflict" and c,
                       what="NameConflict")
    assert "an AtomicAgent named task-processor exists" in ready["message"], ready
    (owner,) = ns.get("deployment", "task-processor")["metadata"]["ownerReferences"]
    assert owner["kind"] == "AtomicAgent"
