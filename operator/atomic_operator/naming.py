"""Names and labels of the objects the operator creates, in one place."""

from __future__ import annotations

from atomic_operator import GROUP
from atomic_operator.k8s.kinds import AGENT, PIPELINE, owner_label

MANAGED_BY = "atomic-operator"
AGENT_LABEL = owner_label(AGENT)
PIPELINE_LABEL = owner_label(PIPELINE)
CONFIG_HASH_ANNOTATION = f"{GROUP}/config-hash"
MANAGED_SELECTOR = {"app.kubernetes.io/managed-by": MANAGED_BY}

CONFIG_KEY = "agent.json"
RUNNER_CONFIG_KEY = "pipeline.json"
CONFIG_DIR = "/etc/atomic-agent"
# Two sibling mounts: a volume cannot be mounted inside a read-only ConfigMap volume.
CONFIG_MOUNT = f"{CONFIG_DIR}/config"
CONTEXT_DIR = f"{CONFIG_DIR}/context"
API_KEY_ENV = "ATOMIC_AGENT_API_KEY"
AUTH_TOKEN_ENV = "ATOMIC_AGENT_AUTH_TOKEN"
"""The bearer token POST /run requires (runtime: agent_image/atomic_runtime)."""
AGENT_TOKEN_ENV_PREFIX = "ATOMIC_PIPELINE_AGENT_TOKEN_"
"""A pipeline runner's env vars holding its agents' tokens (`agent_token_env`)."""
PIPELINE_RUNNER_LABELS = {"app.kubernetes.io/component": "pipeline",
                          "app.kubernetes.io/managed-by": MANAGED_BY}
"""Labels of the pipeline runner pods an agent's NetworkPolicy admits (allowPipelines)."""
HTTP_PORT = 8080
METRICS_PORT = 9090
SERVICE_PORT = 80


def _child_labels(component: str, owner_label: str, name: str) -> dict[str, str]:
    """Labels on every child of an owner; the last one is also the pod selector."""
    return {
        "app.kubernetes.io/name": f"atomic-{component}",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        owner_label: name,
    }


def agent_labels(name: str) -> dict[str, str]:
    """Labels on every child of an agent; the last one is also the pod selector."""
    return _child_labels("agent", AGENT_LABEL, name)


def agent_selector(name: str) -> dict[str, str]:
    """The pod selector: immutable on a Deployment, so it uses only the agent's name."""
    return {AGENT_LABEL: name}


def agent_token_env(agent: str) -> str:
    """The runner's env var holding `agent`'s bearer token: ATOMIC_PIPELINE_AGENT_TOKEN_
    and the name upper-cased, '-' as '_' (one per agent: agent names are DNS-1035 labels)."""
    return AGENT_TOKEN_ENV_PREFIX + agent.upper().replace("-", "_")


def config_map_name(agent: str) -> str:
    return f"{agent}-config"


def pipeline_labels(name: str) -> dict[str, str]:
    """Labels on every child of a pipeline (its runner); the last one is the pod selector."""
    return _child_labels("pipeline", PIPELINE_LABEL, name)


def pipeline_selector(name: str) -> dict[str, str]:
    return {PIPELINE_LABEL: name}
