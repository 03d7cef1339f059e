"""Render an AtomicPipeline into its runner: a ConfigMap, a Deployment and a Service.

Pure, and built from the agent's templates, so the runner is hardened exactly like an agent
(non-root, read-only root file system, no service-account token, probes, drain time) and
carries the same labels with `atomicagents.io/pipeline`. The runner is the agent runtime
image in pipeline mode: its config's kind is PipelineConfig (render/pipeline_config.py).

Each agent a step calls that requires a bearer token gives the runner one env var,
`agent_token_env(agent)`, from that agent's own Secret key (a secretKeyRef, never a value);
the config names the variable, and a digest of the keys is in the config hash, so a
rotated token rolls the runner as it rolls the agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from atomic_operator.api.agent import PodOverrides
from atomic_operator.api.pipeline import AtomicPipeline
from atomic_operator.k8s.kinds import ATOMIC_PIPELINE, KINDS
from atomic_operator.naming import (
    CONFIG_HASH_ANNOTATION,
    CONFIG_MOUNT,
    CONTEXT_DIR,
    HTTP_PORT,
    METRICS_PORT,
    RUNNER_CONFIG_KEY,
    SERVICE_PORT,
    agent_token_env,
    config_map_name,
    pipeline_labels,
    pipeline_selector,
)
from atomic_operator.pipeline_graph import PipelineCheck
from atomic_operator.references import pipeline_tokens
from atomic_operator.render.agent import DRAIN_MARGIN_SECONDS, AgentIdentity, config_hash
from atomic_operator.render.config import config_json
from atomic_operator.render.pipeline_config import runner_config
from atomic_operator.render.templates import render_template
from atomic_operator.settings import OperatorSettings

RUNNER_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "50m", "memory": "96Mi"},
    "limits": {"memory": "256Mi"},
}
"""A runner only moves JSON between Services (53 MB RSS at 20 concurrent calls, measured
by bench/pipeline_overhead.py); set when spec.runner.resources is unset."""


@dataclass(frozen=True)
class RenderedPipeline:
    """Everything the operator applies for one pipeline."""

    config: dict[str, Any]
    config_hash: str
    deployment: dict[str, Any]
    config_map: dict[str, Any]
    service: dict[str, Any]

    @property
    def children(self) -> list[dict[str, Any]]:
        """Creation order: the Deployment first, as for agents (the likeliest refusal)."""
        return [self.deployment, self.config_map, self.service]

    @property
    def update_order(self) -> list[dict[str, Any]]:
        """Update order: the ConfigMap first, so new pods never start with the old one."""
        return [self.config_map, self.deployment, self.service]


def token_env(pipeline: AtomicPipeline, agents: Mapping[str, Mapping[str, Any]]
              ) -> list[dict[str, Any]]:
    """One env var per distinct step agent requiring a bearer token, from its Secret key."""
    tokens = pipeline_tokens((s.agent_ref.name for s in pipeline.spec.steps), agents)
    return [{"name": agent_token_env(agent),
             "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            for agent, (secret, key) in tokens.items()]


def render_pipeline(pipeline: AtomicPipeline, who: AgentIdentity, check: PipelineCheck,
                    agents: Mapping[str, Mapping[str, Any]], settings: OperatorSettings,
                    secrets_digest: str = "") -> RenderedPipeline:
    """`agents`: name → AtomicAgent body in the pipeline's namespace (for step deadlines and
    bearer tokens); `secrets_digest`: `references.tokens_digest` of the tokens it reads."""
    config = runner_config(pipeline, who.name, who.namespace, check, agents,
                           settings.cluster_domain)
    stored = config_json(config)
    digest = config_hash(stored, secrets_digest)
    runner = pipeline.spec.runner
    resources = (runner.resources.model_dump(by_alias=True, exclude_none=True)
                 if runner.resources is not None else RUNNER_RESOURCES)
    context: dict[str, Any] = {
        "name": who.name,
        "namespace": who.namespace,
        "labels": pipeline_labels(who.name),
        "selector": pipeline_selector(who.name),
        "owner": {"apiVersion": ATOMIC_PIPELINE.api_version, "kind": ATOMIC_PIPELINE.kind,
                  "name": who.name,
                  "uid": who.uid},
        "config_map": config_map_name(who.name),
        "config_key": RUNNER_CONFIG_KEY,
        "config_json": stored,
        "config_hash": digest,
        "hash_annotation": CONFIG_HASH_ANNOTATION,
        "image": runner.image or settings.runtime_image,
        "image_pull_policy": None,
        "grace_seconds": pipeline.spec.timeout_seconds + DRAIN_MARGIN_SECONDS,
        "pod": PodOverrides(),
        "tolerations": [],
        "env": [
            {"name": "ATOMIC_AGENT_CONFIG", "value": f"{CONFIG_MOUNT}/{RUNNER_CONFIG_KEY}"},
            {"name": "ATOMIC_AGENT_PORT", "value": str(HTTP_PORT)},
            {"name": "ATOMIC_AGENT_METRICS_PORT", "value": str(METRICS_PORT)},
            *token_env(pipeline, agents),
        ],
        "resources": resources,
        "context_sources": [],
        "config_dir": CONFIG_MOUNT,
        "context_dir": CONTEXT_DIR,
        "http_port": HTTP_PORT,
        "metrics_port": METRICS_PORT,
        "service_port": SERVICE_PORT,
        "container_name": "runner",
        "api_versions": {kind.kind: kind.api_version for kind in KINDS.values()},
    }
    return RenderedPipeline(
        config=config,
        config_hash=digest,
        deployment=render_template("deployment.yaml.j2", **context),
        config_map=render_template("configmap.yaml.j2", **context),
        service=render_template("service.yaml.j2", **context),
    )
