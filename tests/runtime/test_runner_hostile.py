"""Hostile clients against a real pipeline runner process: the agent's answers, not worse.

Issue 22: the runner answered a deep document with a 500, ran text/plain and form bodies,
never answered a stalled body (and held its shutdown for it), and counted a client that left
mid-body as a 400 logged without a type. An agent gets each of these right; so must the
runner. The agents are never started: none of these requests gets as far as a step.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Runtime, metric_value
from .pipelines import UnreadyRunner, agent_config, pipeline_doc, runner_config_for
from .rawhttp import connect, parse, read_until_closed

BODY_TIMEOUT = 1.0
SLACK = 0.8  # scheduling on a shared 2-core machine
PIPELINE = "analysis-to-tasks"


def config_for(tmp_path: Path) -> dict[str, Any]:
    """The example pipeline's runner config, its agents at loopback ports nobody serves."""
    agents = {name: Runtime(agent_config(name, "http://127.0.0.1:9/v1"), tmp_path / name)
              for name in ("content-analyzer", "task-processor")}
    return runner_config_for(pipeline_doc(PIPELINE), agents)


def start_runner(tmp_path: Path) -> Runtime:
    env = {"ATOMIC_AGENT_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT)}
    return UnreadyRunner(config_for(tmp_path), tmp_path / "runner", env).start(timeout=60)


@pytest.fixture(scope="module")
def hostile_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    rt = start_runner(tmp_path_factory.mktemp("hostile-runner"))
    yield rt
    rt.stop()


def runs_total(rt: Runtime, status: int) -> float:
    return metric_value(rt.metrics(), "pipeline_runs_total", pipeline=PIPELINE,
                        status=str(status))


def lines_for(rt: Runtime, rid: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [r for r in rt.log_records() if r.get("request_id") == rid]
        if found:
            time.sleep(0.1)  # a second line, if any, would be written by now
            return [r for r in rt.log_records() if r.get("request_id") == rid]
        time.sleep(0.05)
    return []


@pytest.mark.parametrize("levels", [1_500, 100_000])
def test_deep_json_is_a_400_not_a_500(hostile_runner: Runtime, levels: int) -> None:
    body = b"[" * levels + b"]" * levels
    answer = httpx.post(f"{hostile_runner.url}/run", content=body, timeout=10,
                        headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "invalid_json"
    assert "nested deeper than" in answer.json()["error"]["message"]
    assert "Traceback" not in hostile_runner.logs()


@pytest.mark.parametrize(("body", "named"), [
    (b'{"content": NaN}', "NaN"),
    (b'{"content": "a", "content": "b"}', "duplicate key 'content'"),
    (b'\xef\xbb\xbf{"content": "a"}', "byte order mark"),
    (b'{"content": "\\ud800"}', "unpaired surrogate"),
], ids=["nan", "duplicate-key", "bom", "lone-surrogate"])
def test_what_json_refuses_is_a_400_as_at_an_agent(hostile_runner: Runtime, body: bytes,
                                                   named: str) -> None:
    answer = httpx.post(f"{hostile_runner.url}/run", content=body, timeout=10,
                        headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "invalid_json"
    assert named in answer.json()["error"]["message"]


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_a_body_that_is_not_declared_json_is_a_415(hostile_runner: Runtime,
                                                   content_type: str) -> None:
    before = runs_total(hostile_runner, 415)
    answer = httpx.post(f"{hostile_runner.url}/run", content=json.dumps({"content": "x"}),
                        headers={"content-type": content_type}, timeout=10)
    assert answer.status_code == 415, answer.text
    assert answer.json()["error"]["type"] == "unsupported_media_type"
    assert runs_total(hostile_runner, 415) == before + 1


@pytest.mark.parametrize("tail", [
    b"Content-Length: 100\r\n\r\n{\"content\":",  # 11 of 100 bytes
    b"Transfer-Encoding: chunked\r\n\r\nb\r\n{\"content\":\r\n",  # no final chunk
], ids=["short-content-length", "chunked-without-last-chunk"])
def test_a_stalled_body_is_answered_408_within_the_body_timeout(hostile_runner: Runtime,
                                                                 tail: bytes) -> None:
    before = runs_total(hostile_runner, 408)
    head = (b"POST /run HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"X-Request-ID: stalled-body\r\n")
    with connect(hostile_runner.port, timeout=10) as sock:
        sock.sendall(head + tail)
        t0 = time.monotonic()
        raw, _ = read_until_closed(sock)
        took = time.monotonic() - t0
    answer = parse(raw)
    assert answer.status == 408, raw
    assert answer.json()["error"]["type"] == "client_timeout"
    assert BODY_TIMEOUT - 0.1 <= took < BODY_TIMEOUT + SLACK, took
    assert runs_total(hostile_runner, 408) == before + 1
    timeouts = metric_value(hostile_runner.metrics(), "pipeline_client_timeouts_total",
                            pipeline=PIPELINE, phase="body")
    assert timeouts >= 1


def test_a_client_gone_mid_body_is_a_499_logged_with_its_type(hostile_runner: Runtime) -> None:
    before_400, before_499 = runs_total(hostile_runner, 400), runs_total(hostile_runner, 499)
    with connect(hostile_runner.port) as sock:
        sock.sendall(b"POST /run HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"X-Request-ID: gone-mid-body\r\nContent-Length: 100\r\n\r\n{\"con")
        time.sleep(0.2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    lines = lines_for(hostile_runner, "gone-mid-body")
    assert [(r["msg"], r["status"], r.get("type")) for r in lines] == [
        ("run", 499, "client_disconnected")]
    assert runs_total(hostile_runner, 499) == before_499 + 1
    assert runs_total(hostile_runner, 400) == before_400


def test_sigterm_does_not_wait_for_a_stalled_body(tmp_path: Path) -> None:
    rt = UnreadyRunner(config_for(tmp_path), tmp_path / "runner").start(timeout=60)  # 30 s
    try:
        with connect(rt.port, timeout=20) as sock:
            sock.sendall(b"POST /run HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"content\":")
            time.sleep(0.3)
            t0 = time.monotonic()
            rt.sigterm()
            raw, _ = read_until_closed(sock)
            assert rt.wait(15) == 0
            took = time.monotonic() - t0
    finally:
        rt.stop()
    answer = parse(raw)
    assert answer.status == 503, raw
    assert answer.json()["error"]["type"] == "draining"
    assert took < 3.0, took  # the 0.3 s drain delay, then at once: not the body timeout
