"""The runner's configuration (pipeline.json): the operator → runner contract.

Every reference is parsed here, by the type check's own parser, and handed to the runner
as (source, step, path); templates are split into text and references; the waves and each
step's dependencies are the check's. So the runner evaluates exactly the graph the check
proved, and the reference syntax has one parser. The shape is the runtime's
`atomic_runtime.pipeline.config.PipelineConfig` (documented in docs/pipelines.md; a test
validates this output against that model). No secret ever appears in it: a step whose
agent requires a bearer token names, in `tokenEnv`, the runner's env var that holds it
(filled from the agent's own Secret key by render/pipeline.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atomic_operator import API_VERSION
from atomic_operator.api.pipeline import AtomicPipeline, InputBinding, PipelineStep
from atomic_operator.naming import SERVICE_PORT, agent_token_env
from atomic_operator.pipeline_graph import (
    PipelineCheck,
    Reference,
    dependencies,
    parse_reference,
    template_parts,
)
from atomic_operator.references import agent_token_ref

DEFAULT_AGENT_TIMEOUT_SECONDS = 120
"""An agent's concurrency.requestTimeoutSeconds when its spec is not known."""
CALL_MARGIN_SECONDS = 5
"""A step's default deadline is the agent's own plus this, so the agent's 504 arrives first."""
DEFAULT_FOREACH_CONCURRENCY = 10
DEFAULT_FOREACH_MAX_ITEMS = 1000
"""The runner's own default (atomic_runtime.pipeline.config.DEFAULT_MAX_ITEMS)."""


def agent_url(agent: str, namespace: str, cluster_domain: str) -> str:
    return f"http://{agent}.{namespace}.svc.{cluster_domain}:{SERVICE_PORT}"


def runner_config(pipeline: AtomicPipeline, name: str, namespace: str, check: PipelineCheck,
                  agents: Mapping[str, Mapping[str, Any]], cluster_domain: str
                  ) -> dict[str, Any]:
    """`agents`: name → AtomicAgent body, for the default step deadlines and the agents
    that require a bearer token."""
    spec = pipeline.spec
    cycle = [s.name for s in spec.steps if all(s.name not in w for w in check.waves)]
    return {
        "apiVersion": API_VERSION,
        "kind": "PipelineConfig",
        "name": name,
        "namespace": namespace,
        "inputSchema": spec.input_schema.model_dump(by_alias=True, exclude_none=True),
        "outputSchema": check.output_schema,
        "steps": [_step(s, namespace, agents, cluster_domain) for s in spec.steps],
        "waves": [*check.waves, *([cycle] if cycle else [])],
        "output": _ref(spec.output.from_),
        "requestTimeoutSeconds": spec.timeout_seconds,
        "concurrency": {"maxInFlight": spec.runner.concurrency.max_in_flight,
                        "queueSize": spec.runner.concurrency.queue_size},
        "maxBodyBytes": 1_048_576,
        "problems": [str(p) for p in check.problems],
    }


def _step(step: PipelineStep, namespace: str, agents: Mapping[str, Mapping[str, Any]],
          cluster_domain: str) -> dict[str, Any]:
    agent = step.agent_ref.name
    timeout = step.timeout_seconds
    if timeout is None:
        concurrency = ((agents.get(agent) or {}).get("spec") or {}).get("concurrency") or {}
        agent_timeout = concurrency.get("requestTimeoutSeconds", DEFAULT_AGENT_TIMEOUT_SECONDS)
        timeout = int(agent_timeout) + CALL_MARGIN_SECONDS
    out: dict[str, Any] = {
        "name": step.name,
        "agent": agent,
        "url": agent_url(agent, namespace, cluster_domain),
        "after": sorted(dependencies(step)),
        "timeoutSeconds": timeout,
        "retries": step.retries,
        "optional": step.optional,
        "maxConcurrency": step.max_concurrency or DEFAULT_FOREACH_CONCURRENCY,
        "maxItems": step.max_items or DEFAULT_FOREACH_MAX_ITEMS,
    }
    if agent_token_ref(agents.get(agent)) is not None:
        out["tokenEnv"] = agent_token_env(agent)
    if step.for_each:
        out["forEach"] = _ref(step.for_each)
    if step.input:
        out["input"] = {field: _binding(b) for field, b in step.input.items()}
    else:
        out["inputFrom"] = _ref(whole_input_of(step))
    return out


def whole_input_of(step: PipelineStep) -> str:
    """The value a step without bindings receives, as the check decides it (check_whole):
    the forEach item, the single upstream step's output, or the pipeline input. With
    several upstream steps the check reports AmbiguousInput and the runner never runs."""
    if step.for_each:
        return "item"
    upstream = sorted(dependencies(step))
    return f"steps.{upstream[0]}.output" if upstream else "input"


def _binding(binding: InputBinding) -> dict[str, Any]:
    if binding.from_ is not None:
        return {"kind": "ref", "ref": _ref(binding.from_)}
    if binding.template is not None:
        return {"kind": "template", "parts": [p if isinstance(p, str) else _parsed(p)
                                              for p in template_parts(binding.template)]}
    return {"kind": "value", "value": binding.value}


def _ref(reference: str) -> dict[str, Any]:
    parsed = parse_reference(reference)
    if parsed is None:  # the API's pattern admits only references here
        raise ValueError(f"{reference!r} is not a reference")
    return _parsed(parsed)


def _parsed(ref: Reference) -> dict[str, Any]:
    out: dict[str, Any] = {"source": ref.source, "path": list(ref.path)}
    if ref.step is not None:
        out["step"] = ref.step
    return out

