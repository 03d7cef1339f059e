"""Prometheus's targets on the real node, written from the pods the API lists.

Debian's Prometheus is built without Kubernetes service discovery, so this process plays
it: every SCRAPE_SECONDS it lists the operator's pods (`kubectl`, the harness's
kubeconfig) and writes each Running pod's `metrics` port, by pod IP, with its namespace and
name as labels, to the file_sd file Prometheus watches. Run by `RealNode` as
`python -m atomic_devcluster.realnode.targets KUBECTL KUBECONFIG FILE`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

INTERVAL_SECONDS = 2.0
SELECTOR = "app.kubernetes.io/managed-by=atomic-operator"


def targets(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """file_sd groups: one per Running pod with a container port named `metrics`."""
    groups = []
    for pod in pods:
        ip = pod.get("status", {}).get("podIP")
        if pod.get("status", {}).get("phase") != "Running" or not ip:
            continue
        ports = [p["containerPort"] for c in pod["spec"]["containers"]
                 for p in c.get("ports", []) if p.get("name") == "metrics"]
        if ports:
            groups.append({"targets": [f"{ip}:{ports[0]}"],
                           "labels": {"namespace": pod["metadata"]["namespace"],
                                      "pod": pod["metadata"]["name"]}})
    return groups


def main(kubectl: str, kubeconfig: str, out: str) -> None:
    path = Path(out)
    while True:
        proc = subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", "get", "pods", "-A",
                               "-l", SELECTOR, "-o", "json"], capture_output=True, text=True,
                              check=False)
        if proc.returncode == 0:
            staged = path.with_suffix(".tmp")
            staged.write_text(json.dumps(targets(json.loads(proc.stdout)["items"])))
            staged.replace(path)
        time.sleep(INTERVAL_SECONDS)


if __name__ == "__main__":
    main(*sys.argv[1:4])
