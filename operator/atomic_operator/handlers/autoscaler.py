"""The custom autoscaler's tick: a kopf timer per agent in custom mode.

Thin: the Deployment and the EndpointSlices come from the indexes (no API reads per tick),
the scraping, the rule and the write go through the reconciler, which asks the replica
policy. A tick that changes nothing makes no API call at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from atomic_operator.autoscaler.controller import INTERVAL_SECONDS
from atomic_operator.autoscaler.scrape import Target
from atomic_operator.handlers.indexes import Indexes
from atomic_operator.handlers.types import Logger
from atomic_operator.k8s.endpoints import ready_endpoints
from atomic_operator.k8s.kinds import ATOMIC_AGENT
from atomic_operator.runner import AgentReconciler

METRICS_PORT_NAME = "metrics"


def custom_mode(spec: kopf.Spec, **_: Any) -> bool:
    return bool((spec.get("autoscaling") or {}).get("mode") == "custom")


def metrics_targets(slices: Iterable[Mapping[str, Any]]) -> list[Target]:
    """The Ready pods' metrics URLs from a Service's EndpointSlices (ready endpoints only,
    by the same rule as `atomicctl call`: pods starting or terminating are not scraped;
    starting ones count as capacity)."""
    return [Target(e.pod or e.address, f"{e.url}/metrics")
            for e in ready_endpoints([dict(s) for s in slices], METRICS_PORT_NAME)]


@kopf.timer(ATOMIC_AGENT.group, ATOMIC_AGENT.version, ATOMIC_AGENT.plural,
            interval=INTERVAL_SECONDS, when=custom_mode, id="autoscaler")
async def autoscale(*, body: kopf.Body, namespace: str | None, name: str | None, memo: Any,
                    logger: Logger, **kwargs: Any) -> None:
    if not namespace or not name or body.get("metadata", {}).get("deletionTimestamp"):
        return
    indexes = Indexes.from_kwargs(kwargs)
    deployment = indexes.deployments.get((namespace, name))
    if deployment is None:
        return  # not created yet: the reconcile makes it
    reconciler: AgentReconciler = memo.reconciler
    await reconciler.autoscale(
        body, deployment, metrics_targets(indexes.slices(namespace, name)),
        external=indexes.external_autoscalers(namespace, name), logger=logger)
