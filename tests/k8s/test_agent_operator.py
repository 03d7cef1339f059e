"""The operator against the real control plane: children, status, drift, errors, cleanup."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest

from atomic_devcluster.operator_process import OperatorProcess
from tests.support.kube import Kube, eventually
from tests.support.manifests import example, variant

API_KEY = "sk-test-DO-NOT-LEAK-4f1c"
CHILD_KINDS = "deployment,configmap,service,hpa,pdb"


@pytest.fixture
def agent_ns(kube: Kube, operator: OperatorProcess) -> Kube:
    """A namespace with the examples' Secret, while the operator runs."""
    kube.run("create", "secret", "generic", "openai-credentials",
             f"--from-literal=api-key={API_KEY}")
    return kube


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def children(kube: Kube, agent: str) -> dict[str, dict[str, Any]]:
    out = json.loads(kube.run("get", CHILD_KINDS, "-l", f"atomicagents.io/agent={agent}",
                              "-o", "json"))
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in out["items"]}


def wait_ready(kube: Kube, name: str, timeout: float = 20) -> dict[str, Any]:
    kube.run("wait", "--for=condition=Ready", f"--timeout={int(timeout)}s",
             f"atomicagent/{name}")
    return kube.get("atomicagent", name)


def test_agent_becomes_ready_with_owned_children(agent_ns: Kube) -> None:
    started = time.monotonic()
    agent_ns.apply(example("task-processor"))
    agent = wait_ready(agent_ns, "task-processor")
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"Ready after {elapsed:.1f} s"
    kids = children(agent_ns, "task-processor")
    assert set(kids) == {"Deployment/task-processor", "ConfigMap/task-processor-config",
                         "Service/task-processor"}
    uid = agent["metadata"]["uid"]
    for child in kids.values():
        refs = child["metadata"]["ownerReferences"]
        assert refs == [{"apiVersion": "atomicagents.io/v1alpha1", "kind": "AtomicAgent",
                         "name": "task-processor", "uid": uid, "controller": True,
                         "blockOwnerDeletion": True}]
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "atomic-operator"
    status = agent["status"]
    assert status["observedGeneration"] == agent["metadata"]["generation"]
    assert status["readyReplicas"] == 1 and status["replicas"] == 1
    assert status["endpoint"] == (
        f"http://task-processor.{agent_ns.namespace}.svc.cluster.local:80")
    assert status["selector"] == "atomicagents.io/agent=task-processor"
    assert condition(agent, "Progressing")["status"] == "False"
    assert condition(agent, "Degraded")["status"] == "False"
    ports = {p["name"] for p in kids["Service/task-processor"]["spec"]["ports"]}
    assert ports == {"http", "metrics"}


def test_no_secret_value_anywhere(agent_ns: Kube, operator: OperatorProcess) -> None:
    agent_ns.apply(example("task-processor"))
    wait_ready(agent_ns, "task-processor")
    dumped = agent_ns.run("get", f"{CHILD_KINDS},atomicagent,events", "-o", "json")
    assert API_KEY not in dumped
    assert API_KEY not in operator.logs()
    assert '"secretKeyRef": {"key": "api-key", "name": "openai-credentials"}' in \
        json.dumps(json.loads(dumped), sort_keys=True)


def test_scale_subresource_drives_the_deployment(agent_ns: Kube) -> None:
    # Mode none: the agent's spec.replicas owns the count. (The example's custom mode gives
    # it to the autoscaler, which took spec.replicas only while it had not decided yet: the
    # test raced the autoscaler's first tick and lost on a busy machine. See the next test.)
    agent_ns.apply(variant("task-processor", {"spec": {"autoscaling": {"mode": "none"}}}))
    wait_ready(agent_ns, "task-processor")
    agent_ns.run("scale", "atomicagent/task-processor", "--replicas=3")
    eventually(lambda: agent_ns.get("deployment", "task-processor")["spec"]["replicas"] == 3,
               what="Deployment scaled to 3")
    agent = eventually(lambda: (a := agent_ns.get("atomicagent", "task-processor"))
                       ["status"].get("readyReplicas") == 3 and a, timeout=15,
                       what="3 ready replicas in status")
    assert condition(agent, "Ready")["status"] == "True"
    assert "PodDisruptionBudget/task-processor" in children(agent_ns, "task-processor")
    # Someone scales the Deployment by hand: the agent's spec.replicas wins.
    agent_ns.run("scale", "deployment/task-processor", "--replicas=1")
    eventually(lambda: agent_ns.get("deployment", "task-processor")["spec"]["replicas"] == 3,
               timeout=5, what="Deployment back to 3")


def test_in_custom_mode_the_autoscaler_not_the_scale_subresource_owns_the_count(
        agent_ns: Kube) -> None:
    """The other side of that race, pinned: once the autoscaler has decided, `kubectl scale`
    on a custom-mode agent moves nothing (docs/architecture.md, "Replicas")."""
    agent_ns.apply(example("task-processor"))
    wait_ready(agent_ns, "task-processor")
    decided = eventually(
        lambda: (c := condition(agent_ns.get("atomicagent", "task-processor"), "ScalingActive"))
        .get("reason") not in (None, "AutoscalerNotRunning") and c, timeout=15,
        what="the autoscaler's first decision")
    assert decided["reason"] in ("WaitingForPods", "MetricsMissing"), decided  # kwok pods
    agent_ns.run("scale", "atomicagent/task-processor", "--replicas=3")
    deadline = time.monotonic() + 5  # two autoscaler intervals and more
    while time.monotonic() < deadline:
        assert agent_ns.get("deployment", "task-processor")["spec"]["replicas"] == 1
        time.sleep(0.5)


@pytest.mark.parametrize("kind", ["deployment", "service", "configmap"])
def test_deleted_child_is_restored(agent_ns: Kube, kind: str) -> None:
    agent_ns.apply(example("task-processor"))
    wait_ready(agent_ns, "task-processor")
    name = "task-processor-config" if kind == "configmap" else "task-processor"
    old_uid = agent_ns.get(kind, name)["metadata"]["uid"]
    agent_ns.run("delete", kind, name, "--wait=false")
    started = time.monotonic()
    eventually(lambda: (o := agent_ns.run("get", kind, name, "-o", "json", check=False))
               .startswith("{") and json.loads(o)["metadata"]["uid"] != old_uid,
               timeout=5, what=f"{kind} restored")
    assert time.monotonic() - started < 5
    # kopf posts events from a background queue: the event may trail the restore.
    eventually(lambda: agent_ns.run("get", "events", "--field-selector", "reason=Restored",
                                    "-o", "name").strip(), timeout=5, what="a Restored event")


def test_hand_edit_is_reverted(agent_ns: Kube) -> None:
    agent_ns.apply(example("task-processor"))
    wait_ready(agent_ns, "task-processor")
    agent_ns.run("patch", "deployment/task-processor", "--type=json", "-p",
                 '[{"op": "replace", "path": "/spec/template/spec/containers/0/image", '
                 '"value": "evil/image:1"}]')
    agent_ns.run("patch", "service/task-processor", "--type=merge", "-p",
                 '{"spec": {"selector": {"atomicagents.io/agent": "other"}}}')

    def image() -> str:
        dep = agent_ns.get("deployment", "task-processor")
        return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])

    eventually(lambda: image() != "evil/image:1", timeout=5, what="image restored")
    eventually(lambda: agent_ns.get("service", "task-processor")["spec"]["selector"] ==
               {"atomicagents.io/agent": "task-processor"}, timeout=5, what="selector restored")


def _pod_hash(kube: Kube) -> str:
    dep = kube.get("deployment", "task-processor")
    return str(dep["spec"]["template"]["metadata"]["annotations"]["atomicagents.io/config-hash"])


def test_prompt_change_updates_config_and_rolls(agent_ns: Kube) -> None:
    agent_ns.apply(example("task-processor"))
    wait_ready(agent_ns, "task-processor")
    before = _pod_hash(agent_ns)
    agent_ns.apply(variant("task-processor", {"spec": {
        "systemPrompt": {"steps": ["Answer in one sentence"]},
        "model": {"name": "gpt-4.1-mini"}}}))
    eventually(lambda: _pod_hash(agent_ns) != before, timeout=5, what="pods rolled")
    config = json.loads(agent_ns.get("configmap", "task-processor-config")["data"]["agent.json"])
    assert config["systemPrompt"]["steps"] == ["Answer in one sentence"]
    assert config["model"]["name"] == "gpt-4.1-mini"
    agent = wait_ready(agent_ns, "task-processor")
    assert agent["status"]["observedGeneration"] == 2
    assert agent_ns.run("get", "events", "--field-selector", "reason=RollingOut", "-o", "name")


def test_secret_rotation_rolls_pods(agent_ns: Kube) -> None:
    agent_ns.apply(example("task-processor"))
    wait_ready(agent_ns, "task-processor")
    before = _pod_hash(agent_ns)
    agent_ns.run("create", "secret", "generic", "openai-credentials",
                 "--from-literal=api-key=sk-rotated", "--dry-run=client", "-o", "yaml")
    agent_ns.run("patch", "secret/openai-credentials", "--type=merge", "-p",
                 '{"stringData": {"api-key": "sk-rotated"}}')
    eventually(lambda: _pod_hash(agent_ns) != before, timeout=5, what="pods rolled on rotation")


def test_deleting_the_agent_removes_children(agent_ns: Kube) -> None:
    agent_ns.apply(example("content-analyzer"))
    eventually(lambda: len(children(agent_ns, "content-analyzer")) == 5, timeout=10,
               what="five children")
    agent_ns.run("delete", "atomicagent/content-analyzer", "--wait=true", "--timeout=20s")
    eventually(lambda: not children(agent_ns, "content-analyzer"), timeout=15,
               what="children garbage-collected")


def test_switching_autoscaling_mode_removes_the_hpa(agent_ns: Kube) -> None:
    agent_ns.apply(example("content-analyzer"))
    eventually(lambda: "HorizontalPodAutoscaler/content-analyzer" in
               children(agent_ns, "content-analyzer"), timeout=10, what="HPA")
    agent_ns.apply(variant("content-analyzer", {"spec": {
        "autoscaling": {"mode": "none"}, "replicas": 1}}))
    eventually(lambda: not {"HorizontalPodAutoscaler/content-analyzer",
                            "PodDisruptionBudget/content-analyzer"}
               & set(children(agent_ns, "content-analyzer")), timeout=10,
               what="HPA and PDB deleted")


def _assert_problem(kube: Kube, name: str, reason: str, field: str) -> dict[str, Any]:
    agent = eventually(lambda: (a := kube.get("atomicagent", name))
                       and condition(a, "Ready").get("reason") == reason and a,
                       timeout=10, what=f"Ready=False/{reason}")
    ready = condition(agent, "Ready")
    assert ready["status"] == "False"
    assert field in ready["message"], ready
    assert condition(agent, "Degraded")["status"] == "True"
    events = json.loads(kube.run("get", "events", "--field-selector",
                                 f"reason={reason},type=Warning", "-o", "json"))["items"]
    assert any(field in e["message"] for e in events), events
    return agent


BAD_AFFINITY = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
    "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "Sometimes"}]}]}}}
"""Affinity is passed through untyped: only the API server's dry run can refuse it."""

BAD_SPECS = [
    ("invalid-json-schema", {"spec": {"outputSchema": {"properties": {
        "confidence": {"type": "probability"}}}}},
     "InvalidSchema", "spec.outputSchema.properties.confidence.type"),
    ("mode-for-other-provider", {"spec": {"model": {"mode": "anthropic_tools"}}},
     "UnsupportedMode", "spec.model.mode"),
    ("pull-policy-conflict", {"spec": {"imagePullPolicy": "Never"}},
     "ImagePullPolicyConflict", "spec.imagePullPolicy"),
    ("missing-secret-key", {"spec": {"model": {"apiKeySecretRef": {"key": "nope"}}}},
     "MissingSecretKey", "spec.model.apiKeySecretRef.key"),
    ("missing-context-config-map", {"spec": {"contextProviders": [
        {"name": "glossary", "title": "Glossary",
         "configMapKeyRef": {"name": "glossary", "key": "terms"}}]}},
     "MissingConfigMap", "spec.contextProviders[0].configMapKeyRef.name"),
    ("affinity-the-api-server-refuses", {"spec": {"pod": {"affinity": BAD_AFFINITY}}},
     "RejectedByApiServer", "affinity"),
]


@pytest.mark.parametrize(("patch", "reason", "field"), [c[1:] for c in BAD_SPECS],
                         ids=[c[0] for c in BAD_SPECS])
def test_bad_spec_reports_and_creates_nothing(agent_ns: Kube, patch: dict[str, Any],
                                              reason: str, field: str) -> None:
    agent_ns.apply(variant("task-processor", patch))
    _assert_problem(agent_ns, "task-processor", reason, field)
    assert children(agent_ns, "task-processor") == {}
    # Fixing the spec recovers without a restart.
    agent_ns.apply(example("task-processor"))
    wait_ready(agent_ns, "task-processor")


def test_bad_update_keeps_the_running_children(agent_ns: Kube) -> None:
    agent_ns.apply(example("task-processor"))
    wait_ready(agent_ns, "task-processor")
    before = _pod_hash(agent_ns)
    agent_ns.apply(variant("task-processor", {"spec": {"pod": {"affinity": BAD_AFFINITY}}}))
    _assert_problem(agent_ns, "task-processor", "RejectedByApiServer", "affinity")
    assert _pod_hash(agent_ns) == before
    assert len(children(agent_ns, "task-processor")) == 3


def test_missing_secret_recovers_when_created(kube: Kube, operator: OperatorProcess) -> None:
    kube.apply(example("task-processor"))
    _assert_problem(kube, "task-processor", "MissingSecret", "spec.model.apiKeySecretRef.name")
    assert children(kube, "task-processor") == {}
    kube.run("create", "secret", "generic", "openai-credentials", "--from-literal=api-key=k")
    wait_ready(kube, "task-processor")


def test_operator_metrics(agent_ns: Kube, operator: OperatorProcess) -> None:
    agent_ns.apply(example("task-processor"))
    wait_ready(agent_ns, "task-processor")
    with urllib.request.urlopen(operator.metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    assert 'atomic_operator_reconciles_total{kind="AtomicAgent"' in text
    assert 'atomic_operator_children_applied_total{child="Deployment",kind="AtomicAgent"}' in text
    assert "atomic_operator_reconcile_duration_seconds_bucket" in text
