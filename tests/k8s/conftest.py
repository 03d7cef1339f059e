"""The real control plane: built on first use, started once per test session.

These tests never skip. If Go is missing, the build fails, or a component does not start,
the session fixture raises and every test here errors with that message.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from atomic_devcluster import ControlPlane
from atomic_devcluster.operator_process import OperatorProcess, running_operator
from tests.support.kube import Kube


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.k8s)


@pytest.fixture(scope="session")
def control_plane(repo_root: Path) -> Iterator[ControlPlane]:
    crds = sorted((repo_root / "crds").glob("*.yaml"))
    assert crds, "no CRDs in crds/: run `make generate`"
    with ControlPlane(crds=crds) as cp:
        yield cp


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    """A fresh namespace per test, deleted afterwards without waiting."""
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", namespace)
    yield Kube(control_plane, namespace)
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="session")
def operator(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[OperatorProcess]:
    """One operator for the whole session, watching every namespace."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with running_operator(control_plane.kubeconfig, log) as proc:
        yield proc
    assert "Traceback" not in proc.logs(), proc.logs()[-5000:]
