"""AtomicAgent: one single-purpose LLM agent with a typed input and output."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from atomic_operator.api.base import ApiModel, cel, validations
from atomic_operator.api.common import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    IMAGE,
    LABEL_KEY,
    LABEL_VALUE,
    CommonStatus,
    ConfigMapKeyRef,
    FreeForm,
    JSONSchemaObject,
    Quantity,
    ResourceRequirements,
    SecretKeyRef,
    cel_regex,
)

Provider = Literal["openai", "anthropic", "groq", "gemini", "ollama", "openai-compatible"]
PROVIDERS_NEEDING_BASE_URL = ("ollama", "openai-compatible")
PROVIDERS_NEEDING_API_KEY = ("openai", "anthropic", "groq", "gemini")


class ModelSpec(ApiModel):
    """Which model answers, how to reach it, and how hard to try."""

    model_config = validations(
        cel("!(self.provider in ['ollama', 'openai-compatible']) || has(self.baseURL)",
             "baseURL is required when provider is ollama or openai-compatible", ".baseURL"),
        cel("!(self.provider in ['openai', 'anthropic', 'groq', 'gemini'])"
             " || has(self.apiKeySecretRef)",
             "apiKeySecretRef is required for hosted providers (openai, anthropic, groq, gemini)",
             ".apiKeySecretRef"),
        cel("!has(self.baseURL) || (isURL(self.baseURL) && url(self.baseURL).getHostname() != '')",
             "baseURL must be an http or https URL with a host, e.g. http://ollama:11434/v1",
             ".baseURL"),
    )

    provider: Provider
    """The model provider: openai, anthropic, groq, gemini, ollama or openai-compatible
    (any server speaking the OpenAI chat-completions API, such as vLLM)."""

    name: Annotated[str, Field(min_length=1, max_length=256)]
    """The provider's model name, e.g. gpt-4o-mini or claude-sonnet-4-5."""

    base_url: Annotated[str | None, Field(alias="baseURL", pattern=r"^https?://[^\s]+$",
                                          max_length=2048)] = None
    """Base URL of the provider's API; required for ollama and openai-compatible."""

    api_key_secret_ref: SecretKeyRef | None = None
    """The Secret key holding the API key. The key reaches the pod only as an environment
    variable; it never appears in the ConfigMap, the status, events or logs."""

    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    """Sampling temperature, 0 to 2; the provider's default when unset."""

    max_tokens: Annotated[int | None, Field(ge=1, le=1_000_000)] = None
    """Upper bound on tokens the model may generate for one call."""

    timeout_seconds: Annotated[int, Field(ge=1, le=600)] = 60
    """Deadline for one model call. SDK defaults (600 s) are far too long for a service."""

    max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    """Retries of one call, including instructor's re-asks when the output fails the
    output schema."""

    mode: Annotated[str | None, Field(pattern=r"^[a-z_]+$", max_length=64)] = None
    """Instructor mode in lower case (tools, json, json_schema, md_json, anthropic_tools,
    ...); the provider's usual mode when unset. Checked against the provider by the
    operator."""


class SystemPrompt(ApiModel):
    """The system prompt in Atomic Agents' three parts."""

    background: Annotated[list[Annotated[str, Field(min_length=1)]],
                          Field(min_length=1, max_length=64)]
    """Who the agent is and what it knows; at least one line."""

    steps: Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=64)] = Field(
        default_factory=list)
    """What the agent does, in order."""

    output_instructions: Annotated[list[Annotated[str, Field(min_length=1)]],
                                   Field(max_length=64)] = Field(default_factory=list)
    """How the agent shapes its answer."""


class ContextProvider(ApiModel):
    """Extra text appended to the system prompt under a title, from exactly one source."""

    model_config = validations(
        cel("[has(self.text), has(self.configMapKeyRef), has(self.secretKeyRef)]"
             ".filter(x, x).size() == 1",
             "exactly one of text, configMapKeyRef or secretKeyRef must be set"),
    )

    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]
    """Unique name of the provider within the agent (a DNS label)."""

    title: Annotated[str, Field(min_length=1, max_length=256)]
    """Heading under which the text appears in the system prompt."""

    text: Annotated[str | None, Field(min_length=1)] = None
    """Inline text."""

    config_map_key_ref: ConfigMapKeyRef | None = None
    """Text from a ConfigMap key, mounted into the pod and re-read when it changes."""

    secret_key_ref: SecretKeyRef | None = None
    """Text from a Secret key, mounted into the pod and re-read when it changes."""


AutoscalingMode = Literal["none", "custom", "hpa"]


class Autoscaling(ApiModel):
    """How the number of replicas follows load."""

    model_config = validations(
        cel("self.minReplicas <= self.maxReplicas",
             "minReplicas must be less than or equal to maxReplicas", ".minReplicas"),
    )

    mode: AutoscalingMode = "none"
    """none: spec.replicas is kept as written (an HPA or KEDA may target the agent's scale
    subresource). custom: the operator's autoscaler scales on in-flight and queued requests,
    with latency and CPU as guards. hpa: a HorizontalPodAutoscaler owns the count, on CPU,
    and on memory and in-flight requests when their targets are set."""

    min_replicas: Annotated[int, Field(ge=1, le=1000)] = 1
    """Fewest replicas the autoscaler keeps, at least 1 in every mode: scale to zero is not
    supported, because nothing holds a request while an agent at zero wakes up."""

    max_replicas: Annotated[int, Field(ge=1, le=1000)] = 10
    """Most replicas the autoscaler may create."""

    target_in_flight_per_replica: Annotated[float | None, Field(gt=0, le=10_000)] = None
    """Custom mode: wanted in-flight plus queued requests per replica; defaults to 80% of
    concurrency.maxInFlight. Hpa mode: when set, the HPA also gets a Pods metric
    agent_inflight_requests with this average value, which needs a metrics adapter (such as
    prometheus-adapter) serving it through custom.metrics.k8s.io; unset, the HPA uses no
    custom metric."""

    target_response_time_seconds: Annotated[float | None, Field(gt=0, le=3600)] = None
    """Custom mode: a guard, not a driver: while the p90 request time is above it, replicas
    are not removed. Latency alone never adds replicas (slowness with spare capacity is the
    provider's)."""

    target_cpu_utilization_percentage: Annotated[int, Field(
        ge=1, le=100, alias="targetCPUUtilizationPercentage")] = 80
    """Hpa mode: average CPU utilization, in percent of requests, to aim for."""

    target_memory_utilization_percentage: Annotated[int | None, Field(ge=1, le=100)] = None
    """Hpa mode: when set, the HPA also aims for this average memory utilization, in
    percent of requests (the pods need a memory request)."""

    scale_down_stabilization_seconds: Annotated[int, Field(ge=0, le=3600)] = 300
    """How long load must stay low before replicas are removed (custom and hpa modes): the
    count never drops below the highest need seen within this window."""


class Concurrency(ApiModel):
    """Backpressure of one replica: beyond maxInFlight + queueSize it answers 429."""

    max_in_flight: Annotated[int, Field(ge=1, le=10_000)] = 8
    """Requests one replica serves at once."""

    queue_size: Annotated[int, Field(ge=0, le=100_000)] = 32
    """Requests one replica holds waiting beyond maxInFlight."""

    request_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 120
    """Deadline of one /run request, queueing and retries included; pods are given this long
    to drain on shutdown."""


class OptionalSecretKeyRef(SecretKeyRef):
    """A key of a Secret, as an environment variable's source."""

    optional: bool | None = None
    """Start the pod even when the Secret or key is missing."""


class OptionalConfigMapKeyRef(ConfigMapKeyRef):
    """A key of a ConfigMap, as an environment variable's source."""

    optional: bool | None = None
    """Start the pod even when the ConfigMap or key is missing."""


class FieldRef(ApiModel):
    """A field of the pod, e.g. metadata.name or status.podIP."""

    api_version: Annotated[str | None, Field(max_length=64)] = None
    """Version of the schema fieldPath is written in; v1 when unset."""

    field_path: Annotated[str, Field(min_length=1, max_length=256)]
    """Path of the field, e.g. metadata.namespace."""


class ResourceFieldRef(ApiModel):
    """A resource of the container, e.g. limits.memory."""

    container_name: Annotated[str | None, Field(max_length=63)] = None
    """The container; this one when unset."""

    resource: Annotated[str, Field(min_length=1, max_length=256)]
    """The resource, e.g. limits.cpu or requests.memory."""

    divisor: Quantity | None = None
    """Unit the value is given in; 1 when unset."""


class EnvVarSource(ApiModel):
    """Where an environment variable's value comes from: exactly one source."""

    model_config = validations(
        cel("[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef), "
             "has(self.resourceFieldRef)].filter(x, x).size() == 1",
             "exactly one of secretKeyRef, configMapKeyRef, fieldRef or resourceFieldRef "
             "must be set"),
    )

    secret_key_ref: OptionalSecretKeyRef | None = None
    """A key of a Secret in the agent's namespace."""

    config_map_key_ref: OptionalConfigMapKeyRef | None = None
    """A key of a ConfigMap in the agent's namespace."""

    field_ref: FieldRef | None = None
    """A field of the pod."""

    resource_field_ref: ResourceFieldRef | None = None
    """A resource of the container."""


class EnvVar(ApiModel):
    """An environment variable for the agent container, as in a Pod spec."""

    model_config = validations(
        cel("!has(self.valueFrom) || !has(self.value) || self.value == ''",
             "set value or valueFrom, not both", ".valueFrom"),
    )

    name: Annotated[str, Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=256)]
    """Variable name. Names starting with ATOMIC_AGENT_ are reserved for the runtime."""

    value: Annotated[str | None, Field(max_length=32768)] = None
    """Literal value."""

    value_from: EnvVarSource | None = None
    """A source for the value (secretKeyRef, configMapKeyRef, fieldRef or resourceFieldRef)."""


TolerationOperator = Literal["Exists", "Equal"]
TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class Toleration(ApiModel):
    """A taint the pods tolerate, as in a Pod spec."""

    model_config = validations(
        cel("!has(self.operator) || self.operator != 'Exists' || !has(self.value)"
             " || self.value == ''", "value must be empty when operator is Exists", ".value"),
        cel("(has(self.key) && self.key != '') || (has(self.operator)"
             " && self.operator == 'Exists')",
             "operator must be Exists when key is empty", ".operator"),
        cel("!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
             "tolerationSeconds needs effect NoExecute", ".tolerationSeconds"),
    )

    key: Annotated[str | None, Field(max_length=317, pattern=LABEL_KEY)] = None
    """Taint key; empty with operator Exists tolerates every taint."""

    operator: TolerationOperator | None = None
    """Exists or Equal; Equal when unset."""

    value: Annotated[str | None, Field(max_length=63, pattern=LABEL_VALUE)] = None
    """Taint value, for operator Equal."""

    effect: TaintEffect | None = None
    """NoSchedule, PreferNoSchedule or NoExecute; every effect when unset."""

    toleration_seconds: Annotated[int | None, Field(ge=0)] = None
    """With effect NoExecute: how long the pod stays bound after the taint appears."""


class PodOverrides(ApiModel):
    """Pod settings passed through to the agent's Deployment."""

    model_config = validations(
        cel(f"!has(self.nodeSelector) || self.nodeSelector.all(k, "
            f"k.matches('{cel_regex(LABEL_KEY)}'))",
            "nodeSelector keys must be label keys ([prefix/]name, name at most 63 "
            "characters of letters, digits, '-', '_' and '.')", ".nodeSelector"),
    )

    env: Annotated[list[EnvVar], Field(max_length=128)] = Field(
        default_factory=list, json_schema_extra={"x-kubernetes-list-type": "map",
                                                 "x-kubernetes-list-map-keys": ["name"]})
    """Extra environment variables for the agent container, each name once."""

    node_selector: Annotated[
        dict[str, Annotated[str, Field(max_length=63, pattern=LABEL_VALUE)]] | None,
        Field(max_length=64)] = None
    """Node labels the pods must match."""

    tolerations: Annotated[list[Toleration] | None, Field(max_length=64)] = None
    """Taints the pods tolerate, as in a Pod spec."""

    affinity: FreeForm | None = None
    """Affinity rules, as in a Pod spec."""

    service_account_name: Annotated[str | None, Field(max_length=253,
                                                      pattern=DNS_SUBDOMAIN)] = None
    """ServiceAccount the pods run as; the namespace's default when unset."""


class LabelSelector(ApiModel):
    """Objects whose labels include all of these."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    """Label key → value; an empty map selects everything."""


class NetworkPeer(ApiModel):
    """Pods allowed to connect, as in a NetworkPolicy: podSelector alone means pods of the
    agent's namespace, namespaceSelector alone every pod of those namespaces, both the
    selected pods of the selected namespaces."""

    model_config = validations(
        cel("has(self.podSelector) || has(self.namespaceSelector)",
            "a peer needs podSelector, namespaceSelector or both"),
    )

    pod_selector: LabelSelector | None = None
    """Pods by label."""

    namespace_selector: LabelSelector | None = None
    """Namespaces by label (kubernetes.io/metadata.name names one)."""


class NetworkPolicySpec(ApiModel):
    """An optional NetworkPolicy on the agent's pods: only the listed clients may reach the
    HTTP API. Enforced by the cluster's network plugin, where it implements NetworkPolicy."""

    enabled: bool = False
    """Render the NetworkPolicy (removed again when turned off)."""

    allow_from: Annotated[list[NetworkPeer], Field(max_length=32)] = Field(
        default_factory=list)
    """Clients of POST /run (port http). Empty: none but the pipeline runners below."""

    allow_pipelines: bool = True
    """Also admit the pipeline runner pods of the agent's namespace (labels
    app.kubernetes.io/component=pipeline, app.kubernetes.io/managed-by=atomic-operator)."""

    metrics_from: Annotated[list[NetworkPeer] | None, Field(max_length=32)] = None
    """Who may scrape the metrics port. Unset: anyone (metrics cost no tokens)."""


class Access(ApiModel):
    """Who may call the agent."""

    network_policy: NetworkPolicySpec | None = None
    """Admit only selected clients at the network level."""

    bearer_token_secret_ref: SecretKeyRef | None = None
    """A Secret key holding a token (16 characters or more) that POST /run requires as
    `Authorization: Bearer <token>`; /healthz, /readyz and /metrics stay open. It reaches
    the pod as ATOMIC_AGENT_AUTH_TOKEN, and the runners of pipelines calling the agent as
    ATOMIC_PIPELINE_AGENT_TOKEN_<AGENT>; rotating it rolls both."""


class AtomicAgentSpec(ApiModel):
    """The desired state of an AtomicAgent."""

    model_config = validations(
        cel("has(self.entrypoint) || (has(self.inputSchema) && has(self.outputSchema))",
             "inputSchema and outputSchema are required unless entrypoint names an agent "
             "built into the image", ".inputSchema"),
        cel("!has(self.pod) || !has(self.pod.env) || "
             "self.pod.env.all(e, !e.name.startsWith('ATOMIC_AGENT_'))",
             "environment variables starting with ATOMIC_AGENT_ are reserved", ".pod.env"),
    )

    model: ModelSpec
    """The model that answers."""

    system_prompt: SystemPrompt
    """The system prompt in background, steps and output instructions."""

    input_schema: JSONSchemaObject | None = None
    """JSON Schema of the agent's input; requests that do not match get HTTP 422."""

    output_schema: JSONSchemaObject | None = None
    """JSON Schema of the agent's output; the model's answer is validated against it and
    re-asked when it does not match."""

    context_providers: Annotated[list[ContextProvider], Field(max_length=32)] = Field(
        default_factory=list, json_schema_extra={"x-kubernetes-list-type": "map",
                                                 "x-kubernetes-list-map-keys": ["name"]})
    """Extra sections of the system prompt, each from exactly one source."""

    entrypoint: Annotated[str | None, Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$", max_length=256)] = None
    """module:attribute of an Atomic Agents agent built into a custom image; its own
    schemas are served and inputSchema/outputSchema may be omitted."""

    replicas: Annotated[int, Field(ge=0, le=1000)] = 1
    """Wanted pods when autoscaling.mode is none; also written through the agent's scale
    subresource (kubectl scale, an HPA or KEDA on the agent). In hpa mode the initial count;
    in custom mode the initial count of a new Deployment, within minReplicas..maxReplicas
    (the autoscaler never writes this field). An HPA or ScaledObject on the Deployment
    overrides it in any mode; one on the agent writes it, and the Deployment follows."""

    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    """How replicas follow load."""

    concurrency: Concurrency = Field(default_factory=Concurrency)
    """Per-replica limits on concurrent and queued requests."""

    resources: ResourceRequirements | None = None
    """CPU and memory of the agent container."""

    image: Annotated[str | None, Field(min_length=1, max_length=512, pattern=IMAGE)] = None
    """Runtime image ([registry/]repository[:tag][@digest]); the operator's default when
    unset."""

    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """When the kubelet pulls the image; Kubernetes' default when unset."""

    pod: PodOverrides = Field(default_factory=PodOverrides)
    """Pod settings passed through to the Deployment."""

    access: Access | None = None
    """Closing the agent: a NetworkPolicy and a bearer token for POST /run (both off
    unless set)."""


class AutoscalingInputs(ApiModel):
    """The figures the custom autoscaler decided from, summed over the Ready pods."""

    demand: float
    """Requests in flight plus queued, plus the pods' own 429s times the service time."""

    fast_demand: float
    """The lowest demand of the fast window (a level held for a few seconds)."""

    stable_demand: float
    """The mean demand of the averaging window (60 s, or the stable window if shorter)."""

    in_flight: float
    """Requests holding a concurrency slot."""

    queued: float
    """Requests waiting for a slot."""

    rejected_per_second: float
    """The pods' own 429s (over maxInFlight + queueSize)."""

    requests_per_second: float
    """Answered requests."""

    target_per_replica: float
    """In-flight plus queued requests one replica should carry."""

    pods_reporting: int
    """Ready pods with a fresh sample."""

    pods_missing: int
    """Ready pods whose last sample is older than three intervals, or that never answered."""

    mean_latency_seconds: float | None = None
    """Mean model-call time: how long a request holds a slot."""

    p90_latency_seconds: float | None = None
    """p90 of the whole request, queue wait included (the latency guard)."""

    upstream_error_share: float | None = None
    """Share of errors that are the provider's 429/5xx (above one half, scale-up freezes)."""

    cpu_utilization: float | None = None
    """CPU of the pods as a share of their request (the CPU guard)."""


class AutoscalingStatus(ApiModel):
    """The custom autoscaler's last decision that changed something, and why."""

    reason: str
    """ScaleUp, ScaleDown, WithinTarget, StabilizingScaleDown, ScaleDownRateLimited,
    RestartHold, MetricsMissing, WaitingForPods, UpstreamSaturated, LatencyAboveTarget,
    CPUAboveGuard, AtMaximum, BelowMinimum or AboveMaximum."""

    message: str
    """The decision in words, with the figures."""

    inputs: AutoscalingInputs | None = None
    """The figures, when there were any."""

    last_scale_time: str | None = None
    """When the autoscaler last changed the replica count (RFC 3339)."""


class AtomicAgentStatus(CommonStatus):
    """The observed state of an AtomicAgent."""

    autoscaling: AutoscalingStatus | None = None
    """Custom mode: the autoscaler's last decision that changed the count or its reason
    (the figures of steady ticks are not written, so a steady agent costs no API writes)."""

    selector: str | None = None
    """Label selector of the agent's pods, for the scale subresource."""

    config_hash: str | None = None
    """Hash of the rendered configuration and referenced Secrets now rolled out."""

    desired_replicas: int | None = None
    """Replicas wanted by whoever owns the count (spec.replicas, the HPA, the operator's
    autoscaler or an external autoscaler); Ready compares available replicas against it."""

    pipelines: list[str] | None = None
    """AtomicPipelines in this namespace with a step that calls this agent: a change to its
    schemas is checked against them (and a Warning event names any it breaks)."""


class AtomicAgent(ApiModel):
    """A single-purpose LLM agent with a typed input and output, served over HTTP."""

    model_config = validations(
        cel("self.metadata.name.size() <= 52"
             " && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
             "metadata.name must be a DNS-1035 label of at most 52 characters: it names "
             "the agent's Service and Deployment"),
    )

    spec: AtomicAgentSpec
    """The desired state."""

    status: AtomicAgentStatus | None = None
    """The observed state, written by the operator."""
