"""The custom autoscaler's tick, every 2 s, for each agent in custom mode.

One loop for all agents (see `start_autoscaler`). Thin: the Deployment and the
EndpointSlices come from the indexes (no API reads per tick), the scraping, the rule and the
write go through the reconciler, which asks the replica policy. A tick that changes nothing
makes no API call at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from atomic_operator.autoscaler.controller import INTERVAL_SECONDS
from atomic_operator.autoscaler.scrape import Target
from atomic_operator.handlers.indexes import Indexes
from atomic_operator.handlers.loops import not_started, start
from atomic_operator.k8s import ApiError
from atomic_operator.k8s.endpoints import ready_endpoints
from atomic_operator.k8s.kinds import ATOMIC_AGENT
from atomic_operator.replicas import custom_mode
from atomic_operator.runner import AgentReconciler

METRICS_PORT_NAME = "metrics"
log = logging.getLogger(__name__)


def in_custom_mode(spec: Mapping[str, Any], **_: Any) -> bool:
    return custom_mode((spec.get("autoscaling") or {}).get("mode"))


def metrics_targets(slices: Iterable[Mapping[str, Any]]) -> list[Target]:
    """The Ready pods' metrics URLs from a Service's EndpointSlices (ready endpoints only,
    by the same rule as `atomicctl call`: pods starting or terminating are not scraped;
    starting ones count as capacity)."""
    return [Target(e.pod or e.address, f"{e.url}/metrics")
            for e in ready_endpoints([dict(s) for s in slices], METRICS_PORT_NAME)]


@kopf.on.event(ATOMIC_AGENT.group, ATOMIC_AGENT.version, ATOMIC_AGENT.plural,
               id="start-autoscaler", when=not_started("autoscaler"))
async def start_autoscaler(*, memo: Any, **kwargs: Any) -> None:
    """Start the one autoscaler loop with the first agent event (inside kopf's handler
    context, which posting events needs). One loop, not a kopf timer per agent: kopf puts a
    finalizer on every object a timer matches, and agents must stay deletable without the
    operator (as the Secret re-check loop in handlers/references.py)."""
    start(memo, "autoscaler", _autoscale_forever(memo, Indexes.from_kwargs(kwargs)))


async def _autoscale_forever(memo: Any, indexes: Indexes) -> None:
    """Every INTERVAL_SECONDS, one tick for each agent in custom mode, all concurrently."""
    while True:
        await asyncio.sleep(INTERVAL_SECONDS)
        reconciler: AgentReconciler | None = memo.get("reconciler")
        if reconciler is None:
            continue
        due = [(key, body) for key in list(indexes.agents)
               if (body := indexes.agents.get(key)) is not None
               and in_custom_mode(body.get("spec") or {})]
        await asyncio.gather(*(_tick(reconciler, indexes, key, body) for key, body in due))


async def _tick(reconciler: AgentReconciler, indexes: Indexes, key: tuple[str, str],
                body: Mapping[str, Any]) -> None:
    namespace, name = key
    if body.get("metadata", {}).get("deletionTimestamp") or \
            indexes.namespace_terminating(namespace):
        return
    deployment = indexes.deployments.get((namespace, name))
    if deployment is None:
        return  # not created yet: the reconcile makes it
    try:
        await reconciler.autoscale(
            body, deployment, metrics_targets(indexes.slices(namespace, name)),
            external=indexes.external_autoscalers(namespace, name), logger=log)
    except (kopf.TemporaryError, ApiError) as err:
        log.warning("autoscaler tick of %s/%s failed: %s", namespace, name, err)
    except Exception:  # the loop outlives any one agent's failure
        log.exception("autoscaler tick of %s/%s failed", namespace, name)
