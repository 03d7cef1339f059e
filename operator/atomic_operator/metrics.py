"""The operator's own Prometheus metrics (the agents' metrics are the runtime's)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

RECONCILES = Counter(
    "atomic_operator_reconciles_total", "Reconciliations by kind, trigger and result.",
    ["kind", "trigger", "result"])
RECONCILE_SECONDS = Histogram(
    "atomic_operator_reconcile_duration_seconds", "Time to reconcile one object.", ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
CHILDREN_APPLIED = Counter(
    "atomic_operator_children_applied_total", "Children applied with server-side apply.",
    ["kind", "child"])
CHILDREN_DELETED = Counter(
    "atomic_operator_children_deleted_total", "Children deleted as no longer wanted.",
    ["kind", "child"])
ERRORS = Counter(
    "atomic_operator_errors_total", "Reconcile errors by kind and reason (spec problems "
    "included).", ["kind", "reason"])
STATUS_WRITES = Counter(
    "atomic_operator_status_writes_total", "Status patches written.", ["kind"])

REPLICA_WRITES = Counter(
    "atomic_operator_replica_writes_total", "Writes to Deployments' scale subresource, by "
    "the owner the replica policy named (agent, hpa, autoscaler).", ["owner"])


def serve(port: int) -> None:
    """Expose /metrics on a port of its own, so scrapes never wait behind kopf's work."""
    if port:
        start_http_server(port)
