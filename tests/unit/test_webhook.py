"""The webhook's pure parts: settings, certificates, what it reviews."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from pathlib import Path

import pytest

from atomic_operator.webhook.certs import self_signed
from atomic_operator.webhook.review import agent_problems, pipeline_problems, spec_unchanged
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
