"""The custom metrics API (custom.metrics.k8s.io) on the real node: Prometheus scraping the
agents' pods, and prometheus-adapter serving their `agent_inflight_requests` to HPAs.

The chart offers an HPA on in-flight requests (`autoscaling.targetInFlightPerReplica` in
mode hpa): a Pods metric that needs an adapter. Here Prometheus (Debian's package, which is
built without Kubernetes service discovery) scrapes the operator's pods' `metrics` port by
pod IP, from a file_sd file that `targets.py` keeps from the API's pod list;
prometheus-adapter (from the Go module proxy) is registered with the aggregator like
metrics-server (`metrics_api.register`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from atomic_devcluster.realnode import GATEWAY

SERVICE = "custom-metrics"
APIS = (("custom.metrics.k8s.io", "v1beta1"), ("custom.metrics.k8s.io", "v1beta2"))
API_SERVICE = "v1beta1.custom.metrics.k8s.io"
SCRAPE_SECONDS = 2


def targets_argv(kubectl: Path, kubeconfig: Path, home: Path) -> list[str]:
    return [sys.executable, "-m", "atomic_devcluster.realnode.targets", str(kubectl),
            str(kubeconfig), str(home / "targets.json")]


def prometheus_argv(binary: Path, home: Path, port: int) -> list[str]:
    config = home / "prometheus.yaml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": f"{SCRAPE_SECONDS}s",
                   "evaluation_interval": f"{SCRAPE_SECONDS}s"},
        "scrape_configs": [{
            "job_name": "atomic-agents",
            "file_sd_configs": [{"files": [str(home / "targets.json")],
                                 "refresh_interval": f"{SCRAPE_SECONDS}s"}],
        }],
    }))
    return [str(binary), f"--config.file={config}",
            f"--storage.tsdb.path={home / 'prometheus'}",
            "--storage.tsdb.retention.time=1h",
            f"--web.listen-address=127.0.0.1:{port}"]


def adapter_argv(binary: Path, kubeconfig: Path, home: Path, port: int,
                 prometheus_port: int) -> list[str]:
    rules = home / "adapter-rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [{
        "seriesQuery": 'agent_inflight_requests{namespace!="",pod!=""}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"},
                                    "pod": {"resource": "pod"}}},
        "name": {"matches": "^(.*)$", "as": "${1}"},
        "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
    }]}))
    return [str(binary), f"--prometheus-url=http://127.0.0.1:{prometheus_port}",
            f"--config={rules}", "--metrics-relist-interval=5s",
            f"--lister-kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={GATEWAY}", f"--secure-port={port}",
            f"--cert-dir={home / 'adapter'}"]
