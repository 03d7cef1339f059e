"""An AtomicPipeline's status from its spec and the agents it names: the type check.

Pure, and the one status function of the kind: every trigger (the pipeline's own events,
an agent it names changing) calls `pipeline_status`, and `StatusWriter` writes the result.
The pipeline runner, which would execute the graph by calling the agents' Services, does
not exist yet, so Ready stays False with reason RunnerNotAvailable: the status tells the
truth about what the operator does (proving the edges fit) and what it does not.

Extension point for the runner (issue #11): observe the runner's Deployment and the agents'
readiness in `PipelineObservation`, then compute Ready with
`conditions.deployment_conditions(runner, desired)` in place of RUNNER_MISSING and add an
`AgentsReady` condition beside SchemasCompatible, in `_runtime_conditions` below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from atomic_operator.api.pipeline import AtomicPipeline, AtomicPipelineStatus
from atomic_operator.conditions import Cond, merge_conditions
from atomic_operator.pipeline_check import AgentSchemas, check_pipeline
from atomic_operator.problems import SpecProblem, from_validation_error, summarize

RUNNER_MISSING = Cond("Ready", "False", "RunnerNotAvailable",
                      "the pipeline runner is not implemented yet: the operator checks the "
                      "graph and its schemas but does not run the pipeline")


@dataclass(frozen=True)
class PipelineObservation:
    """What the operator sees of a pipeline's world."""

    agents: Mapping[str, Mapping[str, Any]]
    """name → body of the AtomicAgents in the pipeline's namespace."""


@dataclass
class PipelineOutcome:
    status: AtomicPipelineStatus
    problems: list[SpecProblem] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    """Agents the pipeline names: re-check it when one of them changes."""


def agent_schemas(agent: Mapping[str, Any]) -> AgentSchemas:
    spec = agent.get("spec") or {}
    return AgentSchemas(spec.get("inputSchema"), spec.get("outputSchema"))


def _runtime_conditions(seen: PipelineObservation) -> list[Cond]:
    """Ready (and, with the runner, AgentsReady): what running the pipeline looks like."""
    return [RUNNER_MISSING]


def _status(stored: Mapping[str, Any], **fields: Any) -> AtomicPipelineStatus:
    return AtomicPipelineStatus.model_validate({**stored, **fields})


def pipeline_status(body: Mapping[str, Any],
                    agents: Mapping[str, Mapping[str, Any]]) -> PipelineOutcome:
    """`agents`: name → body of the AtomicAgents in the pipeline's namespace."""
    seen = PipelineObservation(agents)
    generation = body["metadata"].get("generation")
    stored = body.get("status") or {}
    previous = stored.get("conditions") or []
    try:
        pipeline = AtomicPipeline.model_validate(dict(body))
    except ValidationError as err:
        problems = from_validation_error(err)
        reason, message = summarize(problems)
        conditions = [Cond("SchemasCompatible", "Unknown", reason, message),
                      Cond("Ready", "False", reason, message)]
        return PipelineOutcome(_status(stored, observedGeneration=generation,
                                       conditions=merge_conditions(previous, conditions,
                                                                   generation)),
                               problems)
    names = sorted({s.agent_ref.name for s in pipeline.spec.steps})
    result = check_pipeline(pipeline, {n: agent_schemas(seen.agents[n]) for n in names
                                       if n in seen.agents})
    if result.problems:
        reason, message = summarize(result.problems)
        compatible = Cond("SchemasCompatible", "False", reason, message)
    elif result.unresolved_agents:
        missing = [n for n in result.unresolved_agents if n not in seen.agents]
        if missing:
            compatible = Cond("SchemasCompatible", "Unknown", "MissingAgent",
                              f"no AtomicAgent named {', '.join(missing)} in this namespace")
        else:
            compatible = Cond(
                "SchemasCompatible", "Unknown", "AgentSchemasUnknown",
                f"{', '.join(result.unresolved_agents)} declare no inputSchema and "
                "outputSchema (entrypoint agents): their edges cannot be checked")
    else:
        edges = sum(len(s.input) or 1 for s in pipeline.spec.steps)
        compatible = Cond("SchemasCompatible", "True", "AllEdgesFit",
                          f"{edges} bindings across {len(pipeline.spec.steps)} steps fit "
                          "their agents' schemas")
    status = _status(stored, observedGeneration=generation,
                     stepCount=len(pipeline.spec.steps), executionOrder=result.waves,
                     conditions=merge_conditions(
                         previous, [compatible, *_runtime_conditions(seen)], generation))
    return PipelineOutcome(status, result.problems, names)
