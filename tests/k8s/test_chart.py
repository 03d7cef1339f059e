"""The Helm chart with the real helm: lint, rendering, schema errors, and an install whose
RBAC alone is enough for the operator to reconcile an agent to Ready."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from atomic_devcluster import ControlPlane, ensure_binaries
from atomic_devcluster.cluster import free_port
from atomic_devcluster.operator_process import running_operator
from tests.support.kube import eventually
from tests.support.manifests import EXAMPLES, variant

CHART = Path(__file__).resolve().parents[2] / "charts" / "atomic-operator"
CRDS = CHART.parents[1] / "crds"
KUBE_VERSION = "1.36.3"  # a source-built helm assumes v1.20 unless told


def helm(*args: str, kubeconfig: Path | None = None, check: bool = True
         ) -> subprocess.CompletedProcess[str]:
    cmd = [str(ensure_binaries().helm), *args]
    if kubeconfig is not None:
        cmd.append(f"--kubeconfig={kubeconfig}")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def render(*sets: str) -> list[dict[str, Any]]:
    args = ["template", "atomic-operator", str(CHART), "--namespace=atomic-system",
            f"--kube-version={KUBE_VERSION}", *(f"--set={s}" for s in sets)]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_lint_is_clean() -> None:
    out = helm("lint", "--strict", str(CHART), f"--kube-version={KUBE_VERSION}")
    assert "0 chart(s) failed" in out.stdout


def test_defaults_render_one_hardened_operator() -> None:
    docs = render()
    assert sorted(d["kind"] for d in docs) == [
        "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
        "CustomResourceDefinition", "Deployment", "MutatingWebhookConfiguration", "Service",
        "Service", "ServiceAccount", "ValidatingWebhookConfiguration"]
    (deployment,) = by_kind(docs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["image"] == "ghcr.io/atomic-agents/atomic-operator:0.1.0"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["ATOMIC_OPERATOR_RUNTIME_IMAGE"] == "ghcr.io/atomic-agents/atomic-runtime:0.1.0"
    assert pod["serviceAccountName"] == "atomic-operator"
    assert all(a.startswith(("--log-format", "--liveness")) for a in container["args"])


def test_crd_templates_are_the_generated_crds() -> None:
    rendered = {d["metadata"]["name"]: d for d in by_kind(render(), "CustomResourceDefinition")}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        ours = rendered.pop(crd["metadata"]["name"])
        assert ours["spec"] == crd["spec"]
        assert ours["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert rendered == {}


def test_options_change_what_is_rendered() -> None:
    docs = render("watchNamespaces={team-a,team-b}", "crds.enabled=false",
                  "metrics.enabled=false", "serviceAccount.create=false",
                  "serviceAccount.name=shared", "image.tag=dev", "logFormat=plain",
                  "webhook.enabled=false")
    assert not by_kind(docs, "CustomResourceDefinition")
    assert not by_kind(docs, "Service") and not by_kind(docs, "ServiceAccount")
    assert not by_kind(docs, "ValidatingWebhookConfiguration")
    (deployment,) = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--namespace=team-a" in container["args"] and "--namespace=team-b" in container["args"]
    assert "--log-format=plain" in container["args"]
    assert container["image"].endswith(":dev")
    assert {e["name"]: e["value"] for e in container["env"]}["ATOMIC_OPERATOR_METRICS_PORT"] == "0"
    assert pod["serviceAccountName"] == "shared"
    (binding,) = by_kind(docs, "ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == "shared"


def _env(docs: list[dict[str, Any]]) -> dict[str, str]:
    (deployment,) = by_kind(docs, "Deployment")
    return {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"][
        "containers"][0]["env"]}


def test_webhook_renders_service_configuration_and_rbac() -> None:
    docs = render("webhook.failurePolicy=Ignore")
    env = _env(docs)
    assert env["ATOMIC_OPERATOR_WEBHOOK_ENABLED"] == "true"
    assert env["ATOMIC_OPERATOR_WEBHOOK_FAILURE_POLICY"] == "Ignore"
    assert env["ATOMIC_OPERATOR_WEBHOOK_SERVICE"] == "atomic-system/atomic-operator-webhook"
    assert "ATOMIC_OPERATOR_WEBHOOK_CERT_DIR" not in env  # self-signed by the operator
    (configuration,) = by_kind(docs, "ValidatingWebhookConfiguration")
    name = configuration["metadata"]["name"]
    assert env["ATOMIC_OPERATOR_WEBHOOK_CONFIGURATION"] == name
    assert "webhooks" not in configuration  # the operator writes them
    (role,) = by_kind(docs, "ClusterRole")
    assert {"apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"],
            "resourceNames": [name],
            "verbs": ["get", "patch"]} in role["rules"]
    service = next(d for d in by_kind(docs, "Service")
                   if d["metadata"]["name"] == "atomic-operator-webhook")
    assert service["spec"]["ports"] == [{"name": "webhook", "port": 443,
                                         "targetPort": "webhook"}]


def test_webhook_with_cert_manager() -> None:
    docs = render("webhook.certManager.enabled=true")
    assert _env(docs)["ATOMIC_OPERATOR_WEBHOOK_CERT_DIR"] == "/etc/atomic-operator/webhook-tls"
    (certificate,) = by_kind(docs, "Certificate")
    assert certificate["spec"]["secretName"] == "atomic-operator-webhook-tls"
    assert "atomic-operator-webhook.atomic-system.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"] == {"name": "atomic-operator-webhook",
                                                "kind": "Issuer"}
    assert by_kind(docs, "Issuer")
    docs = render("webhook.certManager.enabled=true",
                  "webhook.certManager.issuerRef.name=corp-ca",
                  "webhook.certManager.issuerRef.kind=ClusterIssuer")
    assert not by_kind(docs, "Issuer")
    (certificate,) = by_kind(docs, "Certificate")
    assert certificate["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer"}


@pytest.mark.parametrize(("value", "message"), [
    ("image.pullPolicy=Sometimes", "at '/image/pullPolicy': value must be one of"),
    ("replicaCount=2", "additional properties 'replicaCount' not allowed"),
    ("metrics.port=70000", "at '/metrics/port'"),
    ("metrics.serviceMonitor.interval=often", "at '/metrics/serviceMonitor/interval'"),
    ("webhook.failurePolicy=Never", "at '/webhook/failurePolicy': value must be one of"),
])  # fmt: skip
def test_bad_values_are_refused_naming_the_key(value: str, message: str) -> None:
    proc = helm("template", "x", str(CHART), f"--kube-version={KUBE_VERSION}",
                f"--set={value}", check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def empty_cluster() -> Iterator[ControlPlane]:
    """A control plane of its own, without our CRDs and without the session's operator:
    the chart installs the CRDs, and only the chart's RBAC is in play."""
    with ControlPlane() as cp:
        yield cp


def service_account_kubeconfig(cp: ControlPlane, namespace: str, name: str, out: Path) -> Path:
    token = cp.kubectl("-n", namespace, "create", "token", name, "--duration=1h").stdout.strip()
    config = json.loads(cp.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    out.write_text(json.dumps(config))
    return out


def test_install_gives_the_operator_exactly_what_it_needs(
    empty_cluster: ControlPlane, tmp_path: Path
) -> None:
    cp = empty_cluster
    helm("install", "atomic-operator", str(CHART), "--namespace=atomic-system",
         "--create-namespace", kubeconfig=cp.kubeconfig)
    cp.kubectl("wait", "--for=condition=Established", "--timeout=30s",
               "crd/atomicagents.atomicagents.io", "crd/atomicpipelines.atomicagents.io")
    kubeconfig = service_account_kubeconfig(
        cp, "atomic-system", "atomic-operator", tmp_path / "sa-kubeconfig")
    configuration = "atomic-operator.atomic-system.atomicagents.io"
    # the operator runs here as a process with the chart's ServiceAccount token; its
    # webhook is reached by URL (no Service routing without kube-proxy) but manages the
    # chart's ValidatingWebhookConfiguration with the chart's RBAC
    webhook = {"ATOMIC_OPERATOR_WEBHOOK_ENABLED": "true",
               "ATOMIC_OPERATOR_WEBHOOK_LISTEN": "127.0.0.1",
               "ATOMIC_OPERATOR_WEBHOOK_HOST": "127.0.0.1",
               "ATOMIC_OPERATOR_WEBHOOK_PORT": str(free_port()),
               "ATOMIC_OPERATOR_WEBHOOK_CONFIGURATION": configuration}
    bad = variant("task-processor", {"spec": {"model": {"mode": "anthropic_tools"}}})
    with running_operator(kubeconfig, tmp_path / "operator.log", env=webhook
                          ) as operator:
        cp.kubectl("create", "namespace", "demo")
        refused = eventually(lambda: "denied the request" in (out := cp.kubectl(
            "-n", "demo", "apply", "--dry-run=server", "-f", "-", input_text=json.dumps(bad),
            check=False).stderr) and out, timeout=30, what="the webhook answering")
        assert "spec.model.mode" in refused
        cp.kubectl("-n", "demo", "apply", *(f"-f={EXAMPLES / name}.yaml" for name in (
            "openai-credentials", "task-processor", "content-analyzer", "analysis-to-tasks")))
        waited = cp.kubectl("-n", "demo", "wait", "--for=condition=Ready", "--timeout=60s",
                            "atomicagent/task-processor", "atomicagent/content-analyzer",
                            check=False)
        checked = cp.kubectl("-n", "demo", "wait", "--for=condition=SchemasCompatible",
                             "--timeout=30s", "atomicpipeline/analysis-to-tasks", check=False)
        logs = operator.logs()
    assert waited.returncode == 0, waited.stderr + logs[-4000:]
    assert checked.returncode == 0, checked.stderr + logs[-4000:]
    assert "forbidden" not in logs.lower(), logs[-4000:]
    # stopped cleanly, the operator leaves no webhook behind to block writes
    webhooks = cp.kubectl("get", "validatingwebhookconfiguration", configuration, "-o",
                          "jsonpath={.webhooks}").stdout
    assert webhooks in ("", "[]"), webhooks
    kinds = cp.kubectl("-n", "demo", "get", "deployment,configmap,service", "-o", "name").stdout
    assert "deployment.apps/task-processor" in kinds
    # content-analyzer asks for 2 replicas: set through the Deployment's scale subresource
    replicas = cp.kubectl("-n", "demo", "get", "deployment/content-analyzer",
                          "-o", "jsonpath={.spec.replicas}").stdout
    assert replicas == "2"
    helm("uninstall", "atomic-operator", "--namespace=atomic-system", kubeconfig=cp.kubeconfig)
    # crds.keep: the CRDs, and with them every agent, outlive the release
    left = cp.kubectl("get", "atomicagent", "-n", "demo", "-o", "name").stdout.split()
    assert sorted(left) == ["atomicagent.atomicagents.io/content-analyzer",
                            "atomicagent.atomicagents.io/task-processor"]
