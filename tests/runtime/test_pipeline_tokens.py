"""The runner calling a token-protected agent: real runner and agent processes, loopback HTTP.

task-processor runs with ATOMIC_AGENT_AUTH_TOKEN, as the operator renders it for an agent
with `spec.access.bearerTokenSecretRef`; the runner's config is the operator's own
`runner_config` for that agent body, and its env carries the token the way the runner's
secretKeyRef would. The analyze step is served by a stand-in for an open agent that records
the headers it gets, so the test can see no token is sent where none is required.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_server import FakeServerThread

from .conftest import Fake, Runtime, metric_value
from .pipelines import Runner, agent_config, pipeline_doc, runner_config_for

TOKEN = "tok-pipeline-7Hq2Lm9Xv4Rk8Ty3"
TOKEN_ENV = "ATOMIC_PIPELINE_AGENT_TOKEN_TASK_PROCESSOR"
ACCESS = {"task-processor": {"bearerTokenSecretRef": {"name": "tp-token", "key": "token"}}}
RECOMMENDATIONS = ["Fix the roof", "Paint the fence"]
ANALYSIS = {"summary": "A house in need of care.", "insights": ["old roof"],
            "recommendations": RECOMMENDATIONS, "metadata": {"source": "survey"}}
CONTENT = {"content": "The roof leaks and the fence is grey."}
_ANALYZER = agent_config("content-analyzer", "http://127.0.0.1:9/v1")
SCHEMA = json.dumps({"name": "content-analyzer", "input": _ANALYZER["inputSchema"],
                     "output": _ANALYZER["outputSchema"]}).encode()


class OpenAgent:
    """An open agent's HTTP surface (content-analyzer's answer and its /schema, which the
    runner reads to check the answer), recording each /run's headers."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        recorded = self.headers

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/schema":
                    self._answer(SCHEMA, "application/json")
                else:
                    self._answer(b"ready")

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                recorded.append({k.lower(): v for k, v in self.headers.items()})
                self._answer(json.dumps(ANALYSIS).encode(), "application/json")

            def _answer(self, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """task-processor requiring TOKEN on /run."""
    with FakeServerThread() as fake:
        rt = Runtime(agent_config("task-processor", fake.base_url),
                     tmp_path_factory.mktemp("protected"),
                     {"ATOMIC_AGENT_AUTH_TOKEN": TOKEN})
        yield rt.start(timeout=60)
        rt.stop()
        Fake(fake).control(reset=True)


@pytest.fixture
def open_agent() -> Iterator[OpenAgent]:
    agent = OpenAgent()
    yield agent
    agent.close()


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Any]:
    started: list[Runtime] = []

    def start(config: dict[str, Any], env: dict[str, str]) -> Runtime:
        rt = Runner(config, tmp_path / f"runner{len(started)}", env).start(timeout=60)
        started.append(rt)
        return rt

    yield start
    for rt in started:
        rt.stop()


def config_for(protected: Runtime, open_agent: OpenAgent, access: Any) -> dict[str, Any]:
    analyzer = Runtime(agent_config("content-analyzer", "http://127.0.0.1:9/v1"),
                       Path("/nonexistent-never-started"))  # its config only: not started
    return runner_config_for(pipeline_doc("analysis-to-tasks"),
                             {"content-analyzer": analyzer, "task-processor": protected},
                             urls={"content-analyzer": open_agent.url}, access=access)


def unauthorized(rt: Runtime) -> float:
    return metric_value(rt.metrics(), "agent_requests_total", status="401")


def test_the_runner_sends_the_token_only_to_the_agent_that_requires_it(
        protected: Runtime, open_agent: OpenAgent, runner: Any) -> None:
    config = config_for(protected, open_agent, ACCESS)
    assert [s.get("tokenEnv") for s in config["steps"]] == [None, TOKEN_ENV]
    rt = runner(config, {TOKEN_ENV: TOKEN, "ATOMIC_AGENT_LOG_LEVEL": "DEBUG"})
    before = unauthorized(protected)
    answer = httpx.post(f"{rt.url}/run", json=CONTENT, timeout=30)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["output"]) == len(RECOMMENDATIONS)  # one call per item
    make = answer.json()["trace"][1]
    assert [a["status"] for c in make["calls"] for a in c["attempts"]] == [200, 200]
    assert unauthorized(protected) == before
    assert len(open_agent.headers) == 1
    assert "authorization" not in open_agent.headers[0]  # no token where none is required
    rt.stop()
    assert TOKEN not in rt.logs()  # DEBUG included


def test_without_the_token_the_protected_agent_answers_401(
        protected: Runtime, open_agent: OpenAgent, runner: Any) -> None:
    """The runner as it was before tokens: the config names none, so none is sent."""
    rt = runner(config_for(protected, open_agent, None), {TOKEN_ENV: TOKEN})
    before = unauthorized(protected)
    answer = httpx.post(f"{rt.url}/run", json=CONTENT, timeout=30)
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert (error["step"], error["agentStatus"]) == ("make-tasks", 401)
    assert error["agentError"]["type"] == "unauthorized"
    assert unauthorized(protected) > before


@pytest.mark.parametrize("value", [None, "  "])
def test_a_token_variable_named_but_missing_stops_the_runner_at_start(
        protected: Runtime, open_agent: OpenAgent, tmp_path: Path, value: str | None) -> None:
    rt = Runner(config_for(protected, open_agent, ACCESS), tmp_path,
                {} if value is None else {TOKEN_ENV: value})
    rt.env.pop(TOKEN_ENV, None) if value is None else None
    with rt.log_path.open("wb") as log:
        proc = subprocess.run([sys.executable, "-m", "atomic_runtime"], env=rt.env,
                              stdout=log, stderr=subprocess.STDOUT, timeout=60, check=False)
    assert proc.returncode == 2, rt.logs()
    (line,) = [json.loads(raw) for raw in rt.logs().splitlines() if raw.strip()]
    assert line["level"] == "error" and line["msg"] == "missing agent token"
    state = "not set" if value is None else "empty"
    assert line["error"] == (f"{TOKEN_ENV} is {state}: it holds the bearer token of agent "
                             "task-processor (spec.access.bearerTokenSecretRef)")
