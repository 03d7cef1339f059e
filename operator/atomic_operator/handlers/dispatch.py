"""From a kopf event to a reconcile: find the agent's latest body, run, report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from atomic_operator.handlers.indexes import Indexes
from atomic_operator.handlers.types import Logger
from atomic_operator.reconcile.agent import AgentOutcome
from atomic_operator.runner import AgentReconciler


async def reconcile_body(body: Mapping[str, Any], trigger: str, memo: Any,
                         indexes: Indexes, logger: Logger) -> AgentOutcome | None:
    reconciler: AgentReconciler = memo.reconciler
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if indexes.namespace_terminating(namespace):
        logger.debug("namespace %s is being deleted: not reconciling (%s)", namespace, trigger)
        return None
    return await reconciler.reconcile(
        body, trigger=trigger, config_maps=indexes.config_maps,
        existing_optional=indexes.optional_children(namespace, name),
        external=indexes.external_autoscalers(namespace, name),
        pipelines=indexes.pipelines_of(namespace, name), hpa=indexes.hpa(namespace, name),
        logger=logger)


async def reconcile_named(namespace: str, name: str, trigger: str, memo: Any,
                          indexes: Indexes, logger: Logger) -> AgentOutcome | None:
    """Reconcile an agent known only by name (from a child's or a Secret's event)."""
    body = indexes.agents.get((namespace, name))
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None  # the agent is gone or going: its children go with it
    outcome = await reconcile_body(body, trigger, memo, indexes, logger)
    if outcome is not None and trigger.startswith("child-") and outcome.result == "applied":
        kopf.event(body, type="Normal", reason="Restored",
                   message=f"restored children after {trigger.replace('-', ' ')}")
    return outcome
