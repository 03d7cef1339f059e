"""Secrets and ConfigMaps that agents reference: a change rolls or heals the agents.

ConfigMaps are watched (the operator lists them anyway, for its own children). Secrets are
read by name at each reconcile and again every `secretRecheckSeconds` in one loop, so the
operator never lists or caches a namespace's Secrets and its RBAC on them is `get`.

Pipelines need no loop of their own: a runner reads only its agents' bearer tokens, and an
agent whose token Secret changed is reconciled here, writes a new configHash to its status,
and that event reconciles the pipelines calling it (handlers/atomic_pipeline.py `recheck`),
which read the Secret again and roll their runner.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from atomic_operator.handlers.dispatch import reconcile_body, reconcile_named
from atomic_operator.handlers.indexes import UNMANAGED, Indexes
from atomic_operator.handlers.loops import not_started, start
from atomic_operator.handlers.types import Logger
from atomic_operator.k8s import ApiError
from atomic_operator.k8s.kinds import ATOMIC_AGENT, CONFIG_MAP
from atomic_operator.runner import AgentReconciler
from atomic_operator.settings import OperatorSettings

log = logging.getLogger(__name__)


async def _reconcile_referrers(referrers: kopf.Index[Any, Any], namespace: str | None,
                               name: str, trigger: str, memo: Any, logger: Logger,
                               indexes: Indexes) -> None:
    if not namespace:
        return
    for agent in set(referrers.get((namespace, name), [])):
        await reconcile_named(namespace, agent, trigger, memo, indexes, logger)


@kopf.on.event(ATOMIC_AGENT.group, ATOMIC_AGENT.version, ATOMIC_AGENT.plural,
               when=not_started("secret-recheck"))
async def start_secret_recheck(*, memo: Any, **kwargs: Any) -> None:
    """Start the one re-read loop with the first agent event (inside kopf's handler
    context, which posting events needs). One loop, not a kopf timer per agent: kopf puts a
    finalizer on every object with a timer, and agents must stay deletable without the
    operator."""
    interval = OperatorSettings.from_env().secret_recheck_seconds
    start(memo, "secret-recheck", _recheck_forever(memo, Indexes.from_kwargs(kwargs), interval))


async def _recheck_forever(memo: Any, indexes: Indexes, interval: float) -> None:
    """Secrets are read by name, never watched: a referenced Secret that was rotated,
    created or deleted since an agent's last reconcile rolls, heals or flags the agent."""
    while True:
        await asyncio.sleep(interval)
        reconciler: AgentReconciler | None = memo.get("reconciler")
        if reconciler is None:
            continue
        for key in list(indexes.agents):
            body = indexes.agents.get(key)
            if body is None or body["metadata"].get("deletionTimestamp"):
                continue
            try:
                if await reconciler.secrets_changed(body):
                    log.info("a Secret of %s/%s changed: reconciling", *key)
                    await reconcile_body(body, "secret-changed", memo, indexes, log)
            except (kopf.TemporaryError, ApiError) as err:
                log.warning("re-reading the Secrets of %s/%s failed: %s", *key, err)
            except Exception:  # the loop outlives any one agent's failure
                log.exception("re-checking the Secrets of %s/%s failed", *key)


@kopf.on.event(CONFIG_MAP.api_version, CONFIG_MAP.plural, labels=UNMANAGED,
               when=lambda type, **_: type is not None)
async def config_map_event(*, namespace: str | None, name: str, memo: Any, logger: Logger,
                           **kwargs: Any) -> None:
    """A context ConfigMap appeared or vanished: agents waiting on it recover or report."""
    indexes = Indexes.from_kwargs(kwargs)
    await _reconcile_referrers(indexes.agents_by_config_map, namespace, name,
                               "configmap-changed", memo, logger, indexes)
