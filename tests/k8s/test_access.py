"""Closing an agent: its NetworkPolicy and its bearer token, against the real API server.

The NetworkPolicy is validated and stored by the API server, owned by the agent, removed
when turned off and restored when deleted by hand. Enforcing it is the network plugin's
job, and this control plane has none: no test here sends traffic the policy refuses.
The token reaches the pod only as a secretKeyRef env var, is part of the config hash (so
rotating it rolls the pods), and a missing token Secret is reported like any other.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from atomic_devcluster.operator_process import OperatorProcess
from tests.support.kube import Kube, eventually
from tests.support.manifests import example, variant

TOKEN = "t0ken-for-run-calls-9f3a"
CLOSED: dict[str, Any] = {"spec": {"access": {
    "bearerTokenSecretRef": {"name": "agent-token", "key": "token"},
    "networkPolicy": {
        "enabled": True,
        "allowFrom": [{"namespaceSelector": {"matchLabels": {"team": "a"}},
                       "podSelector": {"matchLabels": {"app": "frontend"}}}],
        "metricsFrom": [{"namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    },
}}}


@pytest.fixture
def closed_ns(kube: Kube, operator: OperatorProcess) -> Kube:
    kube.run("create", "secret", "generic", "openai-credentials", "--from-literal=api-key=k")
    kube.run("create", "secret", "generic", "agent-token", f"--from-literal=token={TOKEN}")
    return kube


def pod_template(kube: Kube) -> dict[str, Any]:
    template: dict[str, Any] = kube.get("deployment", "task-processor")["spec"]["template"]
    return template


def network_policy(kube: Kube) -> dict[str, Any] | None:
    out = kube.run("get", "networkpolicy", "task-processor", "-o", "json", check=False)
    return json.loads(out) if out.startswith("{") else None


def test_network_policy_admits_only_the_chosen_clients(closed_ns: Kube) -> None:
    closed_ns.apply(variant("task-processor", CLOSED))
    closed_ns.run("wait", "--for=condition=Ready", "--timeout=20s", "atomicagent/task-processor")
    policy = eventually(lambda: network_policy(closed_ns), timeout=10, what="a NetworkPolicy")
    agent = closed_ns.get("atomicagent", "task-processor")
    assert policy["metadata"]["ownerReferences"][0]["uid"] == agent["metadata"]["uid"]
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {"atomicagents.io/agent": "task-processor"}}
    assert spec["policyTypes"] == ["Ingress"]
    api, metrics = spec["ingress"]
    assert api["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert api["from"] == [
        {"namespaceSelector": {"matchLabels": {"team": "a"}},
         "podSelector": {"matchLabels": {"app": "frontend"}}},
        {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "pipeline",
                                         "app.kubernetes.io/managed-by": "atomic-operator"}}},
    ]
    assert metrics == {"ports": [{"port": "metrics", "protocol": "TCP"}], "from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}
    # both ports are named on the pods the policy selects
    ports = {p["name"] for c in pod_template(closed_ns)["spec"]["containers"]
             for p in c["ports"]}
    assert {"http", "metrics"} <= ports
    # deleted by hand: restored; turned off: removed
    closed_ns.run("delete", "networkpolicy", "task-processor")
    eventually(lambda: network_policy(closed_ns), timeout=10, what="the policy restored")
    closed_ns.apply(variant("task-processor", {"spec": {"access": {
        "networkPolicy": {"enabled": False}}}}))
    eventually(lambda: network_policy(closed_ns) is None, timeout=10, what="the policy removed")


def test_bearer_token_comes_from_its_secret_and_rotation_rolls(closed_ns: Kube) -> None:
    closed_ns.apply(variant("task-processor", CLOSED))
    closed_ns.run("wait", "--for=condition=Ready", "--timeout=20s", "atomicagent/task-processor")
    template = pod_template(closed_ns)
    env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
    assert env["ATOMIC_AGENT_AUTH_TOKEN"] == {"name": "ATOMIC_AGENT_AUTH_TOKEN", "valueFrom": {
        "secretKeyRef": {"name": "agent-token", "key": "token"}}}
    before = template["metadata"]["annotations"]["atomicagents.io/config-hash"]
    dumped = closed_ns.run("get", "deployment,configmap,atomicagent,events", "-o", "json")
    assert TOKEN not in dumped
    closed_ns.run("patch", "secret/agent-token", "--type=merge", "-p",
                  '{"stringData": {"token": "a-rotated-token-for-run-calls"}}')
    eventually(lambda: pod_template(closed_ns)["metadata"]["annotations"][
        "atomicagents.io/config-hash"] != before, timeout=10, what="pods rolled on rotation")


def test_missing_token_secret_is_reported(kube: Kube, operator: OperatorProcess) -> None:
    kube.run("create", "secret", "generic", "openai-credentials", "--from-literal=api-key=k")
    kube.apply(variant("task-processor", CLOSED))
    agent = eventually(lambda: (a := kube.get("atomicagent", "task-processor")) and any(
        c["type"] == "Ready" and c["reason"] == "MissingSecret"
        for c in (a.get("status") or {}).get("conditions") or []) and a,
        timeout=10, what="Ready=False/MissingSecret")
    ready = next(c for c in agent["status"]["conditions"] if c["type"] == "Ready")
    assert "spec.access.bearerTokenSecretRef.name" in ready["message"]
    kube.run("create", "secret", "generic", "agent-token", f"--from-literal=token={TOKEN}")
    kube.run("wait", "--for=condition=Ready", "--timeout=20s", "atomicagent/task-processor")


def test_a_peer_without_selectors_is_refused_at_admission(kube: Kube) -> None:
    bad = variant("task-processor", {"spec": {"access": {"networkPolicy": {
        "enabled": True, "allowFrom": [{}]}}}})
    code, out = kube.apply(bad, check=False)
    assert code != 0
    assert "a peer needs podSelector, namespaceSelector or both" in out
    assert example("task-processor")["metadata"]["name"] not in kube.run(
        "get", "atomicagent", "-o", "name")


def test_agents_carry_no_finalizer(closed_ns: Kube) -> None:
    """Re-reading Secrets must not make agents undeletable while the operator is away."""
    closed_ns.apply(variant("task-processor", CLOSED))
    closed_ns.run("wait", "--for=condition=Ready", "--timeout=20s", "atomicagent/task-processor")
    assert "finalizers" not in closed_ns.get("atomicagent", "task-processor")["metadata"]
