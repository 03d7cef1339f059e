"""What one reconcile does, in what order and how often, against an in-memory API.

The behaviour (pods, garbage collection, what the API server accepts) is tested against
the real control plane in tests/k8s; these pin the orchestration: creation order, the
dry run that guards an update, deletion of optional children, and status written once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from atomic_operator import runner
from atomic_operator.k8s.resources import resource_path
from atomic_operator.reconcile.agent import AgentEnv, follow_deployment, reconcile_agent
from atomic_operator.reconcile.status_writer import Event, StatusWriter
from atomic_operator.references import key_digests
from atomic_operator.replicas import ExternalAutoscaler
from atomic_operator.settings import FIELD_MANAGER, OperatorSettings
from tests.support.manifests import variant
from tests.support.memory_api import MemoryApi

NS = "ns"
SECRETS = {(NS, "openai-credentials"): key_digests({"api-key": "c2stMQ=="})}
AGENT = resource_path("atomicagents.io/v1alpha1", "AtomicAgent", NS, "task-processor")
DEPLOYMENT = resource_path("apps/v1", "Deployment", NS, "task-processor")
HPA = resource_path("autoscaling/v2", "HorizontalPodAutoscaler", NS, "task-processor")
BAD_AFFINITY = {"spec": {"pod": {"affinity": {"nodeAffinity": {
    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "a", "operator": "Sometimes"}]}]}}}}}}
"""Affinity passes through untyped: only the API server can refuse it."""


class World:
    """An API double with one agent in it, and the environment a reconcile runs in."""

    def __init__(self, patch: dict[str, Any] | None = None) -> None:
        self.api = MemoryApi(refuse=_refuse_bad_affinity)
        self.events: list[Event] = []
        self.writer = StatusWriter(self.api, self._emit)
        doc = variant("task-processor", patch or {"spec": {"autoscaling": {"mode": "none"}}})
        doc["metadata"] = {"name": "task-processor", "namespace": NS}
        self.api.put(doc)

    def _emit(self, body: Mapping[str, Any], event: Event) -> None:
        self.events.append(event)

    def env(self, secrets: Any = None, optional: frozenset[str] = frozenset(),
            external: tuple[ExternalAutoscaler, ...] = ()) -> AgentEnv:
        return AgentEnv(self.api, OperatorSettings(), self.writer,
                        SECRETS if secrets is None else secrets, {}, optional, external)

    async def reconcile(self, **env: Any) -> Any:
        self.api.calls.clear()
        self.events.clear()
        # kopf's copy of the agent lags: it has the spec, never our status writes.
        body = self.api.get(AGENT)
        body.pop("status", None)
        return await reconcile_agent(self.env(**env), self.lagging(body))

    def lagging(self, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "metadata": {**body["metadata"], "resourceVersion": "1"}}

    def status_writes(self) -> list[dict[str, Any]]:
        return [c.body["status"] for c in self.api.writes("merge_patch")
                if c.path.endswith("/status")]

    def applied(self) -> list[str]:
        return [c.body["kind"] for c in self.api.writes("apply")]


def _refuse_bad_affinity(obj: dict[str, Any]) -> str | None:
    affinity = obj.get("spec", {}).get("template", {}).get("spec", {}).get("affinity") or {}
    if "Sometimes" in str(affinity):
        return "spec.template.spec.affinity: Unsupported value: \"Sometimes\""
    return None


async def test_first_creation_applies_the_deployment_first_and_writes_status_once() -> None:
    world = World()
    outcome = await world.reconcile()
    assert outcome.result == "applied"
    assert world.applied() == ["Deployment", "ConfigMap", "Service"]
    assert all(c.field_manager == FIELD_MANAGER for c in world.api.writes())
    (status,) = world.status_writes()
    assert status["observedGeneration"] == 1 and status["configHash"]
    assert status["selector"] == "atomicagents.io/agent=task-processor"
    assert [e[1] for e in world.events] == ["Created"]
    # The new Deployment already has the one replica the agent wants: no scale write.
    assert not [c for c in world.api.calls if c.path.endswith("/scale")]


async def test_unchanged_status_is_not_rewritten() -> None:
    world = World()
    await world.reconcile()
    again = await world.reconcile()
    assert world.applied() == ["ConfigMap", "Deployment", "Service"]  # the update order
    assert world.status_writes() == [] and again.status_patch is None
    assert world.events == []


async def test_refused_update_touches_nothing_and_reports_once() -> None:
    world = World()
    await world.reconcile()
    before = {p: o for p, o in world.api.objects.items() if p != AGENT}
    world.api.update(AGENT, BAD_AFFINITY)
    outcome = await world.reconcile()
    assert outcome.result == "invalid"
    # Only the dry run reached the API server; the running children are as they were.
    assert [(c.method, c.body["kind"], c.dry_run) for c in world.api.calls
            if c.method == "apply"] == [("apply", "Deployment", True)]
    assert {p: o for p, o in world.api.objects.items() if p != AGENT} == before
    (status,) = world.status_writes()
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RejectedByApiServer")
    assert [e[:2] for e in world.events] == [("Warning", "RejectedByApiServer")]


async def test_refused_creation_writes_nothing_without_a_dry_run() -> None:
    """The Deployment is written first on creation: refused, nothing exists, so the
    reconcile spends no dry run on it (each costs the API server what an apply does)."""
    world = World(BAD_AFFINITY)
    outcome = await world.reconcile()
    assert outcome.result == "invalid"
    assert [(c.body["kind"], c.dry_run) for c in world.api.calls if c.method == "apply"] \
        == [("Deployment", False)]
    assert list(world.api.objects) == [AGENT]
    assert [e[:2] for e in world.events] == [("Warning", "RejectedByApiServer")]


async def test_creation_dry_runs_the_refusable_children_written_after_the_first() -> None:
    world = World({"spec": {"autoscaling": {"mode": "hpa", "minReplicas": 2}}})
    await world.reconcile()
    applies = [(c.body["kind"], c.dry_run) for c in world.api.calls if c.method == "apply"]
    assert applies[0] == ("HorizontalPodAutoscaler", True)  # before anything is written
    assert ("Deployment", True) not in applies
    assert next(kind for kind, dry in applies if not dry) == "Deployment"


async def test_problems_write_status_once_and_the_event_once() -> None:
    world = World()
    outcome = await world.reconcile(secrets={})
    assert outcome.result == "invalid" and world.applied() == []
    assert len(world.status_writes()) == 1
    assert [e[:2] for e in world.events] == [("Warning", "MissingSecret")]
    await world.reconcile(secrets={})
    assert world.status_writes() == [] and world.events == []


async def test_optional_child_no_longer_wanted_is_deleted() -> None:
    world = World({"spec": {"autoscaling": {"mode": "hpa", "minReplicas": 2}}})
    await world.reconcile()
    assert "HorizontalPodAutoscaler" in world.applied() and HPA in world.api.objects
    # Fresh Deployment in hpa mode: lifted once to minReplicas, through the scale subresource.
    assert world.api.objects[DEPLOYMENT]["spec"]["replicas"] == 2
    world.api.update(AGENT, {"spec": {"autoscaling": {"mode": "none"}, "replicas": 1}})
    outcome = await world.reconcile(optional=frozenset({"HorizontalPodAutoscaler",
                                                        "PodDisruptionBudget"}))
    assert set(outcome.deleted) == {"HorizontalPodAutoscaler", "PodDisruptionBudget"}
    assert HPA not in world.api.objects
    assert ("Normal", "Deleted", "deleted HorizontalPodAutoscaler: no longer wanted") \
        in world.events


async def test_an_external_autoscaler_on_the_deployment_stops_every_replica_write() -> None:
    world = World({"spec": {"autoscaling": {"mode": "hpa", "minReplicas": 2}}})
    external = (ExternalAutoscaler("HorizontalPodAutoscaler", "mine"),)
    await world.reconcile(external=external)
    assert "HorizontalPodAutoscaler" not in world.applied()
    assert not [c for c in world.api.calls if c.path.endswith("/scale")]
    (status,) = world.status_writes()
    scaling = next(c for c in status["conditions"] if c["type"] == "ScalingActive")
    assert (scaling["status"], scaling["reason"]) == ("False", "ExternalAutoscaler")
    assert "HorizontalPodAutoscaler/mine" in scaling["message"]


async def test_following_the_deployment_restores_replicas_only_for_their_owner() -> None:
    world = World({"spec": {"autoscaling": {"mode": "none"}, "replicas": 3}})
    await world.reconcile()
    assert world.api.objects[DEPLOYMENT]["spec"]["replicas"] == 3
    # Someone scales the Deployment by hand: in mode none the agent's count wins.
    world.api.objects[DEPLOYMENT]["spec"]["replicas"] = 1
    world.api.calls.clear()
    agent = world.lagging(world.api.get(AGENT))
    await follow_deployment(world.env(), agent, world.api.get(DEPLOYMENT))
    scale = [c for c in world.api.calls if c.path.endswith("/scale")]
    assert [(c.body, c.field_manager) for c in scale] == [
        ({"spec": {"replicas": 3}}, FIELD_MANAGER)]
    # An HPA of someone else on the Deployment: it wins, the operator writes nothing.
    world.api.objects[DEPLOYMENT]["spec"]["replicas"] = 5
    world.api.calls.clear()
    external = (ExternalAutoscaler("HorizontalPodAutoscaler", "mine"),)
    await follow_deployment(world.env(external=external), agent, world.api.get(DEPLOYMENT))
    assert not [c for c in world.api.calls if c.path.endswith("/scale")]
    assert world.api.objects[DEPLOYMENT]["spec"]["replicas"] == 5


def _rolled(world: World, updated: int, available: int) -> dict[str, Any]:
    """The live Deployment with a status the Deployment controller could have written."""
    deployment = world.api.get(DEPLOYMENT)
    generation = deployment["metadata"].get("generation", 1)
    deployment["metadata"]["generation"] = generation
    deployment["status"] = {"observedGeneration": generation, "replicas": 1,
                            "updatedReplicas": updated, "availableReplicas": available,
                            "readyReplicas": available}
    return deployment


async def test_a_held_follow_writes_no_rollout_step_but_writes_ready_at_once() -> None:
    world = World()
    await world.reconcile()
    assert [s["conditions"][0]["reason"] for s in world.status_writes()] == ["RollingOut"]
    agent = world.lagging(world.api.get(AGENT))
    world.api.calls.clear()
    # updated but not yet available: a step on the way, held
    outcome = await follow_deployment(world.env(), agent, _rolled(world, 1, 0), hold=True)
    assert outcome.held and not world.status_writes()
    # unheld (the follow a moment later), the same step is written
    outcome = await follow_deployment(world.env(), agent, _rolled(world, 1, 0))
    assert not outcome.held
    assert [s["conditions"][0]["reason"] for s in world.status_writes()] == ["Unavailable"]
    # becoming available is never held
    world.api.calls.clear()
    outcome = await follow_deployment(world.env(), agent, _rolled(world, 1, 1), hold=True)
    assert not outcome.held
    assert [s["conditions"][0]["reason"] for s in world.status_writes()] == ["Available"]


async def test_a_held_rollout_step_is_followed_again_once_after_the_hold(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """However many steps are held meanwhile, one follow runs HOLD_SECONDS later, and it
    writes what is then the latest state: a rollout that stalls still shows its progress."""
    monkeypatch.setattr(runner, "HOLD_SECONDS", 0.05)
    world = World()
    await world.reconcile()
    reconciler = runner.AgentReconciler(world.api, OperatorSettings(), world.writer)
    agent = world.lagging(world.api.get(AGENT))
    world.api.calls.clear()
    again: list[str] = []

    async def follow_latest() -> None:
        again.append("again")
        await reconciler.follow(agent, _rolled(world, 1, 0), logger=logging.getLogger())

    for _ in range(3):
        await reconciler.follow(agent, _rolled(world, 1, 0), again=follow_latest,
                                logger=logging.getLogger())
    assert not world.status_writes() and not again
    await asyncio.sleep(0.2)
    assert again == ["again"]
    assert [s["conditions"][0]["reason"] for s in world.status_writes()] == ["Unavailable"]


async def test_forgetting_an_agent_drops_its_held_follow(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setattr(runner, "HOLD_SECONDS", 0.05)
    world = World()
    await world.reconcile()
    reconciler = runner.AgentReconciler(world.api, OperatorSettings(), world.writer)
    agent = world.lagging(world.api.get(AGENT))
    again: list[str] = []

    async def follow_latest() -> None:
        again.append("again")

    await reconciler.follow(agent, _rolled(world, 1, 0), again=follow_latest,
                            logger=logging.getLogger())
    reconciler.forget(agent)
    await asyncio.sleep(0.2)
    assert not again


def _pod(name: str, reason: str | None, message: str = "") -> dict[str, Any]:
    state = {"waiting": {"reason": reason, "message": message}} if reason else {"running": {}}
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "ns",
                         "labels": {"atomicagents.io/agent": "task-processor"}},
            "status": {"containerStatuses": [{"name": "agent", "state": state}]}}


async def test_pods_stuck_pulling_their_image_are_named_in_status(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22 #19: an agent whose image cannot be pulled said only "0/1 replicas
    available". While it waits for pods, the pods are read and their waiting reason goes
    to status (Degraded, so kstatus fails it); it clears once they are available."""
    monkeypatch.setattr(runner, "POD_CHECK_SECONDS", 0.05)
    monkeypatch.setattr(runner, "HOLD_SECONDS", 0.05)
    world = World()
    await world.reconcile()
    reconciler = runner.AgentReconciler(world.api, OperatorSettings(), world.writer)
    agent = world.api.get(AGENT)
    world.api.put(_pod("task-processor-abc", "ImagePullBackOff",
                       'Back-off pulling image "nope/agent:1"'))
    world.api.put(_pod("task-processor-def", "ErrImagePull"))
    state = {"deployment": _rolled(world, 1, 0)}

    async def follow_latest() -> None:
        await reconciler.follow(world.api.get(AGENT), state["deployment"],
                                again=follow_latest, hold=False, logger=logging.getLogger())

    await reconciler.follow(agent, state["deployment"], again=follow_latest,
                            logger=logging.getLogger())
    await asyncio.sleep(0.3)
    conditions = {c["type"]: c for c in world.api.get(AGENT)["status"]["conditions"]}
    assert (conditions["Degraded"]["status"], conditions["Degraded"]["reason"]) == (
        "True", "ImagePullBackOff")
    assert conditions["Degraded"]["message"] == (
        'pod task-processor-abc (and 1 more pods): container agent: ImagePullBackOff: '
        'Back-off pulling image "nope/agent:1"')
    assert conditions["Ready"]["reason"] == "Unavailable"
    assert "ImagePullBackOff" in conditions["Ready"]["message"]
    assert conditions["Stalled"]["status"] == "True"
    lists = [c for c in world.api.calls if c.method == "list" and "/pods" in c.path]
    assert lists, world.api.calls
    # the pods come up: the trouble clears with availability
    state["deployment"] = _rolled(world, 1, 1)
    await reconciler.follow(world.api.get(AGENT), state["deployment"], again=follow_latest,
                            logger=logging.getLogger())
    conditions = {c["type"]: c for c in world.api.get(AGENT)["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Degraded"]["status"] == "False"
    assert not reconciler._pod_trouble
