"""Types shared by both kinds: references, conditions, resources, JSON Schema documents."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, WithJsonSchema

from atomic_operator.api.base import ApiModel, cel, validations

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""Names that end up in other objects' names (Services, ports, steps) must be DNS labels."""

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""Names of Secrets, ConfigMaps and ServiceAccounts, as the API server checks them."""

DATA_KEY = r"^[-._a-zA-Z0-9]+$"
"""Keys of a Secret's or ConfigMap's data."""

QUANTITY = r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]+)?$"
"""A non-negative Kubernetes quantity (500m, 2, 1.5Gi, 1e3); `Ki` style suffixes and the
decimal ones alike. Refused at admission, so a typo never reaches a Deployment."""


IMAGE = (r"^(([a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*"
         r"(:[0-9]+)?|\[[0-9a-fA-F:]+\](:[0-9]+)?)/)?"
         r"[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*"
         r"(:[a-zA-Z0-9_][-a-zA-Z0-9_.]{0,127})?(@[a-z0-9]+([+._-][a-z0-9]+)*:[a-fA-F0-9]{32,})?$")
"""A container image reference ([registry/]repository[:tag][@digest]), as the container
runtimes parse it: the kubelet would otherwise fail every pull with InvalidImageName."""

LABEL_KEY = (r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
             r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
"""A label key: an optional DNS-subdomain prefix and a name of at most 63 characters."""

LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"


def cel_regex(pattern: str) -> str:
    """A regular expression written inside a single-quoted CEL string literal."""
    return pattern.replace("\\", "\\\\")


Quantity = Annotated[
    Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=QUANTITY)],
    WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": QUANTITY, "maxLength": 64,
                    "description": "A Kubernetes quantity, such as 500m, 2 or 1Gi."}),
]

FreeForm = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
"""A Kubernetes structure we pass through untouched (affinity, tolerations, valueFrom)."""


ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
DataKey = Annotated[str, Field(min_length=1, max_length=253, pattern=DATA_KEY)]


class SecretKeyRef(ApiModel):
    """A key of a Secret in the resource's own namespace."""

    name: ObjectName
    """Name of the Secret (a DNS subdomain: lower case, digits, '-' and '.')."""

    key: DataKey
    """Key within the Secret's data (letters, digits, '-', '_' and '.')."""


class ConfigMapKeyRef(ApiModel):
    """A key of a ConfigMap in the resource's own namespace."""

    name: ObjectName
    """Name of the ConfigMap (a DNS subdomain: lower case, digits, '-' and '.')."""

    key: DataKey
    """Key within the ConfigMap's data (letters, digits, '-', '_' and '.')."""


class LocalObjectReference(ApiModel):
    """A reference to another resource in the same namespace."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
    """Name of the referenced resource."""


class ResourceRequirements(ApiModel):
    """CPU and memory for a container, as in a Pod spec."""

    model_config = validations(
        *(rule for part in ("requests", "limits") for rule in (
            cel(f"!has(self.{part}) || self.{part}.all(k, k in ['cpu', 'memory', "
                f"'ephemeral-storage'] || k.startsWith('hugepages-') || k.contains('/'))",
                "resource names are cpu, memory, ephemeral-storage, hugepages-<size> or "
                "<domain>/<name>", f".{part}"),
            cel(f"!has(self.{part}) || self.{part}.all(k, type(self.{part}[k]) != int"
                f" || self.{part}[k] >= 0)", "quantities must not be negative", f".{part}"),
        )),
        cel("!has(self.requests) || !has(self.limits) || self.limits.all(k, "
            "!(k in self.requests) || !isQuantity(string(self.requests[k])) || "
            "!isQuantity(string(self.limits[k])) || "
            "quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k])))"
            " <= 0)",
            "each request must be less than or equal to its limit", ".requests"),
    )

    requests: Annotated[dict[str, Quantity] | None, Field(max_length=16)] = None
    """Minimum resources guaranteed to the container, e.g. {cpu: 100m, memory: 256Mi}."""

    limits: Annotated[dict[str, Quantity] | None, Field(max_length=16)] = None
    """Maximum resources the container may use, e.g. {memory: 512Mi}."""


class JSONSchemaObject(ApiModel):
    """A JSON Schema (draft 2020-12) describing an object: the typed contract of an agent.

    Only the root's type is constrained here; every other keyword ($defs, nested
    properties, enums, bounds) is kept as written and checked by the operator.
    """

    model_config = ConfigDict(extra="allow", json_schema_extra={
        "x-kubernetes-preserve-unknown-fields": True})

    type: Literal["object"]
    """Must be `object`: agents take and return JSON objects."""

    properties: FreeForm | None = None
    """The object's fields, each a JSON Schema."""

    required: list[str] | None = None
    """Names of the fields that must be present."""

    description: str | None = None
    """What the object means; shown to the model as part of the schema."""


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One aspect of the resource's observed state, as Kubernetes' own objects report it."""

    type: str
    """Both kinds: Ready, Progressing, Degraded, kstatus' Reconciling and Stalled, and
    ScalingActive (who scales; on a pipeline only when an autoscaler of someone else scales
    its runner). A pipeline also: SchemasCompatible and AgentsReady."""

    status: ConditionStatus
    """True, False or Unknown."""

    reason: str
    """A CamelCase word for programs, e.g. MissingSecret."""

    message: str = ""
    """A sentence for people: what is wrong and which field to fix."""

    last_transition_time: datetime
    """When status last changed."""

    observed_generation: int | None = None
    """The metadata.generation this condition was computed from."""


class CommonStatus(ApiModel):
    """Status fields both kinds share."""

    observed_generation: int | None = None
    """The metadata.generation the operator last reconciled."""

    conditions: list[Condition] = Field(default_factory=list)
    """Current conditions, one per type."""

    replicas: int | None = None
    """Pods that exist for this resource."""

    ready_replicas: int | None = None
    """Pods that are ready to serve."""

    endpoint: str | None = None
    """In-cluster URL of the resource's HTTP API."""
