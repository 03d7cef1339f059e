"""What the webhook refuses: the reconcile's own checks, run on the object alone.

No rule lives here. An agent goes through the same parse and `check_agent` as a reconcile,
then the same dry run of its rendered children (what the API server refuses in fields
passed through untyped, such as an affinity); a pipeline through the same parse and type
check (`check_of`) as its status, against the agents it names that exist (read by name), so
an edge that does not fit an existing agent is refused with status's message, and agents
that do not exist yet are only a warning. Secrets stay in status, so a GitOps sync in any
order never blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from atomic_operator import API_VERSION
from atomic_operator.api import AtomicPipeline
from atomic_operator.checks import check_agent
from atomic_operator.k8s import Api, ApiError, KubeClient, resource_path
from atomic_operator.k8s.kinds import AGENT, ATOMIC_AGENT
from atomic_operator.pipeline_check import check_pipeline
from atomic_operator.problems import SpecProblem, from_validation_error
from atomic_operator.reconcile.agent import parse_agent
from atomic_operator.reconcile.converge import dry_run, refused_for_its_content, rejected
from atomic_operator.reconcile.pipeline import check_of
from atomic_operator.render import AgentIdentity, render_agent
from atomic_operator.render.config import runtime_config
from atomic_operator.settings import OperatorSettings

DRY_RUN_SECONDS = 10
"""Well inside the API server's 30 s webhook timeout: a slow dry run admits the object and
leaves the verdict to the reconcile, rather than failing the write."""

PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"
"""Owner uid of the children dry-run for an agent the API server has not named yet."""


def agent_problems(body: Mapping[str, Any]) -> list[SpecProblem]:
    parsed = parse_agent(body)
    if isinstance(parsed, list):
        return parsed
    meta = body.get("metadata") or {}
    config = runtime_config(parsed, str(meta.get("name", "")), str(meta.get("namespace", "")))
    return check_agent(parsed, config)


async def refused_children(client: Api, body: Mapping[str, Any],
                           settings: OperatorSettings) -> list[SpecProblem]:
    """What the API server would refuse in the children of a valid agent (an affinity is
    passed through untyped): the reconcile's own dry run, run at apply time. An error
    that says nothing about the spec (the API server busy) refuses nothing: the reconcile
    will report it."""
    parsed = parse_agent(body)
    if isinstance(parsed, list):
        return parsed
    meta = body.get("metadata") or {}
    who = AgentIdentity(str(meta.get("name", "")), str(meta.get("namespace", "")),
                        str(meta.get("uid") or PLACEHOLDER_UID))
    try:
        await asyncio.wait_for(dry_run(client, render_agent(parsed, who, settings).children, AGENT),
                               DRY_RUN_SECONDS)
    except ApiError as err:
        return [rejected(err)] if refused_for_its_content(err) else []
    except TimeoutError:
        return []
    return []


def pipeline_problems(body: Mapping[str, Any]) -> list[SpecProblem]:
    """What the pipeline alone decides (no agents looked up)."""
    try:
        pipeline = AtomicPipeline.model_validate({"spec": body.get("spec") or {}})
    except ValidationError as err:
        return from_validation_error(err)
    return check_pipeline(pipeline, {}).problems


async def pipeline_review(client: KubeClient, body: Mapping[str, Any]
                          ) -> tuple[list[SpecProblem], list[str]]:
    """The pipeline checked against the agents it names that exist, read by name now: their
    problems are refused with the message status would give (the same `check_of`); agents
    that do not exist yet are admitted with a warning naming them, so a GitOps sync in any
    order never blocks. When the agents cannot be read, only the object itself is judged."""
    try:
        pipeline = AtomicPipeline.model_validate({"spec": body.get("spec") or {}})
    except ValidationError as err:
        return from_validation_error(err), []
    namespace = str((body.get("metadata") or {}).get("namespace") or "")
    names = sorted({s.agent_ref.name for s in pipeline.spec.steps})
    try:
        found = await asyncio.wait_for(asyncio.gather(
            *(_agent(client, namespace, n) for n in names)), DRY_RUN_SECONDS)
    except (ApiError, TimeoutError):
        return check_pipeline(pipeline, {}).problems, []
    agents = {n: a for n, a in zip(names, found, strict=True) if a is not None}
    missing = [n for n in names if n not in agents]
    warnings = [f"no AtomicAgent named {', '.join(missing)} in namespace {namespace} yet: "
                "the steps calling it are type-checked when it exists (status "
                "SchemasCompatible)"] if missing else []
    return check_of(pipeline, agents).problems, warnings


async def _agent(client: KubeClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return await client.get(resource_path(API_VERSION, ATOMIC_AGENT.kind, namespace, name))
    except ApiError as err:
        if err.status == 404:
            return None
        raise


def spec_unchanged(body: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """Metadata-only writes (finalizers, annotations, labels) pass untouched: an object
    stored before the webhook existed must still be deletable and annotatable."""
    return old is not None and old.get("spec") == body.get("spec")


def refusal(problems: list[SpecProblem]) -> str:
    """One message naming every field, as `kubectl apply` prints it."""
    return "; ".join(str(p) for p in problems)
