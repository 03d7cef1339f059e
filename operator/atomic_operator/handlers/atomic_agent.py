"""AtomicAgent: creation, resumption and updates all run the one reconcile."""

from __future__ import annotations

from typing import Any

import kopf

from atomic_operator.handlers.dispatch import reconcile_body
from atomic_operator.handlers.indexes import Indexes
from atomic_operator.handlers.types import Logger
from atomic_operator.k8s.kinds import ATOMIC_AGENT
from atomic_operator.runner import AgentReconciler


@kopf.on.create(ATOMIC_AGENT.group, ATOMIC_AGENT.version, ATOMIC_AGENT.plural)
@kopf.on.resume(ATOMIC_AGENT.group, ATOMIC_AGENT.version, ATOMIC_AGENT.plural)
@kopf.on.update(ATOMIC_AGENT.group, ATOMIC_AGENT.version, ATOMIC_AGENT.plural)
async def reconcile(*, body: kopf.Body, reason: str, memo: Any, logger: Logger,
                    **kwargs: Any) -> None:
    await reconcile_body(body, str(reason), memo, Indexes.from_kwargs(kwargs), logger)


@kopf.on.event(ATOMIC_AGENT.group, ATOMIC_AGENT.version, ATOMIC_AGENT.plural,
                when=lambda type, **_: type == "DELETED")
async def forget(*, body: kopf.Body, memo: Any, **_: Any) -> None:
    """Children go with the agent through garbage collection; only our memory remains."""
    reconciler: AgentReconciler = memo.reconciler
    reconciler.forget(body)
