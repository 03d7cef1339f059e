"""The real control plane: built on first use, started once per test session.

These tests never skip. If Go is missing, the build fails, or a component does not start,
the session fixture raises and every test here errors with that message.

The session's control plane has kwok's fake nodes and the process node. `kube` gives a
namespace whose pods go to kwok (they turn Running and answer nothing); `proc_kube` one whose
pods run as real processes (each on its own address, reachable through
`control_plane.proxy_url`); `fake_llm` is the loopback OpenAI-compatible server they call.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from atomic_devcluster import ControlPlane
from atomic_devcluster.operator_process import OperatorProcess, running_operator
from tests.fakes.openai_server import FakeServerThread
from tests.support.kube import Kube
from tests.support.procnode import TEST_IMAGES, pod_processes

MISSING_AGENT_GRACE = 10
"""The session operator's missingAgentGraceSeconds."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.k8s)


@pytest.fixture(scope="session")
def control_plane(repo_root: Path) -> Iterator[ControlPlane]:
    crds = sorted((repo_root / "crds").glob("*.yaml"))
    assert crds, "no CRDs in crds/: run `make generate`"
    with ControlPlane(crds=crds, process_node=True, images=TEST_IMAGES,
                      backoff_seconds=1.0) as cp:
        yield cp
    assert cp.workdir is not None
    assert pod_processes(under=cp.workdir) == {}, "pod processes outlived the control plane"


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    """A fresh namespace per test, deleted afterwards without waiting."""
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", namespace)
    yield Kube(control_plane, namespace)
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def proc_kube(control_plane: ControlPlane) -> Iterator[Kube]:
    """A fresh namespace whose pods run on the process node, deleted afterwards."""
    namespace = f"p-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", namespace)
    control_plane.schedule_on_process_node(namespace)
    yield Kube(control_plane, namespace)
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeServerThread]:
    with FakeServerThread() as server:
        yield server


@pytest.fixture
def fake_llm(fake_llm_server: FakeServerThread) -> FakeServerThread:
    """The loopback fake LLM, its knobs and recorded requests reset."""
    fake_llm_server.app.control({"reset": True})
    return fake_llm_server


@pytest.fixture(scope="session")
def operator(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[OperatorProcess]:
    """One operator for the whole session, watching every namespace.

    It has the process node's proxy env, so it reaches process-node pods by pod IP (e.g. to
    read their /metrics) as a real operator reaches pods over the cluster network.
    """
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    # Secrets are re-read by name every second here (30 s by default), so rotation tests
    # see the roll at once; pods' metrics unreadable for 15 s (30 s by default) are reported
    # (not sooner: a Warning event posted as a test deletes its namespace is retried and
    # logged by kopf, and agents on kwok never answer); a pipeline's missing agent stalls
    # it after 10 s (120 s)
    env = {**control_plane.proxy_env(), "ATOMIC_OPERATOR_SECRET_RECHECK_SECONDS": "1",
           "ATOMIC_OPERATOR_METRICS_WARNING_SECONDS": "15",
           "ATOMIC_OPERATOR_MISSING_AGENT_GRACE_SECONDS": str(MISSING_AGENT_GRACE)}
    with running_operator(control_plane.kubeconfig, log, env=env) as proc:
        yield proc
    assert "Traceback" not in proc.logs(), proc.logs()[-5000:]
