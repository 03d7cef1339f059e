"""The custom autoscaler on a real control plane: a live load step, and what N autoscaled
agents cost the operator.

    .venv/bin/python -m bench.autoscaler_live step [--before 20] [--after 60]
    .venv/bin/python -m bench.autoscaler_live step --smoke      # 10 s + 30 s (CI)
    .venv/bin/python -m bench.autoscaler_live cost [--agents 100] [--seconds 60]
    .venv/bin/python -m bench.autoscaler_live cost --smoke      # 5 agents, 20 s (CI)

step: on the process node (agent pods are real runtime processes; the LLM is the loopback
fake answering in 1 s), one agent with maxInFlight 2 and targetInFlightPerReplica 2 takes
2 closed-loop clients (1x, one replica's target), then 16 (8x). Figures: seconds from the
step to the autoscaler's scale write and to the new pods being Ready, replicas reached,
requests failed, latency p50/p95 after the step. The baseline, measured in the same run on
the same node, is the same step against the same agent with a fixed replica count of 1
(mode none): what the load does without the autoscaler.

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
import math
import os
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from bench.operator_scale import AGENTS, ROOT, client_for, create_namespace
from tests.fakes.openai_server import FakeServerThread

from atomic_devcluster import ControlPlane
from atomic_devcluster.operator_process import running_operator
from atomic_operator.k8s import ApiError

SMOKE_ARGS = ["step", "--smoke"]  # `make bench-smoke`; `cost --smoke` runs by hand
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


INPUT = {"description": "Write the release notes", "priority": "high"}


class ClosedLoop:
    """`clients` tasks posting /run through the process node's proxy, timed."""

    def __init__(self, url: str, proxy: str) -> None:
        self.url, self.proxy = url, proxy
        self.results: list[tuple[float, float, int]] = []  # (start, seconds, status)
        self.tasks: list[asyncio.Task[None]] = []
        self.stop = asyncio.Event()

    async def _client(self, session: aiohttp.ClientSession) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                async with session.post(self.url, json=INPUT, proxy=self.proxy,
                                        timeout=aiohttp.ClientTimeout(total=60)) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            self.results.append((began, time.monotonic() - began, status))

    def grow(self, session: aiohttp.ClientSession, clients: int) -> None:
        while len(self.tasks) < clients:
            self.tasks.append(asyncio.create_task(self._client(session)))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def one_step(cp: ControlPlane, client: Any, ns: str, name: str, mode: str,
                   before: float, after: float) -> dict[str, float]:
    body = manifest(name, mode)
    body["spec"]["replicas"] = 1
    body["spec"]["model"]["baseURL"] = FAKE_URL[0]
    body["spec"]["concurrency"] = {"maxInFlight": 2, "queueSize": 16,
                                   "requestTimeoutSeconds": 60}
    body["spec"]["autoscaling"].update(maxReplicas=10, targetInFlightPerReplica=2)
    await client._request("POST", AGENTS.format(ns=ns), body=body)
    deployment = f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"
    while True:
        try:
            dep = await client._request("GET", deployment)
            if (dep.get("status") or {}).get("readyReplicas") == 1:
                break
        except ApiError:  # not created yet
            pass
        await asyncio.sleep(0.2)
    load = ClosedLoop(f"http://{name}.{ns}.svc.cluster.local/run", cp.proxy_url)
    async with aiohttp.ClientSession() as session:
        load.grow(session, 2)
        await asyncio.sleep(before)
        step = time.monotonic()
        load.grow(session, 16)
        write = ready = math.inf
        reached = 1
        while time.monotonic() - step < after:
            dep = await client._request("GET", deployment)
            wanted = int(dep["spec"].get("replicas") or 0)
            if wanted > 1 and math.isinf(write):
                write, reached = time.monotonic() - step, wanted
            if (not math.isinf(write) and math.isinf(ready)
                    and (dep.get("status") or {}).get("readyReplicas", 0) >= reached):
                ready = time.monotonic() - step
            await asyncio.sleep(0.2)
        await load.close()
    later = [(d, s) for began, d, s in load.results if began >= step]
    return {"s to scale write": write, "s to pods Ready": ready, "replicas": float(reached),
            "failed": float(sum(1 for _, s in later if s != 200)),
            "p50 s": pct([d for d, s in later if s == 200], 0.5),
            "p95 s": pct([d for d, s in later if s == 200], 0.95),
            "answered": float(len(later))}


FAKE_URL = [""]


async def step(before: float, after: float) -> None:
    crds = sorted((ROOT / "crds").glob("*.yaml"))
    with FakeServerThread() as fake, ControlPlane(crds=crds, process_node=True) as cp:
        fake.app.control({"latency": 1.0})
        FAKE_URL[0] = fake.base_url
        client = client_for(cp)
        try:
            await create_namespace(client, "live")
            cp.schedule_on_process_node("live")
            log = Path(tempfile.mkdtemp()) / "operator.log"
            with running_operator(cp.kubeconfig, log, "-n", "live", env=cp.proxy_env()):
                ours = await one_step(cp, client, "live", "scaled", "custom", before, after)
                base = await one_step(cp, client, "live", "fixed", "none", before, after)
        finally:
            await client.close()
    print(f"live step on the process node: 2 -> 16 closed-loop clients, fake LLM 1 s, "
          f"maxInFlight 2, target 2 per replica; {before:g} s before, {after:g} s after")
    columns = list(ours)
    print(f"{'':<24}" + "".join(f"{c:>18}" for c in columns))
    for label, row in (("custom autoscaler", ours), ("fixed 1 replica", base)):
        print(f"{label:<24}" + "".join(f"{row[c]:>18.1f}" for c in columns))
    print(f"ratio p95 latency custom/fixed: {ours['p95 s'] / base['p95 s']:.2f}; "
          f"answers custom/fixed: {ours['answered'] / max(base['answered'], 1):.2f}; "
          f"failed: {ours['failed']:.0f} (target 0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cost", help="operator CPU and API writes with N autoscaled agents")
    c.add_argument("--agents", type=int, default=100)
    c.add_argument("--seconds", type=float, default=60.0)
    c.add_argument("--settle", type=float, default=45.0,
                   help="seconds before waiting for 10 s without writes")
    c.add_argument("--smoke", action="store_true", help="5 agents, 20 s windows")
    st = sub.add_parser("step", help="a live 1x -> 8x load step on the process node")
    st.add_argument("--before", type=float, default=20.0)
    st.add_argument("--after", type=float, default=60.0)
    st.add_argument("--smoke", action="store_true", help="10 s before, 30 s after")
    args = parser.parse_args()
    if args.what == "step":
        if args.smoke:
            args.before, args.after = 10.0, 30.0
        asyncio.run(step(args.before, args.after))
    if args.what == "cost":
        if args.smoke:
            args.agents, args.seconds, args.settle = 5, 20.0, 35.0
        asyncio.run(cost(args.agents, args.seconds, args.settle))


if __name__ == "__main__":
    main()
