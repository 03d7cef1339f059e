"""Every resource kind the operator reads or writes, listed once.

Handlers (which child events to watch), indexes (which optional children an owner has),
deletion (which optional children to remove when no longer wanted) and URL paths all read
these tuples, so a new child kind is one entry here plus its template. A future
NetworkPolicy or PodMonitor is a `Kind` and a `ChildKind` with `optional=True`. The pipeline
runner's Deployment, ConfigMap and Service are `ChildKind`s with `owner=PIPELINE`, labelled
`atomicagents.io/pipeline` (see `owner_label`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from atomic_operator import API_VERSION, GROUP

Owner = Literal["AtomicAgent", "AtomicPipeline"]
AGENT: Owner = "AtomicAgent"
PIPELINE: Owner = "AtomicPipeline"
ScaleTarget = Literal["Deployment", "AtomicAgent"]
"""What an autoscaler of someone else's targets: an agent's Deployment, or the agent."""
TARGETS_DEPLOYMENT: ScaleTarget = "Deployment"
TARGETS_AGENT: ScaleTarget = "AtomicAgent"


@dataclass(frozen=True)
class Kind:
    """A resource type as the API server serves it."""

    api_version: str
    kind: str
    plural: str

    @property
    def group(self) -> str:
        """The API group, "" for the core group (as kopf and discovery spell it)."""
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps")
SECRET = Kind("v1", "Secret", "secrets")
NAMESPACE = Kind("v1", "Namespace", "namespaces")
SERVICE = Kind("v1", "Service", "services")
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
HPA = Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
PDB = Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
NETWORK_POLICY = Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies")
ENDPOINT_SLICE = Kind("discovery.k8s.io/v1", "EndpointSlice", "endpointslices")
"""Read only: where the custom autoscaler finds the Ready pods' metrics addresses."""
SCALED_OBJECT = Kind("keda.sh/v1alpha1", "ScaledObject", "scaledobjects")
"""KEDA's; served only where KEDA is installed (the operator never requires it)."""
POD = Kind("v1", "Pod", "pods")
"""Read only (list, by an agent's label): why its pods are not available, while they are
not (`runner.PodChecks`)."""
ATOMIC_AGENT = Kind(API_VERSION, "AtomicAgent", "atomicagents")
ATOMIC_PIPELINE = Kind(API_VERSION, "AtomicPipeline", "atomicpipelines")

KINDS: dict[str, Kind] = {k.kind: k for k in (
    CONFIG_MAP, SECRET, SERVICE, DEPLOYMENT, HPA, PDB, NETWORK_POLICY, ENDPOINT_SLICE,
    SCALED_OBJECT, POD,
    ATOMIC_AGENT, ATOMIC_PIPELINE)}
"""By kind name, for URL paths."""


@dataclass(frozen=True)
class ChildKind:
    """A kind the operator creates for an owner, named after it and labelled with it."""

    kind: Kind
    owner: Owner
    optional: bool = False
    """Only some owners have one (an HPA only in hpa mode): these are indexed, so that one
    no longer wanted is deleted without a GET."""
    refusable: bool = False
    """Carries fields the user wrote that the API server checks further than the CRD can
    (a pod template's affinity, an HPA's bounds, network peers): the reconcile dry-runs
    these before writing anything (all but the first child it writes: refused, that one
    leaves nothing), so a refusal leaves nothing half made. The others are
    rendered from the owner's name (which the CRD's CEL rule keeps a DNS-1035 label) and
    from what the operator checks itself (the ConfigMap's size); a dry run of each cost
    the API server as much as the apply that follows, for a refusal that cannot come
    (tests/unit/test_render.py checks they ignore the rest of the spec)."""


CHILDREN: tuple[ChildKind, ...] = (
    ChildKind(DEPLOYMENT, AGENT, refusable=True),
    ChildKind(CONFIG_MAP, AGENT),
    ChildKind(SERVICE, AGENT),
    ChildKind(HPA, AGENT, optional=True, refusable=True),
    ChildKind(PDB, AGENT, optional=True),
    ChildKind(NETWORK_POLICY, AGENT, optional=True, refusable=True),
    ChildKind(DEPLOYMENT, PIPELINE, refusable=True),
    ChildKind(CONFIG_MAP, PIPELINE),
    ChildKind(SERVICE, PIPELINE),
)
"""Every child kind of every owner kind."""


def children_of(owner: Owner) -> tuple[ChildKind, ...]:
    return tuple(c for c in CHILDREN if c.owner == owner)


def child_kinds() -> tuple[Kind, ...]:
    """Each kind that is a child of some owner, once (one watch serves every owner)."""
    return tuple(dict.fromkeys(c.kind for c in CHILDREN))


def optional_children(owner: Owner) -> tuple[ChildKind, ...]:
    return tuple(c for c in CHILDREN if c.owner == owner and c.optional)


def refusable_kinds(owner: Owner) -> frozenset[str]:
    """The kind names of the owner's children that are dry-run before the first write."""
    return frozenset(c.kind.kind for c in CHILDREN if c.owner == owner and c.refusable)


def owner_label(owner: Owner) -> str:
    """The label every child carries, naming its owner: atomicagents.io/agent or /pipeline."""
    return f"{GROUP}/{'agent' if owner == AGENT else 'pipeline'}"
