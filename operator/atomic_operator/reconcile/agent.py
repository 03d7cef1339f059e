"""Converge one AtomicAgent: validate, render, apply, and report the truth in status.

The same function runs for creation, resumption, updates, a child deleted or edited by hand,
and a referenced Secret that changed. It is idempotent: applying unchanged objects is a
no-op on the API server and produces no watch events, so it can run as often as needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from atomic_operator.api import AtomicAgent
from atomic_operator.checks import check_agent
from atomic_operator.conditions import Cond, find
from atomic_operator.drift import OwnedFields
from atomic_operator.k8s import Api, ApiError, resource_path
from atomic_operator.k8s.kinds import AGENT, DEPLOYMENT, HPA, optional_children
from atomic_operator.metrics import REPLICA_WRITES
from atomic_operator.problems import SpecProblem, from_validation_error
from atomic_operator.reconcile.agent_status import (
    AgentObservation,
    agent_status,
    has_spec_problem,
    progress_only,
    waiting_for_pods,
)
from atomic_operator.reconcile.converge import (
    apply_children,
    dry_run,
    refused_for_its_content,
    rejected,
)
from atomic_operator.reconcile.status_writer import Event, StatusWriter
from atomic_operator.references import ObjectIndex, resolve_references
from atomic_operator.render import AgentIdentity, render_agent
from atomic_operator.replicas import (
    SCALING_ACTIVE,
    AutoscalerObservation,
    ExternalAutoscaler,
    HpaCondition,
    ReplicaOwner,
    ReplicaPlan,
    applies_hpa,
    observe_deployment,
    plan_replicas,
    replica_owner,
)
from atomic_operator.settings import OperatorSettings

OPTIONAL_KINDS = tuple(c.kind.kind for c in optional_children(AGENT))
"""Kinds only some agents have (read from the registry, k8s/kinds.py)."""


@dataclass(frozen=True)
class AgentEnv:
    """What a reconcile needs besides the object: a client, settings, indexed lookups."""

    client: Api
    settings: OperatorSettings
    status: StatusWriter
    secrets: ObjectIndex
    config_maps: ObjectIndex
    existing_optional: frozenset[str] = frozenset()
    """Kinds among OPTIONAL_KINDS that the agent currently has, so removal costs no GET."""
    external: tuple[ExternalAutoscaler, ...] = ()
    """Autoscalers of others that target the agent's Deployment (from the indexes)."""
    autoscaler: AutoscalerObservation | None = None
    """The custom autoscaler's last recommendation for this agent (`Autoscalers.observation`,
    filled in by the runner); None outside custom mode and until its first decision or
    write, when the replica policy holds the count."""
    hpa: HpaCondition | None = None
    """What the operator's own HPA says of itself (mode hpa; from the indexes)."""
    pipelines: tuple[str, ...] | None = None
    """Pipelines that call the agent (from the indexes), listed in its status."""
    owned: OwnedFields | None = None
    """What each child's last apply owned, to see fields taken away (`drift.OwnedFields`)."""
    pod_trouble: Cond | None = None
    """Why the agent's pods are stuck, as last read from them (`runner` reads them)."""


@dataclass
class AgentOutcome:
    """What happened, for the handler to log and count (events go with the status)."""

    result: Literal["applied", "invalid", "followed", "gone"]
    problems: list[SpecProblem] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    status_patch: dict[str, Any] | None = None
    replicas_written: int | None = None
    held: bool = False
    """A rollout's progress was not written yet (`follow_deployment`'s `hold`)."""
    waiting_for_pods: bool = False
    """Not Ready only because pods are not available: the pods may say why."""


def parse_agent(body: Mapping[str, Any]) -> AtomicAgent | list[SpecProblem]:
    """The typed agent, or the problems that stop it from being one."""
    try:
        return AtomicAgent.model_validate({"spec": body.get("spec") or {}})
    except ValidationError as err:
        return from_validation_error(err)


def _identity(body: Mapping[str, Any]) -> AgentIdentity:
    meta = body["metadata"]
    return AgentIdentity(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])


def wanted_children(order: list[dict[str, Any]], owner: ReplicaOwner
                    ) -> list[dict[str, Any]]:
    """The rendered children, minus the operator's HPA when it does not own the count."""
    return [c for c in order if c["kind"] != HPA.kind or applies_hpa(owner)]


async def write_replicas(client: Api, who: AgentIdentity, plan: ReplicaPlan,
                         deployment: dict[str, Any]) -> dict[str, Any]:
    """Carry out the policy's write through the Deployment's scale subresource, never
    through apply, so no applied object owns the field an HPA or autoscaler writes."""
    if plan.write is None:
        return deployment
    path = resource_path(DEPLOYMENT.api_version, DEPLOYMENT.kind, who.namespace, who.name,
                         "scale")
    await client.merge_patch(path, {"spec": {"replicas": plan.write}}, plan.field_manager)
    REPLICA_WRITES.labels(plan.owner).inc()
    deployment.setdefault("spec", {})["replicas"] = plan.write
    return deployment


def _scaling_events(status: Mapping[str, Any], plan: ReplicaPlan) -> list[Event]:
    """An event when who scales changes (e.g. an external autoscaler took over)."""
    if plan.scaling is None:
        return []
    before = find(status.get("conditions") or [], SCALING_ACTIVE)
    if (before.get("status"), before.get("reason")) == (plan.scaling.status,
                                                        plan.scaling.reason):
        return []
    return [("Normal", plan.scaling.reason, plan.scaling.message)]


async def reconcile_agent(env: AgentEnv, body: Mapping[str, Any]) -> AgentOutcome:
    """Converge the children of one agent and write its status."""
    body = env.status.latest(body)
    who = _identity(body)
    generation = body["metadata"].get("generation")
    status = body.get("status") or {}
    parsed = parse_agent(body)
    if isinstance(parsed, list):
        return await _report_problems(env, body, None, parsed)
    agent = parsed
    refs = resolve_references(agent, who.namespace, env.secrets, env.config_maps)
    rendered = render_agent(agent, who, env.settings, refs.secrets_digest)
    problems = [*check_agent(agent, rendered.config), *refs.problems]
    if problems:
        return await _report_problems(env, body, agent, problems)

    outcome = AgentOutcome(result="applied")
    owner = replica_owner(agent.spec, env.external)
    first_time = status.get("configHash") is None  # nothing of this agent applied yet
    spec_changed = not first_time and status.get("observedGeneration") != generation
    order = wanted_children(rendered.children if first_time else rendered.update_order, owner)
    try:
        if first_time or spec_changed:
            # Every child the API server may refuse is dry-run before any is written: a
            # spec it refuses (an HPA with minReplicas 0, a toleration it rejects) leaves
            # nothing half made on creation, and the old children whole on an update. The
            # first child written needs no dry run: refused, it leaves nothing written. On
            # creation that is the Deployment, the one every agent has.
            await dry_run(env.client, order[1:], AGENT)
        done = await apply_children(env.client, order, env.owned,
                                    repairing=not (first_time or spec_changed))
        outcome.applied += done.applied
    except ApiError as err:
        if refused_for_its_content(err):
            return await _report_problems(env, body, agent, [rejected(err)])
        raise
    for event in done.repairs:  # children replaced: posted whether or not status changes
        env.status.emit(body, event)
    if done.refusals:
        await _report_problems(env, body, agent, done.refusals)
        raise ApiError(422, "RejectedByApiServer", "; ".join(map(str, done.refusals)))
    deployment = done.deployment
    plan = plan_replicas(agent.spec, observe_deployment(deployment, env.external,
                                                        env.autoscaler, env.hpa))
    deployment = await write_replicas(env.client, who, plan, deployment)
    outcome.replicas_written = plan.write

    applied_kinds = set(outcome.applied)
    for kind in optional_children(AGENT):
        name = kind.kind.kind
        if name in env.existing_optional and name not in applied_kinds:
            path = resource_path(kind.kind.api_version, name, who.namespace, who.name)
            if await env.client.delete(path):
                outcome.deleted.append(name)

    if first_time:
        outcome.events.append(("Normal", "Created", "created " + ", ".join(outcome.applied)))
    elif status.get("configHash") not in (None, rendered.config_hash):
        outcome.events.append(("Normal", "RollingOut",
                               f"configuration changed ({status.get('configHash')} -> "
                               f"{rendered.config_hash}); rolling the pods"))
    for kind_name in outcome.deleted:
        outcome.events.append(("Normal", "Deleted", f"deleted {kind_name}: no longer wanted"))
    outcome.events.extend(_scaling_events(status, plan))
    wanted = agent_status(agent, who.name, who.namespace, generation, status,
                          AgentObservation(deployment, plan, rendered.config_hash,
                                           pipelines=env.pipelines,
                                           pod_trouble=env.pod_trouble),
                          env.settings.cluster_domain)
    outcome.waiting_for_pods = waiting_for_pods(wanted)
    outcome.status_patch = await env.status.write(body, wanted, outcome.events)
    return outcome


async def follow_deployment(env: AgentEnv, body: Mapping[str, Any],
                            deployment: Mapping[str, Any],
                            on_write: Event | None = None, hold: bool = False) -> AgentOutcome:
    """A Deployment event without drift, or an autoscaler tick: write the replicas the
    policy wants, if any (posting `on_write`, which says why, when a count is written), and
    follow the Deployment's state into the agent's status. Nothing is applied.

    With `hold`, a status that only records a rollout's progress (`progress_only`) is not
    written but `held`: the caller follows again a moment later, by when the next step has
    often superseded it. On creation that spares the write of "0/1 available" between
    "rolling out" and "available" (a custom-resource write costs the API server ~5 ms:
    2.33 status writes per agent became 2.00 with 300 agents created at once, figures at
    `runner.HOLD_SECONDS`), and a large rollout writes its progress at most once per hold
    instead of once per Deployment status update."""
    body = env.status.latest(body)
    who = _identity(body)
    status = body.get("status") or {}
    outcome = AgentOutcome(result="followed")
    parsed = parse_agent(body)
    agent = None if isinstance(parsed, list) else parsed
    plan = None
    live = dict(deployment)
    if agent is not None and not has_spec_problem(status):
        # While the spec has a problem the children stay exactly as they were.
        plan = plan_replicas(agent.spec, observe_deployment(live, env.external,
                                                            env.autoscaler, env.hpa))
        live = await write_replicas(env.client, who, plan, live)
        outcome.replicas_written = plan.write
        if plan.write is not None and on_write is not None:
            outcome.events.append(on_write)
        outcome.events.extend(_scaling_events(status, plan))
    wanted = agent_status(agent, who.name, who.namespace, body["metadata"].get("generation"),
                          status, AgentObservation(live, plan, pipelines=env.pipelines,
                                                   pod_trouble=env.pod_trouble),
                          env.settings.cluster_domain)
    outcome.waiting_for_pods = waiting_for_pods(wanted)
    if hold and not outcome.events and progress_only(status, wanted):
        outcome.held = True
        return outcome
    outcome.status_patch = await env.status.write(body, wanted, outcome.events)
    return outcome


async def _report_problems(env: AgentEnv, body: Mapping[str, Any], agent: AtomicAgent | None,
                           problems: list[SpecProblem]) -> AgentOutcome:
    """Leave every child as it is; say what is wrong once (an event only when it changes)."""
    who = _identity(body)
    status = body.get("status") or {}
    wanted = agent_status(agent, who.name, who.namespace, body["metadata"].get("generation"),
                          status, AgentObservation(problems=problems, pipelines=env.pipelines),
                          env.settings.cluster_domain)
    outcome = AgentOutcome(result="invalid", problems=problems)
    ready = next(c for c in wanted.conditions if c.type == "Ready")
    if find(status.get("conditions") or [], "Ready").get("message") != ready.message:
        outcome.events.append(("Warning", ready.reason, ready.message))
    outcome.status_patch = await env.status.write(body, wanted, outcome.events)
    return outcome
