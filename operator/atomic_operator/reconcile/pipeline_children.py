"""Converge one AtomicPipeline: type-check, render and apply its runner, write its status.

The same function runs for the pipeline's creation, updates and resumption, a runner child
deleted or edited by hand, and any change of an agent it names (an agent's schemas and
deadline are part of the runner's configuration, and so are their bearer tokens: a rotated
token rolls the agent, whose new status is such a change). Like an agent's reconcile it is
idempotent, applies the Deployment first on creation and the ConfigMap first on updates,
dry-runs an update of the Deployment before touching anything, and writes replicas only
through the scale subresource, as the replica policy says.

An incompatible pipeline still gets its runner, configured with the problems: the runner's
readiness stays false and its /run answers 503 saying why, so the pipeline is never Ready
and a fix rolls out like any change. What stops the runner from being applied at all (its
name is an agent's, the configuration is too large, the API server refuses it) leaves the
children as they were and is reported like an agent's spec problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from atomic_operator.api.pipeline import AtomicPipeline
from atomic_operator.checks import LARGE_SPEC_HINT, MAX_CONFIG_BYTES
from atomic_operator.conditions import find
from atomic_operator.drift import OwnedFields
from atomic_operator.k8s import Api, ApiError
from atomic_operator.problems import SpecProblem
from atomic_operator.reconcile.agent import write_replicas
from atomic_operator.reconcile.converge import apply_children, refused_for_its_content, rejected
from atomic_operator.reconcile.pipeline import (
    PipelineObservation,
    PipelineOutcome,
    check_of,
    pipeline_status,
)
from atomic_operator.reconcile.status_writer import Event, StatusWriter
from atomic_operator.references import ObjectIndex, pipeline_tokens, tokens_digest
from atomic_operator.render import AgentIdentity
from atomic_operator.render.config import config_bytes
from atomic_operator.render.pipeline import render_pipeline
from atomic_operator.replicas import (
    ExternalAutoscaler,
    observe_deployment,
    plan_runner_replicas,
)
from atomic_operator.settings import FIELD_MANAGER, OperatorSettings


@dataclass(frozen=True)
class PipelineEnv:
    client: Api
    settings: OperatorSettings
    status: StatusWriter
    agents: Mapping[str, Mapping[str, Any]]
    """name → body of the AtomicAgents in the pipeline's namespace."""
    external: tuple[ExternalAutoscaler, ...] = ()
    secrets: ObjectIndex = field(default_factory=dict)
    """Key digests of the bearer-token Secrets of the agents it calls, read by name."""
    owned: OwnedFields | None = None
    """What each child's last apply owned, to see fields taken away (`drift.OwnedFields`)."""


@dataclass
class PipelineResult:
    """What happened, for the handler to log, count and tell the agents."""

    result: Literal["applied", "invalid", "followed"]
    outcome: PipelineOutcome
    applied: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    status_patch: dict[str, Any] | None = None
    replicas_written: int | None = None


def _identity(body: Mapping[str, Any]) -> AgentIdentity:
    meta = body["metadata"]
    return AgentIdentity(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])


def _events(body: Mapping[str, Any], outcome: PipelineOutcome) -> list[Event]:
    """A Warning when the type check finds problems, once per distinct message."""
    if not outcome.problems:
        return []
    message = "; ".join(str(p) for p in outcome.problems)
    stored = find((body.get("status") or {}).get("conditions") or [], "SchemasCompatible")
    if stored.get("message") == message:
        return []
    return [("Warning", outcome.problems[0].reason, message)]


async def reconcile_pipeline(env: PipelineEnv, body: Mapping[str, Any]) -> PipelineResult:
    body = env.status.latest(body)
    who = _identity(body)
    status = body.get("status") or {}
    generation = body["metadata"].get("generation")
    try:
        pipeline = AtomicPipeline.model_validate(dict(body))
    except ValidationError:
        outcome = pipeline_status(body, PipelineObservation(env.agents))
        return await _write(env, body, PipelineResult("invalid", outcome,
                                                      events=_events(body, outcome)))
    check = check_of(pipeline, env.agents)
    tokens = pipeline_tokens((s.agent_ref.name for s in pipeline.spec.steps), env.agents)
    rendered = render_pipeline(pipeline, who, check, env.agents, env.settings,
                               tokens_digest(who.namespace, tokens, env.secrets))
    blocking = _blocking_problems(who, env.agents, rendered.config)
    if blocking:
        return await _blocked(env, body, blocking)
    first_time = status.get("configHash") is None
    spec_changed = not first_time and status.get("observedGeneration") != generation
    result = PipelineResult("applied", pipeline_status(body, PipelineObservation(env.agents)))
    try:
        if spec_changed:
            await env.client.apply(rendered.deployment, FIELD_MANAGER, dry_run=True)
        done = await apply_children(
            env.client, rendered.children if first_time else rendered.update_order,
            env.owned, repairing=not (first_time or spec_changed))
        result.applied += done.applied
    except ApiError as err:
        if refused_for_its_content(err):
            return await _blocked(env, body, [rejected(err)])
        raise
    for event in done.repairs:  # children replaced: posted whether or not status changes
        env.status.emit(body, event)
    if done.refusals:
        await _blocked(env, body, done.refusals)
        raise ApiError(422, "RejectedByApiServer", "; ".join(map(str, done.refusals)))
    deployment = done.deployment
    plan = plan_runner_replicas(pipeline.spec.runner.replicas,
                                observe_deployment(deployment, env.external))
    deployment = await write_replicas(env.client, who, plan, deployment)
    result.replicas_written = plan.write
    if first_time:
        result.events.append(("Normal", "Created", "created the runner: "
                              + ", ".join(result.applied)))
    elif status.get("configHash") != rendered.config_hash:
        result.events.append(("Normal", "RollingOut", "the runner's configuration changed; "
                              "rolling its pods"))
    result.outcome = pipeline_status(body, PipelineObservation(
        env.agents, deployment, plan, rendered.config_hash,
        cluster_domain=env.settings.cluster_domain,
        missing_agent_grace=env.settings.missing_agent_grace_seconds))
    result.events = [*_events(body, result.outcome), *result.events]
    return await _write(env, body, result)


async def follow_runner(env: PipelineEnv, body: Mapping[str, Any],
                        deployment: Mapping[str, Any]) -> PipelineResult:
    """The runner's Deployment changed state: follow it into the status, apply nothing."""
    body = env.status.latest(body)
    live = dict(deployment)
    spec = (body.get("spec") or {}).get("runner") or {}
    plan = plan_runner_replicas(int(spec.get("replicas", 1)),
                                observe_deployment(live, env.external))
    live = await write_replicas(env.client, _identity(body), plan, live)
    outcome = pipeline_status(body, PipelineObservation(
        env.agents, live, plan, cluster_domain=env.settings.cluster_domain,
        missing_agent_grace=env.settings.missing_agent_grace_seconds))
    result = PipelineResult("followed", outcome, replicas_written=plan.write)
    return await _write(env, body, result)


def _blocking_problems(who: AgentIdentity, agents: Mapping[str, Mapping[str, Any]],
                       config: dict[str, Any]) -> list[SpecProblem]:
    problems = []
    if who.name in agents:
        problems.append(SpecProblem(
            "metadata.name", "NameConflict",
            f"an AtomicAgent named {who.name} exists in this namespace: the runner's "
            "Deployment and Service would take its names; rename the pipeline"))
    size = config_bytes(config)
    if size > MAX_CONFIG_BYTES:
        problems.append(SpecProblem(
            "spec", "ConfigTooLarge",
            f"the runner's configuration is {size} bytes; a ConfigMap holds under 1 MiB "
            f"({LARGE_SPEC_HINT})"))
    return problems


async def _blocked(env: PipelineEnv, body: Mapping[str, Any],
                   problems: list[SpecProblem]) -> PipelineResult:
    outcome = pipeline_status(body, PipelineObservation(env.agents, problems=problems))
    outcome.problems = [*problems, *outcome.problems]
    result = PipelineResult("invalid", outcome)
    ready = find((body.get("status") or {}).get("conditions") or [], "Ready")
    if ready.get("reason") != problems[0].reason:
        result.events.append(("Warning", problems[0].reason,
                              "; ".join(str(p) for p in problems)))
    return await _write(env, body, result)


async def _write(env: PipelineEnv, body: Mapping[str, Any], result: PipelineResult
                 ) -> PipelineResult:
    result.status_patch = await env.status.write(body, result.outcome.status, result.events)
    return result
