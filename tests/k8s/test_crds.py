"""The generated CRDs as a user meets them: apply, explain, get, scale."""

from __future__ import annotations

from tests.support.kube import Kube
from tests.support.manifests import EXAMPLES


def test_examples_apply(kube: Kube) -> None:
    code, out = kube.apply("\n---\n".join(p.read_text() for p in sorted(EXAMPLES.glob("*.yaml"))))
    assert code == 0, out
    assert "atomicagent.atomicagents.io/task-processor created" in out
    assert "atomicpipeline.atomicagents.io/analysis-to-tasks created" in out


def test_explain_shows_descriptions(kube: Kube) -> None:
    out = kube.run("explain", "atomicagent.spec.model")
    assert "The model that answers." in out
    assert "baseURL" in out and "required for ollama and openai-compatible" in out
    deep = kube.run("explain", "atomicpipeline.spec.steps.forEach")
    assert "runs once per element" in deep


def test_get_atomic_lists_both_kinds_with_columns(kube: Kube) -> None:
    for name in ("task-processor", "content-analyzer", "analysis-to-tasks"):
        kube.apply((EXAMPLES / f"{name}.yaml").read_text())
    out = kube.run("get", "atomic")
    lines = out.splitlines()
    headers = [line.split() for line in lines if line.startswith("NAME")]
    assert ["NAME", "MODEL", "DESIRED", "READY", "STATUS", "AGE"] in headers, out
    assert ["NAME", "STEPS", "COMPATIBLE", "STATUS", "AGE"] in headers, out
    assert any(line.startswith("atomicagent.atomicagents.io/task-processor") and
               "gpt-4o-mini" in line for line in lines), out
    assert any(line.startswith("atomicpipeline.atomicagents.io/analysis-to-tasks")
               for line in lines), out
    short = kube.run("get", "aa,apl", "-o", "name")
    assert "atomicagent.atomicagents.io/content-analyzer" in short


def test_scale_subresource(kube: Kube) -> None:
    kube.apply((EXAMPLES / "task-processor.yaml").read_text())
    kube.run("scale", "atomicagent/task-processor", "--replicas=3")
    assert kube.get("atomicagent", "task-processor")["spec"]["replicas"] == 3
    scale = kube.run("get", "--raw",
                     f"/apis/atomicagents.io/v1alpha1/namespaces/{kube.namespace}"
                     "/atomicagents/task-processor/scale")
    assert '"replicas":3' in scale.replace(" ", "")


def test_defaults_are_applied_by_the_api_server(kube: Kube) -> None:
    kube.apply((EXAMPLES / "content-analyzer.yaml").read_text())
    spec = kube.get("atomicagent", "content-analyzer")["spec"]
    assert spec["model"]["timeoutSeconds"] == 60
    assert spec["autoscaling"]["scaleDownStabilizationSeconds"] == 300


def test_status_is_a_subresource(kube: Kube) -> None:
    """A user's apply cannot write status; only the status subresource can."""
    kube.apply((EXAMPLES / "task-processor.yaml").read_text())
    kube.run("patch", "atomicagent/task-processor", "--type=merge",
             "-p", '{"status": {"readyReplicas": 7}}')
    assert "readyReplicas" not in kube.get("atomicagent", "task-processor").get("status", {})
    kube.run("patch", "atomicagent/task-processor", "--subresource=status", "--type=merge",
             "-p", '{"status": {"readyReplicas": 7}}')
    assert kube.get("atomicagent", "task-processor")["status"]["readyReplicas"] == 7
