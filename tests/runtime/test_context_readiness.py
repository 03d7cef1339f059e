"""A context file that is missing makes the agent not ready, with the reason visible.

In Kubernetes that is a pod that is not Ready (so no traffic reaches it) with the file named
in /readyz and in one warning in its log; it turns Ready by itself when the file appears.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from .conftest import VALID_INPUT, Fake, make_config, metric_value


def test_missing_context_file_means_not_ready_until_it_appears(
    fake: Fake, spawn: Any, tmp_path: Path
) -> None:
    path = tmp_path / "context" / "glossary"
    config = make_config(fake.base_url, contextProviders=[
        {"name": "glossary", "title": "Glossary", "file": str(path)}])  # fmt: skip
    rt = spawn(config, ready=False)
    for _ in range(3):  # the kubelet probes again and again
        ready = httpx.get(f"{rt.url}/readyz")
        assert ready.status_code == 503
        assert ready.text == f"context file missing: {path}"
    assert metric_value(rt.metrics(), "agent_ready", agent="planner") == 0
    refused = httpx.post(f"{rt.url}/run", json=VALID_INPUT, timeout=10)
    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "not_ready"
    assert str(path) in refused.json()["error"]["message"]
    assert fake.requests() == []  # the model was never called with the section empty
    warnings = [r for r in rt.log_records() if r["msg"].startswith("context file missing")]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning"
    assert warnings[0]["path"] == str(path)

    path.parent.mkdir()
    path.write_text("fence: a barrier")
    deadline = time.monotonic() + 5
    while httpx.get(f"{rt.url}/readyz").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert httpx.post(f"{rt.url}/run", json=VALID_INPUT, timeout=10).status_code == 200
    assert "## Glossary\nfence: a barrier" in fake.requests()[-1]["messages"][0]["content"]
    assert metric_value(rt.metrics(), "agent_ready", agent="planner") == 1

    path.unlink()  # gone again (a deleted ConfigMap key): not ready again, warned again
    assert httpx.get(f"{rt.url}/readyz").status_code == 503
    warnings = [r for r in rt.log_records() if r["msg"].startswith("context file missing")]
    assert len(warnings) == 2
