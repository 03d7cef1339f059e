"""The operator as a real process against the test control plane."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from atomic_operator.devcluster import ControlPlane
from atomic_operator.devcluster.cluster import free_port


@dataclass
class OperatorProcess:
    popen: subprocess.Popen[bytes]
    log: Path
    metrics_url: str

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_operator(cp: ControlPlane, log: Path, *extra_args: str
                     ) -> Iterator[OperatorProcess]:
    """Start `atomicctl operator`, wait for its liveness endpoint, stop it afterwards."""
    health, metrics = free_port(), free_port()
    env = dict(os.environ, KUBECONFIG=str(cp.kubeconfig),
               ATOMIC_OPERATOR_METRICS_PORT=str(metrics))
    cmd = [sys.executable, "-m", "atomic_operator", "--log-format=json",
           f"--liveness=http://127.0.0.1:{health}/healthz", *extra_args]
    with log.open("wb") as out:
        popen = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    proc = OperatorProcess(popen, log, f"http://127.0.0.1:{metrics}/metrics")
    try:
        deadline = time.monotonic() + 30
        while True:
            if popen.poll() is not None:
                raise RuntimeError(f"operator exited with {popen.returncode}:\n{proc.logs()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"operator not live after 30 s:\n{proc.logs()}") from None
                time.sleep(0.1)
        yield proc
    finally:
        popen.terminate()
        try:
            popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
