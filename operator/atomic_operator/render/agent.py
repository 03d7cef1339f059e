"""Render an AtomicAgent into its children: pure functions, no API calls.

`atomicctl render` prints exactly what these return, so a GitOps preview and the operator
never disagree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from atomic_operator.api import AtomicAgent
from atomic_operator.api.agent import NetworkPeer
from atomic_operator.k8s.kinds import ATOMIC_AGENT, KINDS
from atomic_operator.naming import (
    API_KEY_ENV,
    AUTH_TOKEN_ENV,
    CONFIG_HASH_ANNOTATION,
    CONFIG_KEY,
    CONFIG_MOUNT,
    CONTEXT_DIR,
    HTTP_PORT,
    METRICS_PORT,
    PIPELINE_RUNNER_LABELS,
    SERVICE_PORT,
    agent_labels,
    agent_selector,
    config_map_name,
)
from atomic_operator.render.config import config_json, runtime_config
from atomic_operator.render.templates import render_template
from atomic_operator.replicas import renders_hpa, wants_pdb
from atomic_operator.settings import OperatorSettings

DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}
"""Requests are needed for CPU-based HPA and for fair scheduling; set when the spec has none."""

DRAIN_MARGIN_SECONDS = 15
"""Added to the request deadline so a draining pod finishes its last request before SIGKILL."""


@dataclass(frozen=True)
class AgentIdentity:
    """Who the children belong to: what ownerReferences and names need from the metadata."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class RenderedAgent:
    """Everything the operator applies for one agent, in apply order."""

    config: dict[str, Any]
    config_hash: str
    deployment: dict[str, Any]
    config_map: dict[str, Any]
    service: dict[str, Any]
    hpa: dict[str, Any] | None
    pdb: dict[str, Any] | None
    network_policy: dict[str, Any] | None = None

    @property
    def children(self) -> list[dict[str, Any]]:
        """Creation order. Deployment first: it is the child the API server is likeliest to
        refuse (pod overrides are passed through), and refusing it first leaves nothing
        half made."""
        return [self.deployment, self.config_map, *self._rest]

    @property
    def update_order(self) -> list[dict[str, Any]]:
        """Update order: the ConfigMap before the Deployment, so pods rolled for a new
        configuration never start with the old one."""
        return [self.config_map, self.deployment, *self._rest]

    @property
    def _rest(self) -> list[dict[str, Any]]:
        return [c for c in (self.service, self.hpa, self.pdb, self.network_policy)
                if c is not None]


def config_hash(stored: str, secret_digest: str) -> str:
    """Changes whenever the configuration or a referenced Secret's data changes."""
    return hashlib.sha256(f"{stored}\0{secret_digest}".encode()).hexdigest()[:16]


def secret_digest(secrets: dict[str, dict[str, str]]) -> str:
    """A digest of referenced Secrets' data (name → data), never the data itself."""
    canonical = json.dumps(secrets, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _env(agent: AtomicAgent) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "ATOMIC_AGENT_CONFIG", "value": f"{CONFIG_MOUNT}/{CONFIG_KEY}"},
        {"name": "ATOMIC_AGENT_PORT", "value": str(HTTP_PORT)},
        {"name": "ATOMIC_AGENT_METRICS_PORT", "value": str(METRICS_PORT)},
        # named in each answer's X-Atomic-Replica header, for pipeline traces
        {"name": "ATOMIC_AGENT_POD_NAME",
         "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    ref = agent.spec.model.api_key_secret_ref
    if ref is not None:
        env.append({"name": API_KEY_ENV,
                    "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    token = agent.spec.access.bearer_token_secret_ref if agent.spec.access else None
    if token is not None:
        env.append({"name": AUTH_TOKEN_ENV,
                    "valueFrom": {"secretKeyRef": {"name": token.name, "key": token.key}}})
    for var in agent.spec.pod.env:
        env.append(var.model_dump(by_alias=True, exclude_none=True))
    return env


def _peers(peers: list[NetworkPeer]) -> list[dict[str, Any]]:
    return [peer.model_dump(by_alias=True, exclude_none=True) for peer in peers]


def _network_policy(agent: AtomicAgent) -> dict[str, Any] | None:
    """The ingress rules of the agent's NetworkPolicy, or None when it has none."""
    policy = agent.spec.access.network_policy if agent.spec.access else None
    if policy is None or not policy.enabled:
        return None
    api_from = _peers(policy.allow_from)
    if policy.allow_pipelines:
        api_from.append({"podSelector": {"matchLabels": PIPELINE_RUNNER_LABELS}})
    metrics_from = None if policy.metrics_from is None else _peers(policy.metrics_from)
    # A rule whose `from` is empty admits every source, so a port nobody may reach gets
    # no rule at all; metricsFrom unset is the one rule without `from` (anyone scrapes).
    rules: list[dict[str, Any]] = []
    if api_from:
        rules.append({"ports": [{"port": "http", "protocol": "TCP"}], "from": api_from})
    if metrics_from is None:
        rules.append({"ports": [{"port": "metrics", "protocol": "TCP"}]})
    elif metrics_from:
        rules.append({"ports": [{"port": "metrics", "protocol": "TCP"}], "from": metrics_from})
    return {"ingress": rules}


def _context_sources(agent: AtomicAgent) -> list[dict[str, str]]:
    sources = []
    for provider in agent.spec.context_providers:
        for kind, ref in (("configMap", provider.config_map_key_ref),
                          ("secret", provider.secret_key_ref)):
            if ref is not None:
                sources.append({"kind": kind, "name": ref.name, "key": ref.key,
                                "path": provider.name})
    return sources


def _resources(agent: AtomicAgent) -> dict[str, Any]:
    if agent.spec.resources is None:
        return DEFAULT_RESOURCES
    return agent.spec.resources.model_dump(by_alias=True, exclude_none=True)


def render_agent(agent: AtomicAgent, who: AgentIdentity, settings: OperatorSettings,
                 secrets_digest: str = "") -> RenderedAgent:
    """Render every child. The Deployment carries no replicas: they belong to its scale
    subresource (docs/architecture.md, Replicas)."""
    config = runtime_config(agent, who.name, who.namespace)
    stored = config_json(config)
    digest = config_hash(stored, secrets_digest)
    spec = agent.spec
    context: dict[str, Any] = {
        "api_versions": {kind.kind: kind.api_version for kind in KINDS.values()},
        "name": who.name,
        "namespace": who.namespace,
        "labels": agent_labels(who.name),
        "selector": agent_selector(who.name),
        "owner": {"apiVersion": ATOMIC_AGENT.api_version, "kind": ATOMIC_AGENT.kind,
                  "name": who.name, "uid": who.uid},
        "config_map": config_map_name(who.name),
        "config_key": CONFIG_KEY,
        "config_json": stored,
        "config_hash": digest,
        "hash_annotation": CONFIG_HASH_ANNOTATION,
        "image": spec.image or settings.runtime_image,
        "image_pull_policy": spec.image_pull_policy,
        "grace_seconds": spec.concurrency.request_timeout_seconds + DRAIN_MARGIN_SECONDS,
        "pod": spec.pod,
        "tolerations": [t.model_dump(by_alias=True, exclude_none=True)
                        for t in spec.pod.tolerations or []],
        "env": _env(agent),
        "resources": _resources(agent),
        "context_sources": _context_sources(agent),
        "config_dir": CONFIG_MOUNT,
        "context_dir": CONTEXT_DIR,
        "http_port": HTTP_PORT,
        "metrics_port": METRICS_PORT,
        "service_port": SERVICE_PORT,
        "autoscaling": spec.autoscaling,
        "network_policy": _network_policy(agent),
    }
    return RenderedAgent(
        config=config,
        config_hash=digest,
        deployment=render_template("deployment.yaml.j2", **context),
        config_map=render_template("configmap.yaml.j2", **context),
        service=render_template("service.yaml.j2", **context),
        hpa=render_template("hpa.yaml.j2", **context) if renders_hpa(spec) else None,
        pdb=render_template("pdb.yaml.j2", **context) if wants_pdb(spec) else None,
        network_policy=render_template("networkpolicy.yaml.j2", **context)
        if context["network_policy"] else None,
    )
