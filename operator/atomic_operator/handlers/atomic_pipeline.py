"""AtomicPipeline: its runner and status on every change, and when an agent it names changes."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any

import kopf

from atomic_operator.handlers.dispatch import reconcile_named
from atomic_operator.handlers.indexes import Indexes, IndexView, own_copy
from atomic_operator.handlers.types import Logger
from atomic_operator.k8s.kinds import ATOMIC_AGENT, ATOMIC_PIPELINE
from atomic_operator.reconcile.pipeline import stall_due
from atomic_operator.reconcile.pipeline_children import (
    PipelineEnv,
    PipelineResult,
    follow_runner,
    reconcile_pipeline,
)
from atomic_operator.runner import AgentReconciler


@kopf.index(ATOMIC_PIPELINE.group, ATOMIC_PIPELINE.version, ATOMIC_PIPELINE.plural)
async def pipelines(*, namespace: str | None, name: str, body: kopf.Body, **_: Any
                   ) -> dict[tuple[str | None, str], dict[str, Any]]:
    """The latest body of every pipeline, for re-checks triggered by agents."""
    return {(namespace, name): own_copy(dict(body))}


@kopf.index(ATOMIC_PIPELINE.group, ATOMIC_PIPELINE.version, ATOMIC_PIPELINE.plural)
async def pipelines_by_agent(*, namespace: str | None, name: str, spec: kopf.Spec, **_: Any
                            ) -> dict[tuple[str | None, str], str]:
    """(namespace, agent) → pipelines with a step it runs."""
    steps = spec.get("steps") or []
    return {(namespace, str((s.get("agentRef") or {}).get("name"))): name for s in steps}


@kopf.on.create(ATOMIC_PIPELINE.group, ATOMIC_PIPELINE.version, ATOMIC_PIPELINE.plural)
@kopf.on.resume(ATOMIC_PIPELINE.group, ATOMIC_PIPELINE.version, ATOMIC_PIPELINE.plural)
@kopf.on.update(ATOMIC_PIPELINE.group, ATOMIC_PIPELINE.version, ATOMIC_PIPELINE.plural)
async def reconcile(*, body: kopf.Body, old: Any, reason: str, memo: Any, logger: Logger,
                    **kwargs: Any) -> None:
    if body.metadata.namespace in kwargs["terminating_namespaces"]:
        return  # a namespace being deleted: its objects go, nothing to converge
    await reconcile_pipeline_body(dict(body), str(reason), memo, kwargs, logger)
    # the agents it names (now or before) list it in their status
    named = _agent_names(body) | _agent_names(old or {})
    await _refresh_agents(body["metadata"]["namespace"], named, memo, kwargs, logger)


def _called_by_a_pipeline(**kwargs: Any) -> bool:
    """kopf's filter for `recheck`: most agents are in no pipeline, and a filter costs kopf
    far less than invoking the handler on each of their events."""
    key = (kwargs.get("namespace"), kwargs.get("name"))
    return kwargs.get("type") is not None and key in kwargs["pipelines_by_agent"]


@kopf.on.event(ATOMIC_AGENT.group, ATOMIC_AGENT.version, ATOMIC_AGENT.plural,
                id="recheck-pipelines", when=_called_by_a_pipeline)
async def recheck(*, type: str, body: kopf.Body, namespace: str | None, name: str,
                  memo: Any, logger: Logger, **kwargs: Any) -> None:
    """An agent appeared, changed or went: the pipelines calling it are reconciled again
    (its schemas, deadline, readiness and bearer token are part of theirs; a rotated
    token reaches them this way: the Secret re-check reconciles the agent, whose status
    changes), and a change that breaks one is also a Warning on the agent."""
    if not type or not namespace or namespace in kwargs["terminating_namespaces"]:
        return  # the initial listing (resume reconciles them), or a namespace being deleted
    view = IndexView(kwargs["pipelines"])
    for pipeline in sorted(set(kwargs["pipelines_by_agent"].get((namespace, name), []))):
        found = view.get((namespace, pipeline))
        if found is None or found["metadata"].get("deletionTimestamp"):
            continue
        result = await reconcile_pipeline_body(found, "agent-changed", memo, kwargs, logger)
        if result is None:
            continue
        warnings = [e for e in result.events if e[0] == "Warning"]
        if warnings and result.status_patch is not None and type != "DELETED":
            reconciler: AgentReconciler = memo.reconciler
            reconciler.writer.emit(body, ("Warning", "BreaksPipeline",
                                          f"pipeline {pipeline} no longer fits this agent: "
                                          f"{warnings[0][2]}"))


@kopf.on.event(ATOMIC_PIPELINE.group, ATOMIC_PIPELINE.version, ATOMIC_PIPELINE.plural,
                when=lambda type, **_: type == "DELETED")
async def forget(*, body: kopf.Body, memo: Any, logger: Logger, **kwargs: Any) -> None:
    """The runner goes by garbage collection; the agents stop listing the pipeline."""
    reconciler: AgentReconciler = memo.reconciler
    reconciler.writer.forget(body)
    reconciler.forget_lock(body)
    namespace = body["metadata"]["namespace"]
    if namespace not in kwargs["terminating_namespaces"]:
        await _refresh_agents(namespace, _agent_names(body), memo, kwargs, logger)


def _agent_names(body: Mapping[str, Any]) -> set[str]:
    steps = (body.get("spec") or {}).get("steps") or []
    return {str((s.get("agentRef") or {}).get("name")) for s in steps}


async def _refresh_agents(namespace: str, names: set[str], memo: Any,
                          kwargs: Mapping[str, Any], logger: Logger) -> None:
    indexes = Indexes.from_kwargs(kwargs)
    for agent in sorted(names):
        await reconcile_named(namespace, agent, "pipeline-changed", memo, indexes, logger)


async def reconcile_pipeline_body(body: Mapping[str, Any], trigger: str, memo: Any,
                                  kwargs: Mapping[str, Any], logger: Logger,
                                  deployment: Mapping[str, Any] | None = None
                                  ) -> PipelineResult | None:
    """Reconcile a pipeline (or, given its runner's Deployment, follow it into status)."""
    reconciler: AgentReconciler = memo.reconciler
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    agents_index = IndexView(kwargs["agents"])
    agents = {agent: agents_index[(ns, agent)] for (ns, agent) in agents_index
              if ns == namespace}
    external = Indexes.from_kwargs(kwargs).external_autoscalers(namespace, name)

    def work(env: PipelineEnv) -> Awaitable[PipelineResult]:
        if deployment is not None:
            return follow_runner(env, body, deployment)
        return reconcile_pipeline(env, body)

    result = await reconciler.pipeline(body, trigger, work, agents=agents, external=external,
                                       renders=deployment is None, logger=logger)
    if result is not None:
        due = stall_due(result.outcome.status, reconciler.settings.missing_agent_grace_seconds)
        if due is not None:
            # nothing else may happen while the agent stays missing: look again when the
            # grace ends, so the pipeline turns Degraded (kstatus: Failed) on time
            reconciler.later((namespace, f"{ATOMIC_PIPELINE.kind}/{name}/missing-agent"),
                             lambda: reconcile_pipeline_named(namespace, name, "grace-ended",
                                                              memo, kwargs, logger), due)
    return result


async def reconcile_pipeline_named(namespace: str, name: str, trigger: str, memo: Any,
                                   kwargs: Mapping[str, Any], logger: Logger,
                                   deployment: Mapping[str, Any] | None = None) -> None:
    """A pipeline known only by name (from its runner's children's events)."""
    body = IndexView(kwargs["pipelines"]).get((namespace, name))
    if body is None or body["metadata"].get("deletionTimestamp"):
        return  # gone or going: its runner goes with it
    await reconcile_pipeline_body(body, trigger, memo, kwargs, logger, deployment)
