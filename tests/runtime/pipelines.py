"""Pipelines as the operator renders them, run by real runner and agent processes.

Agents are the examples' AtomicAgents rendered by the operator's own `runtime_config` and
pointed at a fake provider; the runner's config is the operator's `runner_config` from the
type check's result, with each agent's Service URL replaced by the agent process's loopback
URL (the only thing a cluster would add is the Service in between).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from atomic_operator.api import AtomicAgent
from atomic_operator.api.pipeline import AtomicPipeline
from atomic_operator.pipeline_check import AgentSchemas, check_pipeline
from atomic_operator.render.config import runtime_config
from atomic_operator.render.pipeline_config import runner_config
from tests.support.manifests import example, merge_patch

from .conftest import Runtime

DATA = Path(__file__).resolve().parents[1] / "data" / "pipelines"


def agent_config(name: str, base_url: str, **spec_patch: Any) -> dict[str, Any]:
    """examples/<name>.yaml as the operator renders it, calling the fake at `base_url`."""
    doc = merge_patch(example(name), {"spec": spec_patch}) if spec_patch else example(name)
    config = runtime_config(AtomicAgent.model_validate(doc), name, "default")
    config["model"]["baseURL"] = base_url
    return config


def pipeline_doc(source: str, patch: dict[str, Any] | None = None) -> dict[str, Any]:
    """examples/<source>.yaml, or a file path, with a merge patch applied."""
    path = Path(source)
    doc = yaml.safe_load(path.read_text()) if path.suffix else example(source)
    return merge_patch(doc, patch) if patch else copy.deepcopy(doc)


def runner_config_for(doc: dict[str, Any], agents: dict[str, Runtime],
                      urls: dict[str, str] | None = None,
                      access: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The runner config the operator renders for `doc`, calling the agent processes.

    `urls` overrides where a step's agent is reached (e.g. a port nothing listens on);
    `access` gives agents their AtomicAgent `spec.access` (a bearer token Secret).
    """
    pipeline = AtomicPipeline.model_validate(doc)
    schemas = {name: AgentSchemas(rt.config["inputSchema"], rt.config["outputSchema"])
               for name, rt in agents.items()}
    check = check_pipeline(pipeline, schemas)
    bodies: dict[str, dict[str, Any]] = {name: {"spec": {"concurrency": {
        "requestTimeoutSeconds": rt.config["requestTimeoutSeconds"]}}}
        for name, rt in agents.items()}
    for name, spec_access in (access or {}).items():
        bodies[name]["spec"]["access"] = spec_access
    config = runner_config(pipeline, doc["metadata"]["name"], "default", check, bodies,
                           "cluster.local")
    for step in config["steps"]:
        step["url"] = (urls or {}).get(step["agent"]) or agents[step["agent"]].url
    config["agentCheckSeconds"] = 0.2
    return config


class Runner(Runtime):
    """The runtime in pipeline mode (its config's kind is PipelineConfig)."""


class UnreadyRunner(Runner):
    """A runner expected to stay unready (an agent down, an incompatible pipeline)."""

    def start(self, timeout: float = 45, ready: bool = False) -> Runtime:
        return super().start(timeout, ready=False)
