"""AtomicPipeline: type-check it on every change, and again when an agent it names changes."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import kopf

from atomic_operator import GROUP, VERSION
from atomic_operator.handlers.indexes import IndexView
from atomic_operator.handlers.types import Logger
from atomic_operator.k8s import ApiError, resource_path
from atomic_operator.metrics import ERRORS, RECONCILES, STATUS_WRITES
from atomic_operator.reconcile.pipeline import pipeline_status, status_changed
from atomic_operator.runner import AgentReconciler
from atomic_operator.settings import FIELD_MANAGER


@kopf.index(GROUP, VERSION, "atomicpipelines")
def pipelines(*, namespace: str | None, name: str, body: kopf.Body, **_: Any
              ) -> dict[tuple[str | None, str], dict[str, Any]]:
    """The latest body of every pipeline, for re-checks triggered by agents."""
    return {(namespace, name): copy.deepcopy(dict(body))}


@kopf.index(GROUP, VERSION, "atomicpipelines")
def pipelines_by_agent(*, namespace: str | None, name: str, spec: kopf.Spec, **_: Any
                       ) -> dict[tuple[str | None, str], str]:
    """(namespace, agent) → pipelines with a step it runs."""
    steps = spec.get("steps") or []
    return {(namespace, str((s.get("agentRef") or {}).get("name"))): name for s in steps}


@kopf.on.create(GROUP, VERSION, "atomicpipelines")
@kopf.on.resume(GROUP, VERSION, "atomicpipelines")
@kopf.on.update(GROUP, VERSION, "atomicpipelines")
async def check(*, body: kopf.Body, reason: str, memo: Any, logger: Logger,
                **kwargs: Any) -> None:
    await check_and_report(dict(body), str(reason), memo, IndexView(kwargs["agents"]), logger)


@kopf.on.event(GROUP, VERSION, "atomicagents", id="recheck-pipelines")
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


async def check_and_report(body: Mapping[str, Any], trigger: str, memo: Any,
                           agents: IndexView, logger: Logger) -> None:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    in_namespace = {agent: agents[(namespace, agent)]
                    for (ns, agent) in agents if ns == namespace}
    outcome = pipeline_status(body, in_namespace)
    RECONCILES.labels("AtomicPipeline", trigger,
                      "invalid" if outcome.problems else "checked").inc()
    for problem in outcome.problems:
        ERRORS.labels("AtomicPipeline", problem.reason).inc()
    if not status_changed(body.get("status"), outcome.status_patch):
        return
    reconciler: AgentReconciler = memo.reconciler
    path = resource_path(body["apiVersion"], "AtomicPipeline", namespace, name, "status")
    try:
        await reconciler.client.merge_patch(path, {"status": outcome.status_patch},
                                            FIELD_MANAGER)
    except ApiError as err:
        if err.status == 404:
            return
        raise kopf.TemporaryError(f"API error: {err}", delay=2) from err
    STATUS_WRITES.labels("AtomicPipeline").inc()
    if outcome.problems:
        message = "; ".join(str(p) for p in outcome.problems)
        kopf.event(body, type="Warning", reason=outcome.problems[0].reason,  # type: ignore[arg-type]
                   message=message[:1000])
        logger.warning("pipeline problems: %s", message)
    else:
        conditions = outcome.status_patch.get("conditions", [])
        compatible: dict[str, Any] = next(
            (c for c in conditions if c["type"] == "SchemasCompatible"), {})
        logger.info("pipeline checked (%s): %s %s", trigger, compatible.get("reason", ""),
                    compatible.get("message", ""))
