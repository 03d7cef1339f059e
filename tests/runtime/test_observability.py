"""Metrics names and labels, JSON logs, and the API key never reaching a log line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from .conftest import API_KEY, VALID_INPUT, Fake, Runtime, make_config, metric_value

METRICS = [
    ("agent_requests_total", "counter"),
    ("agent_request_duration_seconds", "histogram"),
    ("agent_inflight_requests", "gauge"),
    ("agent_queued_requests", "gauge"),
    ("agent_max_concurrency", "gauge"),
    ("agent_queue_capacity", "gauge"),
    ("agent_ready", "gauge"),
    ("agent_llm_request_duration_seconds", "histogram"),
    ("agent_llm_tokens_total", "counter"),
    ("agent_llm_errors_total", "counter"),
    ("agent_validation_retries_total", "counter"),
]


def test_metrics_are_present_with_the_agent_label(runtime: Runtime, fake: Fake) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    httpx.post(f"{runtime.url}/run", json=VALID_INPUT, timeout=10).raise_for_status()
    for url in (runtime.metrics_url, runtime.url):  # dedicated port and the API port
        text = httpx.get(f"{url}/metrics", timeout=5).text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        for name, kind in METRICS:
            family_name = name.removesuffix("_total")
            assert family_name in families, name
            family = families[family_name]
            assert family.type == kind, name
            assert family.samples and all(s.labels["agent"] == "planner" for s in family.samples)
        reasons = {
            s.labels["reason"] for s in families["agent_llm_errors"].samples if "reason" in s.labels
        }
        assert {"rate_limit", "timeout", "upstream_5xx", "validation"} <= reasons
    text = runtime.metrics()
    assert metric_value(text, "agent_requests_total", agent="planner", status="200") >= 1
    assert metric_value(text, "agent_llm_tokens_total", agent="planner", type="prompt") > 0
    assert metric_value(text, "agent_llm_tokens_total", agent="planner", type="completion") > 0
    assert metric_value(text, "agent_llm_request_duration_seconds_count", agent="planner") >= 1
    assert metric_value(text, "agent_ready", agent="planner") == 1


def test_api_key_appears_in_no_log_line(fake: Fake, spawn: Any) -> None:
    rt = spawn(make_config(fake.base_url, model={"maxRetries": 1}),
               env={"ATOMIC_AGENT_LOG_LEVEL": "DEBUG"})  # fmt: skip
    # the fake echoes the key back in a 401, as real providers do
    fake.control(behavior="status:401")
    assert httpx.post(f"{rt.url}/run", json=VALID_INPUT, timeout=10).status_code == 502
    fake.control(script=["invalid", "ok"], behavior="ok")
    assert httpx.post(f"{rt.url}/run", json=VALID_INPUT, timeout=10).status_code == 200
    assert httpx.post(f"{rt.url}/run", json={"bad": 1}, timeout=10).status_code == 422
    rt.stop()
    logs = rt.logs()
    assert "[REDACTED]" in logs  # DEBUG logging did try to print it, and was redacted
    assert API_KEY not in logs
    assert API_KEY[-12:] not in logs
    for line in logs.splitlines():
        record = json.loads(line)  # every line is one JSON object
        assert {"ts", "level", "logger", "msg"} <= set(record)


def test_default_logs_hold_no_prompt_or_model_output(runtime: Runtime, fake: Fake) -> None:
    fake.control(script=["invalid", "ok"])
    secret_input = {**VALID_INPUT, "request": "paint the fence TOPSECRET-INPUT"}
    httpx.post(f"{runtime.url}/run", json=secret_input, timeout=10).raise_for_status()
    fake.control(behavior="invalid")
    httpx.post(f"{runtime.url}/run", json=VALID_INPUT, timeout=10)
    logs = runtime.logs()
    assert "TOPSECRET-INPUT" not in logs
    assert "IDENTITY and PURPOSE" not in logs
    run_lines = [json.loads(x) for x in logs.splitlines() if '"msg": "run"' in x]
    assert run_lines and all("request_id" in x and "duration_ms" in x for x in run_lines)


def test_context_file_change_is_picked_up(runtime: Runtime, fake: Fake, context_file: Path) -> None:
    httpx.post(f"{runtime.url}/run", json=VALID_INPUT, timeout=10).raise_for_status()
    assert "## Glossary\nfence: a barrier" in fake.requests()[-1]["messages"][0]["content"]
    # the kubelet swaps a ..data symlink; a rename onto the path is the same for a reader
    replacement = context_file.with_name("glossary.new")
    replacement.write_text("fence: a wooden barrier, painted yearly")
    replacement.replace(context_file)
    httpx.post(f"{runtime.url}/run", json=VALID_INPUT, timeout=10).raise_for_status()
    prompt = fake.requests()[-1]["messages"][0]["content"]
    assert "## Glossary\nfence: a wooden barrier, painted yearly" in prompt
    context_file.write_text("fence: a barrier")
