"""AtomicPipeline: agents composed into a type-checked graph."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from atomic_operator.api.base import ApiModel, cel, validations
from atomic_operator.api.common import (
    DNS_LABEL,
    IMAGE,
    CommonStatus,
    JSONSchemaObject,
    LocalObjectReference,
    ResourceRequirements,
)

REFERENCE = (r"^(input|item|steps\.[a-z0-9]([-a-z0-9]*[a-z0-9])?\.output)"
             r"(\.[A-Za-z_][A-Za-z0-9_]*)*$")
"""A typed reference to a value: `input.<path>` (the pipeline's input), `item.<path>` (the
element of a forEach) or `steps.<name>.output.<path>` (an upstream step's output)."""

LIST_REFERENCE = r"^steps\.[a-z0-9]([-a-z0-9]*[a-z0-9])?\.output(\.[A-Za-z_][A-Za-z0-9_]*)+$"


class InputBinding(ApiModel):
    """Where one input field of a step gets its value: exactly one of from, template, value."""

    # CEL cannot see `value` (it is untyped), so admission checks from/template and the
    # model validator below checks the rest when the operator reads the object.
    model_config = validations(
        cel("!(has(self.from) && has(self.template))",
             "set only one of from, template or value"),
    )

    from_: Annotated[str | None, Field(alias="from", pattern=REFERENCE, max_length=512)] = None
    """A typed reference, e.g. steps.analyze.output.summary, input.text or item.title; the
    operator checks its schema fits the field."""

    template: Annotated[str | None, Field(max_length=8192)] = None
    """A string with ${reference} placeholders, e.g. "Do: ${item.title}"; the field must
    accept a string."""

    value: Annotated[Any, Field(json_schema_extra={
        "x-kubernetes-preserve-unknown-fields": True})] = None
    """A literal JSON value."""

    @model_validator(mode="after")
    def _exactly_one_source(self) -> InputBinding:
        sources = [self.from_ is not None, self.template is not None, self.value is not None]
        if sum(sources) != 1:
            raise ValueError("exactly one of from, template or value must be set")
        return self


class PipelineStep(ApiModel):
    """One call of an AtomicAgent, possibly once per element of an upstream list."""

    model_config = validations(
        cel("!has(self.dependsOn) || !(self.name in self.dependsOn)",
             "a step cannot depend on itself", ".dependsOn"),
        cel("!has(self.forEach) || self.forEach.startsWith('steps.')",
             "forEach must reference a list field of an upstream step's output", ".forEach"),
        cel("!has(self.maxConcurrency) || has(self.forEach)",
             "maxConcurrency bounds the calls of a forEach step; set forEach or remove it",
             ".maxConcurrency"),
        cel("!has(self.maxItems) || has(self.forEach)",
             "maxItems bounds the list of a forEach step; set forEach or remove it",
             ".maxItems"),
    )

    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]
    """Unique name of the step (a DNS label), used in references."""

    agent_ref: LocalObjectReference
    """The AtomicAgent in the same namespace that runs this step."""

    depends_on: Annotated[list[Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]],
                          Field(max_length=32)] = Field(default_factory=list)
    """Steps that must finish first; steps referenced by input bindings are implied."""

    for_each: Annotated[str | None, Field(pattern=LIST_REFERENCE, max_length=512)] = None
    """A list field of an upstream output, e.g. steps.analyze.output.recommendations; the
    step runs once per element (in parallel) and its output is the list of results."""

    input: Annotated[dict[str, InputBinding], Field(max_length=128)] = Field(
        default_factory=dict)
    """Input fields of the agent, each bound to a reference, a template or a value. When
    empty, the single upstream output (or the pipeline input) is passed as it is."""

    optional: bool = False
    """When the step fails, the run still finishes: its output is absent (fields bound
    from it are left out, templates read it as empty text, a forEach over it runs no
    items) and the trace says why. The type check treats its output as possibly absent,
    so a required input cannot be bound from it."""

    timeout_seconds: Annotated[int | None, Field(ge=1, le=3600)] = None
    """Deadline of one call of the agent (one per forEach item), retries included. Default:
    the agent's concurrency.requestTimeoutSeconds plus 5 s, so the agent's own timeout
    answer arrives first."""

    retries: Annotated[int, Field(ge=0, le=10)] = 2
    """Further attempts of a call after a retryable answer: the agent's 429 (after its
    Retry-After), a 503, or no connection. A 422 or any other answer is never retried."""

    max_concurrency: Annotated[int | None, Field(ge=1, le=1000)] = None
    """forEach only: items called at once (default 10). The rest wait their turn."""

    max_items: Annotated[int | None, Field(ge=1, le=100_000)] = None
    """forEach only: the longest list the step runs over (default 1000). A longer list fails
    the run with 422 too_many_items before any item is called."""


class PipelineOutput(ApiModel):
    """What the pipeline returns."""

    from_: Annotated[str, Field(alias="from", pattern=REFERENCE, max_length=512)]
    """A reference to the value returned, e.g. steps.create-tasks.output."""


class RunnerConcurrency(ApiModel):
    """Backpressure of one runner pod: beyond maxInFlight + queueSize it answers 429."""

    max_in_flight: Annotated[int, Field(ge=1, le=10_000)] = 32
    """Runs one runner pod executes at once."""

    queue_size: Annotated[int, Field(ge=0, le=100_000)] = 64
    """Runs one runner pod holds waiting beyond maxInFlight."""


class PipelineRunner(ApiModel):
    """The service that executes the pipeline by calling the agents' Services."""

    replicas: Annotated[int, Field(ge=0, le=100)] = 1
    """Runner pods."""

    concurrency: RunnerConcurrency = Field(default_factory=RunnerConcurrency)
    """Runs per runner pod, and how many may wait."""

    resources: ResourceRequirements | None = None
    """CPU and memory of the runner container."""

    image: Annotated[str | None, Field(min_length=1, max_length=512, pattern=IMAGE)] = None
    """Runner image ([registry/]repository[:tag][@digest]); the operator's default when
    unset."""


class AtomicPipelineSpec(ApiModel):
    """The desired state of an AtomicPipeline."""

    model_config = validations(
        cel("self.steps.all(s, !has(s.dependsOn) || "
             "s.dependsOn.all(d, self.steps.exists(t, t.name == d)))",
             "every dependsOn entry must name a step of this pipeline", ".steps"),
        cel("self.output.from.startsWith('input') || self.steps.exists(s, "
             "self.output.from.startsWith('steps.' + s.name + '.output'))",
             "output.from must reference a step of this pipeline", ".output.from"),
    )

    input_schema: JSONSchemaObject
    """JSON Schema of the pipeline's input, referenced as input.<field>."""

    steps: Annotated[list[PipelineStep], Field(min_length=1, max_length=32)] = Field(
        json_schema_extra={"x-kubernetes-list-type": "map",
                           "x-kubernetes-list-map-keys": ["name"]})
    """The steps; their order does not matter, references and dependsOn define the graph."""

    output: PipelineOutput
    """The value the pipeline returns."""

    timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 300
    """Deadline of one run, queueing included: past it the run is cancelled, calls in
    flight included, and answers 504 with the trace so far."""

    runner: PipelineRunner = Field(default_factory=PipelineRunner)
    """The runner Deployment."""


class AtomicPipelineStatus(CommonStatus):
    """The observed state of an AtomicPipeline."""

    step_count: int | None = None
    """Number of steps, for kubectl get."""

    execution_order: list[list[str]] | None = None
    """Steps grouped into waves that run in parallel, as the operator resolved the graph."""

    config_hash: str | None = None
    """Hash of the runner configuration now applied (changes roll the runner pods)."""


class AtomicPipeline(ApiModel):
    """A composition of AtomicAgents whose edges are type-checked."""

    model_config = validations(
        cel("self.metadata.name.size() <= 52"
             " && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
             "metadata.name must be a DNS-1035 label of at most 52 characters: it names "
             "the pipeline's Service and Deployment"),
    )

    spec: AtomicPipelineSpec
    """The desired state."""

    status: AtomicPipelineStatus | None = None
    """The observed state, written by the operator."""
