"""The Helm chart with the real helm: lint, rendering, schema errors, and an install whose
RBAC alone is enough for the operator to reconcile an agent to Ready."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from atomic_devcluster import ControlPlane, ensure_binaries
from atomic_devcluster.operator_process import running_operator
from atomic_devcluster.processes import free_port
from tests.support.chart import (
    CHART,
    KUBE_VERSION,
    by_kind,
    helm,
    render,
    service_account_kubeconfig,
)
from tests.support.kube import eventually
from tests.support.manifests import EXAMPLES, variant

CRDS = CHART.parents[1] / "crds"


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
    env = {e["name"]: e.get("value") for e in container["env"]}
    # kopf's identity from the downward API: without it uid 10001 crashed kopf at start
    assert {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}
            } in container["env"]
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
    assert {e["name"]: e.get("value") for e in container["env"]
            }["ATOMIC_OPERATOR_METRICS_PORT"] == "0"
    assert pod["serviceAccountName"] == "shared"
    (binding,) = by_kind(docs, "ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == "shared"


def test_namespaced_mode_grants_namespaced_rights_only_in_the_watched_namespaces() -> None:
    docs = render("watchNamespaces={team-a,team-b}", "webhook.enabled=false")
    (cluster_role,) = by_kind(docs, "ClusterRole")
    cluster_wide = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert cluster_wide == {"customresourcedefinitions", "namespaces"}
    roles = {r["metadata"]["namespace"]: r for r in by_kind(docs, "Role")}
    bindings = {b["metadata"]["namespace"]: b for b in by_kind(docs, "RoleBinding")}
    assert sorted(roles) == sorted(bindings) == ["team-a", "team-b"]
    (everywhere,) = by_kind(render("webhook.enabled=false"), "ClusterRole")
    assert roles["team-a"]["rules"] + cluster_role["rules"] == everywhere["rules"][2:] + \
        everywhere["rules"][:2]
    assert bindings["team-b"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "atomic-operator", "namespace": "atomic-system"}]


def _env(docs: list[dict[str, Any]]) -> dict[str, str]:
    (deployment,) = by_kind(docs, "Deployment")
    return {e["name"]: e.get("value", "") for e in deployment["spec"]["template"]["spec"][
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


def reconcile_examples_as_the_chart_account(cp: ControlPlane, namespace: str, workdir: Path,
                                            *operator_args: str) -> Path:
    """Run the operator with only the chart's ServiceAccount token, apply the examples in
    `namespace`, and fail unless they reconcile with no request forbidden; return the
    ServiceAccount's kubeconfig."""
    cp.kubectl("wait", "--for=condition=Established", "--timeout=30s",
               "crd/atomicagents.atomicagents.io", "crd/atomicpipelines.atomicagents.io")
    kubeconfig = service_account_kubeconfig(
        cp, "atomic-system", "atomic-operator", workdir / "sa-kubeconfig")
    with running_operator(kubeconfig, workdir / "operator.log", *operator_args) as operator:
        cp.kubectl("create", "namespace", namespace, check=False)
        cp.kubectl("-n", namespace, "apply", *(f"-f={EXAMPLES / name}.yaml" for name in (
            "openai-credentials", "task-processor", "content-analyzer", "analysis-to-tasks")))
        waited = cp.kubectl("-n", namespace, "wait", "--for=condition=Ready", "--timeout=60s",
                            "atomicagent/task-processor", "atomicagent/content-analyzer",
                            check=False)
        checked = cp.kubectl("-n", namespace, "wait", "--for=condition=SchemasCompatible",
                             "--timeout=30s", "atomicpipeline/analysis-to-tasks", check=False)
        logs = operator.logs()
    assert waited.returncode == 0, waited.stderr + logs[-4000:]
    assert checked.returncode == 0, checked.stderr + logs[-4000:]
    assert "forbidden" not in logs.lower(), logs[-4000:]
    return kubeconfig


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


def as_account(cp: ControlPlane, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl with the ServiceAccount's token: real requests, answered by real RBAC."""
    return subprocess.run([str(ensure_binaries().kubectl), f"--kubeconfig={kubeconfig}", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_namespaced_install_works_there_and_is_forbidden_elsewhere(
    empty_cluster: ControlPlane, tmp_path: Path
) -> None:
    cp = empty_cluster
    cp.kubectl("create", "namespace", "team-a")
    cp.kubectl("create", "namespace", "unwatched")
    cp.kubectl("-n", "unwatched", "create", "secret", "generic", "payroll",
               "--from-literal=token=not-for-the-operator")
    helm("install", "atomic-operator", str(CHART), "--namespace=atomic-system",
         "--create-namespace", "--set=watchNamespaces={team-a}", kubeconfig=cp.kubeconfig)
    try:
        kubeconfig = reconcile_examples_as_the_chart_account(
            cp, "team-a", tmp_path, "--namespace=team-a")
        for request in (["-n", "unwatched", "get", "secret", "payroll"],
                        ["-n", "unwatched", "get", "secrets"],
                        ["-n", "unwatched", "get", "configmaps"],
                        ["-n", "unwatched", "create", "deployment", "x", "--image=x"],
                        ["get", "secrets", "--all-namespaces"],
                        # Secrets are read by name only, even where the operator works
                        ["-n", "team-a", "get", "secrets"],
                        ["-n", "team-a", "get", "secrets", "--watch-only",
                         "--request-timeout=5s"],
                        ["-n", "team-a", "delete", "namespace", "team-a"]):
            denied = as_account(cp, kubeconfig, *request)
            assert denied.returncode != 0, request
            assert "forbidden" in denied.stderr, (request, denied.stderr)
        allowed = as_account(cp, kubeconfig, "-n", "team-a", "get", "deployments", "-o", "name")
        assert "deployment.apps/task-processor" in allowed.stdout, allowed.stderr
        named = as_account(cp, kubeconfig, "-n", "team-a", "get", "secret/openai-credentials",
                           "-o", "name")
        assert named.stdout.strip() == "secret/openai-credentials", named.stderr
    finally:
        helm("uninstall", "atomic-operator", "--namespace=atomic-system",
             kubeconfig=cp.kubeconfig)


def test_upgrade_updates_the_crds(empty_cluster: ControlPlane, tmp_path: Path) -> None:
    """Helm never upgrades a chart's crds/ folder; ours are templates, so it does."""
    cp = empty_cluster
    helm("upgrade", "--install", "atomic-operator", str(CHART), "--namespace=atomic-system",
         "--create-namespace", kubeconfig=cp.kubeconfig)
    changed = tmp_path / "atomic-operator"
    shutil.copytree(CHART, changed)
    crd_template = changed / "templates" / "crd-atomicagents.atomicagents.io.yaml"
    text = crd_template.read_text()
    anchor = "        required:\n        - spec\n        properties:\n"  # openAPIV3Schema's
    assert text.count(anchor) == 1
    crd_template.write_text(text.replace(anchor, anchor + (
        "          upgradeProbe:\n"
        "            type: string\n"
        "            description: added by test_upgrade_updates_the_crds\n")))
    field = ("jsonpath={.spec.versions[0].schema.openAPIV3Schema.properties.upgradeProbe"
             ".description}")
    before = cp.kubectl("get", "crd", "atomicagents.atomicagents.io", "-o", field).stdout
    assert before == ""
    try:
        helm("upgrade", "atomic-operator", str(changed), "--namespace=atomic-system",
             kubeconfig=cp.kubeconfig)
        after = cp.kubectl("get", "crd", "atomicagents.atomicagents.io", "-o", field).stdout
        assert after == "added by test_upgrade_updates_the_crds"
        history = helm("history", "atomic-operator", "--namespace=atomic-system",
                       "--output=json", kubeconfig=cp.kubeconfig).stdout
        assert [r["status"] for r in json.loads(history)][-1] == "deployed"
    finally:
        helm("upgrade", "atomic-operator", str(CHART), "--namespace=atomic-system",
             kubeconfig=cp.kubeconfig)
        helm("uninstall", "atomic-operator", "--namespace=atomic-system",
             kubeconfig=cp.kubeconfig)
