"""Pipelines for real: the runner and the agents it calls as processes on the process node,
HTTP through the node's proxy and the Services' EndpointSlices, the loopback fake LLM.

Two fake providers, so content-analyzer can answer a fixed analysis (three
recommendations) while task-processor's answers are synthesized from its schema. In the
token test task-processor is token-protected: its Secret key reaches the runner pod through
the secretKeyRef the operator renders, as it reaches the agent's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from atomic_devcluster import ControlPlane
from atomic_devcluster.operator_process import OperatorProcess
from tests.fakes.openai_server import FakeServerThread
from tests.support.kube import Kube, eventually
from tests.support.manifests import example, merge_patch, variant

RECOMMENDATIONS = ["Fix the roof", "Paint the fence", "Clean the gutters"]
ANALYSIS = {"summary": "A house in need of care.", "insights": ["old roof"],
            "recommendations": RECOMMENDATIONS, "metadata": {"source": "survey"}}
CONTENT = {"content": "The roof leaks, the fence is grey and the gutters are full."}


@pytest.fixture
def analyst_llm() -> Iterator[FakeServerThread]:
    with FakeServerThread() as server:
        server.app.control({"output": ANALYSIS})
        yield server


def agent(name: str, llm: FakeServerThread) -> dict[str, Any]:
    return variant(name, {"spec": {"model": {"baseURL": llm.base_url}, "replicas": 1,
                                   "autoscaling": {"mode": "none"}}})


def atomicctl(cp: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBECONFIG=str(cp.kubeconfig), **cp.proxy_env())
    return subprocess.run([sys.executable, "-m", "atomic_operator.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def through_proxy(cp: ControlPlane, url: str, body: Any | None = None
                  ) -> tuple[int, str]:
    """GET (or POST `body`) `url` through the node's proxy, as a pod would."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": cp.proxy_url}))
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with opener.open(request, timeout=60) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def runner_pod_ip(kube: Kube) -> str:
    pods = json.loads(kube.run("get", "pods", "-l", "atomicagents.io/pipeline="
                               "analysis-to-tasks", "-o", "json"))["items"]
    ips = [p["status"].get("podIP") for p in pods if p["status"].get("podIP")]
    assert ips, pods
    return str(ips[0])


def condition(kube: Kube, type_: str) -> dict[str, Any]:
    body = kube.get("atomicpipeline", "analysis-to-tasks")
    return next((c for c in (body.get("status") or {}).get("conditions") or []
                 if c["type"] == type_), {})


def test_the_example_pipeline_runs_and_an_agent_at_zero_is_a_clear_error(
        proc_kube: Kube, operator: OperatorProcess, fake_llm: FakeServerThread,
        analyst_llm: FakeServerThread, control_plane: ControlPlane) -> None:
    kube = proc_kube
    kube.run("create", "secret", "generic", "openai-credentials", "--from-literal=api-key=k")
    kube.apply(agent("content-analyzer", analyst_llm))
    kube.apply(agent("task-processor", fake_llm))
    kube.apply(example("analysis-to-tasks"))
    kube.run("wait", "--for=condition=Ready", "--timeout=120s",
             "atomicpipeline/analysis-to-tasks")
    assert condition(kube, "AgentsReady")["status"] == "True"

    call = atomicctl(control_plane, "call", "pipeline/analysis-to-tasks", "-n",
                     kube.namespace, "--input", json.dumps(CONTENT))
    assert call.returncode == 0, call.stderr
    answer = json.loads(call.stdout)
    tasks = answer["output"]
    assert len(tasks) == len(RECOMMENDATIONS)  # one task per recommendation
    task_schema = example("task-processor")["spec"]["outputSchema"]
    for task in tasks:
        jsonschema.validate(task, task_schema)
    sent = [json.loads(r["messages"][-1]["content"]) for r in fake_llm.app.requests]
    assert sorted(s["description"] for s in sent) == sorted(RECOMMENDATIONS)
    analyze, make = answer["trace"]
    assert (analyze["step"], analyze["status"]) == ("analyze", "ok")
    assert (make["step"], make["status"], make["items"]) == ("make-tasks", "ok", 3)
    replicas = {a["replica"] for c in make["calls"] for a in c["attempts"]}
    assert all(r.startswith("task-processor-") for r in replicas), replicas

    # the agent scaled to zero: AgentsReady says so, the runner goes unready saying why,
    # and a call that still reaches the runner fails naming the step and the agent
    kube.run("scale", "atomicagent/task-processor", "--replicas=0")
    eventually(lambda: condition(kube, "AgentsReady").get("status") == "False", timeout=60,
               what="AgentsReady=False")
    assert "task-processor (scaled to 0 replicas)" in condition(kube, "AgentsReady")["message"]
    runner = f"http://{runner_pod_ip(kube)}:8080"
    status, text = eventually(lambda: (r := through_proxy(control_plane,
                                                          f"{runner}/readyz"))[0] == 503
                              and r, timeout=30, what="the runner unready")
    assert text.startswith("agents not ready: task-processor: "), text
    eventually(lambda: condition(kube, "Ready").get("status") == "False", timeout=30,
               what="Ready=False")
    status, text = through_proxy(control_plane, f"{runner}/run", CONTENT)
    assert status == 502, text
    error = json.loads(text)["error"]
    assert error["type"] == "step_failed" and error["step"] == "make-tasks"
    assert "agent task-processor" in error["message"], error
    refused = atomicctl(control_plane, "call", "pipeline/analysis-to-tasks", "-n",
                        kube.namespace, "--input", json.dumps(CONTENT))
    assert refused.returncode != 0 and "no ready endpoints" in refused.stderr


TOKEN = "tok-for-the-pipeline-4c9e1f"
PROTECTED = {"spec": {"access": {"bearerTokenSecretRef": {"name": "tp-token", "key": "token"}}}}


def runner_hash(kube: Kube) -> str:
    template = kube.get("deployment", "analysis-to-tasks")["spec"]["template"]
    return str(template["metadata"]["annotations"]["atomicagents.io/config-hash"])


def test_a_pipeline_calls_a_token_protected_agent_and_follows_its_rotation(
        proc_kube: Kube, operator: OperatorProcess, fake_llm: FakeServerThread,
        analyst_llm: FakeServerThread, control_plane: ControlPlane) -> None:
    kube = proc_kube
    kube.run("create", "secret", "generic", "openai-credentials", "--from-literal=api-key=k")
    kube.run("create", "secret", "generic", "tp-token", f"--from-literal=token={TOKEN}")
    kube.apply(agent("content-analyzer", analyst_llm))
    kube.apply(merge_patch(agent("task-processor", fake_llm), PROTECTED))
    kube.apply(example("analysis-to-tasks"))
    kube.run("wait", "--for=condition=Ready", "--timeout=120s",
             "atomicpipeline/analysis-to-tasks")

    (container,) = kube.get("deployment", "analysis-to-tasks")["spec"]["template"]["spec"][
        "containers"]
    tokens = [e for e in container["env"] if "TOKEN" in e["name"]]
    assert tokens == [{"name": "ATOMIC_PIPELINE_AGENT_TOKEN_TASK_PROCESSOR", "valueFrom": {
        "secretKeyRef": {"name": "tp-token", "key": "token"}}}]
    config = json.loads(kube.get("configmap", "analysis-to-tasks-config")["data"][
        "pipeline.json"])
    assert [s.get("tokenEnv") for s in config["steps"]] == [
        None, "ATOMIC_PIPELINE_AGENT_TOKEN_TASK_PROCESSOR"]

    def call() -> subprocess.CompletedProcess[str]:
        return atomicctl(control_plane, "call", "pipeline/analysis-to-tasks", "-n",
                         kube.namespace, "--input", json.dumps(CONTENT))

    answer = call()
    assert answer.returncode == 0, answer.stderr
    make = json.loads(answer.stdout)["trace"][1]
    assert [a["status"] for c in make["calls"] for a in c["attempts"]] == [200] * 3
    # the agent really is closed: a call without the token is refused
    agent_pods = json.loads(kube.run("get", "pods", "-l", "atomicagents.io/agent="
                                     "task-processor", "-o", "json"))["items"]
    agent_ip = next(p["status"]["podIP"] for p in agent_pods if p["status"].get("podIP"))
    status, _ = through_proxy(control_plane, f"http://{agent_ip}:8080/run",
                              {"description": "anything"})
    assert status == 401
    dumped = kube.run("get", "deployment,configmap,atomicpipeline,atomicagent,events", "-o",
                      "json")
    assert TOKEN not in dumped

    # rotation: the runner's config hash moves with the agent's and, once both have rolled,
    # runs succeed with the new token
    before = runner_hash(kube)
    kube.run("patch", "secret/tp-token", "--type=merge", "-p",
             '{"stringData": {"token": "tok-rotated-for-the-pipeline-8d2a"}}')
    eventually(lambda: runner_hash(kube) != before, timeout=30, what="the runner rolled")
    eventually(lambda: call().returncode == 0, timeout=120,
               what="a run with the rotated token")
