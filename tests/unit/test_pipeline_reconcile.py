"""One pipeline reconcile against an in-memory API: the runner's children, its replicas,
and the status (Ready from the runner, AgentsReady, incompatibility, name conflicts).

The behaviour against the real API server is in tests/k8s/test_pipeline_runner.py.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from typing import Any

from atomic_operator.k8s import ApiError
from atomic_operator.k8s.resources import resource_path
from atomic_operator.reconcile.pipeline_children import (
    PipelineEnv,
    follow_runner,
    reconcile_pipeline,
)
from atomic_operator.reconcile.status_writer import Event, StatusWriter
from atomic_operator.render.agent import config_hash
from atomic_operator.render.config import config_json
from atomic_operator.runner import AgentReconciler
from atomic_operator.settings import OperatorSettings
from atomic_runtime.pipeline.config import PipelineConfig
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


TOKEN = "pipeline-token-9f3aK2L8vQx7"
TOKEN_ENV = "ATOMIC_PIPELINE_AGENT_TOKEN_TASK_PROCESSOR"
CLOSED = {"access": {"bearerTokenSecretRef": {"name": "agent-token", "key": "token"}}}
SECRET = resource_path("v1", "Secret", NS, "agent-token")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class SecretReads:
    """The in-memory API, answering GETs of Secrets from `data` (base64 values, as stored)
    and recording them: the operator reads Secrets by name, never lists them."""

    def __init__(self, api: MemoryApi, data: dict[str, dict[str, str]]) -> None:
        self.api = api
        self.data = data
        self.reads: list[str] = []

    async def get(self, path: str) -> dict[str, Any]:
        self.reads.append(path)
        name = path.rsplit("/", 1)[-1]
        if name not in self.data:
            raise ApiError(404, "NotFound", f"secrets {name!r} not found")
        return {"kind": "Secret", "data": dict(self.data[name])}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)


async def reconcile_through_the_runner(world: World, client: SecretReads) -> Any:
    """The handlers' path: the runner reads the token Secrets, then the reconcile renders."""
    reconciler = AgentReconciler(client, OperatorSettings(), world.writer)  # type: ignore[arg-type]
    world.api.calls.clear()
    world.events.clear()
    body = world.api.get(PIPELINE)
    return await reconciler.pipeline(body, "test", lambda env: reconcile_pipeline(env, body),
                                     agents=world.agents, logger=logging.getLogger("test"))


def runner_env(world: World) -> list[dict[str, Any]]:
    (container,) = world.api.get(DEPLOYMENT)["spec"]["template"]["spec"]["containers"]
    return list(container["env"])


async def test_a_protected_agents_token_reaches_the_runner_only_as_a_secret_key_ref() -> None:
    world = World()
    world.agents["task-processor"] = agent("task-processor", **CLOSED)
    client = SecretReads(world.api, {"agent-token": {"token": b64(TOKEN)}})
    result = await reconcile_through_the_runner(world, client)
    assert result.result == "applied"
    assert client.reads == [SECRET]  # the one token Secret, by name
    tokens = [e for e in runner_env(world) if "TOKEN" in e["name"]]
    assert tokens == [{"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {
        "name": "agent-token", "key": "token"}}}]  # content-analyzer requires none
    config = json.loads(world.api.get(CONFIG_MAP)["data"]["pipeline.json"])
    steps = {s["name"]: s for s in config["steps"]}
    assert steps["make-tasks"]["tokenEnv"] == TOKEN_ENV
    assert "tokenEnv" not in steps["analyze"]
    assert PipelineConfig.model_validate(config).step("make-tasks").token_env == TOKEN_ENV
    written = json.dumps([c.body for c in world.api.calls]) + json.dumps(world.events)
    assert TOKEN not in written and b64(TOKEN) not in written

    # rotation: the same spec, a new value in the Secret: a new hash, the runner rolls
    before = world.status()["configHash"]
    client.data["agent-token"]["token"] = b64("a-rotated-pipeline-token-77")
    await reconcile_through_the_runner(world, client)
    after = world.status()["configHash"]
    assert after != before
    template = world.api.get(DEPLOYMENT)["spec"]["template"]
    assert template["metadata"]["annotations"]["atomicagents.io/config-hash"] == after
    assert ("Normal", "RollingOut") in [e[:2] for e in world.events]


async def test_a_pipeline_calling_no_protected_agent_reads_no_secret() -> None:
    world = World()
    client = SecretReads(world.api, {"agent-token": {"token": b64(TOKEN)}})
    await reconcile_through_the_runner(world, client)
    assert client.reads == []
    assert not [e for e in runner_env(world) if "TOKEN" in e["name"]]
    stored = world.api.get(CONFIG_MAP)["data"]["pipeline.json"]
    assert "tokenEnv" not in stored
    # the hash is the configuration's alone, as before tokens existed: no roll on upgrade
    assert world.status()["configHash"] == config_hash(config_json(json.loads(stored)), "")


async def test_a_token_secret_not_there_yet_renders_and_its_arrival_rolls_the_runner() -> None:
    world = World()
    world.agents["task-processor"] = agent("task-processor", **CLOSED)
    client = SecretReads(world.api, {})
    await reconcile_through_the_runner(world, client)
    assert [e["name"] for e in runner_env(world) if "TOKEN" in e["name"]] == [TOKEN_ENV]
    before = world.status()["configHash"]
    client.data["agent-token"] = {"token": b64(TOKEN)}
    await reconcile_through_the_runner(world, client)
    assert world.status()["configHash"] != before


async def test_a_ready_runner_is_not_ready_while_an_agent_is_missing() -> None:
    """Issue 22 #16: Ready=True with AgentsReady=False. A run needs every agent."""
    world = World()
    del world.agents["task-processor"]
    await world.reconcile()
    await follow_runner(world.env(), world.api.get(PIPELINE),
                        available(world.api.get(DEPLOYMENT), 1))
    ready = world.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "AgentsNotReady")
    assert "task-processor (no such AtomicAgent)" in ready["message"]
    assert world.condition("AgentsReady")["status"] == "False"
    assert world.condition("Reconciling")["status"] == "True"
    world.agents["task-processor"] = agent("task-processor")
    await follow_runner(world.env(), world.api.get(PIPELINE),
                        available(world.api.get(DEPLOYMENT), 1))
    assert world.condition("Ready")["status"] == "True"


SERVICE = resource_path("v1", "Service", NS, "analysis-to-tasks")


async def test_a_hand_edit_that_gets_our_apply_refused_is_repaired_with_the_others() -> None:
    """Issue 22 #14: a cpu limit of 1m put on the runner's Deployment made every apply
    refused; the pipeline went RejectedByApiServer blaming `spec`, and its deleted Service
    was never restored. The rendered Deployment is valid on its own, so the child is
    replaced, and the Service is repaired in the same reconcile."""
    world = World()
    await world.reconcile()
    await follow_runner(world.env(), world.api.get(PIPELINE),
                        available(world.api.get(DEPLOYMENT), 1))
    world.api.update(DEPLOYMENT, {"spec": {"template": {"spec": {"containers": [
        {"name": "runner", "resources": {"limits": {"cpu": "1m"}}}]}}}})
    del world.api.objects[SERVICE]

    def refuse(obj: dict[str, Any]) -> str | None:
        stored = world.api.objects.get(resource_path("apps/v1", "Deployment", NS,
                                                     obj["metadata"]["name"]))
        if obj["kind"] == "Deployment" and stored and "cpu" in json.dumps(
                stored["spec"]["template"]["spec"]["containers"][0].get("resources", {})
                .get("limits", {})):
            return "spec.template.spec.containers[0].resources.requests: must be <= limit"
        return None

    world.api.refuse = refuse
    world.api.fail[("merge_patch", DEPLOYMENT)] = 422  # a merge patch keeps the limit too
    result = await world.reconcile()
    assert result.result == "applied", result
    assert [c.method for c in world.api.calls if c.path == DEPLOYMENT] == [
        "apply", "merge_patch", "delete", "apply"]
    probe = next(c for c in world.api.calls if c.method == "create")
    assert probe.dry_run and probe.body["metadata"]["generateName"] == "analysis-to-tasks"
    assert SERVICE in world.api.objects
    limits = world.api.get(DEPLOYMENT)["spec"]["template"]["spec"]["containers"][0][
        "resources"].get("limits", {})
    assert "cpu" not in limits
    (replaced,) = [e for e in world.events if e[1] == "ChildReplaced"]
    assert replaced[0] == "Warning"
    assert replaced[2].startswith("Deployment analysis-to-tasks: replaced")
    assert world.condition("Ready")["reason"] != "RejectedByApiServer"


async def test_a_refusal_while_repairing_names_the_child_and_other_children_go_on() -> None:
    """A repair the API server refuses even for the rendered child alone (say a policy
    installed later): the problem names the child, not `spec`, the other children are
    still repaired, and the reconcile is retried (it raises)."""
    world = World()
    await world.reconcile()
    del world.api.objects[SERVICE]
    world.api.refuse = lambda obj: ("denied by policy" if obj["kind"] == "Deployment"
                                    else None)
    world.api.fail[("merge_patch", DEPLOYMENT)] = 422
    try:
        await world.reconcile()
    except ApiError as err:
        assert err.status == 422
    else:
        raise AssertionError("a refused repair must be retried")
    assert SERVICE in world.api.objects
    assert not [c for c in world.api.calls if c.method == "delete"]
    ready = world.condition("Ready")
    assert ready["reason"] == "RejectedByApiServer"
    assert ready["message"].startswith("Deployment analysis-to-tasks: denied by policy")


async def test_a_missing_agent_stalls_the_pipeline_after_the_grace() -> None:
    """Issue 22 #19: kstatus kept a pipeline whose agent never arrives InProgress forever
    (Flux waits for its own timeout). After the operator's grace it is Degraded/Stalled."""
    from datetime import UTC, datetime, timedelta

    from atomic_operator.api.pipeline import AtomicPipelineStatus
    from atomic_operator.reconcile.pipeline import (
        PipelineObservation,
        pipeline_status,
        stall_due,
    )

    world = World()
    del world.agents["task-processor"]
    await world.reconcile()
    assert world.condition("SchemasCompatible")["reason"] == "MissingAgent"
    assert world.condition("Stalled")["status"] == "False"
    assert world.condition("Reconciling")["status"] == "True"
    grace = OperatorSettings().missing_agent_grace_seconds
    status = AtomicPipelineStatus.model_validate(world.status())
    due = stall_due(status, grace)
    assert due is not None and grace - 5 < due <= grace + 1
    body = world.api.get(PIPELINE)
    since = datetime.strptime(world.condition("SchemasCompatible")["lastTransitionTime"],
                              "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    for elapsed, stalled in ((grace - 1, False), (grace, True)):
        outcome = pipeline_status(body, PipelineObservation(
            world.agents, missing_agent_grace=grace, now=since + timedelta(seconds=elapsed)))
        conditions = {c.type: c for c in outcome.status.conditions}
        assert (conditions["Stalled"].status == "True") is stalled, conditions
        if stalled:
            assert conditions["Stalled"].reason == "MissingAgent"
            assert conditions["Degraded"].message.startswith(
                "no AtomicAgent named task-processor in this namespace for over 120 s")
            assert conditions["Reconciling"].status == "False"
            assert stall_due(outcome.status, grace) is None  # nothing more to wait for
    world.agents["task-processor"] = agent("task-processor")  # it arrives: recovers
    outcome = pipeline_status(body, PipelineObservation(
        world.agents, missing_agent_grace=grace, now=since + timedelta(seconds=grace * 2)))
    assert {c.type: c.status for c in outcome.status.conditions}["Stalled"] == "False"
