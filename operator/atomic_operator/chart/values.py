"""The chart's values as a model: the one source of values.yaml and values.schema.json.

Like the API models, attribute docstrings are the documentation: they become the comments
of values.yaml and the descriptions of the schema Helm checks values against, so a key
cannot be documented in one place and spelled differently in another. Unknown keys are
refused, so a typo in `--set` fails the install instead of being silently ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class ValuesModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="forbid",
    )


class Image(ValuesModel):
    """The operator's container image."""

    repository: str = "ghcr.io/atomic-agents/atomic-operator"
    """Image repository."""

    tag: str = ""
    """Image tag. Empty means the chart's appVersion."""

    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """Kubernetes imagePullPolicy of the operator container."""


class PullSecret(ValuesModel):
    """A Secret of type kubernetes.io/dockerconfigjson in the release namespace."""

    name: str = Field(min_length=1)
    """Name of the Secret."""


class Crds(ValuesModel):
    """The AtomicAgent and AtomicPipeline CustomResourceDefinitions."""

    enabled: bool = True
    """Install the CRDs with the release. Turn this off when they are managed elsewhere,
    for example applied from crds/ by a GitOps tool before the chart."""

    keep: bool = True
    """Annotate the CRDs with `helm.sh/resource-policy: keep`, so uninstalling the release
    leaves them in place. Deleting a CRD deletes every AtomicAgent and AtomicPipeline in the
    cluster, and with them all their Deployments."""


class ServiceAccount(ValuesModel):
    """The identity the operator runs as."""

    create: bool = True
    """Create the ServiceAccount."""

    name: str = ""
    """Its name. Empty means the release's full name."""

    annotations: dict[str, str] = {}
    """Annotations on the ServiceAccount (for example for workload identity)."""


class Rbac(ValuesModel):
    """Permissions of the operator."""

    create: bool = True
    """Create the operator's RBAC (docs/operations.md lists each rule and why). With
    watchNamespaces empty: one ClusterRole and ClusterRoleBinding. With watchNamespaces set:
    a Role and RoleBinding in each watched namespace for everything namespaced (agents,
    their children, Secrets, ConfigMaps, events), and a ClusterRole only for what has no
    namespace (reading CRDs and namespace names)."""


class ServiceMonitor(ValuesModel):
    """A prometheus-operator ServiceMonitor for the operator's metrics."""

    enabled: bool = False
    """Create it. Needs the monitoring.coreos.com CRDs in the cluster."""

    interval: str = Field(default="30s", pattern=r"^[0-9]+(ms|s|m|h)$")
    """Scrape interval."""

    labels: dict[str, str] = {}
    """Extra labels, for the Prometheus that selects ServiceMonitors by label."""


class Metrics(ValuesModel):
    """The operator's own Prometheus metrics (reconciles, durations, errors)."""

    enabled: bool = True
    """Serve them and create a Service in front of them."""

    port: int = Field(default=8090, ge=1, le=65535)
    """Container and Service port of /metrics."""

    service_monitor: ServiceMonitor = ServiceMonitor()
    """Scrape configuration for the prometheus-operator."""


class PodMonitor(ValuesModel):
    """A prometheus-operator PodMonitor for every agent and pipeline runner pod the operator
    creates (selected by the labels app.kubernetes.io/managed-by=atomic-operator and
    app.kubernetes.io/component in agent, pipeline; scraped on their `metrics` port)."""

    enabled: bool = False
    """Create it. Needs the monitoring.coreos.com CRDs in the cluster."""

    interval: str = Field(default="15s", pattern=r"^[0-9]+(ms|s|m|h)$")
    """Scrape interval. The autoscaler's signals (in-flight, queued) change quickly."""

    labels: dict[str, str] = {}
    """Extra labels, for the Prometheus that selects PodMonitors by label."""


class PrometheusRule(ValuesModel):
    """A prometheus-operator PrometheusRule with alerts on the agents' metrics."""

    enabled: bool = False
    """Create it. Needs the monitoring.coreos.com CRDs in the cluster."""

    labels: dict[str, str] = {}
    """Extra labels, for the Prometheus that selects rules by label."""

    saturation_ratio: float = Field(default=0.9, gt=0, le=10)
    """AtomicAgentSaturated fires when in-flight plus queued requests stay above this share
    of the agent's maxInFlight for 10 minutes."""

    for_duration: str = Field(default="5m", pattern=r"^[0-9]+(s|m|h)$")
    """How long AtomicAgentNotReady and AtomicAgentAutoscalerAtMax must hold before
    firing."""


class GrafanaDashboard(ValuesModel):
    """The agents' Grafana dashboard as a ConfigMap, for Grafana's dashboard sidecar."""

    enabled: bool = False
    """Create the ConfigMap."""

    labels: dict[str, str] = {"grafana_dashboard": "1"}
    """Labels the Grafana sidecar looks for (its default is grafana_dashboard: "1")."""

    annotations: dict[str, str] = {}
    """Annotations on the ConfigMap (for example the sidecar's target folder)."""


class Monitoring(ValuesModel):
    """Monitoring of the agents (the operator's own metrics are under `metrics`)."""

    pod_monitor: PodMonitor = PodMonitor()
    """Scraping of agent and pipeline runner pods."""

    prometheus_rule: PrometheusRule = PrometheusRule()
    """Alerts: agent not Ready, provider rate limits, saturation, autoscaler at maximum."""

    grafana_dashboard: GrafanaDashboard = GrafanaDashboard()
    """Dashboard: in-flight, queue, latency, tokens, provider errors, replicas vs desired."""


class CertManager(ValuesModel):
    """The webhook's serving certificate from cert-manager instead of the operator."""

    enabled: bool = False
    """Request a Certificate from cert-manager (its CRDs must be installed) and serve the
    webhook with it; the operator re-reads it when cert-manager renews it. Off: the
    operator makes a self-signed CA and certificate at every start."""

    issuer_ref: dict[str, str] = {}
    """The issuer to use, e.g. {name: my-ca, kind: ClusterIssuer}. Empty: the chart creates
    a self-signed Issuer in the release namespace."""


class Webhook(ValuesModel):
    """The validating admission webhook: refuses at apply what needs code to check
    (JSON Schema validity, mode versus provider, references between pipeline steps)."""

    enabled: bool = True
    """Serve the webhook. Off: the same problems are still reported in each resource's
    status and events, only after it is stored."""

    failure_policy: Literal["Fail", "Ignore"] = "Fail"
    """What the API server does when the webhook cannot be reached: Fail refuses the
    write, Ignore admits it unchecked. The operator removes its webhooks when it stops
    cleanly, so Fail blocks writes only while a crashed operator restarts."""

    port: int = Field(default=9443, ge=1, le=65535)
    """Container port of the webhook's HTTPS server (the Service listens on 443)."""

    cert_manager: CertManager = CertManager()
    """Certificates from cert-manager."""


class Values(ValuesModel):
    """Values of the atomic-operator chart."""

    image: Image = Image()
    """The operator's container image."""

    image_pull_secrets: list[PullSecret] = []
    """Secrets for pulling the operator image from a private registry."""

    runtime_image: str = ""
    """Agent runtime image for AtomicAgents whose spec names none. Empty means
    ghcr.io/atomic-agents/atomic-runtime at the chart's appVersion."""

    watch_namespaces: list[str] = []
    """Namespaces to reconcile. Empty means every namespace."""

    log_format: Literal["json", "plain", "full"] = "json"
    """Log line format: one JSON object per line, or kopf's plain or full text formats."""

    cluster_domain: str = "cluster.local"
    """DNS suffix of the cluster, used in the endpoint written to each agent's status."""

    secret_recheck_seconds: float = Field(default=30, ge=1, le=3600)
    """How often each agent's referenced Secrets are read again by name: a rotated Secret
    rolls the agent's pods within this time. The operator never lists or watches Secrets
    (its RBAC on them is `get`)."""

    missing_agent_grace_seconds: float = Field(default=120, ge=0, le=86400)
    """How long a pipeline may name an AtomicAgent that does not exist before it is
    Degraded (MissingAgent), so Flux's and Argo CD's health checks fail it instead of
    waiting for their own timeout."""

    crds: Crds = Crds()
    """The CustomResourceDefinitions."""

    service_account: ServiceAccount = ServiceAccount()
    """The operator's ServiceAccount."""

    rbac: Rbac = Rbac()
    """The operator's permissions."""

    metrics: Metrics = Metrics()
    """The operator's own metrics."""

    monitoring: Monitoring = Monitoring()
    """Monitoring of the agents: PodMonitor, alert rules, Grafana dashboard."""


    webhook: Webhook = Webhook()
    """The validating admission webhook."""

    resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "512Mi"},
    }
    """Resources of the operator container. Measured: 172 MB peak RSS while reconciling 300
    agents at once (bench/operator_scale.py)."""

    pod_annotations: dict[str, str] = {}
    """Annotations on the operator pod."""

    pod_labels: dict[str, str] = {}
    """Extra labels on the operator pod."""

    node_selector: dict[str, str] = {}
    """Node selector of the operator pod."""

    tolerations: list[dict[str, Any]] = []
    """Tolerations of the operator pod."""

    affinity: dict[str, Any] = {}
    """Affinity of the operator pod."""

    priority_class_name: str = ""
    """PriorityClass of the operator pod."""

    extra_env: list[dict[str, Any]] = []
    """Extra environment variables of the operator container, as in a Pod spec."""
