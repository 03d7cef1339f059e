"""The end-to-end suite: the chart from the images, as a user installs it.

One suite for two clusters. By default it starts the embedded control plane with the real
node (kubelet + containerd, `atomic_devcluster.realnode`) and imports the images `make
images` saved; with `ATOMIC_E2E_KUBECONFIG` set it uses that cluster instead, with the images
named by `ATOMIC_E2E_OPERATOR_IMAGE` and `ATOMIC_E2E_RUNTIME_IMAGE` already loaded on its
nodes (`hack/kind-e2e.sh` does this on kind). It never skips: missing images or a node
that does not start fail every test with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from atomic_devcluster import ControlPlane, ensure_binaries
from atomic_devcluster.imagebuild import OPERATOR_IMAGE, RUNTIME_IMAGE, SHIPPED


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@dataclass
class Cluster:
    """kubectl and helm against the cluster under test, and the images to install."""

    kubeconfig: Path
    operator_image: str
    runtime_image: str
    kubectl_bin: str
    helm_bin: str
    embedded: ControlPlane | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def kubectl(self, *args: str, input_text: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args],
                              input=input_text, capture_output=True, text=True,
                              check=False, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    def helm(self, *args: str, check: bool = True, timeout: float = 300
             ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.helm_bin, f"--kubeconfig={self.kubeconfig}", *args],
                              capture_output=True, text=True, check=False,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)


@pytest.fixture(scope="package")
def cluster() -> Iterator[Cluster]:
    external = os.environ.get("ATOMIC_E2E_KUBECONFIG")
    if external:  # kind (hack/kind-e2e.sh): its own kubectl and helm
        tools = [shutil.which("kubectl"), shutil.which("helm")]
        assert all(tools), "kubectl and helm must be on PATH for ATOMIC_E2E_KUBECONFIG"
        yield Cluster(Path(external), os.environ["ATOMIC_E2E_OPERATOR_IMAGE"],
                      os.environ["ATOMIC_E2E_RUNTIME_IMAGE"], str(tools[0]), str(tools[1]))
        return
    missing = [str(i.tarball) for i in SHIPPED if not i.tarball.exists()]
    assert not missing, f"no image archives {missing}: run `make images` first"
    started = time.monotonic()
    with ControlPlane(fake_nodes=0, real_node=True,
                      node_images=[i.tarball for i in SHIPPED]) as cp:
        assert cp.node is not None
        timings = {"cluster and node up": time.monotonic() - started, **cp.node.timings}
        print(f"\n[e2e] real node: {timings}")
        binaries = ensure_binaries()
        yield Cluster(cp.kubeconfig, OPERATOR_IMAGE.tag, RUNTIME_IMAGE.tag,
                      str(binaries.kubectl), str(binaries.helm), cp, timings)
