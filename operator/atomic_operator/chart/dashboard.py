"""The agents' Grafana dashboard, written as data so each panel is one line of intent.

Queries use the runtime's metric names (docs/runtime.md) and, for replicas versus desired,
kube-state-metrics' Deployment series: an agent's Deployment is named after the agent. A
test parses every query with promtool and checks that each `agent_*` series it reads is in
a real runtime's /metrics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

UID = "atomic-agents"
SELECT = 'namespace=~"$namespace", agent=~"$agent"'
KSM_SELECT = 'namespace=~"$namespace", deployment=~"$agent"'


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    targets: tuple[tuple[str, str], ...]  # (legend, PromQL)
    description: str = ""


def _rate(metric: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}{{{SELECT}}}[$__rate_interval]))"


def _quantile(q: float, metric: str) -> str:
    return (f"histogram_quantile({q}, sum by (le, agent) "
            f"(rate({metric}_bucket{{{SELECT}}}[$__rate_interval])))")


PANELS = (
    Panel("In-flight requests", "short", (
        ("{{agent}}", f"sum by (agent) (agent_inflight_requests{{{SELECT}}})"),
    ), "Requests holding a concurrency slot."),
    Panel("Queued requests", "short", (
        ("{{agent}}", f"sum by (agent) (agent_queued_requests{{{SELECT}}})"),
    ), "Requests waiting for a slot; a standing queue means too few replicas."),
    Panel("Saturation", "percentunit", (
        ("{{agent}}", f"sum by (agent) (agent_inflight_requests{{{SELECT}}} + "
                      f"agent_queued_requests{{{SELECT}}}) / sum by (agent) "
                      f"(agent_max_concurrency{{{SELECT}}})"),
    ), "Demand over capacity: the autoscaler's signal."),
    Panel("Request latency", "s", (
        ("p50 {{agent}}", _quantile(0.5, "agent_request_duration_seconds")),
        ("p95 {{agent}}", _quantile(0.95, "agent_request_duration_seconds")),
        ("p99 {{agent}}", _quantile(0.99, "agent_request_duration_seconds")),
    ), "POST /run wall time, queue wait included."),
    Panel("Model call latency", "s", (
        ("p95 {{agent}}", _quantile(0.95, "agent_llm_request_duration_seconds")),
    ), "One call to the model provider."),
    Panel("Requests by status", "reqps", (
        ("{{agent}} {{status}}", _rate("agent_requests_total", "agent, status")),
    )),
    Panel("Tokens", "short", (
        ("{{agent}} {{type}}", _rate("agent_llm_tokens_total", "agent, type")),
    ), "Tokens per second the provider reported, prompt and completion."),
    Panel("Provider errors", "short", (
        ("{{agent}} {{reason}}", _rate("agent_llm_errors_total", "agent, reason")),
        ("{{agent}} re-asks", _rate("agent_validation_retries_total", "agent")),
    ), "Failed model interactions by reason (rate_limit is the provider's 429)."),
    Panel("Replicas vs desired", "short", (
        ("desired {{deployment}}", f"sum by (deployment) (kube_deployment_spec_replicas"
                                   f"{{{KSM_SELECT}}})"),
        ("available {{deployment}}", f"sum by (deployment) "
                                     f"(kube_deployment_status_replicas_available"
                                     f"{{{KSM_SELECT}}})"),
        ("ready {{agent}}", f"sum by (agent) (agent_ready{{{SELECT}}})"),
    ), "Desired and available from kube-state-metrics; ready as the pods report it."),
)


def _variable(name: str, query: str) -> dict[str, Any]:
    return {
        "name": name, "label": name, "type": "query", "refresh": 2, "multi": True,
        "includeAll": True, "allValue": ".*", "sort": 1,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "definition": query, "query": {"query": query, "refId": name},
    }


def dashboard() -> dict[str, Any]:
    panels = []
    for index, panel in enumerate(PANELS):
        panels.append({
            "id": index + 1,
            "type": "timeseries",
            "title": panel.title,
            "description": panel.description,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
            "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
            "targets": [
                {"refId": chr(ord("A") + n), "expr": expr, "legendFormat": legend,
                 "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                for n, (legend, expr) in enumerate(panel.targets)
            ],
        })
    return {
        "uid": UID,
        "title": "Atomic agents",
        "tags": ["atomic-agents"],
        "schemaVersion": 39,
        "editable": True,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource",
             "query": "prometheus"},
            _variable("namespace", "label_values(agent_ready, namespace)"),
            _variable("agent", 'label_values(agent_ready{namespace=~"$namespace"}, agent)'),
        ]},
        "panels": panels,
    }


def render_dashboard() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"
