"""Prometheus metrics: the signals the operator's autoscaler and the dashboards read.

A private registry per app keeps several apps in one test process apart, and every series
carries the ``agent`` label so one Prometheus query can aggregate across pods of an agent.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
)
LLM_ERROR_REASONS = ("rate_limit", "timeout", "upstream_5xx", "validation")
CLIENT_TIMEOUT_PHASES = ("headers", "body")


class Metrics:
    def __init__(self, agent: str) -> None:
        self.agent = agent
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        lbl = ("agent",)
        self.requests = Counter(
            "agent_requests",
            "POST /run answers, and every error answer of the API port, by HTTP status.",
            (*lbl, "status"),
            registry=r,
        )
        self.client_timeouts = Counter(
            "agent_client_timeouts",
            "Connections cut because the client was too slow, by phase: headers (nothing or "
            "part of a request head within the header timeout) or body.",
            (*lbl, "phase"),
            registry=r,
        )
        self.request_duration = Histogram(
            "agent_request_duration_seconds",
            "POST /run wall time, queue wait included.",
            lbl,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge(
            "agent_inflight_requests", "Requests holding a concurrency slot.", lbl, registry=r
        )
        self.queued = Gauge(
            "agent_queued_requests", "Requests waiting for a concurrency slot.", lbl, registry=r
        )
        self.max_concurrency = Gauge(
            "agent_max_concurrency", "Concurrency slots (maxInFlight) of this pod.", lbl, registry=r
        )
        self.queue_capacity = Gauge(
            "agent_queue_capacity", "Queue places (queueSize) of this pod.", lbl, registry=r
        )
        self.ready = Gauge(
            "agent_ready",
            "1 when /readyz answers 200 (0 while starting or draining).",
            lbl,
            registry=r,
        )
        self.llm_duration = Histogram(
            "agent_llm_request_duration_seconds",
            "One call to the model provider (each re-ask is its own call).",
            lbl,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "agent_llm_tokens", "Tokens reported by the provider.", (*lbl, "type"), registry=r
        )
        self.llm_errors = Counter(
            "agent_llm_errors",
            "Failed model interactions by reason: rate_limit, timeout, upstream_5xx, "
            "validation, connection, upstream_4xx, other.",
            (*lbl, "reason"),
            registry=r,
        )
        self.validation_retries = Counter(
            "agent_validation_retries",
            "Re-asks after the model's output failed the output schema.",
            lbl,
            registry=r,
        )
        # children are resolved once: labels() costs a dict lookup and a lock per call
        self.inflight_g = self.inflight.labels(agent)
        self.queued_g = self.queued.labels(agent)
        self.request_duration_h = self.request_duration.labels(agent)
        self.llm_duration_h = self.llm_duration.labels(agent)
        self.validation_retries_c = self.validation_retries.labels(agent)
        self.prompt_tokens_c = self.tokens.labels(agent, "prompt")
        self.completion_tokens_c = self.tokens.labels(agent, "completion")
        self.ready_g = self.ready.labels(agent)
        for reason in LLM_ERROR_REASONS:
            self.llm_errors.labels(agent, reason)  # present at 0 so rate() works from the start
        for phase in CLIENT_TIMEOUT_PHASES:
            self.client_timeouts.labels(agent, phase)
        self.validation_retries_c.inc(0)
        self.prompt_tokens_c.inc(0)
        self.completion_tokens_c.inc(0)
        self._status: dict[int, Counter] = {}

    def count_request(self, status: int) -> None:
        child = self._status.get(status)
        if child is None:
            child = self._status[status] = self.requests.labels(self.agent, str(status))
        child.inc()

    def client_timeout(self, phase: str) -> None:
        self.client_timeouts.labels(self.agent, phase).inc()

    def llm_error(self, reason: str) -> None:
        self.llm_errors.labels(self.agent, reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
