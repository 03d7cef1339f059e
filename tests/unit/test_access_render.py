"""What `spec.access` renders: the NetworkPolicy's rules and the token's env var."""

from __future__ import annotations

from typing import Any

from atomic_operator.api import AtomicAgent
from atomic_operator.render import AgentIdentity, render_agent
from atomic_operator.settings import OperatorSettings
from tests.support.manifests import variant

RUNNERS = {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "pipeline",
                                           "app.kubernetes.io/managed-by": "atomic-operator"}}}


def rendered(access: dict[str, Any]) -> Any:
    agent = AtomicAgent.model_validate(variant("task-processor", {"spec": {"access": access}}))
    return render_agent(agent, AgentIdentity("a", "ns", "u"), OperatorSettings())


def test_no_access_section_renders_no_policy_and_no_token() -> None:
    out = rendered({})
    assert out.network_policy is None
    env = out.deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "ATOMIC_AGENT_AUTH_TOKEN" not in {e["name"] for e in env}


def test_default_policy_admits_only_pipeline_runners_and_any_scraper() -> None:
    policy = rendered({"networkPolicy": {"enabled": True}}).network_policy
    assert policy["spec"]["ingress"] == [
        {"ports": [{"port": "http", "protocol": "TCP"}], "from": [RUNNERS]},
        {"ports": [{"port": "metrics", "protocol": "TCP"}]},  # no `from`: anyone may scrape
    ]


def test_no_peers_at_all_closes_both_ports() -> None:
    policy = rendered({"networkPolicy": {"enabled": True, "allowPipelines": False,
                                         "metricsFrom": []}}).network_policy
    # a rule with an empty `from` would admit everyone: no rule is rendered instead
    assert policy["spec"]["ingress"] == []
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_token_reaches_the_pod_only_as_a_secret_ref() -> None:
    ref = {"bearerTokenSecretRef": {"name": "agent-token", "key": "token"}}
    with_token = rendered(ref)
    env = {e["name"]: e for e in
           with_token.deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ATOMIC_AGENT_AUTH_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "agent-token", "key": "token"}}
    assert "agent-token" not in with_token.config_map["data"]["agent.json"]
