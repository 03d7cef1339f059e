"""The custom autoscaler against the real control plane.

These run on kwok's fake nodes: the pods are Running and Ready with addresses that answer
nothing, so every scrape fails. That is exactly the "metrics missing" case, and it is all
that an external autoscaler needs to be detected. Scaling on real load is in
test_autoscaler_live.py, on the process node where pods are real runtime processes.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from typing import Any

import pytest

from tests.support.kube import Kube, eventually
from tests.support.manifests import variant

from .test_agent_operator import API_KEY, condition, wait_ready

NAME = "task-processor"


@pytest.fixture
def agent_ns(kube: Kube, operator: Any) -> Kube:
    kube.run("create", "secret", "generic", "openai-credentials",
             f"--from-literal=api-key={API_KEY}")
    return kube


def custom_agent(**autoscaling: Any) -> dict[str, Any]:
    return variant(NAME, {"spec": {"replicas": autoscaling.pop("replicas", 2), "autoscaling": {
        "mode": "custom", "minReplicas": 1, "maxReplicas": 5, **autoscaling}}})


def deployment_replicas(kube: Kube) -> int:
    return int(kube.get("deployment", NAME)["spec"]["replicas"])


def replica_writes(operator: Any) -> float:
    """The operator's own count of writes to Deployments' scale subresource."""
    with urllib.request.urlopen(operator.metrics_url, timeout=5) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("atomic_operator_replica_writes_total{"))


def scaling(kube: Kube) -> dict[str, Any]:
    return condition(kube.get("atomicagent", NAME), "ScalingActive")


def test_an_hpa_on_the_deployment_gets_no_replica_write_and_is_named(
    agent_ns: Kube, operator: Any
) -> None:
    agent_ns.apply(custom_agent(replicas=2))
    wait_ready(agent_ns, NAME)
    assert deployment_replicas(agent_ns) == 2
    agent_ns.apply({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "theirs"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                    "name": NAME},
                 "minReplicas": 1, "maxReplicas": 3,
                 "metrics": [{"type": "Resource", "resource": {
                     "name": "cpu", "target": {"type": "Utilization",
                                               "averageUtilization": 50}}}]}})
    cond = eventually(lambda: scaling(agent_ns).get("reason") == "ExternalAutoscaler"
                      and scaling(agent_ns), timeout=15, what="ScalingActive=ExternalAutoscaler")
    assert cond["status"] == "False"
    assert "HorizontalPodAutoscaler/theirs" in cond["message"]
    # Now give the autoscaler a reason to write (below its new minimum): it must not.
    agent_ns.run("patch", "atomicagent", NAME, "--type=merge",
                 "-p", '{"spec": {"autoscaling": {"minReplicas": 3}}}')
    writes = replica_writes(operator)
    generation = agent_ns.get("deployment", NAME)["metadata"]["generation"]
    time.sleep(20)
    assert replica_writes(operator) == writes
    deployment = agent_ns.get("deployment", NAME)
    assert deployment["metadata"]["generation"] == generation
    assert deployment["spec"]["replicas"] == 2
    # Without the HPA, the autoscaler is back in control and does write: the silence above
    # was the policy's, not an autoscaler that never runs.
    agent_ns.run("delete", "hpa", "theirs")
    eventually(lambda: deployment_replicas(agent_ns) == 3, timeout=20,
               what="the autoscaler lifting the Deployment to minReplicas")
    agent = eventually(lambda: (a := agent_ns.get("atomicagent", NAME))["status"].get(
        "autoscaling") and a, timeout=10, what="status.autoscaling")
    assert agent["spec"]["replicas"] == 2  # never written: no GitOps diff
    # the timer or the reconcile got there first; kwok pods never answer /metrics
    assert agent["status"]["autoscaling"]["reason"] in ("BelowMinimum", "MetricsMissing")


def test_missing_metrics_never_scale_down_and_a_steady_agent_costs_no_writes(
    agent_ns: Kube, operator: Any
) -> None:
    agent_ns.apply(custom_agent(replicas=3, scaleDownStabilizationSeconds=4))
    wait_ready(agent_ns, NAME)
    pods = json.loads(agent_ns.run("get", "pods", "-o", "json",
                                   f"-l=atomicagents.io/agent={NAME}"))["items"]
    names = sorted(p["metadata"]["name"] for p in pods)

    def settled() -> dict[str, Any] | None:
        """Once the pods' metrics have been unreadable for the warning time (15 s here) the
        condition says so, and status.autoscaling (refreshed every 30 s at most) names
        every pod; from then on nothing changes."""
        agent = agent_ns.get("atomicagent", NAME)
        cond = condition(agent, "ScalingActive")
        explained = (agent.get("status") or {}).get("autoscaling") or {}
        return agent if (cond.get("reason") == "MetricsMissing"
                         and "cannot read the metrics" in cond["message"]
                         and f"({', '.join(names)})" in explained.get("message", "")) else None

    agent = eventually(settled, timeout=60, interval=0.5, what="MetricsMissing, settled")
    assert condition(agent, "ScalingActive")["status"] == "False"
    assert agent["status"]["autoscaling"]["reason"] == "MetricsMissing"
    assert agent["status"]["desiredReplicas"] == 3
    # Many stable windows pass with no metrics: the count holds, and nothing is rewritten.
    version = agent["metadata"]["resourceVersion"]
    deployment_version = agent_ns.get("deployment", NAME)["metadata"]["resourceVersion"]
    writes = replica_writes(operator)
    time.sleep(16)
    assert deployment_replicas(agent_ns) == 3
    after = agent_ns.get("atomicagent", NAME)
    assert after["metadata"]["resourceVersion"] == version, (agent["status"], after["status"])
    assert agent_ns.get("deployment", NAME)["metadata"]["resourceVersion"] == deployment_version
    assert replica_writes(operator) == writes


def test_metrics_the_operator_cannot_read_are_a_warning_naming_the_pod_and_the_error(
    agent_ns: Kube, operator: Any
) -> None:
    # kwok's pods are Ready at addresses where nothing answers: exactly an operator that
    # cannot reach the pods' metrics port (the demo's operator without the process node's
    # proxy sat at a silent MetricsMissing forever)
    agent_ns.apply(custom_agent(replicas=1))
    wait_ready(agent_ns, NAME)
    (pod,) = json.loads(agent_ns.run("get", "pods", "-o", "json",
                                     f"-l=atomicagents.io/agent={NAME}"))["items"]
    address = f"http://{pod['status']['podIP']}:9090/metrics"
    warnings = eventually(lambda: json.loads(agent_ns.run(
        "get", "events", "-o", "json",
        f"--field-selector=involvedObject.name={NAME},reason=MetricsUnreachable"))["items"],
        timeout=40, what="a MetricsUnreachable event")
    assert [w["type"] for w in warnings] == ["Warning"]
    message = warnings[0]["message"]
    assert f"pod {pod['metadata']['name']} at {address}" in message, message
    # the error: the proxy's answer, a timeout, or the client's exception
    assert re.search(r"for 15 s or more \((HTTP \d{3}|no answer within 1 s|\w+: .+)\)",
                     message), message
    assert "check that the operator can reach the pods' metrics port" in message
    cond = eventually(lambda: "cannot read the metrics" in scaling(agent_ns)["message"]
                      and scaling(agent_ns), timeout=10, what="ScalingActive naming the pod")
    assert (cond["status"], cond["reason"]) == ("False", "MetricsMissing")
    assert f"pod {pod['metadata']['name']} at {address}" in cond["message"]


def agent_hpa(min_replicas: int) -> dict[str, Any]:
    """An HPA on the agent's scale subresource. With no metrics API in this cluster it
    computes nothing, but the HPA controller still lifts a count below its minReplicas:
    a real HPA writing the agent's spec.replicas."""
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "on-the-agent"},
            "spec": {"scaleTargetRef": {"apiVersion": "atomicagents.io/v1alpha1",
                                        "kind": "AtomicAgent", "name": NAME},
                     "minReplicas": min_replicas, "maxReplicas": 5,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization",
                                                   "averageUtilization": 50}}}]}}


@pytest.mark.parametrize("mode", ["none", "custom"])
def test_an_hpa_on_the_agent_is_followed_and_named(agent_ns: Kube, mode: str) -> None:
    manifest = custom_agent(replicas=1)
    manifest["spec"]["autoscaling"]["mode"] = mode
    agent_ns.apply(manifest)
    wait_ready(agent_ns, NAME)
    agent_ns.apply(agent_hpa(3))
    # the HPA controller (15 s sync) writes the agent's spec.replicas; the Deployment follows
    eventually(lambda: agent_ns.get("atomicagent", NAME)["spec"]["replicas"] == 3,
               timeout=60, interval=0.5, what="the HPA writing the agent's spec.replicas")
    eventually(lambda: deployment_replicas(agent_ns) == 3, timeout=15,
               what="the Deployment following spec.replicas")
    cond = eventually(lambda: scaling(agent_ns).get("reason") == "ExternalAutoscaler"
                      and scaling(agent_ns), timeout=15, what="ScalingActive names the HPA")
    assert "HorizontalPodAutoscaler/on-the-agent scales the agent" in cond["message"]
    assert cond["status"] == ("True" if mode == "none" else "False")
    if mode == "custom":
        assert "autoscaling" not in agent_ns.get("atomicagent", NAME)["status"]


def test_an_hpa_that_cannot_get_its_metrics_says_so_on_the_agent(agent_ns: Kube) -> None:
    # this cluster serves no metrics API: the operator's own HPA (mode hpa) reports
    # ScalingActive=False FailedGetResourceMetric in its status; the agent must say the same
    manifest = custom_agent(replicas=1)
    manifest["spec"]["autoscaling"]["mode"] = "hpa"
    agent_ns.apply(manifest)
    wait_ready(agent_ns, NAME)

    def hpa_says() -> dict[str, Any] | None:
        conditions = (agent_ns.get("hpa", NAME).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "ScalingActive"
                     and c["status"] == "False"), None)

    theirs = eventually(hpa_says, timeout=60, interval=0.5,
                        what="the HPA's own ScalingActive=False")
    ours = eventually(lambda: scaling(agent_ns).get("reason") == theirs["reason"]
                      and scaling(agent_ns), timeout=15, what="ScalingActive from the HPA")
    assert ours["status"] == "False"
    assert theirs["reason"] == "FailedGetResourceMetric"
    assert ours["message"] == f"HorizontalPodAutoscaler/{NAME}: {theirs['message']}"
