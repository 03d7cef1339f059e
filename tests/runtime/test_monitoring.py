"""The chart's monitoring reads what a real runtime exports.

promtool (Debian's prometheus package) lints a real runtime's /metrics after real calls,
one of them rate-limited by the provider; every `agent_*` series the dashboard and the alert
rules read must be in that output, so a renamed metric breaks this test, not a dashboard.
"""

from __future__ import annotations

import json
import re
import subprocess

import httpx

from atomic_devcluster.tools import ensure_promtool

from .conftest import REPO, VALID_INPUT, Fake, Runtime, metric_value

CHART = REPO / "charts" / "atomic-operator"
_AGENT_SERIES = re.compile(r"\bagent_[a-z_]+")
_HISTOGRAM_PARTS = ("_bucket", "_count", "_sum")


def scraped(runtime: Runtime, fake: Fake) -> str:
    httpx.post(f"{runtime.url}/run", json=VALID_INPUT, timeout=10).raise_for_status()
    fake.control(behavior="status:429", retry_after_ms=1)
    assert httpx.post(f"{runtime.url}/run", json=VALID_INPUT, timeout=10).status_code >= 400
    fake.control(behavior="ok")
    return runtime.metrics()


def series_read_by(text: str) -> set[str]:
    return set(_AGENT_SERIES.findall(text))


def test_promtool_finds_no_problem_in_real_metrics(runtime: Runtime, fake: Fake) -> None:
    text = scraped(runtime, fake)
    assert metric_value(text, "agent_llm_errors_total", agent="planner", reason="rate_limit") >= 1
    proc = subprocess.run([str(ensure_promtool()), "check", "metrics"], input=text,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stdout + proc.stderr


def test_dashboard_and_alerts_read_series_the_runtime_exports(
    runtime: Runtime, fake: Fake
) -> None:
    exported = {line.split("{")[0].split(" ")[0]
                for line in scraped(runtime, fake).splitlines()
                if line and not line.startswith("#")}
    dashboard = json.loads((CHART / "dashboards" / "atomic-agents.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = (CHART / "templates" / "prometheusrule.yaml").read_text()
    read = series_read_by("\n".join(queries)) | series_read_by(rules)
    assert {"agent_inflight_requests", "agent_queued_requests", "agent_llm_tokens_total",
            "agent_llm_errors_total", "agent_ready"} <= read
    missing = sorted(name for name in read
                     if name not in exported
                     and not any(name.removesuffix(p) in exported for p in _HISTOGRAM_PARTS)
                     and not any(f"{name}{p}" in exported for p in _HISTOGRAM_PARTS))
    assert missing == [], f"read but never exported: {missing}"


def test_dashboard_covers_what_operators_ask() -> None:
    titles = {p["title"] for p in json.loads(
        (CHART / "dashboards" / "atomic-agents.json").read_text())["panels"]}
    assert {"In-flight requests", "Queued requests", "Request latency", "Tokens",
            "Provider errors", "Replicas vs desired"} <= titles
