"""Secrets and ConfigMaps that agents reference: a change rolls or heals the agents."""

from __future__ import annotations

from typing import Any

import kopf

from atomic_operator.handlers.dispatch import reconcile_named
from atomic_operator.handlers.indexes import UNMANAGED, Indexes
from atomic_operator.handlers.types import Logger


async def _reconcile_referrers(referrers: kopf.Index[Any, Any], namespace: str | None,
                               name: str, trigger: str, memo: Any, logger: Logger,
                               indexes: Indexes) -> None:
    if not namespace:
        return
    for agent in set(referrers.get((namespace, name), [])):
        await reconcile_named(namespace, agent, trigger, memo, indexes, logger)


@kopf.on.event("v1", "secrets", when=lambda type, **_: type is not None)
async def secret_event(*, namespace: str | None, name: str, memo: Any, logger: Logger,
                       **kwargs: Any) -> None:
    """A referenced Secret appeared, changed or vanished: the config hash follows it."""
    indexes = Indexes.from_kwargs(kwargs)
    await _reconcile_referrers(indexes.agents_by_secret, namespace, name, "secret-changed",
                               memo, logger, indexes)


@kopf.on.event("v1", "configmaps", labels=UNMANAGED, when=lambda type, **_: type is not None)
async def config_map_event(*, namespace: str | None, name: str, memo: Any, logger: Logger,
                           **kwargs: Any) -> None:
    """A context ConfigMap appeared or vanished: agents waiting on it recover or report."""
    indexes = Indexes.from_kwargs(kwargs)
    await _reconcile_referrers(indexes.agents_by_config_map, namespace, name,
                               "configmap-changed", memo, logger, indexes)
