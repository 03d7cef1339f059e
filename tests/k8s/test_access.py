"""Closing an agent: its NetworkPolicy and its bearer token, against the real API server.

The NetworkPolicy is validated and stored by the API server, owned by the agent, removed
when turned off and restored when deleted by hand. Enforcing it is the network plugin's
job, and this control plane has none: no test here sends traffic the policy refuses.
The token reaches the pod only as a secretKeyRef env var, is part of the config hash (so
rotating it rolls the pods), and a missing token Secret is reported like any other.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from atomic_devcluster.operator_process import OperatorProcess
from tests.fakes.openai_server import FakeServerThread, free_port
from tests.support.kube import Kube, eventually
from tests.support.manifests import example, merge_patch, variant

ROOT = Path(__file__).resolve().parents[2]

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


def test_token_guards_run_over_real_http(closed_ns: Kube, tmp_path: Path) -> None:
    """The pod the operator rendered, run as a process: its env with the secretKeyRefs
    resolved from the cluster's Secrets, its agent.json from the rendered ConfigMap."""
    with FakeServerThread() as fake:
        closed_ns.apply(variant("task-processor", merge_patch(CLOSED, {"spec": {
            "model": {"baseURL": fake.base_url}}})))
        closed_ns.run("wait", "--for=condition=Ready", "--timeout=20s",
                      "atomicagent/task-processor")
        config = json.loads(closed_ns.get("configmap", "task-processor-config")["data"][
            "agent.json"])
        (tmp_path / "agent.json").write_text(json.dumps(config))
        port, metrics_port = free_port(), free_port()
        env = {**os.environ, **resolved_env(closed_ns), "PYTHONPATH": str(ROOT),
               "ATOMIC_AGENT_CONFIG": str(tmp_path / "agent.json"),
               "ATOMIC_AGENT_HOST": "127.0.0.1", "ATOMIC_AGENT_PORT": str(port),
               "ATOMIC_AGENT_METRICS_PORT": str(metrics_port),
               "ATOMIC_AGENT_DRAIN_DELAY_SECONDS": "0"}
        assert env["ATOMIC_AGENT_AUTH_TOKEN"] == TOKEN
        url = f"http://127.0.0.1:{port}"
        with (tmp_path / "runtime.log").open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "atomic_runtime"], env=env,
                                    cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            eventually(lambda: _get(f"{url}/readyz") == 200, timeout=60,
                       what="the runtime ready")
            body = {"description": "Write the release notes"}
            anonymous = httpx.post(f"{url}/run", json=body, timeout=10)
            assert anonymous.status_code == 401, anonymous.text
            assert anonymous.headers["www-authenticate"].startswith("Bearer")
            wrong = httpx.post(f"{url}/run", json=body, timeout=10,
                               headers={"Authorization": "Bearer not-the-token-at-all"})
            assert wrong.status_code == 401
            ok = httpx.post(f"{url}/run", json=body, timeout=10,
                            headers={"Authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200, ok.text
            answer = ok.json()
            assert isinstance(answer["task_id"], str) and 0 <= answer["confidence"] <= 1
            for open_path in ("/healthz", "/readyz", "/metrics"):
                assert _get(f"{url}{open_path}") == 200, open_path
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        assert TOKEN not in (tmp_path / "runtime.log").read_text()


def resolved_env(kube: Kube) -> dict[str, str]:
    """The agent container's env as the kubelet would set it."""
    container = pod_template(kube)["spec"]["containers"][0]
    env = {}
    for var in container["env"]:
        source = var.get("valueFrom") or {}
        if "fieldRef" in source:  # the downward API (the pod's name): not a pod here
            env[var["name"]] = "token-test-pod"
            continue
        ref = source.get("secretKeyRef")
        if ref is None:
            env[var["name"]] = var["value"]
            continue
        data = kube.get("secret", ref["name"])["data"]
        env[var["name"]] = base64.b64decode(data[ref["key"]]).decode()
    return env


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.TransportError:
        return 0
