"""`atomicctl run-local` end to end: the example agent, the real CLI, the fake provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import Fake

ROOT = Path(__file__).resolve().parent.parent.parent


def _run_local(fake: Fake, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ATOMIC_AGENT_API_KEY="sk-local-test")
    return subprocess.run(
        [sys.executable, "-m", "atomic_operator.cli", "run-local",
         "-f", str(ROOT / "examples" / "task-processor.yaml"), "--base-url", fake.base_url,
         *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def test_prints_the_typed_output(fake: Fake) -> None:
    proc = _run_local(fake, "--input", '{"description": "Write the release notes"}')
    assert proc.returncode == 0, proc.stderr
    output = json.loads(proc.stdout)
    assert {"task_id", "status", "result", "confidence"} <= set(output)
    assert 0 <= output["confidence"] <= 1
    sent = fake.requests()[-1]
    assert "You are a task processing specialist." in json.dumps(sent)


def test_names_the_failing_input_path(fake: Fake) -> None:
    proc = _run_local(fake, "--input", '{"priority": "urgent"}')
    assert proc.returncode == 1
    assert "$.description" in proc.stderr and "$.priority" in proc.stderr
    assert fake.requests() == []
