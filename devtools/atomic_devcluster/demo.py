"""`atomicctl dev demo` (make run): the main job on one machine.

Starts the embedded control plane (or uses the cluster of the current kubeconfig), installs
the CRDs, runs the operator, applies the examples, waits for the agents to turn Ready
(kwok's fake nodes run the pods), shows them, and keeps everything up until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from atomic_devcluster import ControlPlane
from atomic_devcluster.build import ensure_binaries
from atomic_devcluster.operator_process import running_operator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--use-current-context", action="store_true",
                        help="use the cluster of the current kubeconfig, not an embedded one")
    parser.add_argument("--examples", type=Path, default=Path("examples"))
    parser.add_argument("--crds", type=Path, default=Path("crds"))
    parser.add_argument("--workdir", type=Path, default=Path(".devcluster"))
    parser.add_argument("--exit", action="store_true",
                        help="stop after showing the agents instead of waiting for Ctrl-C")


@contextlib.contextmanager
def _cluster(args: argparse.Namespace) -> Iterator[Path | None]:
    crds = sorted(args.crds.glob("*.yaml"))
    if args.use_current_context:
        _kubectl(None, "apply", "--server-side", *(f"-f={p}" for p in crds))
        _kubectl(None, "wait", "--for=condition=Established", "--timeout=30s",
                 *(f"-f={p}" for p in crds))
        yield None
        return
    workdir = args.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)  # a previous run's data: start clean
    with ControlPlane(crds=crds, workdir=workdir) as cp:
        print(f"control plane up at {cp.server}; export KUBECONFIG={cp.kubeconfig}",
              flush=True)
        yield cp.kubeconfig


def _kubectl(kubeconfig: Path | None, *args: str) -> str:
    cmd = [str(ensure_binaries().kubectl)]
    if kubeconfig is not None:
        cmd.append(f"--kubeconfig={kubeconfig}")
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with _cluster(args) as kubeconfig:
        log = (args.workdir.resolve() if kubeconfig else Path.cwd()) / "operator.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with running_operator(kubeconfig, log) as operator:
            print(f"operator running (log: {log}, metrics: {operator.metrics_url})", flush=True)
            started = time.monotonic()
            print(_kubectl(kubeconfig, "apply", "-f", str(args.examples)), end="", flush=True)
            _kubectl(kubeconfig, "wait", "--for=condition=Ready", "--timeout=60s",
                     "atomicagent", "--all")
            print(f"\nall agents Ready {time.monotonic() - started:.1f} s after apply:\n")
            print("$ kubectl get atomic")
            print(_kubectl(kubeconfig, "get", "atomic"))
            print("$ kubectl get deployments,services,pods -l app.kubernetes.io/managed-by="
                  "atomic-operator")
            print(_kubectl(kubeconfig, "get", "deployments,services,pods", "-l",
                           "app.kubernetes.io/managed-by=atomic-operator"), flush=True)
            if args.exit:
                return 0
            print("Up until Ctrl-C. In another shell: export KUBECONFIG="
                  f"{kubeconfig or '<yours>'}", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while not stop.is_set() and operator.popen.poll() is None:
                    stop.wait(1)
            if operator.popen.poll() not in (None, 0):
                print(f"operator exited: see {log}", file=sys.stderr)
                return 1
    return 0


def register(sub: Any) -> None:
    """Registered under `atomicctl dev`."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo", help="control plane + CRDs + operator + examples, shown with kubectl")
    add_arguments(parser)
    parser.set_defaults(run=run)
