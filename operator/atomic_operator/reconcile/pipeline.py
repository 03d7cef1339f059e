"""An AtomicPipeline's status: the type check, its runner, its agents. Pure.

The one status function of the kind: every trigger (the pipeline's own events, its runner's
Deployment, an agent it names changing) calls `pipeline_status`, and `StatusWriter` writes
the result. SchemasCompatible is the type check; Ready, Progressing and Degraded follow the
runner's Deployment (as an agent's follow its own), except that an incompatible pipeline is
never Ready (its runner stays unready, see docs/pipelines.md), nor one whose agents are not
all ready (AgentsReady, which names the agents without a ready replica, is part of Ready).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from atomic_operator.api.pipeline import AtomicPipeline, AtomicPipelineStatus
from atomic_operator.conditions import (
    Cond,
    deployment_conditions,
    find,
    merge_conditions,
    problem_conditions,
)
from atomic_operator.naming import SERVICE_PORT
from atomic_operator.pipeline_check import AgentSchemas, PipelineCheck, check_pipeline
from atomic_operator.problems import SpecProblem, from_validation_error, summarize
from atomic_operator.replicas import SCALING_ACTIVE, ReplicaPlan


@dataclass(frozen=True)
class PipelineObservation:
    """What the operator sees of a pipeline's world; each trigger fills what it knows."""

    agents: Mapping[str, Mapping[str, Any]]
    """name → body of the AtomicAgents in the pipeline's namespace."""

    deployment: Mapping[str, Any] | None = None
    """The runner's live Deployment; None where there is none to look at (offline checks,
    or a problem that stopped the runner from being applied)."""

    replicas: ReplicaPlan | None = None
    """The replica policy's answer for that Deployment; needed whenever `deployment` is."""

    config_hash: str | None = None
    """Set by a reconcile that applied the runner: the configuration now applied."""

    problems: Sequence[SpecProblem] = ()
    """Why the runner could not be applied (a name taken by an agent, a refusal)."""

    cluster_domain: str = "cluster.local"

    missing_agent_grace: float | None = None
    """Seconds an agent may be missing before the pipeline is Degraded (MissingAgent);
    None never (offline checks)."""

    now: datetime | None = None
    """The time the grace is measured against (the current time when None)."""


@dataclass
class PipelineOutcome:
    status: AtomicPipelineStatus
    problems: list[SpecProblem] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    """Agents the pipeline names: re-check it when one of them changes."""
    check: PipelineCheck | None = None
    """The type check's result (None when the spec does not parse)."""


def agent_schemas(agent: Mapping[str, Any]) -> AgentSchemas:
    spec = agent.get("spec") or {}
    return AgentSchemas(spec.get("inputSchema"), spec.get("outputSchema"))


def agents_ready(names: Sequence[str], agents: Mapping[str, Mapping[str, Any]]) -> Cond:
    """AgentsReady: every agent the pipeline calls has at least one ready replica."""
    missing = []
    for name in names:
        body = agents.get(name)
        if body is None:
            missing.append(f"{name} (no such AtomicAgent)")
            continue
        status = body.get("status") or {}
        wanted = status.get("desiredReplicas")
        if wanted == 0:
            missing.append(f"{name} (scaled to 0 replicas)")
        elif not status.get("readyReplicas"):
            missing.append(f"{name} (0 of {wanted if wanted is not None else '?'} replicas "
                           "ready)")
    if missing:
        return Cond("AgentsReady", "False", "AgentsNotReady",
                    "no ready replica: " + ", ".join(missing))
    return Cond("AgentsReady", "True", "AllAgentsReady",
                f"{', '.join(names)} have ready replicas")


def _runtime_conditions(seen: PipelineObservation, compatible: Cond, agents: Cond
                        ) -> list[Cond]:
    """Ready, Progressing and Degraded: the runner's Deployment, said plainly."""
    if seen.problems:
        reason, message = summarize(seen.problems)
        return problem_conditions(reason, message)
    if seen.deployment is None or seen.replicas is None:
        return [Cond("Ready", "False", "RunnerPending", "the runner is not applied yet")]
    ready, *rest = deployment_conditions(seen.deployment, seen.replicas.desired)
    if compatible.status == "False":
        ready = Cond("Ready", "False", compatible.reason,
                     f"the runner stays unready while the pipeline is incompatible: "
                     f"{compatible.message}")
    elif agents.status == "False" and ready.status == "False":
        ready = Cond("Ready", "False", ready.reason, f"{ready.message}; {agents.message}")
    elif agents.status == "False":
        # the runner's pods are up, but a run needs every agent: not Ready until they are
        ready = Cond("Ready", "False", agents.reason,
                     f"the runner is available but {agents.message}")
    return [ready, *rest]


def _status(stored: Mapping[str, Any], **fields: Any) -> AtomicPipelineStatus:
    return AtomicPipelineStatus.model_validate({**stored, **fields})


def pipeline_status(body: Mapping[str, Any], seen: PipelineObservation) -> PipelineOutcome:
    """The status the pipeline should have, and the problems of its spec."""
    generation = body["metadata"].get("generation")
    stored = body.get("status") or {}
    previous = stored.get("conditions") or []
    try:
        pipeline = AtomicPipeline.model_validate(dict(body))
    except ValidationError as err:
        problems = from_validation_error(err)
        reason, message = summarize(problems)
        conditions = [Cond("SchemasCompatible", "Unknown", reason, message),
                      *problem_conditions(reason, message)]
        return PipelineOutcome(_status(stored, observedGeneration=generation,
                                       conditions=merge_conditions(previous, conditions,
                                                                   generation)),
                               problems)
    check = check_of(pipeline, seen.agents)
    compatible = compatibility(pipeline, check, seen.agents)
    names = sorted({s.agent_ref.name for s in pipeline.spec.steps})
    agents = agents_ready(names, seen.agents)
    runtime = _runtime_conditions(seen, compatible, agents)
    if missing_too_long(previous, compatible, seen) and not seen.problems:
        runtime = [c for c in runtime if c.type != "Degraded"] + [Cond(
            "Degraded", "True", "MissingAgent",
            f"{compatible.message} for over {seen.missing_agent_grace:g} s "
            "(the operator's missingAgentGraceSeconds); create it or fix agentRef")]
    fields: dict[str, Any] = {
        "observedGeneration": generation, "stepCount": len(pipeline.spec.steps),
        "executionOrder": check.waves,
        "conditions": merge_conditions(
            previous, [compatible, agents, *runtime],
            generation, drop=() if seen.replicas and seen.replicas.scaling
            else (SCALING_ACTIVE,))}
    if seen.replicas is not None and seen.replicas.scaling is not None:
        fields["conditions"] = merge_conditions(fields["conditions"], [seen.replicas.scaling],
                                                generation)
    if seen.deployment is not None:
        observed = seen.deployment.get("status") or {}
        fields["replicas"] = observed.get("replicas", 0)
        fields["readyReplicas"] = observed.get("readyReplicas", 0)
    if seen.config_hash is not None:
        meta = body["metadata"]
        fields["configHash"] = seen.config_hash
        fields["endpoint"] = runner_endpoint(meta["name"], meta["namespace"],
                                             seen.cluster_domain)
    return PipelineOutcome(_status(stored, **fields), check.problems, names, check)


def missing_since(previous: Sequence[Mapping[str, Any]], compatible: Cond) -> datetime | None:
    """Since when an agent the pipeline names has been missing (the stored
    SchemasCompatible's transition time while its reason stays MissingAgent), or None."""
    stored = find(previous, "SchemasCompatible")
    if compatible.reason != "MissingAgent" or stored.get("reason") != "MissingAgent":
        return None
    stamp = stored.get("lastTransitionTime")
    if isinstance(stamp, datetime):  # a model dumped in Python mode
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    try:
        return datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def missing_too_long(previous: Sequence[Mapping[str, Any]], compatible: Cond,
                     seen: PipelineObservation) -> bool:
    since = missing_since(previous, compatible)
    if since is None or seen.missing_agent_grace is None:
        return False
    now = seen.now or datetime.now(UTC)
    return (now - since).total_seconds() >= seen.missing_agent_grace


def stall_due(status: AtomicPipelineStatus, grace: float, now: datetime | None = None
              ) -> float | None:
    """Seconds until a pipeline missing an agent turns Degraded (its status must be
    computed again then: nothing else may happen meanwhile), or None when nothing is due."""
    conditions = [c.model_dump(by_alias=True) for c in status.conditions]
    compatible = find(conditions, "SchemasCompatible")
    if find(conditions, "Degraded").get("reason") == "MissingAgent":
        return None
    since = missing_since(conditions, Cond("SchemasCompatible", "Unknown",
                                           str(compatible.get("reason"))))
    if since is None:
        return None
    elapsed = ((now or datetime.now(UTC)) - since).total_seconds()
    return max(grace - elapsed, 0.0) + 1.0


def check_of(pipeline: AtomicPipeline, agents: Mapping[str, Mapping[str, Any]]
             ) -> PipelineCheck:
    names = sorted({s.agent_ref.name for s in pipeline.spec.steps})
    return check_pipeline(pipeline, {n: agent_schemas(agents[n]) for n in names
                                     if n in agents})


def compatibility(pipeline: AtomicPipeline, check: PipelineCheck,
                  agents: Mapping[str, Mapping[str, Any]]) -> Cond:
    """SchemasCompatible from the type check's result."""
    if check.problems:
        reason, message = summarize(check.problems)
        return Cond("SchemasCompatible", "False", reason, message)
    if check.unresolved_agents:
        missing = [n for n in check.unresolved_agents if n not in agents]
        if missing:
            return Cond("SchemasCompatible", "Unknown", "MissingAgent",
                        f"no AtomicAgent named {', '.join(missing)} in this namespace")
        return Cond("SchemasCompatible", "Unknown", "AgentSchemasUnknown",
                    f"{', '.join(check.unresolved_agents)} declare no inputSchema and "
                    "outputSchema (entrypoint agents): their edges cannot be checked")
    edges = sum(len(s.input) or 1 for s in pipeline.spec.steps)
    return Cond("SchemasCompatible", "True", "AllEdgesFit",
                f"{edges} bindings across {len(pipeline.spec.steps)} steps fit their "
                "agents' schemas")


def runner_endpoint(name: str, namespace: str, cluster_domain: str) -> str:
    return f"http://{name}.{namespace}.svc.{cluster_domain}:{SERVICE_PORT}"
