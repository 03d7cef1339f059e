"""One pipeline reconcile against an in-memory API: the runner's children, its replicas,
and the status (Ready from the runner, AgentsReady, incompatibility, name conflicts).

The behaviour against the real API server is in tests/k8s/test_pipeline_runner.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from atomic_operator.k8s.resources import resource_path
from atomic_operator.reconcile.pipeline_children import (
    PipelineEnv,
    follow_runner,
    reconcile_pipeline,
)
from atomic_operator.reconcile.status_writer import Event, StatusWriter
from atomic_operator.settings import OperatorSettings
from tests.support.manifests import example, variant
from tests.support.memory_api import MemoryApi

NS = "ns"
PIPELINE = resource_path("atomicagents.io/v1alpha1", "AtomicPipeline", NS, "analysis-to-tasks")
DEPLOYMENT = resource_path("apps/v1", "Deployment", NS, "analysis-to-tasks")
CONFIG_MAP = resource_path("v1", "ConfigMap", NS, "analysis-to-tasks-config")


def agent(name: str, ready: int = 1, **patch: Any) -> dict[str, Any]:
    body = variant(name, {"spec": patch}) if patch else example(name)
    body["metadata"] = {"name": name, "namespace": NS}
    body["status"] = {"readyReplicas": ready, "desiredReplicas": max(ready, 1)}
    return body


class World:
    def __init__(self, patch: dict[str, Any] | None = None) -> None:
        self.api = MemoryApi()
        self.events: list[Event] = []
        self.writer = StatusWriter(self.api, self._emit)
        doc = variant("analysis-to-tasks", patch) if patch else example("analysis-to-tasks")
        doc["metadata"] = {"name": "analysis-to-tasks", "namespace": NS}
        self.api.put(doc)
        self.agents = {"content-analyzer": agent("content-analyzer"),
                       "task-processor": agent("task-processor")}

    def _emit(self, body: Mapping[str, Any], event: Event) -> None:
        self.events.append(event)

    def env(self) -> PipelineEnv:
        return PipelineEnv(self.api, OperatorSettings(), self.writer, self.agents)

    async def reconcile(self) -> Any:
        self.api.calls.clear()
        self.events.clear()
        return await reconcile_pipeline(self.env(), self.api.get(PIPELINE))

    def status(self) -> dict[str, Any]:
        return dict(self.api.get(PIPELINE)["status"])

    def condition(self, type_: str) -> dict[str, Any]:
        return next(c for c in self.status()["conditions"] if c["type"] == type_)


def available(deployment: dict[str, Any], ready: int) -> dict[str, Any]:
    generation = deployment["metadata"]["generation"]
    return {**deployment, "status": {"observedGeneration": generation, "replicas": ready,
                                     "updatedReplicas": ready, "readyReplicas": ready,
                                     "availableReplicas": ready}}


async def test_the_runner_is_applied_in_creation_order_and_ready_follows_it() -> None:
    world = World()
    result = await world.reconcile()
    assert result.result == "applied"
    assert result.applied == ["Deployment", "ConfigMap", "Service"]
    assert [e[1] for e in world.events] == ["Created"]
    ready = world.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RollingOut")
    assert world.condition("AgentsReady")["status"] == "True"
    assert world.condition("SchemasCompatible")["status"] == "True"
    deployment = world.api.get(DEPLOYMENT)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "runner"
    assert {"name": "ATOMIC_AGENT_CONFIG",
            "value": "/etc/atomic-agent/config/pipeline.json"} in container["env"]
    config = json.loads(world.api.get(CONFIG_MAP)["data"]["pipeline.json"])
    assert config["kind"] == "PipelineConfig"
    await follow_runner(world.env(), world.api.get(PIPELINE), available(deployment, 1))
    assert world.condition("Ready")["status"] == "True"
    assert world.status()["readyReplicas"] == 1


async def test_runner_replicas_go_through_the_scale_subresource() -> None:
    world = World({"spec": {"runner": {"replicas": 3}}})
    await world.reconcile()
    scale = [c for c in world.api.writes("merge_patch") if c.path.endswith("/scale")]
    assert [c.body for c in scale] == [{"spec": {"replicas": 3}}]
    assert all("replicas" not in c.body["spec"] for c in world.api.writes("apply")
               if c.body["kind"] == "Deployment")


async def test_an_incompatible_pipeline_keeps_a_runner_that_is_never_ready() -> None:
    world = World()
    world.agents["task-processor"] = agent("task-processor", inputSchema={
        "type": "object", "required": ["description"],
        "properties": {"description": {"type": "integer"}}})
    result = await world.reconcile()
    assert result.result == "applied"
    config = json.loads(world.api.get(CONFIG_MAP)["data"]["pipeline.json"])
    assert config["problems"][0].startswith("spec.steps[1].input.description.from: step "
                                            "make-tasks: ")
    await follow_runner(world.env(), world.api.get(PIPELINE),
                        available(world.api.get(DEPLOYMENT), 1))
    ready = world.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SchemaMismatch")
    assert [e[:2] for e in world.events][:1] == [("Warning", "SchemaMismatch")]


async def test_agents_without_ready_replicas_are_named() -> None:
    world = World()
    world.agents["task-processor"] = agent("task-processor", ready=0)
    del world.agents["content-analyzer"]
    await world.reconcile()
    agents_ready = world.condition("AgentsReady")
    assert agents_ready["status"] == "False"
    assert agents_ready["message"] == ("no ready replica: content-analyzer (no such "
                                       "AtomicAgent), task-processor (0 of 1 replicas ready)")


async def test_a_name_taken_by_an_agent_blocks_the_runner() -> None:
    world = World()
    world.agents["analysis-to-tasks"] = agent("task-processor")
    result = await world.reconcile()
    assert result.result == "invalid" and result.applied == []
    assert world.api.writes("apply") == []
    ready = world.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NameConflict")
    assert [e[:2] for e in world.events] == [("Warning", "NameConflict")]
