"""Operator settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass

FIELD_MANAGER = "atomic-operator"
"""The field manager of everything the operator applies and writes, except the custom
autoscaler's replica writes."""

AUTOSCALER_FIELD_MANAGER = "atomic-operator-autoscaler"
"""The custom autoscaler's writes to a Deployment's scale subresource (custom mode), so
managedFields tell its replica changes from the operator's own."""

DEFAULT_RUNTIME_IMAGE = "ghcr.io/atomic-agents/atomic-runtime:0.1.0"


@dataclass(frozen=True)
class OperatorSettings:
    """What an installation may tune; every value has a default that works out of the box."""

    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    """Agent runtime image used when an AtomicAgent names none."""

    metrics_port: int = 8090
    """Port of the operator's own Prometheus metrics (0 disables them)."""

    cluster_domain: str = "cluster.local"
    """DNS suffix used in the endpoint written to status."""

    secret_recheck_seconds: float = 30.0
    """How often each agent's referenced Secrets are read again by name, so that a rotated
    (or newly created) Secret rolls (or heals) the agent. Secrets are never listed or
    watched: the operator's RBAC on them is `get`."""

    metrics_warning_seconds: float = 30.0
    """How long the custom autoscaler may fail to read a pod's /metrics before it says so:
    a Warning event (MetricsUnreachable) and a ScalingActive message naming the pod and the
    error."""
    missing_agent_grace_seconds: float = 120.0
    """How long a pipeline may name an AtomicAgent that does not exist before it is
    Degraded (reason MissingAgent), so kstatus calls it Failed (Stalled) instead of
    InProgress forever: a GitOps sync applies the agents within this time, or they are
    not coming. Until then it is only not Ready."""

    @classmethod
    def from_env(cls) -> OperatorSettings:
        return cls(
            runtime_image=os.environ.get("ATOMIC_OPERATOR_RUNTIME_IMAGE", DEFAULT_RUNTIME_IMAGE),
            metrics_port=int(os.environ.get("ATOMIC_OPERATOR_METRICS_PORT", "8090")),
            cluster_domain=os.environ.get("ATOMIC_OPERATOR_CLUSTER_DOMAIN", "cluster.local"),
            secret_recheck_seconds=float(
                os.environ.get("ATOMIC_OPERATOR_SECRET_RECHECK_SECONDS", "30")),
            metrics_warning_seconds=float(
                os.environ.get("ATOMIC_OPERATOR_METRICS_WARNING_SECONDS", "30")),
            missing_agent_grace_seconds=float(
                os.environ.get("ATOMIC_OPERATOR_MISSING_AGENT_GRACE_SECONDS", "120")),
        )
