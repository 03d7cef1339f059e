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

from atomic_operator import API_VERSION
from atomic_operator.api import AtomicAgent
from atomic_operator.checks import check_agent
from atomic_operator.conditions import (
    Cond,
    deployment_conditions,
    merge_conditions,
    problem_conditions,
)
from atomic_operator.k8s import ApiError, KubeClient, resource_path
from atomic_operator.naming import AGENT_LABEL, SERVICE_PORT
from atomic_operator.problems import SpecProblem, from_validation_error, summarize
from atomic_operator.references import ObjectIndex, resolve_references
from atomic_operator.render import AgentIdentity, render_agent
from atomic_operator.settings import FIELD_MANAGER, OperatorSettings

OPTIONAL_KINDS = ("HorizontalPodAutoscaler", "PodDisruptionBudget")
_ROLLOUT_REASONS = {"RollingOut", "Unavailable", "Available", "ScaledToZero"}
"""Ready reasons computed from the Deployment; any other False reason is a spec problem."""


@dataclass(frozen=True)
class AgentEnv:
    """What a reconcile needs besides the object: a client, settings, indexed lookups."""

    client: KubeClient
    settings: OperatorSettings
    secrets: ObjectIndex
    config_maps: ObjectIndex
    existing_optional: frozenset[str] = frozenset()
    """Kinds among OPTIONAL_KINDS that the agent currently has, so removal costs no GET."""


Event = tuple[Literal["Normal", "Warning"], str, str]


@dataclass
class AgentOutcome:
    """What happened, for the handler to log, count and turn into events."""

    result: Literal["applied", "invalid"]
    problems: list[SpecProblem] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    status_patch: dict[str, Any] | None = None


def parse_agent(body: Mapping[str, Any]) -> AtomicAgent | list[SpecProblem]:
    """The typed agent, or the problems that stop it from being one."""
    try:
        return AtomicAgent.model_validate({"spec": body.get("spec") or {}})
    except ValidationError as err:
        return from_validation_error(err)


def refused_for_its_content(err: ApiError) -> bool:
    """The API server refused what was sent, so sending it again cannot help: invalid (400,
    422), or a value server-side apply cannot even type (a 500 whose message says so)."""
    return err.status in (400, 422) or (
        err.status == 500 and err.message.startswith("failed to create typed patch object"))


def _identity(body: Mapping[str, Any]) -> AgentIdentity:
    meta = body["metadata"]
    return AgentIdentity(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])


def _status_patch(current: Mapping[str, Any], wanted: dict[str, Any]) -> dict[str, Any] | None:
    """Only the fields that differ, or None: an unchanged status is not written."""
    diff = {k: v for k, v in wanted.items() if current.get(k) != v}
    return diff or None


def _desired_replicas(agent: AtomicAgent, deployment: Mapping[str, Any]) -> int:
    if agent.spec.autoscaling.mode == "hpa":
        replicas: int = (deployment.get("spec") or {}).get("replicas", 1)
        return replicas
    return agent.spec.replicas


async def _scale_deployment(env: AgentEnv, who: AgentIdentity, agent: AtomicAgent,
                            deployment: dict[str, Any]) -> dict[str, Any]:
    """Replicas go through the scale subresource, never through apply, so the operator
    never owns the field an HPA or autoscaler writes."""
    live = (deployment.get("spec") or {}).get("replicas")
    if agent.spec.autoscaling.mode == "hpa":
        fresh = deployment["metadata"].get("generation") == 1
        wanted = max(agent.spec.replicas, agent.spec.autoscaling.min_replicas)
        if not fresh or live is None or live >= wanted:
            return deployment
    else:
        wanted = agent.spec.replicas
        if live == wanted:
            return deployment
    path = resource_path("apps/v1", "Deployment", who.namespace, who.name, "scale")
    await env.client.merge_patch(path, {"spec": {"replicas": wanted}}, FIELD_MANAGER)
    deployment.setdefault("spec", {})["replicas"] = wanted
    return deployment


async def _write_status(env: AgentEnv, body: Mapping[str, Any], wanted: dict[str, Any]
                        ) -> dict[str, Any] | None:
    patch = _status_patch(body.get("status") or {}, wanted)
    if patch:
        who = _identity(body)
        path = resource_path(API_VERSION, "AtomicAgent", who.namespace, who.name, "status")
        await env.client.merge_patch(path, {"status": patch}, FIELD_MANAGER)
    return patch


async def reconcile_agent(env: AgentEnv, body: Mapping[str, Any]) -> AgentOutcome:
    """Converge the children of one agent and write its status."""
    who = _identity(body)
    generation = body["metadata"].get("generation")
    status = body.get("status") or {}
    parsed = parse_agent(body)
    if isinstance(parsed, list):
        return await _report_problems(env, body, parsed)
    agent = parsed
    refs = resolve_references(agent, who.namespace, env.secrets, env.config_maps)
    rendered = render_agent(agent, who, env.settings, refs.secrets_digest)
    problems = [*check_agent(agent, rendered.config), *refs.problems]
    if problems:
        return await _report_problems(env, body, problems)

    outcome = AgentOutcome(result="applied")
    first_time = status.get("configHash") is None  # nothing of this agent applied yet
    spec_changed = not first_time and status.get("observedGeneration") != generation
    try:
        if first_time or spec_changed:
            # Every child is dry-run before any is written: a spec the API server refuses
            # (an HPA with minReplicas 0, a toleration it rejects) leaves nothing half made
            # on creation, and the old children whole on an update.
            for child in rendered.children:
                await env.client.apply(child, FIELD_MANAGER, dry_run=True)
        order = rendered.children if first_time else rendered.update_order
        deployment: dict[str, Any] = {}
        for child in order:
            live = await env.client.apply(child, FIELD_MANAGER)
            outcome.applied.append(child["kind"])
            if child["kind"] == "Deployment":
                deployment = live
    except ApiError as err:
        if refused_for_its_content(err):
            problem = SpecProblem("spec", "RejectedByApiServer", err.message)
            return await _report_problems(env, body, [problem])
        raise
    deployment = await _scale_deployment(env, who, agent, deployment)

    wanted_kinds = {c["kind"] for c in rendered.children}
    for kind in OPTIONAL_KINDS:
        if kind in env.existing_optional and kind not in wanted_kinds:
            api = "autoscaling/v2" if kind == "HorizontalPodAutoscaler" else "policy/v1"
            if await env.client.delete(resource_path(api, kind, who.namespace, who.name)):
                outcome.deleted.append(kind)

    conds = deployment_conditions(deployment, _desired_replicas(agent, deployment))
    if first_time:
        outcome.events.append(("Normal", "Created", "created " + ", ".join(outcome.applied)))
    elif status.get("configHash") not in (None, rendered.config_hash):
        outcome.events.append(("Normal", "RollingOut",
                               f"configuration changed ({status.get('configHash')} -> "
                               f"{rendered.config_hash}); rolling the pods"))
    for kind in outcome.deleted:
        outcome.events.append(("Normal", "Deleted", f"deleted {kind}: no longer wanted"))
    outcome.status_patch = await _write_status(env, body, {
        "observedGeneration": generation,
        "conditions": merge_conditions(status.get("conditions") or [], conds, generation),
        "replicas": (deployment.get("status") or {}).get("replicas", 0),
        "readyReplicas": (deployment.get("status") or {}).get("readyReplicas", 0),
        "endpoint": (f"http://{who.name}.{who.namespace}.svc."
                     f"{env.settings.cluster_domain}:{SERVICE_PORT}"),
        "selector": f"{AGENT_LABEL}={who.name}",
        "configHash": rendered.config_hash,
    })
    return outcome


async def _report_problems(env: AgentEnv, body: Mapping[str, Any],
                           problems: list[SpecProblem]) -> AgentOutcome:
    """Leave every child as it is; say what is wrong once (an event only when it changes)."""
    generation = body["metadata"].get("generation")
    status = body.get("status") or {}
    reason, message = summarize(problems)
    previous = {c.get("type"): c for c in status.get("conditions") or []}.get("Ready", {})
    outcome = AgentOutcome(result="invalid", problems=problems)
    if previous.get("message") != message:
        outcome.events.append(("Warning", reason, message))
    outcome.status_patch = await _write_status(env, body, {
        "observedGeneration": generation,
        "conditions": merge_conditions(status.get("conditions") or [],
                                       problem_conditions(reason, message), generation),
    })
    return outcome


def status_from_deployment(body: Mapping[str, Any], deployment: Mapping[str, Any]
                           ) -> dict[str, Any] | None:
    """The agent status a Deployment event implies, or None while the spec is invalid (the
    problem conditions must stay until the spec is fixed)."""
    parsed = parse_agent(body)
    status = body.get("status") or {}
    ready = {c.get("type"): c for c in status.get("conditions") or []}.get("Ready", {})
    if isinstance(parsed, list) or (ready.get("status") == "False"
                                    and ready.get("reason") not in _ROLLOUT_REASONS):
        return None
    conds: list[Cond] = deployment_conditions(deployment, _desired_replicas(parsed, deployment))
    wanted = {
        "conditions": merge_conditions(status.get("conditions") or [], conds,
                                       status.get("observedGeneration")),
        "replicas": (deployment.get("status") or {}).get("replicas", 0),
        "readyReplicas": (deployment.get("status") or {}).get("readyReplicas", 0),
    }
    return _status_patch(status, wanted)

