"""Types shared by both kinds: references, conditions, resources, JSON Schema documents."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, WithJsonSchema

from atomic_operator.api.base import ApiModel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""Names that end up in other objects' names (Services, ports, steps) must be DNS labels."""

Quantity = Annotated[
    int | str,
    WithJsonSchema({"x-kubernetes-int-or-string": True,
                    "description": "A Kubernetes quantity, such as 500m, 2 or 1Gi."}),
]

FreeForm = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
"""A Kubernetes structure we pass through untouched (affinity, tolerations, valueFrom)."""


class SecretKeyRef(ApiModel):
    """A key of a Secret in the resource's own namespace."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Name of the Secret."""

    key: Annotated[str, Field(min_length=1, max_length=253)]
    """Key within the Secret's data."""


class ConfigMapKeyRef(ApiModel):
    """A key of a ConfigMap in the resource's own namespace."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Name of the ConfigMap."""

    key: Annotated[str, Field(min_length=1, max_length=253)]
    """Key within the ConfigMap's data."""


class LocalObjectReference(ApiModel):
    """A reference to another resource in the same namespace."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Name of the referenced resource."""


class ResourceRequirements(ApiModel):
    """CPU and memory for a container, as in a Pod spec."""

    requests: dict[str, Quantity] | None = None
    """Minimum resources guaranteed to the container, e.g. {cpu: 100m, memory: 256Mi}."""

    limits: dict[str, Quantity] | None = None
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
    """Ready, Progressing, Degraded, SchemasCompatible or ScalingActive."""

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
