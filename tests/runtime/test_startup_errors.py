"""Every configuration error: one clear line on stderr and exit 2, never a traceback.

The line is what ``kubectl logs --previous`` shows for a crash-looping pod, so it must name
the variable or the config field and what is wrong with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import API_KEY, REPO, make_config

BASE = "http://127.0.0.1:9/v1"  # never called: the process must stop before serving


def start(tmp_path: Path, config: Any, **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "agent.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    full_env = {
        **os.environ,
        "ATOMIC_AGENT_CONFIG": str(path),
        "ATOMIC_AGENT_HOST": "127.0.0.1",
        "ATOMIC_AGENT_PORT": "1",  # would fail to bind (not root): we never get that far
        "ATOMIC_AGENT_METRICS_PORT": "0",
        "ATOMIC_AGENT_API_KEY": API_KEY,
        "PYTHONPATH": str(REPO),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "atomic_runtime"], env=full_env, cwd=REPO,
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert not result.stdout.strip()
    record = json.loads(lines[0])
    assert record["level"] == "error"
    return f"{record['msg']}: {record['error']}"


def schema_with(prop: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"a": prop}}


CONFIG_CASES = {
    "unknown type": (schema_with({"type": "strin"}), "inputSchema is not a valid JSON Schema at "
                     "inputSchema.properties.a.type"),
    "invalid regex": (schema_with({"type": "string", "pattern": "(["}), "is not a 'regex'"),
    "unresolvable $ref": (schema_with({"$ref": "#/$defs/nope"}),
                          "inputSchema.properties.a.$ref: '#/$defs/nope' does not resolve"),
    "remote $ref": (schema_with({"$ref": "https://example.com/s.json"}),
                    "only local references"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_input_schema(tmp_path: Path, case: str) -> None:
    schema, expected = CONFIG_CASES[case]
    line = one_error_line(start(tmp_path, make_config(BASE, inputSchema=schema)))
    assert expected in line
    assert line.startswith("cannot load the agent configuration")


def test_bad_output_schema_names_the_output(tmp_path: Path) -> None:
    config = make_config(BASE, outputSchema=schema_with({"type": "string", "pattern": "\\"}))
    assert "outputSchema is not a valid JSON Schema" in one_error_line(start(tmp_path, config))


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("{not json", "not JSON"),
        (json.dumps(make_config(BASE, concurrency={"maxInFlight": "lots"})),
         "concurrency.maxInFlight: Input should be a valid integer"),
        (json.dumps(make_config(BASE, surprise=1)), "surprise: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_bad_config_file(tmp_path: Path, config: str, expected: str) -> None:
    assert expected in one_error_line(start(tmp_path, config))


def test_missing_config_file(tmp_path: Path) -> None:
    result = start(tmp_path, "{}", ATOMIC_AGENT_CONFIG=str(tmp_path / "absent.json"))
    assert "No such file or directory" in one_error_line(result)


ENV_CASES = [
    ("ATOMIC_AGENT_PORT", "http", "is not a port number"),
    ("ATOMIC_AGENT_PORT", "70000", "is not a port number"),
    ("ATOMIC_AGENT_METRICS_PORT", "-1", "is not a port number"),
    ("ATOMIC_AGENT_DRAIN_DELAY_SECONDS", "soon", "is not a number"),
    ("ATOMIC_AGENT_DRAIN_DELAY_SECONDS", "-5", "must be a finite number >= 0"),
    ("ATOMIC_AGENT_KEEPALIVE_SECONDS", "nan", "must be a finite number"),
    ("ATOMIC_AGENT_HEADER_TIMEOUT_SECONDS", "0", "must be a finite number >= 0.1"),
    ("ATOMIC_AGENT_BODY_TIMEOUT_SECONDS", "1m", "is not a number"),
    ("ATOMIC_AGENT_MAX_HEADER_BYTES", "16k", "is not a number"),
    ("ATOMIC_AGENT_LOG_LEVEL", "LOUD", "is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("ATOMIC_AGENT_HTTP_CLIENT", "curl", "is not one of aiohttp, httpx"),
    ("ATOMIC_AGENT_AUTH_TOKEN", "short", "at least 16 characters"),
]


@pytest.mark.parametrize(("name", "value", "expected"), ENV_CASES)
def test_bad_environment_variable(tmp_path: Path, name: str, value: str, expected: str) -> None:
    line = one_error_line(start(tmp_path, make_config(BASE), **{name: value}))
    assert line.startswith(f"invalid environment: {name}=")
    assert expected in line
    if name == "ATOMIC_AGENT_AUTH_TOKEN":
        assert value not in line.split("=", 1)[1]  # a token, even a bad one, is never printed


def test_lower_case_log_level_is_accepted(tmp_path: Path) -> None:
    """Valid values in any case: the process fails on the next variable, not on the level."""
    result = start(tmp_path, make_config(BASE), ATOMIC_AGENT_LOG_LEVEL="debug",
                   ATOMIC_AGENT_DRAIN_DELAY_SECONDS="x")  # fmt: skip
    assert "ATOMIC_AGENT_DRAIN_DELAY_SECONDS" in one_error_line(result)


def test_an_address_that_cannot_be_bound(tmp_path: Path) -> None:
    """Found only when uvicorn binds, after the app started: still one error line, exit 2."""
    result = start(tmp_path, make_config(BASE), ATOMIC_AGENT_HOST="203.0.113.7",
                   ATOMIC_AGENT_PORT="8080")  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    errors = [r for r in records if r["level"] == "error"]
    assert len(errors) == 1 and "address" in errors[0]["msg"].lower(), errors
