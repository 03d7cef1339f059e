"""Prometheus metrics of a pipeline runner: runs, and each step's calls to its agent.

Every series carries `pipeline`; step series also `step`, so one query finds which step
fails or is slow across every runner pod. The run-level gauges have the names and meaning
of the agents' (in-flight, queued, capacity), since the same admission code feeds them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..metrics import LATENCY_BUCKETS


class PipelineMetrics:
    def __init__(self, pipeline: str, steps: list[str]) -> None:
        self.pipeline = pipeline
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        lbl = ("pipeline",)
        step = ("pipeline", "step")
        self.runs = Counter("pipeline_runs", "POST /run answers by HTTP status.",
                            (*lbl, "status"), registry=r)
        self.run_duration = Histogram("pipeline_run_duration_seconds",
                                      "POST /run wall time, queue wait included.", lbl,
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.inflight = Gauge("pipeline_inflight_runs", "Runs holding a concurrency slot.",
                              lbl, registry=r)
        self.queued = Gauge("pipeline_queued_runs", "Runs waiting for a concurrency slot.",
                            lbl, registry=r)
        self.max_concurrency = Gauge("pipeline_max_concurrency",
                                     "Concurrent runs (maxInFlight) of this pod.", lbl,
                                     registry=r)
        self.queue_capacity = Gauge("pipeline_queue_capacity",
                                    "Queue places (queueSize) of this pod.", lbl, registry=r)
        self.ready = Gauge("pipeline_ready", "1 when /readyz answers 200.", lbl, registry=r)
        self.step_duration = Histogram(
            "pipeline_step_duration_seconds",
            "Wall time of a step (all its forEach items, retries included).", step,
            buckets=LATENCY_BUCKETS, registry=r)
        self.step_calls = Counter(
            "pipeline_step_attempts",
            "HTTP attempts to the step's agent by answer (HTTP status, or connection).",
            (*step, "status"), registry=r)
        self.step_errors = Counter(
            "pipeline_step_errors",
            "Calls of a step that failed after their retries, by reason (the agent's error "
            "type, timeout, connection, deadline).", (*step, "reason"), registry=r)
        self.step_retries = Counter("pipeline_step_retries",
                                    "Attempts after a retryable answer.", step, registry=r)
        self.client_timeouts = Counter(
            "pipeline_client_timeouts", "Connections closed because the client was too slow "
            "to send its request, by phase (head, body).", (*lbl, "phase"), registry=r)
        self.step_inflight = Gauge("pipeline_step_inflight_calls",
                                   "Calls to the step's agent in flight.", step, registry=r)
        self.inflight_g = self.inflight.labels(pipeline)
        self.queued_g = self.queued.labels(pipeline)
        self.run_duration_h = self.run_duration.labels(pipeline)
        self.ready_g = self.ready.labels(pipeline)
        for name in steps:  # present at 0 so rate() works from the start
            self.step_retries.labels(pipeline, name).inc(0)
            self.step_inflight.labels(pipeline, name).set(0)
        self._runs: dict[int, Counter] = {}

    @property
    def agent(self) -> str:
        """The label value admission publishes its gauges under (it is shared with agents)."""
        return self.pipeline

    def count_run(self, status: int) -> None:
        child = self._runs.get(status)
        if child is None:
            child = self._runs[status] = self.runs.labels(self.pipeline, str(status))
        child.inc()

    count_request = count_run
    """The edge counts the answers it gives itself (404, 405, refusals) as runs too."""

    def client_timeout(self, phase: str) -> None:
        self.client_timeouts.labels(self.pipeline, phase).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
