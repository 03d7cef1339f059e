"""Benchmark: N agent pods from apply to all Ready on the process node.

Same control plane, same operator, same agents (the task-processor example, one replica
each, pointed at the loopback fake LLM), applied at once in two namespaces: one on kwok's
fake nodes (the control-plane floor: scheduling, status and controller round trips, no
process), one on the process node (real runtime processes, probed for /readyz). A third
figure is one runtime's cold start alone (spawn → /readyz answers), and the ideal for N on
this machine: cold start x N / cores. Target: 10 pods Ready on the process node in < 15 s.

    .venv/bin/python bench/procnode_startup.py [--agents 10]    # --agents 2 for CI
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from tests.fakes.openai_server import FakeServerThread  # noqa: E402

from atomic_devcluster import ControlPlane  # noqa: E402
from atomic_devcluster.operator_process import running_operator  # noqa: E402
from atomic_devcluster.processes import free_port  # noqa: E402
from atomic_operator.api import AtomicAgent  # noqa: E402
from atomic_operator.render import runtime_config  # noqa: E402

SMOKE_ARGS = ["--agents", "2"]  # `make bench-smoke` (bench/README.md)


def manifest(name: str, base_url: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "task-processor.yaml").read_text())
    doc["metadata"] = {"name": name}
    doc["spec"]["model"]["baseURL"] = base_url
    doc["spec"]["autoscaling"] = {"mode": "none"}
    doc["spec"]["replicas"] = 1
    return doc


def all_ready(cp: ControlPlane, namespace: str, agents: int, base_url: str,
              timeout: float = 180) -> float:
    """Seconds from applying `agents` agents to all their pods Ready."""
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "openai-credentials"},
              "stringData": {"api-key": "k"}}
    items = [secret, *(manifest(f"agent-{i}", base_url) for i in range(agents))]
    started = time.monotonic()
    cp.kubectl("-n", namespace, "apply", "-f", "-", input_text=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": items}))
    while time.monotonic() - started < timeout:
        pods = json.loads(cp.kubectl("-n", namespace, "get", "pods", "-o", "json").stdout)
        ready = sum(1 for p in pods["items"] if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (p.get("status") or {}).get("conditions") or []))
        if ready >= agents:
            return time.monotonic() - started
        time.sleep(0.1)
    raise SystemExit(f"{namespace}: not all {agents} pods Ready after {timeout:.0f} s")


def cold_start(base_url: str) -> float:
    """One runtime process alone: spawn → /readyz answers."""
    doc = manifest("cold", base_url)
    config = runtime_config(AtomicAgent.model_validate(doc), "cold", "bench")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agent.json"
        path.write_text(json.dumps(config))
        port = free_port()
        env = dict(os.environ, ATOMIC_AGENT_CONFIG=str(path), ATOMIC_AGENT_HOST="127.0.0.1",
                   ATOMIC_AGENT_PORT=str(port), ATOMIC_AGENT_METRICS_PORT="0",
                   ATOMIC_AGENT_API_KEY="k", ATOMIC_AGENT_LOG_LEVEL="WARNING")
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "atomic_runtime"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                        return time.monotonic() - started
                except OSError:
                    if proc.poll() is not None:
                        raise SystemExit("the runtime exited during the cold start") from None
                    time.sleep(0.02)
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    crds = sorted((ROOT / "crds").glob("*.yaml"))
    with tempfile.TemporaryDirectory() as tmp, FakeServerThread() as fake, \
            ControlPlane(crds=crds, process_node=True) as cp, \
            running_operator(cp.kubeconfig, Path(tmp) / "operator.log"):
        for namespace in ("on-kwok", "on-procnode"):
            cp.kubectl("create", "namespace", namespace)
        cp.schedule_on_process_node("on-procnode")
        cold = cold_start(fake.base_url)
        kwok = all_ready(cp, "on-kwok", args.agents, fake.base_url)
        procnode = all_ready(cp, "on-procnode", args.agents, fake.base_url)
    ideal = cold * args.agents / cores
    print(f"agents: {args.agents}, cores: {cores}")
    print(f"kwok fake nodes, apply → all pods Ready:      {kwok:6.2f} s")
    print(f"process node, apply → all pods Ready:         {procnode:6.2f} s"
          f"   (target < 15 s for 10)")
    print(f"one runtime cold start alone (spawn → /readyz): {cold:6.2f} s")
    print(f"ideal on this machine (cold x N / cores):     {ideal:6.2f} s")
    print(f"ratio process node / kwok:  {procnode / kwok:5.2f}")
    print(f"ratio process node / ideal: {procnode / ideal:5.2f}")


if __name__ == "__main__":
    main()
