"""The chart's monitoring objects: promtool checks the alert rules and every dashboard query,
promtool's rule tests show each alert firing (and not firing) on sample series, and the
PodMonitor selects the pods the operator really renders, on a port they really have."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from atomic_devcluster.tools import ensure_promtool
from atomic_operator.cli.render import render_documents
from atomic_operator.settings import OperatorSettings
from tests.support.chart import CHART, by_kind, render
from tests.support.manifests import example

MONITORING = CHART / "ci" / "monitoring-values.yaml"
DASHBOARD_VARIABLES = {"$namespace": ".*", "$agent": ".*", "$__rate_interval": "5m"}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ensure_promtool()), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=False)


def rule_groups() -> list[dict[str, Any]]:
    (rule,) = by_kind(render(values=MONITORING), "PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def test_alert_rules_pass_promtool(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    proc = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 5 rules found" in proc.stdout, proc.stdout


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    dashboard = json.loads((CHART / "dashboards" / "atomic-agents.json").read_text())
    rules = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in DASHBOARD_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, expr
            rules.append({"record": f"dashboard:panel{panel['id']}:{target['refId']}",
                          "expr": expr})
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump(
        {"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = promtool("check", "rules", "queries.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules)} rules found" in proc.stdout


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    text = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{text}}}", "values": values}


def _fires(alert: str, at: str, *labels: dict[str, str]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert,
            "exp_alerts": [{"exp_labels": dict(lbl)} for lbl in labels]}


def test_alerts_fire_on_the_situations_they_name(tmp_path: Path) -> None:
    # Annotations are checked by `promtool check rules` above; the unit tests compare labels.
    groups = rule_groups()
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    a = {"namespace": "demo", "agent": "a"}
    b = {"namespace": "demo", "agent": "b"}
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            _series("agent_ready", "0x30", **a, pod="a-1"),
            _series("agent_ready", "1x30", **b, pod="b-1"),
            _series("agent_ready", "0x30", **b, pod="b-2"),
            _series("agent_llm_errors_total", "0+6x30", **a, pod="a-1", reason="rate_limit"),
            _series("agent_llm_errors_total", "0+6x30", **b, pod="b-1", reason="timeout"),
            _series("agent_inflight_requests", "8x30", **a, pod="a-1"),
            _series("agent_queued_requests", "2x30", **a, pod="a-1"),
            _series("agent_max_concurrency", "8x30", **a, pod="a-1"),
            _series("agent_inflight_requests", "6x30", **b, pod="b-1"),
            _series("agent_queued_requests", "0x30", **b, pod="b-1"),
            _series("agent_max_concurrency", "8x30", **b, pod="b-1"),
            _series("kube_horizontalpodautoscaler_status_current_replicas", "6x30",
                    namespace="demo", horizontalpodautoscaler="a"),
            _series("kube_horizontalpodautoscaler_spec_max_replicas", "6x30",
                    namespace="demo", horizontalpodautoscaler="a"),
            _series("kube_horizontalpodautoscaler_status_current_replicas", "3x30",
                    namespace="demo", horizontalpodautoscaler="b"),
            _series("kube_horizontalpodautoscaler_spec_max_replicas", "6x30",
                    namespace="demo", horizontalpodautoscaler="b"),
        ],
        "alert_rule_test": [
            _fires("AtomicAgentNotReady", "3m"),  # `for: 5m` not yet over
            _fires("AtomicAgentNotReady", "10m", {**a, "severity": "critical"}),
            _fires("AtomicAgentPodNotReady", "10m",
                   {**a, "pod": "a-1", "severity": "warning"},
                   {**b, "pod": "b-2", "severity": "warning"}),
            _fires("AtomicAgentProviderRateLimited", "20m", {**a, "severity": "warning"}),
            # (8 + 2) / 8 is above the scenario's 0.8; 6 / 8 is not
            _fires("AtomicAgentSaturated", "20m", {**a, "severity": "warning"}),
            _fires("AtomicAgentAutoscalerAtMax", "10m",
                   {"namespace": "demo", "horizontalpodautoscaler": "a",
                    "severity": "warning"}),
        ],
    }]}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    proc = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_pod_monitor_selects_the_rendered_agent_pods() -> None:
    (monitor,) = by_kind(render(values=MONITORING), "PodMonitor")
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"any": True}
    children = render_documents([example("task-processor")], "demo", OperatorSettings())
    (deployment,) = [d for d in children if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    for expression in spec["selector"]["matchExpressions"]:
        assert labels[expression["key"]] in expression["values"]
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c["ports"]}
    assert {e["port"] for e in spec["podMetricsEndpoints"]} <= ports
    namespaced = by_kind(render(values=CHART / "ci" / "namespaced-values.yaml"), "PodMonitor")
    assert namespaced[0]["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
