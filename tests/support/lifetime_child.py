"""A control plane with a pod on its process node, held until this process is stopped.

For tests/k8s/test_harness_lifetime.py, which stops it by a signal and then looks for
leftovers. Two ways in, so both of the harness's ways out are covered: as a pytest run
(`pytest tests/support/lifetime_child.py`; a session fixture holds the control plane, as
tests/k8s/conftest.py does) and as a plain script (`python -m tests.support.lifetime_child`).
Either writes what it started, as JSON, to $LIFETIME_REPORT once the pod runs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atomic_devcluster import ControlPlane

SLEEPER_IMAGE = "test.local/sleeper:1"
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper"},
       "spec": {"terminationGracePeriodSeconds": 5,
                "containers": [{"name": "main", "image": SLEEPER_IMAGE}]}}


def start() -> ControlPlane:
    cp = ControlPlane(process_node=True, fake_nodes=1,
                      images={SLEEPER_IMAGE: ["{python}", "-c", "import time; time.sleep(600)"]})
    cp.start()
    try:
        cp.schedule_on_process_node("default")
        cp.kubectl("apply", "-f", "-", input_text=json.dumps(POD))
        cp.kubectl("wait", "--for=condition=Ready", "--timeout=60s", "pod/sleeper")
    except BaseException:
        cp.stop()
        raise
    return cp


def report(cp: ControlPlane) -> None:
    Path(os.environ["LIFETIME_REPORT"]).write_text(json.dumps({
        "pid": os.getpid(), "workdir": str(cp.workdir),
        "components": {p.name: p.popen.pid for p in cp._procs}}))


@pytest.fixture(scope="session")
def held() -> Iterator[ControlPlane]:
    cp = start()
    try:
        yield cp
    finally:
        cp.stop()


def test_hold(held: ControlPlane) -> None:
    report(held)
    time.sleep(600)


if __name__ == "__main__":
    control_plane = start()
    try:
        report(control_plane)
        time.sleep(600)
    finally:
        control_plane.stop()
