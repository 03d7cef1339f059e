"""Re-asks, exhausted retries, upstream 429/5xx/timeouts and the request deadline."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.fakes.openai_server import ClosingServer

from .conftest import VALID_INPUT, Fake, Runtime, make_config, metric_value
from .rawhttp import connect, request


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


def failure_lines(runtime: Runtime, request_id: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in runtime.logs().splitlines() if line.startswith("{")]
    return [x for x in lines if x.get("request_id") == request_id and x["msg"] == "llm call failed"]


def test_retry_after_past_the_deadline_is_answered_at_once(runtime: Runtime, fake: Fake) -> None:
    """A provider asking for 30 s when the request has 2 s left: no sleep, an immediate 503
    carrying the provider's Retry-After, the error metric and one log line."""
    before = metric_value(runtime.metrics(), "agent_llm_errors_total", agent="planner",
                          reason="rate_limit")  # fmt: skip
    fake.control(behavior="status:429", retry_after=30)
    started = time.monotonic()
    response = httpx.post(f"{runtime.url}/run", json=VALID_INPUT, timeout=15,
                          headers={"x-request-id": "slow-provider-1"})  # fmt: skip
    assert time.monotonic() - started < 1.0  # not the 2 s deadline, not the 30 s
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "upstream_rate_limited"
    assert response.headers["retry-after"] == "30"
    assert len(fake.requests()) == 1
    after = metric_value(runtime.metrics(), "agent_llm_errors_total", agent="planner",
                         reason="rate_limit")  # fmt: skip
    assert after - before == 1
    [line] = failure_lines(runtime, "slow-provider-1")
    assert line["reason"] == "rate_limit" and line["upstream_status"] == 429
    assert line["attempts"] == 1


def test_retry_after_within_the_deadline_is_waited_for(fake: Fake, spawn: Any) -> None:
    rt = spawn(make_config(fake.base_url, requestTimeoutSeconds=5))
    fake.control(script=["status:429"], retry_after=1)
    started = time.monotonic()
    assert run(rt).status_code == 200
    assert 0.9 < time.monotonic() - started < 3
    assert len(fake.requests()) == 2


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_upstream_closing_the_connection_is_502_on_both_transports(
    spawn: Any, transport: str
) -> None:
    """A provider that drops the connection unanswered: 502 upstream_closed after the bounded
    retries, the same on both HTTP transports, never a timeout."""
    with ClosingServer() as closing:
        rt = spawn(make_config(closing.base_url, model={"maxRetries": 1}),
                   env={"ATOMIC_AGENT_HTTP_CLIENT": transport})  # fmt: skip
        started = time.monotonic()
        response = httpx.post(f"{rt.url}/run", json=VALID_INPUT, timeout=15,
                              headers={"x-request-id": f"closed-{transport}"})  # fmt: skip
        elapsed = time.monotonic() - started
        accepted = closing.accepted
    assert response.status_code == 502, response.text
    assert response.json()["error"]["type"] == "upstream_closed"
    assert elapsed < 1.9  # well inside the 2 s deadline: no timeout involved
    assert accepted == 2  # 1 + maxRetries
    text = rt.metrics()
    assert metric_value(text, "agent_llm_errors_total", agent="planner", reason="closed") == 1
    assert not metric_value(text, "agent_llm_errors_total", agent="planner", reason="timeout")
    [line] = failure_lines(rt, f"closed-{transport}")
    assert line["reason"] == "closed" and line["attempts"] == 2


def test_attempts_count_transport_retries_and_reasks(runtime: Runtime, fake: Fake) -> None:
    """The log's attempts is every HTTP call for the request: here one transport retry of a
    503, then three answers that break the schema (maxRetries 2 re-asks)."""
    fake.control(script=["status:503", "invalid", "invalid", "invalid"], retry_after_ms=10)
    response = httpx.post(f"{runtime.url}/run", json=VALID_INPUT, timeout=15,
                          headers={"x-request-id": "attempts-1"})  # fmt: skip
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "invalid_model_output"
    assert len(fake.requests()) == 4
    [line] = failure_lines(runtime, "attempts-1")
    assert line["reason"] == "validation" and line["attempts"] == 4
    fake.control(reset=True, behavior="status:429", retry_after_ms=10)
    httpx.post(f"{runtime.url}/run", json=VALID_INPUT, timeout=15,
               headers={"x-request-id": "attempts-2"})  # fmt: skip
    [line] = failure_lines(runtime, "attempts-2")
    assert line["reason"] == "rate_limit" and line["attempts"] == 3  # 1 + 2 transport retries


BIG_ANSWER = {"title": "x" * (1 << 20), "steps": [{"order": 1, "text": "a"}], "risk": "low"}


def test_an_answer_over_the_default_cap_is_refused(runtime: Runtime, fake: Fake) -> None:
    """A 1 MiB title: over the default 1 MiB cap on the model's answer, refused and counted."""
    before = metric_value(runtime.metrics(), "agent_llm_errors_total", agent="planner",
                          reason="output_too_large")  # fmt: skip
    fake.control(output=BIG_ANSWER)
    response = run(runtime)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "model_output_too_large"
    assert "ATOMIC_AGENT_MAX_OUTPUT_BYTES" in error["message"]
    assert len(fake.requests()) == 1  # refused, not re-asked
    after = metric_value(runtime.metrics(), "agent_llm_errors_total", agent="planner",
                         reason="output_too_large")  # fmt: skip
    assert after - before == 1
    assert len(response.content) < 1000


def test_the_output_cap_is_a_setting(fake: Fake, spawn: Any) -> None:
    rt = spawn(make_config(fake.base_url), env={"ATOMIC_AGENT_MAX_OUTPUT_BYTES": "2000"})
    fake.control(output={**BIG_ANSWER, "title": "x" * 1500})
    assert run(rt).status_code == 200  # 1.5 kB of answer fits in 2000 bytes
    fake.control(output={**BIG_ANSWER, "title": "x" * 2500})
    response = run(rt)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "model_output_too_large"


def test_a_bad_output_cap_is_one_clear_line_and_exit_2(fake: Fake, tmp_path: Any) -> None:
    rt = Runtime(make_config(fake.base_url), tmp_path, {"ATOMIC_AGENT_MAX_OUTPUT_BYTES": "lots"})
    with pytest.raises(RuntimeError, match="runtime exited with 2"):
        rt.start()
    assert "ATOMIC_AGENT_MAX_OUTPUT_BYTES must be a positive integer, got 'lots'" in rt.logs()
    assert "Traceback" not in rt.logs()


def test_a_retry_that_cannot_finish_before_the_deadline_is_not_started(
    fake: Fake, spawn: Any
) -> None:
    """Issue 22, item 13: a provider slower than model.timeoutSeconds (1 s, 2 retries,
    deadline 4 s). The third attempt would start with under 1 s left: it is not started,
    and the answer is the provider's timeout, not the request's deadline."""
    config = make_config(
        fake.base_url,
        model={"timeoutSeconds": 1, "maxRetries": 2},
        requestTimeoutSeconds=4,
    )
    rt = spawn(config)
    fake.control(behavior="hang")
    started = time.monotonic()
    response = run(rt)
    took = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert response.json()["error"]["type"] == "upstream_timeout"
    assert len(fake.requests()) == 2  # two attempts of 1 s; the third never sent
    assert took < 3.5, took


def test_a_client_that_goes_away_cancels_the_provider_call(fake: Fake, spawn: Any) -> None:
    """Issue 22, item 7: a caller that gives up (a pipeline step's timeout) used to leave
    the agent finishing the call for nobody, retries included: three provider calls here.
    Now the lost connection cancels the work: one call, counted as a 499."""
    config = make_config(
        fake.base_url, model={"timeoutSeconds": 1, "maxRetries": 2}, requestTimeoutSeconds=10
    )
    rt = spawn(config)
    fake.control(behavior="hang")
    body = json.dumps(VALID_INPUT).encode()
    with connect(rt.port) as sock:
        sock.sendall(request("POST", "/run", body, Content_Type="application/json",
                             X_Request_ID="gave-up-waiting"))
        deadline = time.monotonic() + 5
        while not fake.requests() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(fake.requests()) == 1
    time.sleep(3.5)  # past the 1 s attempt timeout and both retries' backoffs
    assert len(fake.requests()) == 1
    assert metric_value(rt.metrics(), "agent_requests_total", agent="planner",
                        status="499") == 1
    lines = [r for r in rt.log_records() if r.get("request_id") == "gave-up-waiting"]
    assert [(r["msg"], r["status"], r.get("type")) for r in lines] == [
        ("run", 499, "client_disconnected")]
