"""The chart through the real helm: render it, install it, and act as its ServiceAccount."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from atomic_devcluster import ControlPlane, ensure_binaries

CHART = Path(__file__).resolve().parents[2] / "charts" / "atomic-operator"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
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


def template(*args: str, chart: Path = CHART) -> str:
    """`helm template` of the chart as the release atomic-operator in atomic-system."""
    return helm("template", "atomic-operator", str(chart), "--namespace=atomic-system",
                f"--kube-version={KUBE_VERSION}", *args).stdout


def render(*sets: str, values: Path | None = None) -> list[dict[str, Any]]:
    args = [*(f"--set={s}" for s in sets), *([f"--values={values}"] if values else [])]
    return [d for d in yaml.safe_load_all(template(*args)) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def service_account_kubeconfig(cp: ControlPlane, namespace: str, name: str, out: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount, with a real token for it."""
    token = cp.kubectl("-n", namespace, "create", "token", name, "--duration=1h").stdout.strip()
    config = json.loads(cp.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    out.write_text(json.dumps(config))
    return out
