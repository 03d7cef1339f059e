"""The operator as a child process against a control plane: for `make run` and the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from atomic_devcluster.lifetime import die_with_parent
from atomic_devcluster.processes import free_port


@dataclass
class OperatorProcess:
    popen: subprocess.Popen[bytes]
    log: Path
    metrics_url: str

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_operator(kubeconfig: Path | None, log: Path, *extra_args: str,
                     env: Mapping[str, str] | None = None) -> Iterator[OperatorProcess]:
    """Start the operator, wait for its liveness endpoint, stop it afterwards.

    kubeconfig None means the environment's own (KUBECONFIG or ~/.kube/config). `env` adds
    variables, e.g. `cp.proxy_env()` so the operator reaches process-node pods by pod IP.
    """
    health, metrics = free_port(), free_port()
    env = dict(os.environ, **(env or {}), ATOMIC_OPERATOR_METRICS_PORT=str(metrics))
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    cmd = [sys.executable, "-m", "atomic_operator", "--log-format=json",
           f"--liveness=http://127.0.0.1:{health}/healthz", *extra_args]
    with log.open("wb") as out:
        # SIGTERM when we die, however we die (a SIGKILLed test run left it running).
        popen = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                 preexec_fn=die_with_parent())
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
