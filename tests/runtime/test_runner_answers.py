"""The runner does not take an agent's 200 on trust (issue 22, item 6).

A stand-in agent (fake_agent.py) declares content-analyzer's schemas on /schema and answers
/run with a body the test chooses; the runner is the one the operator renders for the
analysis-to-tasks example. A real agent checks its own output, so only a stand-in can break it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import Runtime
from .fake_agent import FakeAgent
from .pipelines import UnreadyRunner, agent_config, pipeline_doc, runner_config_for

ANALYZER = agent_config("content-analyzer", "http://127.0.0.1:9/v1")


@pytest.fixture(scope="module")
def analyzer() -> Iterator[FakeAgent]:
    with FakeAgent(ANALYZER["inputSchema"], ANALYZER["outputSchema"]) as agent:
        yield agent


@pytest.fixture(scope="module")
def answers_runner(analyzer: FakeAgent,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    tmp = tmp_path_factory.mktemp("answers")
    agents = {name: Runtime(agent_config(name, "http://127.0.0.1:9/v1"), Path(tmp) / name)
              for name in ("content-analyzer", "task-processor")}
    config = runner_config_for(pipeline_doc("analysis-to-tasks"), agents,
                               urls={"content-analyzer": analyzer.url})
    rt = UnreadyRunner(config, Path(tmp) / "runner").start(timeout=60)
    yield rt
    rt.stop()


def test_a_200_that_breaks_the_agents_output_schema_fails_the_step(
        analyzer: FakeAgent, answers_runner: Runtime) -> None:
    analyzer.answer = json.dumps({"summary": "fine", "insights": [],
                                  "recommendations": "not a list"}).encode()
    answer = httpx.post(f"{answers_runner.url}/run", json={"content": "x"}, timeout=30)
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert error["type"] == "step_failed" and error["reason"] == "invalid_answer"
    assert error["step"] == "analyze" and error["agent"] == "content-analyzer"
    message = error["message"]
    assert "agent content-analyzer answered 200 with an output that breaks its output schema" \
        in message and "at $.recommendations, rule type" in message, message
    assert error["agentError"]["details"][0] == {
        "path": "$.recommendations", "rule": "type",
        "message": "'not a list' is not of type 'array'"}


def test_a_60_mb_answer_is_not_read_whole(analyzer: FakeAgent,
                                          answers_runner: Runtime) -> None:
    analyzer.answer = b'{"summary": "' + b"x" * (60 << 20) + b'"}'
    before = answers_runner.rss_mb()
    answer = httpx.post(f"{answers_runner.url}/run", json={"content": "x"}, timeout=30)
    assert answer.status_code == 502, answer.text[:300]
    error = answer.json()["error"]
    assert error["reason"] == "answer_too_large", error
    assert f"over {4 << 20} bytes (maxAnswerBytes)" in error["message"]
    assert answers_runner.rss_mb() - before < 30  # not 60 MB (and its copies) buffered
