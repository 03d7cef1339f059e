"""The custom autoscaler on a real control plane: what N autoscaled agents cost the operator.

    .venv/bin/python -m bench.autoscaler_live cost [--agents 100] [--seconds 60]
    .venv/bin/python -m bench.autoscaler_live cost --smoke      # 5 agents, 20 s (CI)

One operator, one embedded control plane, kwok pods. N agents in mode none are created and
left to settle, then the operator's CPU and its API writes (status patches and replica
writes, from its own metrics) are measured over a window; then N more agents in mode custom
are added and the same window is measured again. The baseline is the first window: what
the same operator costs with the same number of agents and no autoscaler. kwok pods answer
no /metrics, so every scrape of the custom agents times out (1 s): the price of the tick
with missing metrics, and, by the rule, no replica change (target: no writes when nothing
changes).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from bench.operator_scale import AGENTS, ROOT, client_for, create_namespace

from atomic_devcluster import ControlPlane
from atomic_devcluster.operator_process import running_operator

WRITE_SERIES = ("atomic_operator_status_writes_total", "atomic_operator_replica_writes_total")
TICKS = "atomic_operator_autoscaler_decisions_total"


def manifest(name: str, mode: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "task-processor.yaml").read_text())
    doc = copy.deepcopy(doc)
    doc["metadata"] = {"name": name}
    doc["spec"]["replicas"] = 2
    doc["spec"]["autoscaling"] = {"mode": mode, "minReplicas": 1, "maxReplicas": 5}
    return doc


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def counters(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        for name in (*WRITE_SERIES, TICKS):
            if line.startswith(name + "{") or line.startswith(name + " "):
                out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


async def settle(url: str, at_least: float, at_most: float = 300.0) -> float:
    """Wait until the operator has converged: no API write for 10 s (after `at_least`)."""
    started = time.monotonic()
    await asyncio.sleep(at_least)
    quiet_since, last = time.monotonic(), counters(url)
    while time.monotonic() - started < at_most:
        await asyncio.sleep(2)
        now = counters(url)
        if any(now.get(k, 0) != last.get(k, 0) for k in WRITE_SERIES):
            quiet_since, last = time.monotonic(), now
        elif time.monotonic() - quiet_since >= 10:
            break
    return time.monotonic() - started


async def window(pid: int, url: str, seconds: float) -> dict[str, float]:
    cpu0, c0 = cpu_seconds(pid), counters(url)
    await asyncio.sleep(seconds)
    cpu1, c1 = cpu_seconds(pid), counters(url)
    per_min = 60 / seconds
    return {"cpu s/min": (cpu1 - cpu0) * per_min,
            "writes/min": sum(c1.get(k, 0) - c0.get(k, 0) for k in WRITE_SERIES) * per_min,
            "decisions/min": (c1.get(TICKS, 0) - c0.get(TICKS, 0)) * per_min}


async def create(client: Any, ns: str, n: int, mode: str) -> None:
    gate = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with gate:
            await client._request("POST", AGENTS.format(ns=ns),
                                  body=manifest(f"{mode}-{i:03d}", mode))

    await asyncio.gather(*(one(i) for i in range(n)))


async def cost(n: int, seconds: float, at_least: float) -> None:
    with ControlPlane(crds=sorted((ROOT / "crds").glob("*.yaml"))) as cp:
        client = client_for(cp)
        try:
            for ns in ("plain", "scaled"):
                await create_namespace(client, ns)
            log = Path(tempfile.mkdtemp()) / "operator.log"
            with running_operator(cp.kubeconfig, log, "-n", "plain", "-n", "scaled") as op:
                pid, url = op.popen.pid, op.metrics_url
                await create(client, "plain", n, "none")
                settled = [await settle(url, at_least)]
                base = await window(pid, url, seconds)
                await create(client, "scaled", n, "custom")
                settled.append(await settle(url, at_least))
                scaled = await window(pid, url, seconds)
                replicas = await replica_counts(client, "scaled")
        finally:
            await client.close()
    print(f"operator log: {log}")
    print(f"agents: {n} in mode none, then {n} more in mode custom (kwok pods: no metrics); "
          f"window {seconds:g} s after settling (no write for 10 s): "
          f"{settled[0]:.0f} s and {settled[1]:.0f} s")
    print(f"{'':<34}{'cpu s/min':>12}{'writes/min':>12}{'decisions/min':>15}")
    print(f"{'baseline: ' + str(n) + ' agents, mode none':<34}" + "".join(
        f"{base[k]:>12.2f}" if k != "decisions/min" else f"{base[k]:>15.0f}" for k in base))
    print(f"{'+ ' + str(n) + ' agents, mode custom':<34}" + "".join(
        f"{scaled[k]:>12.2f}" if k != "decisions/min" else f"{scaled[k]:>15.0f}"
        for k in scaled))
    extra = scaled["cpu s/min"] - base["cpu s/min"]
    print(f"autoscaler CPU: {extra:.2f} s/min for {n} agents = {extra / 60:.3f} cores "
          f"({extra / max(n, 1) * 1000 / 60:.2f} ms per agent per second); ratio of CPU "
          f"to baseline {scaled['cpu s/min'] / max(base['cpu s/min'], 1e-9):.2f}x")
    print(f"writes while nothing changes: {scaled['writes/min']:.1f}/min (target 0); "
          f"Deployment replicas of the custom agents: {sorted(set(replicas))} (started at 2)")


async def replica_counts(client: Any, ns: str) -> list[int]:
    items = await client.list(f"/apis/apps/v1/namespaces/{ns}/deployments")
    return [int(d["spec"].get("replicas", 0)) for d in items]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cost", help="operator CPU and API writes with N autoscaled agents")
    c.add_argument("--agents", type=int, default=100)
    c.add_argument("--seconds", type=float, default=60.0)
    c.add_argument("--settle", type=float, default=45.0,
                   help="seconds before waiting for 10 s without writes")
    c.add_argument("--smoke", action="store_true", help="5 agents, 20 s windows")
    args = parser.parse_args()
    if args.what == "cost":
        if args.smoke:
            args.agents, args.seconds, args.settle = 5, 20.0, 35.0
        asyncio.run(cost(args.agents, args.seconds, args.settle))


if __name__ == "__main__":
    main()
