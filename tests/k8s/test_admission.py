"""Invalid manifests are rejected at apply, and the error names the offending field.

Each case is an example with a JSON merge patch; the expected text is what a user must see
to know which field to fix.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.kube import Kube
from tests.support.manifests import variant

AGENT = "task-processor"
PIPELINE = "analysis-to-tasks"

CASES: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = [
    ("unknown-provider", AGENT, {"spec": {"model": {"provider": "openia"}}},
     ("spec.model.provider", "Unsupported value")),
    ("ollama-without-base-url", AGENT,
     {"spec": {"model": {"provider": "ollama", "apiKeySecretRef": None}}},
     ("spec.model.baseURL", "baseURL is required")),
    ("openai-without-api-key", AGENT, {"spec": {"model": {"apiKeySecretRef": None}}},
     ("spec.model.apiKeySecretRef", "apiKeySecretRef is required")),
    ("base-url-not-a-url", AGENT, {"spec": {"model": {"baseURL": "localhost:11434"}}},
     ("spec.model.baseURL", "should match")),
    ("temperature-too-high", AGENT, {"spec": {"model": {"temperature": 3}}},
     ("spec.model.temperature", "less than or equal to 2")),
    ("timeout-zero", AGENT, {"spec": {"model": {"timeoutSeconds": 0}}},
     ("spec.model.timeoutSeconds",)),
    ("api-key-ref-without-key", AGENT,
     {"spec": {"model": {"apiKeySecretRef": {"key": None}}}},
     ("spec.model.apiKeySecretRef.key", "Required value")),
    ("missing-system-prompt", AGENT, {"spec": {"systemPrompt": None}},
     ("spec.systemPrompt", "Required value")),
    ("empty-background", AGENT, {"spec": {"systemPrompt": {"background": []}}},
     ("spec.systemPrompt.background",)),
    ("input-schema-not-object", AGENT, {"spec": {"inputSchema": {"type": "array"}}},
     ("spec.inputSchema.type", "Unsupported value")),
    ("no-schemas-no-entrypoint", AGENT, {"spec": {"outputSchema": None}},
     ("spec.inputSchema", "inputSchema and outputSchema are required")),
    ("entrypoint-not-module-attribute", AGENT, {"spec": {"entrypoint": "my_agent"}},
     ("spec.entrypoint", "should match")),
    ("context-provider-two-sources", AGENT, {"spec": {"contextProviders": [
        {"name": "a", "title": "A", "text": "x",
         "configMapKeyRef": {"name": "cm", "key": "k"}}]}},
     ("spec.contextProviders[0]", "exactly one of text, configMapKeyRef or secretKeyRef")),
    ("context-provider-no-source", AGENT, {"spec": {"contextProviders": [
        {"name": "a", "title": "A"}]}},
     ("spec.contextProviders[0]", "exactly one of")),
    ("duplicate-context-providers", AGENT, {"spec": {"contextProviders": [
        {"name": "a", "title": "A", "text": "x"}, {"name": "a", "title": "B", "text": "y"}]}},
     ("spec.contextProviders[1]", "Duplicate value")),
    ("min-above-max-replicas", AGENT,
     {"spec": {"autoscaling": {"minReplicas": 6, "maxReplicas": 5}}},
     ("spec.autoscaling.minReplicas", "less than or equal to maxReplicas")),
    ("scale-to-zero-custom", AGENT,
     {"spec": {"autoscaling": {"mode": "custom", "minReplicas": 0}}},
     ("spec.autoscaling.minReplicas", "greater than or equal to 1")),
    ("scale-to-zero-hpa", AGENT, {"spec": {"autoscaling": {"mode": "hpa", "minReplicas": 0}}},
     ("spec.autoscaling.minReplicas", "greater than or equal to 1")),
    ("unknown-autoscaling-mode", AGENT, {"spec": {"autoscaling": {"mode": "keda"}}},
     ("spec.autoscaling.mode", "Unsupported value")),
    ("negative-replicas", AGENT, {"spec": {"replicas": -1}},
     ("spec.replicas", "greater than or equal to 0")),
    ("zero-max-in-flight", AGENT, {"spec": {"concurrency": {"maxInFlight": 0}}},
     ("spec.concurrency.maxInFlight",)),
    ("reserved-env", AGENT, {"spec": {"pod": {"env": [
        {"name": "ATOMIC_AGENT_API_KEY", "value": "sk-x"}]}}},
     ("spec.pod.env", "reserved")),
    ("bad-pull-policy", AGENT, {"spec": {"imagePullPolicy": "Sometimes"}},
     ("spec.imagePullPolicy", "Unsupported value")),
    ("name-not-dns-1035", AGENT, {"metadata": {"name": "9-lives"}},
     ("metadata.name must be a DNS-1035 label",)),
    ("duplicate-step-names", PIPELINE, {"spec": {"steps": [
        {"name": "a", "agentRef": {"name": "x"}}, {"name": "a", "agentRef": {"name": "y"}}],
        "output": {"from": "steps.a.output"}}},
     ("spec.steps[1]", "Duplicate value")),
    ("depends-on-unknown-step", PIPELINE, {"spec": {"steps": [
        {"name": "a", "agentRef": {"name": "x"}, "dependsOn": ["b"]}],
        "output": {"from": "steps.a.output"}}},
     ("spec.steps", "every dependsOn entry must name a step")),
    ("depends-on-itself", PIPELINE, {"spec": {"steps": [
        {"name": "a", "agentRef": {"name": "x"}, "dependsOn": ["a"]}],
        "output": {"from": "steps.a.output"}}},
     ("spec.steps[0].dependsOn", "cannot depend on itself")),
    ("for-each-not-a-step-output", PIPELINE, {"spec": {"steps": [
        {"name": "a", "agentRef": {"name": "x"}, "forEach": "input.items"}],
        "output": {"from": "steps.a.output"}}},
     ("spec.steps[0].forEach",)),
    ("bad-reference", PIPELINE, {"spec": {"steps": [
        {"name": "a", "agentRef": {"name": "x"}, "input": {"content": {"from": "$.content"}}}],
        "output": {"from": "steps.a.output"}}},
     ("spec.steps[0].input.content.from", "should match")),
    ("binding-from-and-template", PIPELINE, {"spec": {"steps": [
        {"name": "a", "agentRef": {"name": "x"},
         "input": {"content": {"from": "input.content", "template": "${input.content}"}}}],
        "output": {"from": "steps.a.output"}}},
     ("spec.steps[0].input[content]", "only one of from, template or value")),
    ("output-from-unknown-step", PIPELINE, {"spec": {"output": {"from": "steps.nope.output"}}},
     ("spec.output.from", "must reference a step of this pipeline")),
    ("no-steps", PIPELINE, {"spec": {"steps": [], "output": {"from": "input"}}},
     ("spec.steps",)),
    ("step-without-agent", PIPELINE, {"spec": {"steps": [{"name": "a"}],
                                               "output": {"from": "steps.a.output"}}},
     ("spec.steps[0].agentRef", "Required value")),
]


def test_enough_cases() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize(("base", "patch", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_manifest_is_rejected_naming_the_field(
        kube: Kube, base: str, patch: dict[str, Any], expected: tuple[str, ...]) -> None:
    code, out = kube.apply(variant(base, patch), check=False)
    assert code != 0, f"accepted: {out}"
    for text in expected:
        assert text in out, f"{text!r} not in: {out}"
    # Nothing was stored.
    kind = "atomicagent" if base == AGENT else "atomicpipeline"
    assert kube.run("get", kind, "-o", "name") == ""
