"""Invalid manifests are rejected at apply, and the error names the offending field.

Each case is an example with a JSON merge patch; the expected text is what a user must see
to know which field to fix. CASES are refused by the CRD itself (schema and CEL);
WEBHOOK_CASES need code and are refused by the operator's validating webhook, served
here on 127.0.0.1 by a real operator process and called by the real API server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from atomic_devcluster import ControlPlane
from atomic_devcluster.operator_process import OperatorProcess, running_operator
from atomic_devcluster.processes import free_port
from tests.support.kube import Kube, eventually
from tests.support.manifests import example, variant

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
    # Quantities and every other field that reaches a child (#13, item 12).
    ("cpu-not-a-quantity", AGENT, {"spec": {"resources": {"requests": {"cpu": "lots"}}}},
     ("spec.resources.requests.cpu", "should match")),
    ("memory-with-a-space", AGENT, {"spec": {"resources": {"limits": {"memory": "512 Mi"}}}},
     ("spec.resources.limits.memory", "should match")),
    ("negative-memory", AGENT, {"spec": {"resources": {"limits": {"memory": "-1Gi"}}}},
     ("spec.resources.limits.memory", "should match")),
    ("negative-integer-cpu", AGENT, {"spec": {"resources": {"requests": {"cpu": -1}}}},
     ("spec.resources.requests", "must not be negative")),
    ("request-above-limit", AGENT, {"spec": {"resources": {
        "requests": {"memory": "1Gi"}, "limits": {"memory": "256Mi"}}}},
     ("spec.resources.requests", "less than or equal to its limit")),
    ("unknown-resource-name", AGENT, {"spec": {"resources": {"requests": {"cpus": "1"}}}},
     ("spec.resources.requests", "resource names are")),
    ("secret-name-not-dns", AGENT,
     {"spec": {"model": {"apiKeySecretRef": {"name": "OpenAI_Credentials"}}}},
     ("spec.model.apiKeySecretRef.name", "should match")),
    ("secret-key-with-space", AGENT,
     {"spec": {"model": {"apiKeySecretRef": {"key": "api key"}}}},
     ("spec.model.apiKeySecretRef.key", "should match")),
    ("base-url-without-host", AGENT,
     {"spec": {"model": {"provider": "ollama", "apiKeySecretRef": None,
                         "baseURL": "http://:11434/v1"}}},
     ("spec.model.baseURL", "with a host")),
    ("empty-model-name", AGENT, {"spec": {"model": {"name": ""}}},
     ("spec.model.name",)),
    ("negative-max-tokens", AGENT, {"spec": {"model": {"maxTokens": -5}}},
     ("spec.model.maxTokens", "greater than or equal to 1")),
    ("negative-queue", AGENT, {"spec": {"concurrency": {"queueSize": -1}}},
     ("spec.concurrency.queueSize",)),
    ("empty-prompt-step", AGENT, {"spec": {"systemPrompt": {"steps": ["Read it", ""]}}},
     ("spec.systemPrompt.steps[1]",)),
    ("empty-context-text", AGENT, {"spec": {"contextProviders": [
        {"name": "a", "title": "A", "text": ""}]}},
     ("spec.contextProviders[0].text",)),
    ("context-config-map-bad-name", AGENT, {"spec": {"contextProviders": [
        {"name": "a", "title": "A", "configMapKeyRef": {"name": "My Glossary", "key": "k"}}]}},
     ("spec.contextProviders[0].configMapKeyRef.name", "should match")),
    ("env-name-with-space", AGENT, {"spec": {"pod": {"env": [{"name": "MY VAR", "value": "x"}]}}},
     ("spec.pod.env[0].name", "should match")),
    ("env-value-and-value-from", AGENT, {"spec": {"pod": {"env": [
        {"name": "X", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}}},
     ("spec.pod.env[0].valueFrom", "not both")),
    ("env-value-from-two-sources", AGENT, {"spec": {"pod": {"env": [
        {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"},
                                    "secretKeyRef": {"name": "s", "key": "k"}}}]}}},
     ("spec.pod.env[0].valueFrom", "exactly one of")),
    ("duplicate-env", AGENT, {"spec": {"pod": {"env": [
        {"name": "X", "value": "1"}, {"name": "X", "value": "2"}]}}},
     ("spec.pod.env[1]", "Duplicate value")),
    ("node-selector-bad-key", AGENT, {"spec": {"pod": {"nodeSelector": {"disk type": "ssd"}}}},
     ("spec.pod.nodeSelector", "label keys")),
    ("node-selector-bad-value", AGENT, {"spec": {"pod": {"nodeSelector": {"disk": "fast ssd"}}}},
     ("spec.pod.nodeSelector.disk", "should match")),
    ("toleration-bad-operator", AGENT, {"spec": {"pod": {"tolerations": [
        {"key": "a", "operator": "Sometimes"}]}}},
     ("spec.pod.tolerations[0].operator", "Unsupported value")),
    ("toleration-bad-effect", AGENT, {"spec": {"pod": {"tolerations": [
        {"key": "a", "operator": "Exists", "effect": "NoScheduling"}]}}},
     ("spec.pod.tolerations[0].effect", "Unsupported value")),
    ("toleration-exists-with-value", AGENT, {"spec": {"pod": {"tolerations": [
        {"key": "a", "operator": "Exists", "value": "b"}]}}},
     ("spec.pod.tolerations[0].value", "must be empty")),
    ("toleration-seconds-without-no-execute", AGENT, {"spec": {"pod": {"tolerations": [
        {"key": "a", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}]}}},
     ("spec.pod.tolerations[0].tolerationSeconds", "NoExecute")),
    ("service-account-bad-name", AGENT, {"spec": {"pod": {"serviceAccountName": "My Agent"}}},
     ("spec.pod.serviceAccountName", "should match")),
    ("image-with-space", AGENT, {"spec": {"image": "my image:1.0"}},
     ("spec.image", "should match")),
    ("image-upper-case", AGENT, {"spec": {"image": "Atomic/Runtime:1.0"}},
     ("spec.image", "should match")),
    ("unknown-field", AGENT, {"spec": {"replica": 2}},
     ('unknown field "spec.replica"',)),
    ("agent-ref-bad-name", PIPELINE, {"spec": {"steps": [
        {"name": "a", "agentRef": {"name": "Task_Processor"}}],
        "output": {"from": "steps.a.output"}}},
     ("spec.steps[0].agentRef.name", "should match")),
    ("runner-negative-replicas", PIPELINE, {"spec": {"runner": {"replicas": -1}}},
     ("spec.runner.replicas",)),
    ("runner-cpu-not-a-quantity", PIPELINE,
     {"spec": {"runner": {"resources": {"limits": {"cpu": "two"}}}}},
     ("spec.runner.resources.limits.cpu", "should match")),
]


def test_enough_cases() -> None:
    assert len(CASES) >= 60


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


WEBHOOK_CASES: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = [
    ("output-schema-not-json-schema", AGENT, {"spec": {"outputSchema": {"properties": {
        "confidence": {"type": "probability"}}}}},
     ("spec.outputSchema.properties.confidence.type", "not valid JSON Schema")),
    ("input-schema-negative-min-length", AGENT, {"spec": {"inputSchema": {"properties": {
        "description": {"type": "string", "minLength": -1}}}}},
     ("spec.inputSchema.properties.description.minLength", "not valid JSON Schema")),
    ("input-schema-bad-regex", AGENT, {"spec": {"inputSchema": {"properties": {
        "description": {"type": "string", "pattern": "([a-z"}}}}},
     ("spec.inputSchema.properties.description.pattern", "not valid JSON Schema")),
    ("mode-for-other-provider", AGENT, {"spec": {"model": {"mode": "anthropic_tools"}}},
     ("spec.model.mode", "does not work with provider openai")),
    ("pull-never-without-image", AGENT, {"spec": {"imagePullPolicy": "Never"}},
     ("spec.imagePullPolicy", "Never needs spec.image")),
    ("affinity-the-api-server-refuses", AGENT, {"spec": {"pod": {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "Sometimes"}]}]}}}}}},
     ("spec.template.spec.affinity.nodeAffinity", '"Sometimes"')),
    ("binding-value-and-from", PIPELINE, {"spec": {"steps": [
        {"name": "analyze", "agentRef": {"name": "content-analyzer"},
         "input": {"content": {"from": "input.content", "value": "x"}}}],
        "output": {"from": "steps.analyze.output"}}},
     ("spec.steps[0].input.content", "exactly one of from, template or value")),
    ("binding-without-source", PIPELINE, {"spec": {"steps": [
        {"name": "analyze", "agentRef": {"name": "content-analyzer"},
         "input": {"content": {}}}],
        "output": {"from": "steps.analyze.output"}}},
     ("spec.steps[0].input.content", "exactly one of from, template or value")),
    ("for-each-unknown-step", PIPELINE, {"spec": {"steps": [
        {"name": "analyze", "agentRef": {"name": "content-analyzer"},
         "input": {"content": {"from": "input.content"}}},
        {"name": "make-tasks", "agentRef": {"name": "task-processor"},
         "forEach": "steps.analyse.output.recommendations",
         "input": {"description": {"from": "item"}}}]}},
     ("spec.steps[1].forEach", "no step named analyse")),
    ("from-unknown-step", PIPELINE, {"spec": {"steps": [
        {"name": "analyze", "agentRef": {"name": "content-analyzer"},
         "input": {"content": {"from": "steps.nope.output.text"}}}],
        "output": {"from": "steps.analyze.output"}}},
     ("spec.steps[0].input.content.from", "no step named nope")),
    ("template-unknown-step", PIPELINE, {"spec": {"steps": [
        {"name": "analyze", "agentRef": {"name": "content-analyzer"},
         "input": {"content": {"template": "Read ${steps.nope.output.text}"}}}],
        "output": {"from": "steps.analyze.output"}}},
     ("spec.steps[0].input.content.template", "no step named nope")),
    ("template-not-a-reference", PIPELINE, {"spec": {"steps": [
        {"name": "analyze", "agentRef": {"name": "content-analyzer"},
         "input": {"content": {"template": "Read ${content}"}}}],
        "output": {"from": "steps.analyze.output"}}},
     ("spec.steps[0].input.content.template", "'content' is not a reference")),
    ("template-unterminated", PIPELINE, {"spec": {"steps": [
        {"name": "analyze", "agentRef": {"name": "content-analyzer"},
         "input": {"content": {"template": "see ${input.content"}}}],
        "output": {"from": "steps.analyze.output"}}},
     ("spec.steps[0].input.content.template", "'${input.content' is not closed")),
    ("input-field-not-in-input-schema", PIPELINE, {"spec": {"steps": [
        {"name": "analyze", "agentRef": {"name": "content-analyzer"},
         "input": {"content": {"from": "input.text"}}}],
        "output": {"from": "steps.analyze.output"}}},
     ("spec.steps[0].input.content.from", "the pipeline input has no field 'text'")),
    ("item-outside-for-each", PIPELINE, {"spec": {"steps": [
        {"name": "analyze", "agentRef": {"name": "content-analyzer"},
         "input": {"content": {"from": "item.text"}}}],
        "output": {"from": "steps.analyze.output"}}},
     ("spec.steps[0].input.content.from", "item is only defined in a step with forEach")),
    ("dependency-cycle", PIPELINE, {"spec": {"steps": [
        {"name": "a", "agentRef": {"name": "x"}, "input": {"t": {"from": "steps.b.output.t"}}},
        {"name": "b", "agentRef": {"name": "y"}, "input": {"t": {"from": "steps.a.output.t"}}}],
        "output": {"from": "steps.b.output"}}},
     ("spec.steps", "depend on each other in a cycle")),
    ("pipeline-input-schema-not-json-schema", PIPELINE, {"spec": {"inputSchema": {
        "properties": {"content": {"type": "text"}}}}},
     ("spec.inputSchema.properties.content.type", "not valid JSON Schema")),
]

WEBHOOK_CONFIGURATION = "atomic-operator-test.atomicagents.io"
WEBHOOK_PROBE = variant(AGENT, {"metadata": {"name": "webhook-probe"},
                                "spec": {"model": {"mode": "anthropic_tools"}}})


@pytest.fixture(scope="module")
def webhook(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[OperatorProcess]:
    """An operator serving only the webhook (it watches a namespace nothing uses), with a
    self-signed certificate and a URL client config, as in any cluster without Services
    for the API server to call."""
    env = {"ATOMIC_OPERATOR_WEBHOOK_ENABLED": "true",
           "ATOMIC_OPERATOR_WEBHOOK_LISTEN": "127.0.0.1",
           "ATOMIC_OPERATOR_WEBHOOK_HOST": "127.0.0.1",
           "ATOMIC_OPERATOR_WEBHOOK_PORT": str(free_port()),
           "ATOMIC_OPERATOR_WEBHOOK_CONFIGURATION": WEBHOOK_CONFIGURATION}
    log = tmp_path_factory.mktemp("webhook") / "operator.log"
    with running_operator(control_plane.kubeconfig, log, "--namespace=webhook-idle",
                          env=env) as proc:
        def refused() -> bool:
            out = control_plane.kubectl("apply", "--dry-run=server", "-n", "default", "-f",
                                        "-", input_text=json.dumps(WEBHOOK_PROBE), check=False)
            return "denied the request" in out.stderr
        eventually(refused, timeout=30, what="the webhook registered and answering")
        yield proc
    try:
        assert "Traceback" not in proc.logs(), proc.logs()[-5000:]
        # A refused manifest is the user's mistake, not an error of the operator.
        errors = [line for line in proc.logs().splitlines() if '"severity": "error"' in line]
        assert errors == [], errors[:3]
    finally:
        control_plane.kubectl("delete", "validatingwebhookconfiguration",
                              WEBHOOK_CONFIGURATION, "--ignore-not-found", check=False)


def test_enough_webhook_cases() -> None:
    assert len(WEBHOOK_CASES) >= 12


@pytest.mark.parametrize(("base", "patch", "expected"),
                         [c[1:] for c in WEBHOOK_CASES], ids=[c[0] for c in WEBHOOK_CASES])
def test_webhook_refuses_naming_the_field(
        kube: Kube, webhook: OperatorProcess, base: str, patch: dict[str, Any],
        expected: tuple[str, ...]) -> None:
    code, out = kube.apply(variant(base, patch), "--dry-run=server", check=False)
    assert code != 0, f"accepted: {out}"
    assert "denied the request" in out, out
    for text in expected:
        assert text in out, f"{text!r} not in: {out}"
    kind = "atomicagent" if base == AGENT else "atomicpipeline"
    assert kube.run("get", kind, "-o", "name") == ""


@pytest.mark.parametrize("name", ["task-processor", "content-analyzer", "analysis-to-tasks"])
def test_webhook_admits_the_examples(kube: Kube, webhook: OperatorProcess, name: str) -> None:
    """Cross-object checks stay in status: a pipeline naming agents that do not exist yet,
    an agent whose Secret is missing, both pass, so a GitOps sync in any order works."""
    code, out = kube.apply(example(name), check=False)
    assert code == 0, out
    # A later edit of the stored object goes through the webhook too.
    code, out = kube.apply(variant(name, {"metadata": {"labels": {"team": "a"}}}), check=False)
    assert code == 0, out


def test_webhook_checks_a_pipeline_against_the_agents_that_exist(
        kube: Kube, webhook: OperatorProcess) -> None:
    """Issue 22 #18: a pipeline that does not fit agents that exist was admitted (the
    webhook did not look at them). Refused now, with the message status would give; with
    an agent missing it is admitted, and kubectl prints the warning naming it."""
    steps = example("analysis-to-tasks")["spec"]["steps"]
    scalar = variant("analysis-to-tasks", {"spec": {"steps": [
        steps[0], {**steps[1], "forEach": "steps.analyze.output.summary"}]}})
    code, out = kube.apply(scalar, check=False)
    assert code == 0, out
    assert "Warning: no AtomicAgent named content-analyzer, task-processor in namespace " \
           f"{kube.namespace} yet" in out, out
    kube.run("delete", "atomicpipeline", "analysis-to-tasks")
    for name in ("content-analyzer", "task-processor"):
        kube.apply(example(name))
    code, out = kube.apply(scalar, check=False)
    assert code != 0 and "denied the request" in out, out
    assert ("spec.steps[1].forEach: step make-tasks: 'steps.analyze.output.summary' is not "
            "a list, so forEach cannot iterate over it") in out, out
    optional = variant("analysis-to-tasks", {"spec": {"steps": [
        {**steps[0], "optional": True},
        {"name": "make-tasks", "agentRef": {"name": "task-processor"},
         "input": {"description": {"from": "steps.analyze.output.summary"}}}]}})
    code, out = kube.apply(optional, check=False)
    assert code != 0 and "may be absent, but agent task-processor's input requires" in out, out
    code, out = kube.apply(example("analysis-to-tasks"), check=False)
    assert code == 0 and "Warning" not in out, out
