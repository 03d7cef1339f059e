"""The harness never leaves its processes behind, however the run that started it ends.

Each test starts a control plane with a pod on its process node in a child process
(tests/support/lifetime_child.py), stops that child by a signal, and looks for every
component (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, the node
agent) and the pod's process in the process table. SIGTERM and SIGINT to a pytest run go
through its fixture teardown, so the work directory goes too; SIGKILL leaves nobody to
clean up but the kernel (PR_SET_PDEATHSIG), which kills the control plane's binaries and
sends the node agent SIGTERM, on which it stops its pods.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atomic_devcluster import ensure_binaries
from tests.support.procnode import pod_processes

ROOT = Path(__file__).resolve().parent.parent.parent
CHILD = ROOT / "tests" / "support" / "lifetime_child.py"
COMPONENTS = {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok",
              "procnode"}


def alive(pid: int) -> bool:
    """Running, not a zombie (a zombie has stopped; only its exit status is left)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _default_sigint() -> None:
    # A run started in the background inherits SIGINT ignored; a user's run does not.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Children:
    """Child runs started by a test; killed hard afterwards, whatever happened."""

    def __init__(self, tmp_path: Path) -> None:
        self.report = tmp_path / "report.json"
        self.log = tmp_path / "child.log"
        self.procs: list[subprocess.Popen[bytes]] = []

    def launch(self, *argv: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ, LIFETIME_REPORT=str(self.report), PYTHONPATH=str(ROOT))
        with self.log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    preexec_fn=_default_sigint)
        self.procs.append(proc)
        return proc

    def started(self, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        """What the child reports once its pod runs, checked to be running."""
        deadline = time.monotonic() + 180
        while not self.report.exists():
            assert proc.poll() is None, f"child exited with {proc.returncode}:\n{self.logs()}"
            assert time.monotonic() < deadline, f"child did not start:\n{self.logs()}"
            time.sleep(0.2)
        seen: dict[str, Any] = json.loads(self.report.read_text())
        assert set(seen["components"]) == COMPONENTS
        assert all(alive(pid) for pid in seen["components"].values())
        assert set(pod_processes(under=Path(seen["workdir"]))) == {"sleeper"}
        return seen

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    ensure_binaries()  # built once, as the session's control plane would
    made = Children(tmp_path)
    yield made
    for proc in made.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def leftovers(seen: dict[str, Any], timeout: float) -> dict[str, int]:
    """What still runs `timeout` seconds on (empty as soon as nothing does)."""
    deadline = time.monotonic() + timeout
    while True:
        left = {name: pid for name, pid in seen["components"].items() if alive(pid)}
        left.update(pod_processes(under=Path(seen["workdir"])))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signalled_pytest_run_stops_its_control_plane(children: Children,
                                                         sig: signal.Signals) -> None:
    proc = children.launch("-m", "pytest", "-p", "no:cacheprovider", "-q", "-s", str(CHILD))
    seen = children.started(proc)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    log = children.logs()
    assert leftovers(seen, timeout=5) == {}, log
    assert "KeyboardInterrupt" in log, log  # pytest was interrupted, not killed
    assert not Path(seen["workdir"]).exists(), "the fixture's teardown did not run"


def test_a_killed_parent_takes_its_control_plane_along(children: Children) -> None:
    proc = children.launch("-m", "tests.support.lifetime_child")
    seen = children.started(proc)
    try:
        proc.kill()  # no handler, no finally: only the kernel knows
        proc.wait()
        assert leftovers(seen, timeout=30) == {}, children.logs()
    finally:
        shutil.rmtree(seen["workdir"], ignore_errors=True)
