"""Rendering: golden files, and the properties every rendered agent must have."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from atomic_operator.api import AtomicAgent
from atomic_operator.api.pipeline import AtomicPipeline
from atomic_operator.cli import main
from atomic_operator.cli.render import PLACEHOLDER_UID, render_documents
from atomic_operator.k8s.kinds import AGENT, refusable_kinds
from atomic_operator.reconcile.pipeline import check_of
from atomic_operator.render import AgentIdentity, render_agent
from atomic_operator.render.pipeline import render_pipeline
from atomic_operator.settings import OperatorSettings
from tests.support.manifests import EXAMPLES, example, variant

BAD_POD = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
    "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Sometimes"}]}]}}},
    "tolerations": [{"key": "k", "operator": "Exists", "value": "v", "effect": "NoSchedule"}]}
"""Pod fields only the API server refuses (an Exists toleration with a value)."""
GOLDEN = Path(__file__).resolve().parent.parent / "data" / "render"
CASES = sorted(p.stem for p in (GOLDEN / "input").glob("*.yaml"))


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    docs = list(yaml.safe_load_all((GOLDEN / "input" / f"{case}.yaml").read_text()))
    text = yaml.safe_dump_all(render_documents(docs, None, OperatorSettings()), sort_keys=False)
    golden = GOLDEN / "output" / f"{case}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.read_text() == text, f"{golden} differs: UPDATE_GOLDEN=1 to accept"


def _render(doc: dict[str, Any], digest: str = "") -> Any:
    agent = AtomicAgent.model_validate(doc)
    who = AgentIdentity(doc["metadata"]["name"], "ns", "uid")
    return render_agent(agent, who, OperatorSettings(), digest)


def test_hardened_pod() -> None:
    pod = _render(example("task-processor")).deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]}}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["terminationGracePeriodSeconds"] > 120  # covers the request deadline


def test_api_key_only_as_secret_reference() -> None:
    rendered = _render(example("task-processor"))
    env = rendered.deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    key = next(e for e in env if e["name"] == "ATOMIC_AGENT_API_KEY")
    assert key == {"name": "ATOMIC_AGENT_API_KEY", "valueFrom": {"secretKeyRef": {
        "name": "openai-credentials", "key": "api-key"}}}
    assert "api-key" not in json.dumps(rendered.config_map)


def test_replicas_never_rendered() -> None:
    """spec.replicas of the Deployment belongs to the scale subresource, not to apply."""
    assert "replicas" not in _render(example("task-processor")).deployment["spec"]


def test_hash_follows_config_and_secrets() -> None:
    base = _render(example("task-processor"), "s1").config_hash
    assert _render(example("task-processor"), "s2").config_hash != base
    changed = variant("task-processor", {"spec": {"systemPrompt": {"steps": ["Be brief"]}}})
    assert _render(changed, "s1").config_hash != base
    assert _render(example("task-processor"), "s1").config_hash == base


def test_user_text_cannot_inject_yaml() -> None:
    evil = "x\nkind: Secret\n  injected: true"
    rendered = _render(variant("task-processor", {"metadata": {"name": "evil"}, "spec": {
        "systemPrompt": {"background": [evil]},
        "pod": {"env": [{"name": "K", "value": "v\nhostNetwork: true"}]}}}))
    pod = rendered.deployment["spec"]["template"]["spec"]
    assert "hostNetwork" not in pod
    assert {"name": "K", "value": "v\nhostNetwork: true"} in pod["containers"][0]["env"]
    assert rendered.config_map["kind"] == "ConfigMap"
    assert json.loads(rendered.config_map["data"]["agent.json"])["systemPrompt"][
        "background"] == [evil]


def test_optional_children() -> None:
    assert _render(example("task-processor")).hpa is None
    assert _render(example("task-processor")).pdb is None
    analyzer = _render(example("content-analyzer"))
    assert analyzer.hpa is not None and analyzer.hpa["spec"]["minReplicas"] == 2
    assert analyzer.pdb is not None


def test_render_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-f", str(GOLDEN / "input" / "task-processor.yaml")]) == 0
    kinds = [d["kind"] for d in yaml.safe_load_all(capsys.readouterr().out)]
    assert kinds == ["Deployment", "ConfigMap", "Service"]


def test_render_cli_reports_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = variant("task-processor", {"spec": {"model": {"mode": "anthropic_tools"}}})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert main(["render", "-f", str(path)]) == 1
    assert "spec.model.mode" in capsys.readouterr().err


def test_render_cli_renders_a_pipelines_runner_as_the_operator_does(
        capsys: pytest.CaptureFixture[str]) -> None:
    files = [EXAMPLES / f"{name}.yaml" for name in
             ("analysis-to-tasks", "task-processor", "content-analyzer")]
    assert main(["render", *(f"--filename={f}" for f in files)]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    objects = list(yaml.safe_load_all(out.out))
    runner = {o["kind"]: o for o in objects
              if o["metadata"]["labels"].get("atomicagents.io/pipeline") == "analysis-to-tasks"}
    assert set(runner) == {"Deployment", "ConfigMap", "Service"}
    assert len(objects) == 3 + 3 + 5  # the runner, task-processor, content-analyzer
    # The very objects the operator applies: its render functions, fed as its reconcile
    # feeds them (the type check against the agents of the namespace).
    pipeline = AtomicPipeline.model_validate(example("analysis-to-tasks"))
    agents = {n: example(n) for n in ("task-processor", "content-analyzer")}
    who = AgentIdentity("analysis-to-tasks", "default", PLACEHOLDER_UID)
    expected = render_pipeline(pipeline, who, check_of(pipeline, agents), agents,
                               OperatorSettings())
    assert [runner[o["kind"]] for o in expected.children] == expected.children
    config = json.loads(runner["ConfigMap"]["data"]["pipeline.json"])
    assert config["kind"] == "PipelineConfig" and config["problems"] == []
    assert config["waves"] == [["analyze"], ["make-tasks"]]
    owner = runner["Deployment"]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("AtomicPipeline", "analysis-to-tasks")


def test_render_cli_says_what_a_pipeline_alone_lacks(capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    assert main(["render", "-f", str(EXAMPLES / "analysis-to-tasks.yaml")]) == 0
    out = capsys.readouterr()
    assert [d["kind"] for d in yaml.safe_load_all(out.out)] == [
        "Deployment", "ConfigMap", "Service"]
    assert "agents content-analyzer, task-processor are not in the input" in out.err


def test_render_cli_refuses_what_the_operator_refuses(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clash = variant("analysis-to-tasks", {"metadata": {"name": "task-processor"}})
    path = tmp_path / "clash.yaml"
    path.write_text(yaml.safe_dump_all([example("task-processor"), clash]))
    assert main(["render", "-f", str(path)]) == 1
    assert "an AtomicAgent named task-processor exists" in capsys.readouterr().err


def test_hpa_metrics_cpu_always_memory_and_in_flight_when_asked() -> None:
    plain = _render(example("content-analyzer")).hpa
    assert [m["resource"]["name"] for m in plain["spec"]["metrics"]] == ["cpu"]
    full = _render(variant("content-analyzer", {"spec": {"autoscaling": {
        "targetMemoryUtilizationPercentage": 75, "targetInFlightPerReplica": 6.4}}})).hpa
    cpu, memory, in_flight = full["spec"]["metrics"]
    assert cpu["resource"]["name"] == "cpu"
    assert memory["resource"] == {"name": "memory", "target": {
        "type": "Utilization", "averageUtilization": 75}}
    assert in_flight == {"type": "Pods", "pods": {
        "metric": {"name": "agent_inflight_requests"},
        "target": {"type": "AverageValue", "averageValue": "6400m"}}}


def test_children_not_dry_run_ignore_the_users_fields() -> None:
    """The reconcile dry-runs only `ChildKind.refusable` children. That is safe only while
    the others are rendered from the agent's name and the operator's own settings alone
    (the ConfigMap's data is the size-checked runtime config): a spec that sets every field
    the API server could refuse yields the same ConfigMap metadata, Service and PDB."""
    plain = _render(variant("content-analyzer", {"spec": {"model": {
        "name": "gpt-4o-mini"}}}))
    loaded = _render(variant("content-analyzer", {"spec": {
        "image": "registry.example/agent:v9",
        "replicas": 7,
        "autoscaling": {"mode": "hpa", "minReplicas": 3, "maxReplicas": 900},
        "resources": {"requests": {"cpu": "17"}, "limits": {"memory": "1Ei"}},
        "pod": {**BAD_POD, "env": [{"name": "K", "value": "v"}]},
        "access": {"networkPolicy": {"enabled": True, "allowFrom": [
            {"ipBlock": {"cidr": "10.0.0.0/33"}}]}}}}))
    refusable = refusable_kinds(AGENT)
    assert {"Deployment", "HorizontalPodAutoscaler", "NetworkPolicy"} <= refusable
    assert loaded.network_policy is not None and loaded.pdb is not None
    compared = 0
    for before, after in zip(plain.children, loaded.children, strict=False):
        assert before["kind"] == after["kind"]
        if after["kind"] in refusable:
            continue
        if after["kind"] == "ConfigMap":
            assert set(after["data"]) == set(before["data"])
            before, after = ({k: v for k, v in c.items() if k != "data"}
                             for c in (before, after))
        assert before == after, after["kind"]
        compared += 1
    assert compared == 3  # ConfigMap, Service, PodDisruptionBudget
