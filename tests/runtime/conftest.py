"""Harness: the fake OpenAI server on loopback and the runtime as a real process.

Nothing is mocked: the runtime runs as ``python -m atomic_runtime`` with a rendered config
file, and talks HTTP to the fake server, exactly as in a pod.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_server import FakeServerThread, free_port

REPO = Path(__file__).resolve().parents[2]
API_KEY = "sk-test-4f8Qz2LmVx9RkT7wY3nB6cJ1hD5gS0aE"

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A request to turn into a plan.",
    "properties": {
        "request": {"type": "string", "minLength": 1, "description": "What to do"},
        "priority": {"type": "string", "enum": ["low", "normal", "high"]},
        "budget": {"type": "number", "minimum": 0, "maximum": 1000},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
        "owner": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "team": {"type": "string"}},
            "required": ["name"],
        },
    },
    "required": ["request", "priority"],
}
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A plan.",
    "properties": {
        "title": {"type": "string", "description": "Short title"},
        "steps": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "order": {"type": "integer", "minimum": 1},
                    "text": {"type": "string"},
                    "done": {"type": "boolean"},
                },
                "required": ["order", "text"],
            },
        },
        "risk": {"type": "string", "enum": ["low", "medium", "high"]},
        "hours": {"type": "number", "minimum": 0},
    },
    "required": ["title", "steps", "risk"],
}
VALID_INPUT = {"request": "paint the fence", "priority": "high", "tags": ["home"]}


def make_config(base_url: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "apiVersion": "atomicagents.io/v1alpha1",
        "kind": "AgentConfig",
        "name": "planner",
        "namespace": "default",
        "model": {
            "provider": "openai",
            "name": "gpt-fake",
            "baseURL": base_url,
            "apiKeyEnv": "ATOMIC_AGENT_API_KEY",
            "temperature": 0.2,
            "maxTokens": 512,
            "timeoutSeconds": 10,
            "maxRetries": 2,
            "mode": "tools",
        },
        "systemPrompt": {
            "background": ["You are a planner."],
            "steps": ["Read the request.", "Write the steps."],
            "outputInstructions": ["Keep steps short."],
        },
        "inputSchema": copy.deepcopy(INPUT_SCHEMA),
        "outputSchema": copy.deepcopy(OUTPUT_SCHEMA),
        "contextProviders": [{"name": "style", "title": "House style", "text": "Be terse."}],
        "concurrency": {"maxInFlight": 4, "queueSize": 4},
        "requestTimeoutSeconds": 2,
        "maxBodyBytes": 4096,
        "agentRef": None,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


class Fake:
    """Test-side handle on the fake server, driven over its HTTP control endpoint."""

    def __init__(self, server: FakeServerThread) -> None:
        self.server = server
        self.base_url = server.base_url
        self.root = f"http://127.0.0.1:{server.port}"

    def control(self, **knobs: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.root}/_control", json=knobs, timeout=5)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(f"{self.root}/_control", timeout=5).json()
        return result

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = httpx.get(f"{self.root}/_control/requests", timeout=5).json()
        return result


class Runtime:
    """``python -m atomic_runtime`` on free loopback ports, its output captured to a file."""

    def __init__(
        self, config: dict[str, Any], workdir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.config = config
        self.port = free_port()
        self.metrics_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "agent.json"
        self.config_path.write_text(json.dumps(config))
        self.log_path = workdir / "runtime.log"
        self.env = {
            **os.environ,
            "ATOMIC_AGENT_CONFIG": str(self.config_path),
            "ATOMIC_AGENT_HOST": "127.0.0.1",
            "ATOMIC_AGENT_PORT": str(self.port),
            "ATOMIC_AGENT_METRICS_PORT": str(self.metrics_port),
            "ATOMIC_AGENT_API_KEY": API_KEY,
            "ATOMIC_AGENT_DRAIN_DELAY_SECONDS": "0.3",
            # this checkout's runtime, even where the virtualenv's editable install is another's
            "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'agent_image'}",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60, ready: bool = True) -> Runtime:
        """Start and wait for /readyz (or only /healthz with ``ready=False``)."""
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "atomic_runtime"],
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runtime exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                probe = "readyz" if ready else "healthz"
                if httpx.get(f"{self.url}/{probe}", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"runtime not ready in {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def sigterm(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def metrics(self) -> str:
        return httpx.get(f"{self.metrics_url}/metrics", timeout=5).text

    def log_records(self) -> list[dict[str, Any]]:
        """Every log line as its JSON object (each line is one; anything else fails)."""
        return [json.loads(line) for line in self.logs().splitlines() if line.strip()]

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0 when absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeServerThread]:
    with FakeServerThread() as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeServerThread) -> Fake:
    handle = Fake(fake_server)
    handle.control(reset=True)
    return handle


@pytest.fixture(scope="session")
def context_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("context") / "glossary"
    path.write_text("fence: a barrier")
    return path


@pytest.fixture(scope="session")
def runtime(
    fake_server: FakeServerThread, context_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    """The shared runtime most tests talk to (maxInFlight 4, queueSize 4, 2 s deadline)."""
    config = make_config(
        fake_server.base_url,
        contextProviders=[
            {"name": "style", "title": "House style", "text": "Be terse."},
            {"name": "glossary", "title": "Glossary", "file": str(context_file)},
        ],
    )
    rt = Runtime(config, tmp_path_factory.mktemp("runtime")).start()
    yield rt
    rt.stop()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Start extra runtimes with their own config; all are stopped after the test."""
    started: list[Runtime] = []

    def start(
        config: dict[str, Any], env: dict[str, str] | None = None, ready: bool = True
    ) -> Runtime:
        rt = Runtime(config, tmp_path / f"rt{len(started)}", env)
        started.append(rt)
        return rt.start(ready=ready)

    yield start
    for rt in started:
        rt.stop()
