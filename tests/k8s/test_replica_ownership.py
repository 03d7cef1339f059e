"""Who owns the replica count, against the real control plane (the table is unit-tested in
tests/unit/test_replicas.py): an HPA someone else points at an agent's Deployment wins."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from atomic_devcluster.operator_process import OperatorProcess
from atomic_operator.settings import AUTOSCALER_FIELD_MANAGER, FIELD_MANAGER
from tests.k8s.test_agent_operator import agent_ns, condition, wait_ready  # noqa: F401
from tests.support.kube import Kube, eventually
from tests.support.manifests import variant

USER_HPA = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "user-hpa"},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                           "name": "task-processor"},
        "minReplicas": 2,
        "maxReplicas": 3,
        "metrics": [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
    },
}


def replica_writes(operator: OperatorProcess) -> float:
    """The operator's own count of writes to scale subresources (every owner)."""
    with urllib.request.urlopen(operator.metrics_url, timeout=5) as resp:
        lines = resp.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines
               if line.startswith("atomic_operator_replica_writes_total{"))


def operator_scale_entries(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in deployment["metadata"].get("managedFields") or []
            if e.get("manager") in (FIELD_MANAGER, AUTOSCALER_FIELD_MANAGER)
            and e.get("subresource") == "scale"]


def test_an_hpa_on_the_deployment_owns_its_replicas(agent_ns: Kube,  # noqa: F811
                                                    operator: OperatorProcess) -> None:
    agent_ns.apply(variant("task-processor", {"spec": {
        "autoscaling": {"mode": "none"}, "replicas": 1}}))
    wait_ready(agent_ns, "task-processor")
    writes_before = replica_writes(operator)

    agent_ns.apply(USER_HPA)
    agent = eventually(lambda: (a := agent_ns.get("atomicagent", "task-processor"))
                       and condition(a, "ScalingActive").get("reason") == "ExternalAutoscaler"
                       and a, timeout=10, what="ScalingActive=False/ExternalAutoscaler")
    scaling = condition(agent, "ScalingActive")
    assert scaling["status"] == "False"
    assert "HorizontalPodAutoscaler/user-hpa" in scaling["message"]
    # The HPA controller lifts the Deployment to its minReplicas; the operator lets it be
    # (its drift repair used to put the agent's spec.replicas back).
    eventually(lambda: agent_ns.get("deployment", "task-processor")["spec"]["replicas"] == 2,
               timeout=30, what="the HPA scaled the Deployment to 2")
    time.sleep(3)
    deployment = agent_ns.get("deployment", "task-processor")
    assert deployment["spec"]["replicas"] == 2
    assert operator_scale_entries(deployment) == []
    assert replica_writes(operator) == writes_before
    ready = eventually(lambda: (a := agent_ns.get("atomicagent", "task-processor"))
                       ["status"].get("readyReplicas") == 2 and a, timeout=15,
                       what="2 ready replicas in status")
    assert ready["status"]["desiredReplicas"] == 2
    assert condition(ready, "Ready")["status"] == "True"

    # The HPA goes: the agent's spec.replicas owns the count again.
    agent_ns.run("delete", "hpa/user-hpa")
    eventually(lambda: agent_ns.get("deployment", "task-processor")["spec"]["replicas"] == 1,
               timeout=10, what="the operator restored the agent's 1 replica")
    agent = eventually(lambda: (a := agent_ns.get("atomicagent", "task-processor"))
                       and not condition(a, "ScalingActive") and a, timeout=10,
                       what="ScalingActive removed")
    assert agent["status"]["desiredReplicas"] == 1
    assert replica_writes(operator) > writes_before


def test_hpa_mode_steps_aside_for_an_hpa_of_someone_else(agent_ns: Kube,  # noqa: F811
                                                         operator: OperatorProcess) -> None:
    agent_ns.apply(variant("task-processor", {"spec": {
        "autoscaling": {"mode": "hpa", "minReplicas": 1, "maxReplicas": 4}}}))
    eventually(lambda: "task-processor" in agent_ns.run("get", "hpa", "-o", "name"),
               timeout=10, what="the operator's HPA")
    agent_ns.apply(USER_HPA)
    eventually(lambda: agent_ns.run("get", "hpa", "-o", "name").split() ==
               ["horizontalpodautoscaler.autoscaling/user-hpa"], timeout=10,
               what="the operator's own HPA deleted, the user's kept")
    agent = agent_ns.get("atomicagent", "task-processor")
    assert condition(agent, "ScalingActive")["reason"] == "ExternalAutoscaler"


SCALED_OBJECT_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "scaledobjects.keda.sh"},
    "spec": {
        "group": "keda.sh",
        "scope": "Namespaced",
        "names": {"kind": "ScaledObject", "plural": "scaledobjects",
                  "singular": "scaledobject", "listKind": "ScaledObjectList"},
        "versions": [{"name": "v1alpha1", "served": True, "storage": True, "schema": {
            "openAPIV3Schema": {"type": "object",
                                "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}
"""KEDA's CRD, reduced to what the operator reads (KEDA itself needs a container runtime).
The rest of the suite runs without it: the operator must not need it."""


def test_a_scaled_object_appearing_with_its_crd_owns_the_replicas(
        agent_ns: Kube, operator: OperatorProcess) -> None:  # noqa: F811
    agent_ns.apply(variant("task-processor", {"spec": {
        "autoscaling": {"mode": "none"}, "replicas": 1}}))
    wait_ready(agent_ns, "task-processor")
    agent_ns.cp.kubectl("apply", "-f", "-", input_text=json.dumps(SCALED_OBJECT_CRD))
    agent_ns.cp.kubectl("wait", "--for=condition=Established", "--timeout=20s",
                        "crd/scaledobjects.keda.sh")
    writes_before = replica_writes(operator)
    agent_ns.apply({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                    "metadata": {"name": "queue-depth"},
                    "spec": {"scaleTargetRef": {"name": "task-processor"},
                             "minReplicaCount": 1, "maxReplicaCount": 4}})
    agent = eventually(lambda: (a := agent_ns.get("atomicagent", "task-processor"))
                       and condition(a, "ScalingActive").get("reason") == "ExternalAutoscaler"
                       and a, timeout=20, what="ScalingActive=False/ExternalAutoscaler")
    assert "ScaledObject/queue-depth" in condition(agent, "ScalingActive")["message"]
    # KEDA scales the Deployment (here by hand, as its HPA would): nobody puts it back.
    agent_ns.run("scale", "deployment/task-processor", "--replicas=3")
    eventually(lambda: agent_ns.get("atomicagent", "task-processor")["status"]
               .get("desiredReplicas") == 3, timeout=10, what="desiredReplicas 3")
    time.sleep(2)
    assert agent_ns.get("deployment", "task-processor")["spec"]["replicas"] == 3
    assert replica_writes(operator) == writes_before


def test_an_hpa_on_the_agent_drives_the_deployment_in_mode_none(
        agent_ns: Kube, operator: OperatorProcess) -> None:  # noqa: F811
    agent_ns.apply(variant("task-processor", {"spec": {
        "autoscaling": {"mode": "none"}, "replicas": 1}}))
    wait_ready(agent_ns, "task-processor")
    on_agent = {**USER_HPA, "spec": {**USER_HPA["spec"], "scaleTargetRef": {
        "apiVersion": "atomicagents.io/v1alpha1", "kind": "AtomicAgent",
        "name": "task-processor"}}}
    agent_ns.apply(on_agent)
    # The HPA controller writes the agent's spec.replicas through its scale subresource;
    # the operator follows it to the Deployment, and reports no external autoscaler.
    eventually(lambda: agent_ns.get("atomicagent", "task-processor")["spec"]["replicas"] == 2,
               timeout=30, what="the HPA scaled the agent to 2")
    eventually(lambda: agent_ns.get("deployment", "task-processor")["spec"]["replicas"] == 2,
               timeout=10, what="the operator scaled the Deployment to 2")
    assert not condition(agent_ns.get("atomicagent", "task-processor"), "ScalingActive")
