"""The agents' children: follow their status, restore them when deleted or edited by hand."""

from __future__ import annotations

from typing import Any

import kopf

from atomic_operator.drift import edited_by_others
from atomic_operator.handlers.dispatch import reconcile_named
from atomic_operator.handlers.indexes import MANAGED, Indexes
from atomic_operator.handlers.types import Logger
from atomic_operator.naming import AGENT_LABEL
from atomic_operator.runner import AgentReconciler

CHILD_KINDS = (
    ("", "v1", "configmaps"),
    ("", "v1", "services"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("policy", "v1", "poddisruptionbudgets"),
)


def _replicas_drifted(agent: dict[str, Any], deployment: kopf.Body) -> bool:
    """Outside hpa mode the agent's spec.replicas is the truth (its scale subresource)."""
    spec = agent.get("spec") or {}
    if (spec.get("autoscaling") or {}).get("mode", "none") == "hpa":
        return False
    return bool(deployment.get("spec", {}).get("replicas") != spec.get("replicas", 1))


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
async def deployment_event(*, type: str, body: kopf.Body, namespace: str | None,
                           labels: kopf.Labels, memo: Any, logger: Logger,
                           **kwargs: Any) -> None:
    owner = labels.get(AGENT_LABEL)
    if not owner or not namespace or type is None:  # None: the initial listing (resume's job)
        return
    indexes = Indexes.from_kwargs(kwargs)
    if type == "DELETED":
        await reconcile_named(namespace, owner, "child-deleted", memo, indexes, logger)
        return
    if edited_by_others(body):
        await reconcile_named(namespace, owner, "child-edited", memo, indexes, logger)
        return
    agent = indexes.agents.get((namespace, owner))
    if agent is None:
        return
    if _replicas_drifted(agent, body):
        await reconcile_named(namespace, owner, "replicas-changed", memo, indexes, logger)
        return
    reconciler: AgentReconciler = memo.reconciler
    await reconciler.refresh_status(agent, body)


def _register_child(group: str, version: str, plural: str) -> None:
    @kopf.on.event(group, version, plural, labels=MANAGED, id=f"child-{plural}")
    async def child_event(*, type: str, body: kopf.Body, namespace: str | None,
                          labels: kopf.Labels, memo: Any, logger: Logger,
                          **kwargs: Any) -> None:
        owner = labels.get(AGENT_LABEL)
        if not owner or not namespace or type is None:
            return
        if type == "DELETED":
            trigger = "child-deleted"
        elif edited_by_others(body):
            trigger = "child-edited"
        else:
            return
        await reconcile_named(namespace, owner, trigger, memo, Indexes.from_kwargs(kwargs),
                              logger)


for _group, _version, _plural in CHILD_KINDS:
    _register_child(_group, _version, _plural)
