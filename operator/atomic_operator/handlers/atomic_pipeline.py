"""AtomicPipeline: type-check it on every change, and again when an agent it names changes."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import kopf

from atomic_operator.handlers.indexes import IndexView
from atomic_operator.handlers.types import Logger
from atomic_operator.k8s import ApiError
from atomic_operator.k8s.kinds import ATOMIC_AGENT, ATOMIC_PIPELINE
from atomic_operator.metrics import ERRORS, RECONCILES
from atomic_operator.reconcile.pipeline import pipeline_status
from atomic_operator.reconcile.status_writer import Event
from atomic_operator.runner import AgentReconciler


@kopf.index(ATOMIC_PIPELINE.group, ATOMIC_PIPELINE.version, ATOMIC_PIPELINE.plural)
def pipelines(*, namespace: str | None, name: str, body: kopf.Body, **_: Any
              ) -> dict[tuple[str | None, str], dict[str, Any]]:
    """The latest body of every pipeline, for re-checks triggered by agents."""
    return {(namespace, name): copy.deepcopy(dict(body))}


@kopf.index(ATOMIC_PIPELINE.group, ATOMIC_PIPELINE.version, ATOMIC_PIPELINE.plural)
def pipelines_by_agent(*, namespace: str | None, name: str, spec: kopf.Spec, **_: Any
                       ) -> dict[tuple[str | None, str], str]:
    """(namespace, agent) → pipelines with a step it runs."""
    steps = spec.get("steps") or []
    return {(namespace, str((s.get("agentRef") or {}).get("name"))): name for s in steps}


@kopf.on.create(ATOMIC_PIPELINE.group, ATOMIC_PIPELINE.version, ATOMIC_PIPELINE.plural)
@kopf.on.resume(ATOMIC_PIPELINE.group, ATOMIC_PIPELINE.version, ATOMIC_PIPELINE.plural)
@kopf.on.update(ATOMIC_PIPELINE.group, ATOMIC_PIPELINE.version, ATOMIC_PIPELINE.plural)
async def check(*, body: kopf.Body, reason: str, memo: Any, logger: Logger,
                **kwargs: Any) -> None:
    await check_and_report(dict(body), str(reason), memo, IndexView(kwargs["agents"]), logger)


@kopf.on.event(ATOMIC_AGENT.group, ATOMIC_AGENT.version, ATOMIC_AGENT.plural,
                id="recheck-pipelines")
async def recheck(*, type: str, namespace: str | None, name: str, memo: Any, logger: Logger,
                  **kwargs: Any) -> None:
    """An agent appeared, changed or went: the pipelines running it are checked again."""
    if not type:  # the initial listing: pipelines are checked on resume anyway
        return
    view = IndexView(kwargs["pipelines"])
    for pipeline in sorted(set(kwargs["pipelines_by_agent"].get((namespace, name), []))):
        body = view.get((namespace, pipeline))
        if body is not None and not body["metadata"].get("deletionTimestamp"):
            await check_and_report(body, "agent-changed", memo, IndexView(kwargs["agents"]),
                                   logger)


@kopf.on.event(ATOMIC_PIPELINE.group, ATOMIC_PIPELINE.version, ATOMIC_PIPELINE.plural,
                when=lambda type, **_: type == "DELETED")
def forget(*, body: kopf.Body, memo: Any, **_: Any) -> None:
    """The status writer's memory of a deleted pipeline goes with it."""
    reconciler: AgentReconciler = memo.reconciler
    reconciler.writer.forget(body)


async def check_and_report(body: Mapping[str, Any], trigger: str, memo: Any,
                           agents: IndexView, logger: Logger) -> None:
    reconciler: AgentReconciler = memo.reconciler
    body = reconciler.writer.latest(body)
    namespace = body["metadata"]["namespace"]
    in_namespace = {agent: agents[(namespace, agent)]
                    for (ns, agent) in agents if ns == namespace}
    outcome = pipeline_status(body, in_namespace)
    RECONCILES.labels("AtomicPipeline", trigger,
                      "invalid" if outcome.problems else "checked").inc()
    for problem in outcome.problems:
        ERRORS.labels("AtomicPipeline", problem.reason).inc()
    message = "; ".join(str(p) for p in outcome.problems)
    events: list[Event] = [("Warning", outcome.problems[0].reason, message)] \
        if outcome.problems else []
    try:
        written = await reconciler.writer.write(body, outcome.status, events)
    except ApiError as err:
        raise kopf.TemporaryError(f"API error: {err}", delay=2) from err
    if written is None:
        return
    if outcome.problems:
        logger.warning("pipeline problems: %s", message)
    else:
        compatible = next((c for c in outcome.status.conditions
                           if c.type == "SchemasCompatible"), None)
        logger.info("pipeline checked (%s): %s %s", trigger,
                    compatible.reason if compatible else "",
                    compatible.message if compatible else "")
