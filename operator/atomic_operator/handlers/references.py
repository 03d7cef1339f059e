"""Secrets and ConfigMaps that agents reference: a change rolls or heals the agents.

ConfigMaps are watched (the operator lists them anyway, for its own children); Secrets
are read by name on a timer per agent, so the operator never lists or caches the Secrets
of a namespace and its RBAC on them is `get`.
"""

from __future__ import annotations

from typing import Any

import kopf

from atomic_operator.handlers.dispatch import reconcile_body, reconcile_named
from atomic_operator.handlers.indexes import UNMANAGED, Indexes
from atomic_operator.handlers.types import Logger
from atomic_operator.k8s.kinds import ATOMIC_AGENT
from atomic_operator.runner import AgentReconciler
from atomic_operator.settings import OperatorSettings


async def _reconcile_referrers(referrers: kopf.Index[Any, Any], namespace: str | None,
                               name: str, trigger: str, memo: Any, logger: Logger,
                               indexes: Indexes) -> None:
    if not namespace:
        return
    for agent in set(referrers.get((namespace, name), [])):
        await reconcile_named(namespace, agent, trigger, memo, indexes, logger)


@kopf.timer(ATOMIC_AGENT.group, ATOMIC_AGENT.version, ATOMIC_AGENT.plural,
            interval=OperatorSettings.from_env().secret_recheck_seconds)
async def recheck_secrets(*, body: kopf.Body, memo: Any, logger: Logger, **kwargs: Any
                          ) -> None:
    """Secrets are read by name, never watched: a referenced Secret that was rotated,
    created or deleted since the agent's last reconcile rolls, heals or flags it."""
    reconciler: AgentReconciler = memo.reconciler
    if body["metadata"].get("deletionTimestamp") or not await reconciler.secrets_changed(body):
        return
    await reconcile_body(body, "secret-changed", memo, Indexes.from_kwargs(kwargs), logger)


@kopf.on.event("v1", "configmaps", labels=UNMANAGED, when=lambda type, **_: type is not None)
async def config_map_event(*, namespace: str | None, name: str, memo: Any, logger: Logger,
                           **kwargs: Any) -> None:
    """A context ConfigMap appeared or vanished: agents waiting on it recover or report."""
    indexes = Indexes.from_kwargs(kwargs)
    await _reconcile_referrers(indexes.agents_by_config_map, namespace, name,
                               "configmap-changed", memo, logger, indexes)
