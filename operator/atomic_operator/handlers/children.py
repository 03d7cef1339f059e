"""Agents' and pipelines' children: follow their status, restore them when deleted or edited
by hand.

Which kinds are children comes from the registry (`k8s/kinds.py`), and whose child an
object is from its owner label (`atomicagents.io/agent` or `/pipeline`); who owns the
replica count from the replica policy (`replicas.py`), asked by the reconcile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from atomic_operator.drift import edited_by_others
from atomic_operator.handlers.atomic_pipeline import reconcile_pipeline_named
from atomic_operator.handlers.dispatch import reconcile_named
from atomic_operator.handlers.indexes import MANAGED, Indexes, not_ours, scale_target
from atomic_operator.handlers.types import Logger
from atomic_operator.k8s.kinds import (
    DEPLOYMENT,
    HPA,
    SCALED_OBJECT,
    Kind,
    child_kinds,
)
from atomic_operator.naming import AGENT_LABEL, PIPELINE_LABEL
from atomic_operator.runner import AgentReconciler


@kopf.on.event(DEPLOYMENT.group, DEPLOYMENT.version, DEPLOYMENT.plural, labels=MANAGED)
async def deployment_event(*, type: str, body: kopf.Body, namespace: str | None,
                           labels: kopf.Labels, memo: Any, logger: Logger,
                           **kwargs: Any) -> None:
    if not namespace or type is None:  # None: the initial listing (resume's job)
        return
    pipeline = labels.get(PIPELINE_LABEL)
    if pipeline:
        trigger = _child_trigger(type, body, memo.reconciler)
        await reconcile_pipeline_named(namespace, pipeline, trigger or "runner-changed", memo,
                                       kwargs, logger, None if trigger else body)
        return
    owner = labels.get(AGENT_LABEL)
    if not owner:
        return
    indexes = Indexes.from_kwargs(kwargs)
    trigger = _child_trigger(type, body, memo.reconciler)
    if trigger is not None:
        await reconcile_named(namespace, owner, trigger, memo, indexes, logger)
        return
    await _follow(memo.reconciler, namespace, owner, body, indexes, logger, hold=True)


async def _follow(reconciler: AgentReconciler, namespace: str, owner: str,
                  deployment: Mapping[str, Any] | None, indexes: Indexes, logger: Logger, *,
                  hold: bool) -> None:
    """Follow the agent's Deployment (the event's, else the latest indexed) into its
    status; a held rollout step is followed again, from the latest, a moment later."""
    key = (namespace, owner)
    agent = indexes.agents.get(key)
    deployment = deployment if deployment is not None else indexes.deployments.get(key)
    if agent is None or agent["metadata"].get("deletionTimestamp") or deployment is None:
        return
    await reconciler.follow(
        agent, deployment, logger=logger,
        external=indexes.external_autoscalers(namespace, owner),
        pipelines=indexes.pipelines_of(namespace, owner), hpa=indexes.hpa(namespace, owner),
        again=lambda: _follow(reconciler, namespace, owner, None, indexes, logger,
                              hold=False), hold=hold)


def _child_trigger(type: str, body: kopf.Body, reconciler: AgentReconciler) -> str | None:
    """Why a child's event needs a reconcile (deleted, edited by others, a field we apply
    taken away), or None."""
    if type == "DELETED":
        reconciler.owned.forget(body)
        return "child-deleted"
    if edited_by_others(body) or reconciler.owned.lost(body):
        return "child-edited"
    return None


def _register_child(kind: Kind) -> None:
    @kopf.on.event(kind.group, kind.version, kind.plural, labels=MANAGED,
                   id=f"child-{kind.plural}")
    async def child_event(*, type: str, body: kopf.Body, namespace: str | None,
                          labels: kopf.Labels, memo: Any, logger: Logger,
                          **kwargs: Any) -> None:
        if not namespace or type is None:
            return
        trigger = _child_trigger(type, body, memo.reconciler)
        if trigger is None:
            if kind == HPA and (owner := labels.get(AGENT_LABEL)):
                # the operator's own HPA said something of itself (its status conditions,
                # in the index already): ScalingActive follows it
                indexes = Indexes.from_kwargs(kwargs)
                await _follow(memo.reconciler, namespace, owner, None, indexes, logger,
                              hold=False)
            return
        if pipeline := labels.get(PIPELINE_LABEL):
            await reconcile_pipeline_named(namespace, pipeline, trigger, memo, kwargs, logger)
        elif owner := labels.get(AGENT_LABEL):
            await reconcile_named(namespace, owner, trigger, memo, Indexes.from_kwargs(kwargs),
                                  logger)


for _kind in child_kinds():
    if _kind != DEPLOYMENT:  # the Deployment has its own handler above
        _register_child(_kind)


def _register_external(kind: Kind, default_kind: str | None) -> None:
    @kopf.on.event(kind.group, kind.version, kind.plural, when=not_ours,
                   id=f"external-{kind.plural}")
    async def external_event(*, type: str, spec: kopf.Spec, namespace: str | None,
                             memo: Any, logger: Logger, **kwargs: Any) -> None:
        """An autoscaler of someone else appeared on (or left) an agent's Deployment or the
        agent: the operator stops (or resumes) writing replicas and says so in
        ScalingActive."""
        found = scale_target(spec, default_kind)
        if not found or not namespace or type is None:
            return
        await reconcile_named(namespace, found[1], "external-autoscaler", memo,
                              Indexes.from_kwargs(kwargs), logger)


_register_external(HPA, None)
_register_external(SCALED_OBJECT, DEPLOYMENT.kind)  # KEDA defaults to a Deployment
