"""An AtomicAgent's status: the one function every trigger calls.

The reconcile after applying, a Deployment event and a spec problem all describe what they
observed as an `AgentObservation`, and `agent_status` turns (spec, observation, previous
status) into the wanted `AtomicAgentStatus`. The model is the same one the CRD schema is
generated from, so what is written cannot drift from what the API server accepts.

Extension points: replica ownership, including the custom autoscaler's recommendation and
external autoscalers, arrives already decided as a `ReplicaPlan` (see `replicas.py`); its
`scaling` condition becomes ScalingActive and its `desired` count `desiredReplicas`. A
field the autoscaler adds (say `lastScaleTime`) goes on `AtomicAgentStatus` and on
`AutoscalerObservation`, and is copied in `_observed_fields` below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from atomic_operator.api import AtomicAgent, AtomicAgentStatus
from atomic_operator.conditions import (
    DEPLOYMENT_READY_REASONS,
    Cond,
    deployment_conditions,
    find,
    merge_conditions,
    problem_conditions,
)
from atomic_operator.naming import AGENT_LABEL, SERVICE_PORT
from atomic_operator.problems import SpecProblem, summarize
from atomic_operator.replicas import SCALING_ACTIVE, ReplicaPlan


@dataclass(frozen=True)
class AgentObservation:
    """What one trigger saw. Each trigger fills what it knows; the rest stays as it was."""

    deployment: Mapping[str, Any] | None = None
    """The live Deployment (after apply, or from its watch event)."""

    replicas: ReplicaPlan | None = None
    """The replica policy's answer for this Deployment; needed whenever `deployment` is."""

    config_hash: str | None = None
    """Set by a reconcile that applied the children: the configuration now applied. None
    (a status-only trigger) keeps observedGeneration, configHash, endpoint and selector."""

    problems: Sequence[SpecProblem] = ()
    """Why the spec cannot be served; the children were left as they were."""

    pipelines: Sequence[str] | None = None
    """The pipelines that call the agent (from the operator's index); None keeps them."""

    pod_trouble: Cond | None = None
    """Why pods are stuck (a Degraded condition from `conditions.pod_trouble`), as last
    read from the pods while the agent was not available."""


def agent_status(agent: AtomicAgent | None, name: str, namespace: str,
                 generation: int | None, previous: Mapping[str, Any],
                 seen: AgentObservation, cluster_domain: str) -> AtomicAgentStatus:
    """The status the agent should have. `agent` is None when its spec does not parse (then
    `seen.problems` says why); `previous` is the status as stored (camelCase)."""
    if seen.pipelines is not None:
        previous = {**previous, "pipelines": sorted(seen.pipelines)}
    conditions = previous.get("conditions") or []
    if seen.problems:
        reason, message = summarize(seen.problems)
        return _status(previous, observedGeneration=generation, conditions=merge_conditions(
            conditions, problem_conditions(reason, message), generation))
    if seen.config_hash is None and (agent is None or has_spec_problem(previous)):
        # Only a reconcile that applied the fixed spec may clear a spec problem.
        return _status(previous)
    if seen.replicas is None:
        raise ValueError("a status from a Deployment needs the replica plan")
    applied = seen.config_hash is not None
    plan = seen.replicas
    deployment = seen.deployment or {}
    wanted = deployment_conditions(deployment, plan.desired)
    trouble = seen.pod_trouble
    if trouble is not None and wanted[0].status == "False" and wanted[2].status == "False":
        # the Deployment only counts the pods unavailable; the pods say why
        ready, progressing, _ = wanted
        wanted = [Cond("Ready", "False", ready.reason, f"{ready.message}: {trouble.message}"),
                  progressing, trouble]
    if plan.scaling is not None:
        wanted.append(plan.scaling)
    cond_generation = generation if applied else previous.get("observedGeneration")
    fields: dict[str, Any] = {
        "conditions": merge_conditions(conditions, wanted, cond_generation,
                                       drop=() if plan.scaling else (SCALING_ACTIVE,)),
        **_observed_fields(deployment, plan),
    }
    if applied:
        fields.update(
            observedGeneration=generation,
            endpoint=f"http://{name}.{namespace}.svc.{cluster_domain}:{SERVICE_PORT}",
            selector=f"{AGENT_LABEL}={name}",
            configHash=seen.config_hash,
        )
    return _status(previous, **fields)


ROLLOUT_REASONS = frozenset({"RollingOut", "Unavailable"})
"""Ready reasons of an agent whose pods are on their way (not a failure, not a problem)."""


def waiting_for_pods(status: AtomicAgentStatus) -> bool:
    """Not Ready only because pods are not (yet) available: the case where the pods may
    say why (`conditions.pod_trouble`)."""
    ready = next((c for c in status.conditions if c.type == "Ready"), None)
    return ready is not None and ready.status == "False" and ready.reason in ROLLOUT_REASONS


def progress_only(previous: Mapping[str, Any], wanted: AtomicAgentStatus) -> bool:
    """Whether `wanted` differs from the stored status only as a rollout moves on: not
    Ready for a rollout reason before and after, not Degraded before or after, for the same
    generation and configuration. Such a step (0/3 updated, then 1/3, then all updated but
    not yet available) is soon superseded by the next, so it may wait a moment; becoming
    Ready, failing or a spec problem may not."""
    def state(conditions: Any, type_: str) -> tuple[Any, Any]:
        found = find(conditions or [], type_)
        return found.get("status"), found.get("reason")

    stored = previous.get("conditions")
    new = [c.model_dump(by_alias=True) for c in wanted.conditions]
    return (state(stored, "Ready")[0] == state(new, "Ready")[0] == "False"
            and state(stored, "Ready")[1] in ROLLOUT_REASONS
            and state(new, "Ready")[1] in ROLLOUT_REASONS
            and state(stored, "Degraded")[0] == state(new, "Degraded")[0] == "False"
            and previous.get("observedGeneration") == wanted.observed_generation
            and previous.get("configHash") == wanted.config_hash)


def has_spec_problem(status: Mapping[str, Any]) -> bool:
    """Whether the stored status reports a spec problem (not a rollout state)."""
    ready = find(status.get("conditions") or [], "Ready")
    return ready.get("status") == "False" and ready.get("reason") not in DEPLOYMENT_READY_REASONS


def _observed_fields(deployment: Mapping[str, Any], plan: ReplicaPlan) -> dict[str, Any]:
    observed = deployment.get("status") or {}
    return {
        "replicas": observed.get("replicas", 0),
        "readyReplicas": observed.get("readyReplicas", 0),
        "desiredReplicas": plan.desired,
        # the autoscaler's last decision while it owns the count; removed when it does not
        "autoscaling": plan.explanation.model_dump(by_alias=True, exclude_none=True)
        if plan.explanation else None,
    }


def _status(previous: Mapping[str, Any], **fields: Any) -> AtomicAgentStatus:
    return AtomicAgentStatus.model_validate({**previous, **fields})
