"""The pipeline runner as a real process calling real agent processes over loopback HTTP.

Each agent is an example AtomicAgent rendered by the operator and answered by its own fake
provider (so one agent can be slowed or broken alone); the runner's config is the one the
operator renders from the type check. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_server import FakeServerThread, free_port

from .conftest import Fake, Runtime, metric_value
from .pipelines import DATA, Runner, UnreadyRunner, agent_config, pipeline_doc, runner_config_for

AGENTS = ("content-analyzer", "task-processor", "sentiment-analyzer", "report-writer")
RECOMMENDATIONS = ["Fix the roof", "Paint the fence", "Clean the gutters"]
ANALYSIS = {"summary": "A house in need of care.", "insights": ["old roof"],
            "recommendations": RECOMMENDATIONS, "metadata": {"source": "survey"}}
CONTENT = {"content": "The roof leaks and the fence is grey."}


@pytest.fixture(scope="module")
def fake_servers() -> Iterator[dict[str, Fake]]:
    with ExitStack() as stack:
        yield {name: Fake(stack.enter_context(FakeServerThread())) for name in AGENTS}


@pytest.fixture
def fakes(fake_servers: dict[str, Fake]) -> dict[str, Fake]:
    for fake in fake_servers.values():
        fake.control(reset=True)
    fake_servers["content-analyzer"].control(output=ANALYSIS)
    return fake_servers


@pytest.fixture(scope="module")
def agents(fake_servers: dict[str, Fake], tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[dict[str, Runtime]]:
    started: dict[str, Runtime] = {}
    try:
        for name in AGENTS:
            config = agent_config(name, fake_servers[name].base_url)
            started[name] = Runtime(config, tmp_path_factory.mktemp(name)).start(timeout=60)
        yield started
    finally:
        for rt in started.values():
            rt.stop()


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Any]:
    """Start runners (Runner, or UnreadyRunner for one that must not become ready)."""
    started: list[Runtime] = []

    def start(config: dict[str, Any], kind: type[Runner] = Runner) -> Runtime:
        rt = kind(config, tmp_path / f"runner{len(started)}").start(timeout=60)
        started.append(rt)
        return rt

    yield start
    for rt in started:
        rt.stop()


def run(rt: Runtime, body: Any = CONTENT, timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{rt.url}/run", json=body, timeout=timeout)


def step(trace: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(s for s in trace if s["step"] == name)


def agent_inputs(fake: Fake) -> list[dict[str, Any]]:
    """The input objects an agent sent its model (the user message is the input as JSON)."""
    found = []
    for request in fake.requests():
        user = [m for m in request["messages"] if m["role"] == "user"]
        found.append(json.loads(user[-1]["content"]))
    return found


def with_step(doc: dict[str, Any], name: str, **fields: Any) -> dict[str, Any]:
    for entry in doc["spec"]["steps"]:
        if entry["name"] == name:
            entry.update(fields)
    return doc


def test_sequential_then_for_each_gives_one_task_per_recommendation(
        fakes: dict[str, Fake], agents: dict[str, Runtime], runner: Any) -> None:
    rt = runner(runner_config_for(pipeline_doc("analysis-to-tasks"), agents))
    answer = run(rt)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    tasks = body["output"]
    assert len(tasks) == len(RECOMMENDATIONS)
    assert all({"task_id", "status", "result", "confidence"} <= set(t) for t in tasks)
    sent = agent_inputs(fakes["task-processor"])
    assert sorted(s["description"] for s in sent) == sorted(RECOMMENDATIONS)
    assert all(s["priority"] == "medium" and s["context"] == {"source": "survey"} for s in sent)
    assert agent_inputs(fakes["content-analyzer"]) == [
        {"content": CONTENT["content"], "analysis_type": "recommendations", "depth": "standard"}]
    analyze, make = step(body["trace"], "analyze"), step(body["trace"], "make-tasks")
    assert [s["step"] for s in body["trace"]] == ["analyze", "make-tasks"]
    assert analyze["status"] == make["status"] == "ok"
    assert make["items"] == 3 and [c["item"] for c in make["calls"]] == [0, 1, 2]
    assert make["startedMs"] >= analyze["durationMs"]  # it waited for analyze
    port = agents["task-processor"].port
    for call in make["calls"]:
        (attempt,) = call["attempts"]
        assert attempt["status"] == 200 and attempt["replica"].endswith(f"@127.0.0.1:{port}")
    metrics = rt.metrics()
    labels = {"pipeline": "analysis-to-tasks"}
    assert metric_value(metrics, "pipeline_runs_total", status="200", **labels) == 1
    assert metric_value(metrics, "pipeline_step_attempts_total", step="make-tasks",
                        status="200", **labels) == 3
    assert metric_value(metrics, "pipeline_step_duration_seconds_count", step="analyze",
                        **labels) == 1


def test_input_is_checked_against_the_pipeline_input_schema(
        fakes: dict[str, Fake], agents: dict[str, Runtime], runner: Any) -> None:
    rt = runner(runner_config_for(pipeline_doc("analysis-to-tasks"), agents))
    answer = run(rt, {"content": 7})
    assert answer.status_code == 422
    assert answer.json()["error"]["details"] == [
        {"path": "$.content", "message": "7 is not of type 'string'"}]
    assert fakes["content-analyzer"].requests() == []


def test_independent_steps_run_concurrently_and_merge(
        fakes: dict[str, Fake], agents: dict[str, Runtime], runner: Any) -> None:
    fakes["content-analyzer"].control(latency=0.6)
    fakes["sentiment-analyzer"].control(
        latency=0.6, output={"label": "negative", "score": 0.8, "highlights": ["leaks"]})
    rt = runner(runner_config_for(pipeline_doc("parallel-review"), agents))
    t0 = time.monotonic()
    answer = run(rt)
    elapsed = time.monotonic() - t0
    assert answer.status_code == 200, answer.text
    assert elapsed < 1.1, elapsed  # one after the other would take 1.2 s or more
    trace = answer.json()["trace"]
    analyze, sentiment, report = (step(trace, n) for n in ("analyze", "sentiment", "report"))
    assert abs(analyze["startedMs"] - sentiment["startedMs"]) < 200
    assert report["startedMs"] >= max(analyze["durationMs"], sentiment["durationMs"])
    (merged,) = agent_inputs(fakes["report-writer"])
    assert merged == {"summary": ANALYSIS["summary"], "recommendations": RECOMMENDATIONS,
                      "tone": "negative", "tone_evidence": ["leaks"]}
    assert set(answer.json()["output"]) >= {"title", "report", "action_items"}


def test_an_optional_step_that_fails_leaves_its_output_absent(
        fakes: dict[str, Fake], agents: dict[str, Runtime], runner: Any) -> None:
    fakes["sentiment-analyzer"].control(behavior="status:400")
    rt = runner(runner_config_for(pipeline_doc("parallel-review"), agents))
    answer = run(rt)
    assert answer.status_code == 200, answer.text
    sentiment = step(answer.json()["trace"], "sentiment")
    assert sentiment["status"] == "failed" and sentiment["optional"] is True
    assert sentiment["error"]["agentError"]["type"] == "upstream_rejected"
    assert "optional, so its output is absent" in sentiment["error"]["message"]
    (merged,) = agent_inputs(fakes["report-writer"])
    assert merged == {"summary": ANALYSIS["summary"], "recommendations": RECOMMENDATIONS}
    assert step(answer.json()["trace"], "report")["status"] == "ok"


def test_a_failing_step_fails_the_run_naming_step_attempt_and_agent_error(
        fakes: dict[str, Fake], agents: dict[str, Runtime], runner: Any) -> None:
    fakes["task-processor"].control(behavior="status:400")
    rt = runner(runner_config_for(pipeline_doc("analysis-to-tasks"), agents))
    answer = run(rt)
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["type"] == "step_failed" and error["step"] == "make-tasks"
    assert error["attempt"] == 1 and error["agentStatus"] == 502  # never retried
    assert error["agentError"]["type"] == "upstream_rejected"
    assert error["message"].startswith(f"step make-tasks (item {error['item']}) failed on "
                                       "attempt 1 of 3: agent task-processor answered 502 "
                                       "upstream_rejected: ")
    trace = answer.json()["trace"]
    assert step(trace, "analyze")["status"] == "ok"
    assert step(trace, "make-tasks")["status"] == "failed"
    assert metric_value(rt.metrics(), "pipeline_step_errors_total", pipeline="analysis-to-tasks",
                        step="make-tasks", reason="upstream_rejected") >= 1


def test_for_each_items_run_concurrently_within_the_bound(
        fakes: dict[str, Fake], agents: dict[str, Runtime], runner: Any) -> None:
    fakes["content-analyzer"].control(output={**ANALYSIS, "recommendations": list("abcdef")})
    fakes["task-processor"].control(latency=0.3)
    doc = with_step(pipeline_doc("analysis-to-tasks"), "make-tasks", maxConcurrency=2)
    rt = runner(runner_config_for(doc, agents))
    t0 = time.monotonic()
    answer = run(rt)
    elapsed = time.monotonic() - t0
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["output"]) == 6
    assert fakes["task-processor"].state()["max_in_flight"] == 2
    assert 0.9 <= elapsed < 1.6, elapsed  # three rounds of two


def test_a_step_deadline_stops_a_slow_agent(
        fakes: dict[str, Fake], agents: dict[str, Runtime], runner: Any) -> None:
    fakes["task-processor"].control(latency=5)
    doc = with_step(pipeline_doc("analysis-to-tasks"), "make-tasks", timeoutSeconds=1)
    rt = runner(runner_config_for(doc, agents))
    t0 = time.monotonic()
    answer = run(rt)
    assert time.monotonic() - t0 < 2.5
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["reason"] == "timeout" and error["step"] == "make-tasks"
    assert "no answer within the step's timeoutSeconds (1s)" in error["message"]


def test_an_agent_that_does_not_answer_gives_a_clear_error(
        fakes: dict[str, Fake], agents: dict[str, Runtime], runner: Any) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    config = runner_config_for(pipeline_doc("analysis-to-tasks"), agents,
                               urls={"task-processor": nowhere})
    rt = runner(config, UnreadyRunner)
    ready = httpx.get(f"{rt.url}/readyz")
    assert ready.status_code == 503
    assert ready.text == "agents not ready: task-processor: no ready endpoint (no connection)"
    answer = run(rt)
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["reason"] == "connection" and error["attempt"] == 3
    assert f"no connection to agent task-processor at {nowhere}" in error["message"]
    attempts = step(answer.json()["trace"], "make-tasks")["calls"][0]["attempts"]
    assert [a["status"] for a in attempts] == [None, None, None]


def test_an_agent_at_capacity_is_retried_after_its_retry_after(
        fakes: dict[str, Fake], agents: dict[str, Runtime], runner: Any, tmp_path: Path) -> None:
    fakes["content-analyzer"].control(output={**ANALYSIS, "recommendations": ["one"]})
    fakes["task-processor"].control(latency=1.0)
    config = agent_config("task-processor", fakes["task-processor"].base_url,
                          concurrency={"maxInFlight": 1, "queueSize": 0})
    busy = Runtime(config, tmp_path / "busy").start(timeout=60)
    try:
        occupant = threading.Thread(target=lambda: httpx.post(
            f"{busy.url}/run", json={"description": "occupy"}, timeout=10))
        rt = runner(runner_config_for(pipeline_doc("analysis-to-tasks"),
                                      {**agents, "task-processor": busy}))
        occupant.start()
        deadline = time.monotonic() + 10
        while metric_value(busy.metrics(), "agent_inflight_requests") < 1:
            assert time.monotonic() < deadline, "the occupying call never started"
            time.sleep(0.01)
        t0 = time.monotonic()
        answer = run(rt)
        elapsed = time.monotonic() - t0
        occupant.join()
    finally:
        busy.stop()
    assert answer.status_code == 200, answer.text
    attempts = step(answer.json()["trace"], "make-tasks")["calls"][0]["attempts"]
    assert [a["status"] for a in attempts] == [429, 200]
    assert attempts[0]["error"]["retryAfterSeconds"] == 1
    assert elapsed >= 2.0  # 1 s Retry-After, then the 1 s call
    assert metric_value(rt.metrics(), "pipeline_step_retries_total",
                        pipeline="analysis-to-tasks", step="make-tasks") == 1


def test_the_pipeline_deadline_cancels_the_run_and_its_calls(
        fakes: dict[str, Fake], agents: dict[str, Runtime], runner: Any) -> None:
    fakes["content-analyzer"].control(latency=5)
    doc = pipeline_doc("analysis-to-tasks", {"spec": {"timeoutSeconds": 1}})
    rt = runner(runner_config_for(doc, agents))
    t0 = time.monotonic()
    answer = run(rt)
    assert time.monotonic() - t0 < 2.0
    assert answer.status_code == 504
    assert answer.json()["error"]["type"] == "deadline_exceeded"
    trace = answer.json()["trace"]
    assert step(trace, "analyze")["status"] == "cancelled"
    assert step(trace, "make-tasks")["status"] == "cancelled"
    attempt = step(trace, "analyze")["calls"][0]["attempts"][0]
    assert attempt["status"] is None and attempt["error"]["type"] == "cancelled"
    assert metric_value(rt.metrics(), "pipeline_step_errors_total", pipeline="analysis-to-tasks",
                        step="analyze", reason="cancelled") == 1


async def test_the_runner_answers_429_with_retry_after_beyond_its_capacity(
        fakes: dict[str, Fake], agents: dict[str, Runtime], runner: Any) -> None:
    fakes["content-analyzer"].control(latency=1.0)
    doc = pipeline_doc("analysis-to-tasks",
                       {"spec": {"runner": {"concurrency": {"maxInFlight": 1, "queueSize": 0}}}})
    rt = runner(runner_config_for(doc, agents))
    async with httpx.AsyncClient(timeout=30) as client:
        first = asyncio.create_task(client.post(f"{rt.url}/run", json=CONTENT))
        await asyncio.sleep(0.3)
        second = await client.post(f"{rt.url}/run", json=CONTENT)
        assert (await first).status_code == 200
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "1"
    assert second.json()["error"]["type"] == "overloaded"


async def test_sigterm_drains_runs_in_flight(
        fakes: dict[str, Fake], agents: dict[str, Runtime], runner: Any) -> None:
    fakes["content-analyzer"].control(latency=1.0)
    rt = runner(runner_config_for(pipeline_doc("analysis-to-tasks"), agents))
    async with httpx.AsyncClient(timeout=30) as client:
        in_flight = asyncio.create_task(client.post(f"{rt.url}/run", json=CONTENT))
        await asyncio.sleep(0.3)
        rt.sigterm()
        await asyncio.sleep(0.1)
        ready = await client.get(f"{rt.url}/readyz")
        assert ready.status_code == 503 and ready.text == "draining"
        assert (await in_flight).status_code == 200
    assert await asyncio.to_thread(rt.wait, 15) == 0


def test_an_incompatible_pipeline_is_never_ready_and_says_why(
        fakes: dict[str, Fake], agents: dict[str, Runtime], runner: Any) -> None:
    config = runner_config_for(pipeline_doc(str(DATA / "incompatible.yaml")), agents)
    rt = runner(config, UnreadyRunner)
    ready = httpx.get(f"{rt.url}/readyz")
    assert ready.status_code == 503
    assert ready.text.startswith("incompatible: spec.steps[1].input.description.from: "
                                 "step make-task: steps.analyze.output.insights does not fit")
    answer = run(rt)
    assert answer.status_code == 503 and answer.json()["error"]["type"] == "incompatible"
    assert fakes["content-analyzer"].requests() == []


PROBE = """
import json, sys, time, httpx
url, seconds = sys.argv[1], float(sys.argv[2])
times, failures = [], []
with httpx.Client(timeout=5) as client:
    client.get(url)  # the connection, before anything is timed
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        try:
            if client.get(url).status_code != 200:
                failures.append("not 200")
        except httpx.HTTPError as exc:
            failures.append(repr(exc))
        times.append(time.perf_counter() - t0)
        time.sleep(0.02)
print(json.dumps({"times": times, "failures": failures}), flush=True)
"""


class HealthProbe:
    """Polls the runner's /healthz for `seconds` from another process (this one's GIL is
    busy sending the test's request): the slowest answer, and any failure."""

    def __init__(self, rt: Runtime, seconds: float) -> None:
        self.args = [sys.executable, "-c", PROBE, f"{rt.url}/healthz", str(seconds)]
        self.times: list[float] = []
        self.failures: list[str] = []

    def __enter__(self) -> HealthProbe:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"
        return self

    def __exit__(self, *exc: object) -> None:
        out, _ = self.proc.communicate(timeout=30)
        result = json.loads(out)
        self.times, self.failures = result["times"], result["failures"]


def test_a_for_each_over_maxitems_is_refused_at_once(
        fakes: dict[str, Fake], agents: dict[str, Runtime], runner: Any) -> None:
    """Issue 22, item 1: 100,000 items with timeoutSeconds 10 used to take 49.5 s to
    answer (a task per item), with /healthz silent for 39 s. The list is over the step's
    maxItems (default 1000): 422 too_many_items before any item is called."""
    doc = pipeline_doc("analysis-to-tasks", {"spec": {"timeoutSeconds": 10}})
    config = runner_config_for(doc, agents)
    config["inputSchema"] = {"type": "object"}
    config["maxBodyBytes"] = 8 << 20
    tasks = next(s for s in config["steps"] if s["name"] == "make-tasks")
    tasks["forEach"] = {"source": "input", "path": ["items"]}  # a hand-written runner config
    rt = runner(config)
    body = {**CONTENT, "items": [f"item {i}" for i in range(100_000)]}
    with HealthProbe(rt, 2.5) as probe:
        t0 = time.monotonic()
        answer = run(rt, body)
        took = time.monotonic() - t0
    assert answer.status_code == 422, answer.text[:500]
    error = answer.json()["error"]
    assert error["type"] == "too_many_items" and error["step"] == "make-tasks"
    assert "has 100000 items, over the step's maxItems (1000)" in error["message"]
    assert took < 2.0, took
    assert fakes["task-processor"].requests() == []
    assert not probe.failures and max(probe.times) < 0.1, (probe.failures, max(probe.times))


def test_a_for_each_at_its_bound_keeps_the_deadline_and_health(
        fakes: dict[str, Fake], agents: dict[str, Runtime], runner: Any) -> None:
    """1000 items (the default maxItems) on 100 workers against a slow agent: the run's
    deadline (2 s) is kept within 1 s, and /healthz answers within 100 ms throughout."""
    fakes["content-analyzer"].control(output={**ANALYSIS, "recommendations": [
        f"task {i}" for i in range(1000)]})
    fakes["task-processor"].control(latency=5)
    doc = with_step(pipeline_doc("analysis-to-tasks", {"spec": {"timeoutSeconds": 2}}),
                    "make-tasks", maxConcurrency=100)
    rt = runner(runner_config_for(doc, agents))
    with HealthProbe(rt, 3.5) as probe:  # the run, and the cancelled calls winding down
        t0 = time.monotonic()
        answer = run(rt)
        took = time.monotonic() - t0
    assert answer.status_code == 504, answer.text[:500]
    assert took < 3.0, took
    make = step(answer.json()["trace"], "make-tasks")
    assert make["items"] == 1000 and make["status"] == "cancelled"
    assert len(make["calls"]) <= 100  # only the workers' calls ever started
    assert not probe.failures and max(probe.times) < 0.1, (probe.failures, max(probe.times))
