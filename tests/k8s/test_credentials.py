"""The operator's credentials, as clusters hand them out.

- A kubeconfig whose user is an exec plugin (the login of EKS, GKE and AKS): here a small
  script printing an ExecCredential with a real ServiceAccount token of the test cluster.
- In a pod, a projected token the kubelet rewrites: the token file is replaced and the old
  token revoked (it was bound to a Secret that is then deleted) while the operator runs;
  both kopf's client and the operator's own must go on working without a restart.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atomic_devcluster import ControlPlane
from atomic_devcluster.operator_process import running_operator
from tests.support.kube import eventually
from tests.support.manifests import EXAMPLES, variant

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster() -> Iterator[ControlPlane]:
    """A control plane of its own: the operators here must not meet the session's."""
    with ControlPlane(crds=sorted((ROOT / "crds").glob("*.yaml"))) as cp:
        cp.kubectl("create", "serviceaccount", "operator")
        cp.kubectl("create", "clusterrolebinding", "operator", "--clusterrole=cluster-admin",
                   "--serviceaccount=default:operator")
        yield cp


def bound_token(cp: ControlPlane, secret: str) -> str:
    """A token of the `operator` account that dies with the Secret it is bound to."""
    cp.kubectl("create", "secret", "generic", secret)
    return cp.kubectl("create", "token", "operator", "--duration=1h",
                      "--bound-object-kind=Secret", f"--bound-object-name={secret}"
                      ).stdout.strip()


def refused(cp: ControlPlane, token: str) -> bool:
    assert cp.binaries is not None
    proc = subprocess.run(
        [str(cp.binaries.kubectl), f"--server={cp.server}", "--insecure-skip-tls-verify",
         f"--token={token}", "get", "namespaces", "-o", "name"],
        capture_output=True, text=True, timeout=30, check=False)
    return proc.returncode != 0 and "Unauthorized" in proc.stderr


def apply_agent(cp: ControlPlane, namespace: str, name: str) -> None:
    cp.kubectl("create", "namespace", namespace, check=False)
    cp.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "openai-credentials.yaml"))
    cp.kubectl("-n", namespace, "apply", "-f", "-", input_text=json.dumps(
        variant("task-processor", {"metadata": {"name": name}})))


def wait_ready(cp: ControlPlane, namespace: str, name: str, logs: str = "") -> None:
    proc = cp.kubectl("-n", namespace, "wait", "--for=condition=Ready", "--timeout=60s",
                      f"atomicagent/{name}", check=False)
    assert proc.returncode == 0, proc.stderr + logs[-4000:]


def test_kubeconfig_with_an_exec_plugin(cluster: ControlPlane, tmp_path: Path) -> None:
    token = cluster.kubectl("create", "token", "operator", "--duration=1h").stdout.strip()
    calls = tmp_path / "plugin-calls"
    plugin = tmp_path / "credential-plugin"
    credential = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": token}}
    plugin.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "assert json.loads(os.environ['KUBERNETES_EXEC_INFO'])['kind'] == 'ExecCredential'\n"
        f"open({str(calls)!r}, 'a').write('called\\n')\n"
        f"print(json.dumps({credential!r}))\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    config = json.loads(cluster.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin),
        "interactiveMode": "Never"}}}]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    with running_operator(kubeconfig, tmp_path / "operator.log") as operator:
        apply_agent(cluster, "exec-login", "via-plugin")
        wait_ready(cluster, "exec-login", "via-plugin", operator.logs())
        logs = operator.logs()
    assert calls.read_text().count("called") >= 1
    assert "Unauthorized" not in logs and "Traceback" not in logs, logs[-4000:]
    assert token not in logs


def test_rotated_in_cluster_token_is_used_without_a_restart(
    cluster: ControlPlane, tmp_path: Path
) -> None:
    account = tmp_path / "serviceaccount"  # what the kubelet mounts in a pod
    account.mkdir()
    ca = json.loads(cluster.kubeconfig.read_text())["clusters"][0]["cluster"][
        "certificate-authority-data"]
    (account / "ca.crt").write_bytes(base64.b64decode(ca))
    (account / "namespace").write_text("default")
    first, second = bound_token(cluster, "token-a"), bound_token(cluster, "token-b")
    (account / "token").write_text(first)
    port = cluster.server.rsplit(":", 1)[1]
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port,
           "ATOMIC_OPERATOR_SERVICE_ACCOUNT_DIR": str(account), "KUBECONFIG": os.devnull}
    with running_operator(None, tmp_path / "operator.log", env=env) as operator:
        apply_agent(cluster, "rotation", "before")
        wait_ready(cluster, "rotation", "before", operator.logs())
        # the kubelet's way: a new file moved into place, then the old token dies
        staged = account / "token.new"
        staged.write_text(second)
        staged.replace(account / "token")
        cluster.kubectl("delete", "secret", "token-a")
        eventually(lambda: refused(cluster, first), timeout=30,
                   what="the API server refusing the old token")
        started = time.monotonic()
        apply_agent(cluster, "rotation", "after")
        wait_ready(cluster, "rotation", "after", operator.logs())
        elapsed = time.monotonic() - started
        # kopf's own client (which posts the operator's events) wrote on the new agent
        # after the revocation
        eventually(lambda: "Created" in cluster.kubectl(
            "-n", "rotation", "get", "events", "--field-selector",
            "involvedObject.name=after,reason=Created", "-o",
            "jsonpath={.items[*].reason}").stdout, timeout=30,
            what="kopf's Created event on the new agent")
        logs = operator.logs()
    assert elapsed < 30, f"Ready {elapsed:.1f} s after the rotation"
    # kopf's client was refused once and logged in again with the file's new token
    assert "credentials reloaded after the API server refused them" in logs, logs[-4000:]
    assert "Traceback" not in logs, logs[-4000:]
    assert first not in logs and second not in logs
