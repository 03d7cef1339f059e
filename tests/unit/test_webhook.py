"""The webhook's pure parts: settings, certificates, what it reviews."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest

from atomic_operator.k8s import ApiError
from atomic_operator.reconcile.pipeline import PipelineObservation, pipeline_status
from atomic_operator.webhook.certs import self_signed
from atomic_operator.webhook.review import (
    agent_problems,
    pipeline_problems,
    pipeline_review,
    refusal,
    spec_unchanged,
)
from atomic_operator.webhook.settings import WebhookSettings
from tests.support.manifests import example, variant


def test_settings_default_off_and_read_from_env() -> None:
    assert WebhookSettings.from_env({}).enabled is False
    ours = WebhookSettings.from_env({"ATOMIC_OPERATOR_WEBHOOK_ENABLED": "true",
                                     "ATOMIC_OPERATOR_WEBHOOK_FAILURE_POLICY": "Ignore",
                                     "ATOMIC_OPERATOR_WEBHOOK_SERVICE": "ops/atomic-webhook"})
    assert (ours.enabled, ours.failure_policy, ours.service) == (
        True, "Ignore", "ops/atomic-webhook")


@pytest.mark.parametrize(("name", "value"), [
    ("ENABLED", "yes"), ("FAILURE_POLICY", "fail"), ("PORT", "http"), ("PORT", "70000"),
    ("SERVICE", "webhook")])
def test_bad_settings_are_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"ATOMIC_OPERATOR_WEBHOOK_{name}"):
        WebhookSettings.from_env({f"ATOMIC_OPERATOR_WEBHOOK_{name}": value})


@pytest.mark.parametrize("host", ["atomic-webhook.ops.svc", "127.0.0.1"])
def test_self_signed_certificate_is_trusted_through_its_ca(tmp_path: Path, host: str) -> None:
    """A real TLS handshake on loopback: the client trusts only the CA and checks the name,
    as the API server does with the caBundle."""
    cert = self_signed(["atomic-webhook.ops.svc", "127.0.0.1"], tmp_path)
    assert cert.keyfile.stat().st_mode & 0o777 == 0o600
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert.certfile, cert.keyfile)
    client = ssl.create_default_context(cadata=cert.ca_pem.decode())
    received: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve() -> None:
            conn, _ = listener.accept()
            with server.wrap_socket(conn, server_side=True) as tls:
                received.append(tls.recv(5))

        thread = threading.Thread(target=serve)
        thread.start()
        with socket.create_connection(listener.getsockname()) as raw, \
                client.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(b"hello")
        thread.join(5)
    assert received == [b"hello"]


def test_a_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    cert = self_signed(["atomic-webhook.ops.svc"], tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert.certfile, cert.keyfile)
    client = ssl.create_default_context(cadata=cert.ca_pem.decode())
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve() -> None:
            conn, _ = listener.accept()
            with contextlib.suppress(ssl.SSLError, OSError):
                server.wrap_socket(conn, server_side=True).close()

        thread = threading.Thread(target=serve)
        thread.start()
        with socket.create_connection(listener.getsockname()) as raw, \
                pytest.raises(ssl.SSLCertVerificationError):
            client.wrap_socket(raw, server_hostname="other.ops.svc")
        thread.join(5)


def test_the_webhook_finds_what_the_reconcile_finds() -> None:
    assert agent_problems(example("task-processor")) == []
    problems = agent_problems(variant("task-processor", {"spec": {"model": {
        "mode": "anthropic_tools"}}}))
    assert [(p.field, p.reason) for p in problems] == [("spec.model.mode", "UnsupportedMode")]
    assert pipeline_problems(example("analysis-to-tasks")) == []  # agents are not looked up
    problems = pipeline_problems(variant("analysis-to-tasks", {"spec": {"steps": [
        {"name": "a", "agentRef": {"name": "x"},
         "input": {"t": {"template": "${nope}", "from": "input.content"}}}],
        "output": {"from": "steps.a.output"}}}))
    assert [p.field for p in problems] == ["spec.steps[0].input.t"]


def test_metadata_only_updates_are_not_reviewed() -> None:
    body = example("task-processor")
    assert spec_unchanged(body, {**body, "metadata": {"finalizers": ["x"]}})
    assert not spec_unchanged(body, None)
    assert not spec_unchanged(body, variant("task-processor", {"spec": {"replicas": 3}}))


@pytest.mark.parametrize(("template", "open_"), [
    ("see ${input.content", "${input.content"),
    ("${input.content} and ${item", "${item"),
    ("a ${", "${")])
def test_an_unterminated_placeholder_is_refused_naming_the_field(template: str,
                                                                 open_: str) -> None:
    """Issue 22 #17: "see ${input.content" was compiled as literal text, refused nowhere."""
    problems = pipeline_problems(variant("analysis-to-tasks", {"spec": {"steps": [
        {"name": "analyze", "agentRef": {"name": "content-analyzer"},
         "input": {"content": {"template": template}}}],
        "output": {"from": "steps.analyze.output"}}}))
    assert [(p.field, p.reason) for p in problems] == [
        ("spec.steps[0].input.content.template", "InvalidTemplate")]
    assert f"the placeholder {open_!r} is not closed" in problems[0].message


def test_closed_placeholders_and_plain_dollars_pass() -> None:
    for template in ("costs $5 {not a placeholder}", "${input.content}", "$ {x"):
        assert pipeline_problems(variant("analysis-to-tasks", {"spec": {"steps": [
            {"name": "analyze", "agentRef": {"name": "content-analyzer"},
             "input": {"content": {"template": template}}}],
            "output": {"from": "steps.analyze.output"}}})) == [], template


class Agents:
    """The API server's answers to GETs of AtomicAgents by name."""

    def __init__(self, *names: str) -> None:
        self.bodies = {n: example(n) for n in names}
        self.reads: list[str] = []

    async def get(self, path: str) -> dict[str, Any]:
        self.reads.append(path)
        name = path.rsplit("/", 1)[-1]
        if name not in self.bodies:
            raise ApiError(404, "NotFound", f"atomicagents {name!r} not found")
        return self.bodies[name]


STEPS = example("analysis-to-tasks")["spec"]["steps"]
MISFITS = [
    ("for-each-over-a-scalar", {"forEach": "steps.analyze.output.summary"},
     "spec.steps[1].forEach", "is not a list, so forEach cannot iterate over it"),
    ("from-a-path-the-producer-lacks",
     {"input": {"description": {"from": "item"}, "context": {"from": "steps.analyze.output.nope"}}},
     "spec.steps[1].input.context.from", "the output of step analyze has no field 'nope'"),
]


def _with(step: dict[str, Any]) -> dict[str, Any]:
    return variant("analysis-to-tasks", {"spec": {"steps": [STEPS[0], {**STEPS[1], **step}]}})


@pytest.mark.parametrize(("body", "field", "text"),
                         [(_with(c[1]), c[2], c[3]) for c in MISFITS]
                         + [(variant("analysis-to-tasks", {"spec": {"steps": [
                             {**STEPS[0], "optional": True},
                             {"name": "make-tasks", "agentRef": {"name": "task-processor"},
                              "input": {"description": {
                                  "from": "steps.analyze.output.summary"}}}]}}),
                             "spec.steps[1].input.description.from",
                             "may be absent, but agent task-processor's input requires")],
                         ids=[c[0] for c in MISFITS] + ["optional-step-feeds-required-input"])
async def test_a_pipeline_that_does_not_fit_existing_agents_is_refused_as_status_says(
        body: dict[str, Any], field: str, text: str) -> None:
    """Issue 22 #18: the webhook did not look at the agents, so these reached status only."""
    body["metadata"]["namespace"] = "ns"
    assert pipeline_problems(body) == []  # the object alone is fine
    api = Agents("content-analyzer", "task-processor")
    problems, warnings = await pipeline_review(api, body)  # type: ignore[arg-type]
    assert warnings == []
    assert problems and problems[0].field == field and text in problems[0].message, problems
    agents = {n: {**b, "metadata": {"name": n, "namespace": "ns"}}
              for n, b in api.bodies.items()}
    status = pipeline_status(body, PipelineObservation(agents))
    compatible = next(c for c in status.status.conditions if c.type == "SchemasCompatible")
    assert compatible.message == refusal(problems)  # word for word what status says


async def test_missing_agents_are_admitted_with_a_warning_naming_them() -> None:
    body = example("analysis-to-tasks")
    body["metadata"]["namespace"] = "ns"
    problems, warnings = await pipeline_review(Agents("content-analyzer"), body)  # type: ignore[arg-type]
    assert problems == []
    assert warnings == ["no AtomicAgent named task-processor in namespace ns yet: the steps "
                        "calling it are type-checked when it exists (status "
                        "SchemasCompatible)"]
    problems, warnings = await pipeline_review(Agents(), _with(MISFITS[0][1]))  # type: ignore[arg-type]
    assert problems == [] and "content-analyzer, task-processor" in warnings[0]
