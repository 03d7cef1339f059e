"""Secrets and ConfigMaps that agents reference: a change rolls or heals the agents."""

from __future__ import annotations

from typing import Any

import kopf

from atomic_operator.handlers.dispatch import reconcile_named
from atomic_operator.handlers.indexes import UNMANAGED, Indexes
from atomic_operator.handlers.types import Logger


@kopf.on.event("v1", "secrets")
async def secret_event(*, type: str, namespace: str | None, name: str, memo: Any,
                       logger: Logger, **kwargs: Any) -> None:
    """A referenced Secret appeared, changed or vanished: the config hash follows it."""
    if type is None or not namespace:
        return
    indexes = Indexes.from_kwargs(kwargs)
    for agent in set(indexes.agents_by_secret.get((namespace, name), [])):
        await reconcile_named(namespace, agent, "secret-changed", memo, indexes, logger)


@kopf.on.event("v1", "configmaps", labels=UNMANAGED)
async def config_map_event(*, type: str, namespace: str | None, name: str, memo: Any,
                           logger: Logger, **kwargs: Any) -> None:
    """A context ConfigMap appeared or vanished: agents waiting on it recover or report."""
    if type is None or not namespace:
        return
    indexes = Indexes.from_kwargs(kwargs)
    for agent in set(indexes.agents_by_config_map.get((namespace, name), [])):
        await reconcile_named(namespace, agent, "configmap-changed", memo, indexes, logger)
