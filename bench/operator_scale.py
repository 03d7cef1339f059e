"""Benchmark: N AtomicAgents applied at once, operator versus a bare client.

Both runs start the same way, on the same embedded control plane: N AtomicAgents are
created at once (64 requests in flight). The bare client then does the minimum the
operator does for each: apply the same rendered Deployment, ConfigMap and Service with
server-side apply and write the status, as fast as it can. The operator run measures, from
the first create, the time until every agent's status has its observedGeneration (the
operator writes it after the children are applied; the children are counted at the end).
Each namespace is fresh; bare and operator runs alternate for `--rounds` rounds and the
ratio reported is the median of the rounds' ratios (one busy spell of a shared machine
moved a single-run ratio by 0.15). An idle-cluster run then creates agents one at a time
for the create→children latency.

    .venv/bin/python bench/operator_scale.py [--agents 300] [--idle 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import yaml  # noqa: E402

from atomic_devcluster import ControlPlane  # noqa: E402
from atomic_devcluster.operator_process import running_operator  # noqa: E402
from atomic_operator.api import AtomicAgent  # noqa: E402
from atomic_operator.k8s import KubeClient, resource_path  # noqa: E402
from atomic_operator.render import AgentIdentity, render_agent  # noqa: E402
from atomic_operator.settings import FIELD_MANAGER, OperatorSettings  # noqa: E402

AGENTS = "/apis/atomicagents.io/v1alpha1/namespaces/{ns}/atomicagents"
SMOKE_ARGS = ["--agents", "5", "--idle", "2", "--rounds", "1"]  # bench/README.md
IN_FLIGHT = 64


def manifest(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "task-processor.yaml").read_text())
    doc["metadata"] = {"name": name}
    doc["spec"]["autoscaling"] = {"mode": "none"}
    return doc


def client_for(cp: ControlPlane) -> KubeClient:
    ca = (cp.workdir / "certs" / "apiserver.crt").read_bytes() if cp.workdir else None
    return KubeClient.connect(cp.server, token=cp.token, ca_data=ca, limit=IN_FLIGHT)


async def create_namespace(client: KubeClient, ns: str) -> None:
    await client._request("POST", "/api/v1/namespaces",
                          body={"metadata": {"name": ns}})
    await client._request("POST", f"/api/v1/namespaces/{ns}/secrets", body={
        "metadata": {"name": "openai-credentials"}, "stringData": {"api-key": "k"}})


async def create_agents(client: KubeClient, ns: str, names: list[str],
                        then: Any = None) -> dict[str, float]:
    """Create every agent (IN_FLIGHT at a time); return name → monotonic create time."""
    gate = asyncio.Semaphore(IN_FLIGHT)
    created: dict[str, float] = {}

    async def one(name: str) -> None:
        async with gate:
            created[name] = time.monotonic()
            body = await client._request("POST", AGENTS.format(ns=ns), body=manifest(name))
            if then is not None:
                await then(body)

    await asyncio.gather(*(one(n) for n in names))
    return created


async def bare_children(client: KubeClient, body: dict[str, Any]) -> None:
    """What the operator minimally does per agent: three applies and a status write."""
    meta = body["metadata"]
    who = AgentIdentity(meta["name"], meta["namespace"], meta["uid"])
    rendered = render_agent(AtomicAgent.model_validate(body), who, OperatorSettings(), "x")
    for child in rendered.children:
        await client.apply(child, FIELD_MANAGER)
    path = resource_path("atomicagents.io/v1alpha1", "AtomicAgent", who.namespace, who.name,
                         "status")
    await client.merge_patch(path, {"status": {"observedGeneration": meta["generation"],
                                               "configHash": rendered.config_hash}},
                             FIELD_MANAGER)


async def watch_observed(client: KubeClient, ns: str, names: set[str],
                         done: dict[str, float], limit_s: float) -> None:
    """Record when each agent's status first shows its current generation."""
    listing = await client._request("GET", AGENTS.format(ns=ns))
    rv = listing["metadata"]["resourceVersion"]
    deadline = time.monotonic() + limit_s
    url = client.server + AGENTS.format(ns=ns)
    params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "false"}
    while len(done) < len(names) and time.monotonic() < deadline:
        async with client.session.get(url, params=params,
                                      timeout=aiohttp.ClientTimeout(total=None)) as resp:
            async for line in resp.content:
                event = json.loads(line)
                obj = event["object"]
                meta = obj.get("metadata", {})
                rv = meta.get("resourceVersion", rv)
                params["resourceVersion"] = rv
                status = obj.get("status") or {}
                if (meta.get("name") in names and meta["name"] not in done
                        and status.get("observedGeneration") == meta.get("generation")
                        and status.get("configHash")):
                    done[meta["name"]] = time.monotonic()
                if len(done) >= len(names) or time.monotonic() > deadline:
                    return


async def count_children(client: KubeClient, ns: str) -> dict[str, int]:
    counts = {}
    for kind, path in (("Deployment", f"/apis/apps/v1/namespaces/{ns}/deployments"),
                       ("ConfigMap", f"/api/v1/namespaces/{ns}/configmaps"),
                       ("Service", f"/api/v1/namespaces/{ns}/services")):
        items = await client.list(path, {"app.kubernetes.io/managed-by": "atomic-operator"})
        counts[kind] = len(items)
    return counts


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def bare_round(client: KubeClient, ns: str, names: list[str]) -> tuple[float, dict[str, int]]:
    """The baseline: a bare client, same objects, same API server."""
    await create_namespace(client, ns)
    t0 = time.monotonic()
    await create_agents(client, ns, names, then=lambda b: bare_children(client, b))
    return time.monotonic() - t0, await count_children(client, ns)


async def operator_round(client: KubeClient, ns: str, names: list[str], pid: int
                         ) -> tuple[float, float, list[float], dict[str, int]]:
    """The operator converging the same agents in a namespace of its own: seconds until
    every status shows its generation, operator CPU, create->status latencies, children."""
    done: dict[str, float] = {}
    watcher = asyncio.create_task(watch_observed(client, ns, set(names), done, 600))
    await asyncio.sleep(0.2)
    cpu0 = cpu_seconds(pid)
    t0 = time.monotonic()
    created = await create_agents(client, ns, names)
    await watcher
    op_cpu = cpu_seconds(pid) - cpu0
    op_s = max(done.values()) - t0 if len(done) == len(names) else float("nan")
    latencies = [done[k] - created[k] for k in names if k in done]
    return op_s, op_cpu, latencies, await count_children(client, ns)


async def run(n: int, idle: int, rounds: int) -> int:
    with ControlPlane(crds=sorted((ROOT / "crds").glob("*.yaml"))) as cp:
        client = client_for(cp)
        names = [f"agent-{i:04d}" for i in range(n)]
        op_namespaces = [f"op-{r}" for r in range(rounds)]
        for ns in [*op_namespaces, "idle"]:
            await create_namespace(client, ns)
        results = []
        try:
            log = Path(tempfile.mkdtemp()) / "operator.log"
            watched = [arg for ns in [*op_namespaces, "idle"] for arg in ("-n", ns)]
            with running_operator(cp.kubeconfig, log, *watched) as operator:
                # Bare and operator runs alternate, each operator run against the bare run
                # just before it: a busy spell of the machine hits a pair, not one side.
                for r in range(rounds):
                    bare_s, bare_counts = await bare_round(client, f"bare-{r}", names)
                    op = await operator_round(client, op_namespaces[r], names,
                                              operator.popen.pid)
                    results.append((bare_s, bare_counts, *op))
                idle_lat = []
                for i in range(idle):
                    name = f"idle-{i:03d}"
                    seen: dict[str, float] = {}
                    w = asyncio.create_task(watch_observed(client, "idle", {name}, seen, 30))
                    await asyncio.sleep(0.05)
                    made = await create_agents(client, "idle", [name])
                    await w
                    idle_lat.append(seen[name] - made[name])
                rss = peak_rss_mb(operator.popen.pid)
        finally:
            await client.close()

    print(f"agents: {n} per run, {rounds} round(s) of a bare run then an operator run")
    ratios = []
    for r, (bare_s, bare_counts, op_s, op_cpu, _, op_counts) in enumerate(results):
        ratios.append(op_s / bare_s)
        print(f"round {r}: bare client {bare_s:.2f} s ({n / bare_s:.0f} agents/s), "
              f"operator {op_s:.2f} s ({n / op_s:.0f} agents/s), ratio {op_s / bare_s:.2f}, "
              f"operator CPU {op_cpu / n * 1000:.0f} ms per agent")
        print(f"  children: bare {bare_counts}, operator {op_counts}")
    print(f"ratio operator/bare: median {statistics.median(ratios):.2f} of {rounds} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}; target <= 1.3)")
    cpu_ms = statistics.median(res[3] / n * 1000 for res in results)
    print(f"operator CPU: median {cpu_ms:.0f} ms per agent (less sensitive to a busy machine "
          "than the ratio)")
    latencies = [lat for res in results for lat in res[4]]
    if latencies:
        print(f"create->status under load: p50 {statistics.median(latencies) * 1000:.0f} ms, "
              f"p99 {sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000:.0f} ms")
    print(f"create->children on an idle cluster ({idle} agents one by one): "
          f"p50 {statistics.median(idle_lat) * 1000:.0f} ms, max {max(idle_lat) * 1000:.0f} ms "
          "(target p50 <= 500 ms)")
    print(f"operator peak RSS: {rss:.0f} MB (target <= 250 MB)")
    ok = all(not math.isnan(res[2]) and all(v == n for v in res[5].values())
             for res in results)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=300)
    parser.add_argument("--idle", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    return asyncio.run(run(args.agents, args.idle, args.rounds))


if __name__ == "__main__":
    sys.exit(main())
