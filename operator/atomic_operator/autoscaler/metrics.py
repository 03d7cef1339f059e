"""Read the agent runtime's Prometheus text, and turn two readings into per-second rates.

Only the families the rule uses are kept (docs/runtime.md lists them). The parser is a few
lines over the text format rather than prometheus_client's parser: it runs for every pod of
every autoscaled agent every two seconds, and skipping families it does not need is most of
the work.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from atomic_operator.autoscaler.decision import PodSample

UPSTREAM_REASONS = frozenset({"rate_limit", "upstream_5xx"})
"""agent_llm_errors_total reasons that mean the provider, not capacity, is the limit."""
OVERLOADED = "429"
"""agent_requests_total status of the pod's own rejections (over maxInFlight + queueSize)."""

_WANTED = (
    "agent_inflight_requests", "agent_queued_requests", "agent_max_concurrency",
    "agent_requests_total", "agent_request_duration_seconds_bucket",
    "agent_request_duration_seconds_sum", "agent_request_duration_seconds_count",
    "agent_llm_request_duration_seconds_sum", "agent_llm_request_duration_seconds_count",
    "agent_llm_errors_total", "process_cpu_seconds_total",
)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class Reading:
    """One pod's /metrics at one instant: gauges as they are, counters as totals."""

    in_flight: float | None = None
    queued: float | None = None
    max_concurrency: float | None = None
    requests: dict[str, float] = field(default_factory=dict)
    """agent_requests_total by status."""
    duration_buckets: tuple[tuple[float, float], ...] = ()
    """(le, cumulative count) of agent_request_duration_seconds, le ascending."""
    duration_sum: float = 0.0
    duration_count: float = 0.0
    llm_sum: float = 0.0
    llm_count: float = 0.0
    llm_errors: dict[str, float] = field(default_factory=dict)
    """agent_llm_errors_total by reason."""
    cpu_seconds: float | None = None


def parse(text: str) -> Reading:
    """The families the autoscaler reads, summed over any labels it does not split by."""
    gauges: dict[str, float] = {}
    requests: dict[str, float] = {}
    errors: dict[str, float] = {}
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if not line.startswith(_WANTED):
            continue
        head, _, rest = line.partition(" ") if "{" not in line else line.partition("} ")
        name, _, labels = head.partition("{")
        try:
            value = float(rest.split()[0])
        except (IndexError, ValueError):
            continue
        found = dict(_LABEL.findall(labels))
        if name == "agent_requests_total":
            status = found.get("status", "")
            requests[status] = requests.get(status, 0.0) + value
        elif name == "agent_llm_errors_total":
            reason = found.get("reason", "")
            errors[reason] = errors.get(reason, 0.0) + value
        elif name == "agent_request_duration_seconds_bucket":
            le = float(found.get("le", "+Inf"))
            buckets[le] = buckets.get(le, 0.0) + value
        else:
            gauges[name] = gauges.get(name, 0.0) + value
    return Reading(
        in_flight=gauges.get("agent_inflight_requests"),
        queued=gauges.get("agent_queued_requests"),
        max_concurrency=gauges.get("agent_max_concurrency"),
        requests=requests,
        duration_buckets=tuple(sorted(buckets.items())),
        duration_sum=gauges.get("agent_request_duration_seconds_sum", 0.0),
        duration_count=gauges.get("agent_request_duration_seconds_count", 0.0),
        llm_sum=gauges.get("agent_llm_request_duration_seconds_sum", 0.0),
        llm_count=gauges.get("agent_llm_request_duration_seconds_count", 0.0),
        llm_errors=errors,
        cpu_seconds=gauges.get("process_cpu_seconds_total"),
    )


def _delta(new: float, old: float) -> float:
    """A counter's increase; a smaller value means the pod restarted and counts from 0."""
    return new - old if new >= old else new


def quantile(q: float, buckets: tuple[tuple[float, float], ...]) -> float | None:
    """Prometheus' histogram_quantile over cumulative (le, count) pairs: linear inside the
    bucket, the last finite bound when it falls in +Inf."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower_bound
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return lower_bound


def sample(name: str, at: float, new: Reading, old: Reading | None = None,
           seconds: float = 0.0, cpu_cores: float = 1.0) -> PodSample:
    """What the rule needs from a pod: gauges from ``new``, rates from ``new - old`` over
    ``seconds`` (no rates on a pod's first reading)."""
    base = PodSample(name=name, scraped_at=at, in_flight=new.in_flight, queued=new.queued)
    if old is None or seconds <= 0:
        return base
    requests = {k: _delta(v, old.requests.get(k, 0.0)) for k, v in new.requests.items()}
    errors = {k: _delta(v, old.llm_errors.get(k, 0.0)) for k, v in new.llm_errors.items()}
    rejected = requests.get(OVERLOADED, 0.0)
    served = sum(requests.values()) - rejected
    llm_calls = _delta(new.llm_count, old.llm_count)
    service_time = _delta(new.llm_sum, old.llm_sum) / llm_calls if llm_calls > 0 else None
    old_buckets = dict(old.duration_buckets)
    window = tuple((le, _delta(c, old_buckets.get(le, 0.0))) for le, c in new.duration_buckets)
    cpu = None
    if new.cpu_seconds is not None and old.cpu_seconds is not None and cpu_cores > 0:
        cpu = _delta(new.cpu_seconds, old.cpu_seconds) / seconds / cpu_cores
    return PodSample(
        name=name, scraped_at=at, in_flight=new.in_flight, queued=new.queued,
        request_rate=served / seconds, rejected_rate=rejected / seconds,
        mean_latency=service_time, p90_latency=quantile(0.9, window),
        upstream_error_rate=sum(v for k, v in errors.items() if k in UPSTREAM_REASONS) / seconds,
        error_rate=(sum(errors.values()) + rejected) / seconds,
        cpu_utilization=cpu,
    )
