"""Re-asks, exhausted retries, upstream 429/5xx/timeouts and the request deadline."""

from __future__ import annotations

import time
from typing import Any

import httpx

from .conftest import VALID_INPUT, Fake, Runtime, make_config, metric_value


def run(runtime: Runtime) -> httpx.Response:
    return httpx.post(f"{runtime.url}/run", json=VALID_INPUT, timeout=15)


def test_invalid_output_is_reasked_then_succeeds(runtime: Runtime, fake: Fake) -> None:
    before = metric_value(runtime.metrics(), "agent_validation_retries_total", agent="planner")
    fake.control(script=["invalid", "malformed", "ok"])
    response = run(runtime)
    assert response.status_code == 200, response.text
    sent = fake.requests()
    assert len(sent) == 3
    # the re-ask carries the validation error back to the model
    reask = sent[1]["messages"]
    assert reask[-1]["role"] == "tool" and "Validation Error" in reask[-1]["content"]
    after = metric_value(runtime.metrics(), "agent_validation_retries_total", agent="planner")
    assert after - before == 2


def test_exhausted_reasks_are_a_clear_502(runtime: Runtime, fake: Fake) -> None:
    text = runtime.metrics()
    before = metric_value(text, "agent_llm_errors_total", agent="planner", reason="validation")
    fake.control(behavior="invalid")
    response = run(runtime)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "invalid_model_output"
    assert "3 attempt(s)" in error["message"]  # maxRetries 2 -> 3 attempts
    assert error["details"] and all(d["path"].startswith("$") for d in error["details"])
    assert len(fake.requests()) == 3
    after = metric_value(
        runtime.metrics(), "agent_llm_errors_total", agent="planner", reason="validation"
    )
    assert after - before == 1


def test_upstream_429_is_503_with_retry_after(runtime: Runtime, fake: Fake) -> None:
    fake.control(behavior="status:429", retry_after_ms=600)
    started = time.monotonic()
    response = run(runtime)
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "upstream_rate_limited"
    assert response.headers["retry-after"] == "1"  # the provider's 0.6 s, rounded up
    # bounded transport retries: 1 + maxRetries calls, then the answer (the deadline is 2 s)
    assert len(fake.requests()) == 3
    assert time.monotonic() - started < 2.5
    text = runtime.metrics()
    assert metric_value(text, "agent_llm_errors_total", agent="planner", reason="rate_limit") >= 1


def test_upstream_5xx_is_502_after_bounded_retries(runtime: Runtime, fake: Fake) -> None:
    fake.control(behavior="status:500", retry_after_ms=10)
    response = run(runtime)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_error"
    assert len(fake.requests()) == 3
    text = runtime.metrics()
    assert metric_value(text, "agent_llm_errors_total", agent="planner", reason="upstream_5xx") >= 1


def test_transient_5xx_is_retried_transparently(runtime: Runtime, fake: Fake) -> None:
    fake.control(script=["status:503", "ok"], retry_after_ms=10)
    assert run(runtime).status_code == 200
    assert len(fake.requests()) == 2


def test_request_deadline_is_504(runtime: Runtime, fake: Fake) -> None:
    fake.control(latency=5)  # the shared runtime's requestTimeoutSeconds is 2
    started = time.monotonic()
    response = run(runtime)
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "deadline_exceeded"
    assert 1.9 < time.monotonic() - started < 3.5


def test_llm_timeout_is_504_upstream_timeout(fake: Fake, spawn: Any) -> None:
    config = make_config(
        fake.base_url,
        model={"timeoutSeconds": 0.5, "maxRetries": 0},
        requestTimeoutSeconds=10,
    )
    rt = spawn(config)
    fake.control(behavior="hang")
    started = time.monotonic()
    response = run(rt)
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "upstream_timeout"
    assert time.monotonic() - started < 2
    assert metric_value(rt.metrics(), "agent_llm_errors_total", agent="planner", reason="timeout")
    # the re-ask counter is untouched by transport failures
    assert not metric_value(rt.metrics(), "agent_validation_retries_total", agent="planner")


def test_upstream_unreachable_is_502(spawn: Any) -> None:
    from tests.fakes.openai_server import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"
    rt = spawn(make_config(dead, model={"maxRetries": 0}))
    response = run(rt)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_unreachable"
