"""Every scenario of the chart (charts/atomic-operator/ci/*-values.yaml) lints strictly and
passes `kubeconform -strict` against schemas made from the real API server's OpenAPI."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from atomic_devcluster import ControlPlane
from atomic_devcluster.tools import ensure_kubeconform
from tests.support.chart import CHART, KUBE_VERSION, SCENARIOS, helm, template
from tests.support.kubeschemas import LOCATION_TEMPLATE, write_schemas

# The prometheus-operator's kinds have no schema in a cluster without its CRDs; their
# content is checked by promtool (tests/k8s/test_monitoring.py) instead.
NO_SCHEMA = ("PodMonitor", "ServiceMonitor", "PrometheusRule")
_SUMMARY = re.compile(r"Valid: (\d+), Invalid: (\d+), Errors: (\d+), Skipped: (\d+)")


@pytest.fixture(scope="module")
def schemas(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Path:
    openapi = json.loads(control_plane.kubectl("get", "--raw", "/openapi/v2").stdout)
    out = tmp_path_factory.mktemp("schemas")
    assert write_schemas(openapi, out) > 100
    assert (out / "atomicagent-atomicagents-v1alpha1.json").exists()  # our CRDs' kinds too
    return out


def kubeconform(manifests: str, schemas: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ensure_kubeconform()), "-strict", "-summary", "-output=text",
         f"-kubernetes-version={KUBE_VERSION}",
         f"-schema-location={schemas}/{LOCATION_TEMPLATE}", f"-skip={','.join(NO_SCHEMA)}",
         "-"],
        input=manifests, capture_output=True, text=True, timeout=120, check=False)


def counts(out: str) -> tuple[int, int, int, int]:
    found = _SUMMARY.search(out)
    assert found, out
    valid, invalid, errors, skipped = (int(n) for n in found.groups())
    return valid, invalid, errors, skipped


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name)
def test_scenario_lints_and_conforms(scenario: Path, schemas: Path) -> None:
    lint = helm("lint", "--strict", str(CHART), f"--values={scenario}",
                f"--kube-version={KUBE_VERSION}")
    assert "0 chart(s) failed" in lint.stdout
    manifests = template(f"--values={scenario}")
    docs = [d for d in yaml.safe_load_all(manifests) if d]
    proc = kubeconform(manifests, schemas)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    monitoring = sum(d["kind"] in NO_SCHEMA for d in docs)
    assert counts(proc.stdout) == (len(docs) - monitoring, 0, 0, monitoring), proc.stdout


def test_the_checks_are_strict(schemas: Path) -> None:
    """A misspelt field, a wrong type and an unknown CRD field each fail kubeconform."""
    manifests = template()
    bad = [
        manifests.replace("strategy:\n    type: Recreate", "strategy:\n    typ: Recreate", 1),
        manifests.replace("containerPort: 8081", "containerPort: health-port", 1),
        manifests.replace("  selector:\n    app.kubernetes.io/name",
                          "  selektor:\n    app.kubernetes.io/name", 1),
    ]
    for text in bad:
        assert text != manifests
        proc = kubeconform(text, schemas)
        assert proc.returncode == 1, proc.stdout
        assert counts(proc.stdout)[1] == 1, proc.stdout
    agent = yaml.safe_load((CHART.parents[1] / "examples" / "task-processor.yaml").read_text())
    assert counts(kubeconform(yaml.safe_dump(agent), schemas).stdout)[:2] == (1, 0)
    agent["spec"]["replicaz"] = 2
    assert counts(kubeconform(yaml.safe_dump(agent), schemas).stdout)[:2] == (0, 1)
