"""What the pipeline runner adds: per-hop overhead of a chain, and a forEach fan-out.

    .venv/bin/python -m bench.pipeline_overhead [--runs 200] [--items 100] [--latency 1]
    .venv/bin/python -m bench.pipeline_overhead --tiny     # a few seconds, for CI

1. A 5-step chain (five agent processes, each step's input built from the previous output
   by a template binding) on the zero-latency fake. Runs alternate between the runner and
   a client that calls the five agents itself, one after the other, with the same bodies.
   Reported per hop: the runner's end-to-end latency minus the agents' own latencies (the
   sum of the call durations in the run's trace), and the runner minus the direct client at
   p50 and p99. Target: <= 5 ms per hop at p50, <= 15 ms at p99.
2. forEach over `--items` items with `--concurrency` at a time, each agent call `--latency`
   seconds: the ideal is items / concurrency * latency. Reported: the forEach step's
   duration, its ratio to the ideal, and the runner's peak RSS.

The runner's config is rendered by the operator's own `runner_config` from the type check.
The runner is pinned to one CPU, the agents, fakes and the client to the others.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from bench.runtime_common import (
    INPUT_SCHEMA,
    OUTPUT_SCHEMA,
    PY,
    Proc,
    _cpu_set,
    agent_config,
    cpus,
    free_port,
    start_fake,
    wait_http,
)

from atomic_operator.api.pipeline import AtomicPipeline
from atomic_operator.pipeline_check import AgentSchemas, check_pipeline
from atomic_operator.render.pipeline_config import runner_config

SMOKE_ARGS = ["--tiny"]
"""The CI size (bench/README.md's smoke convention)."""
HOPS = 5
LIST_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["items"],
    "properties": {"items": {"type": "array", "items": {"type": "string", "minLength": 1}}}}


def start_process(config: dict[str, Any], cpu: str) -> tuple[Proc, str]:
    """`python -m atomic_runtime` with `config` (an agent's or a runner's)."""
    port = free_port()
    path = Path(tempfile.mkdtemp(prefix="bench-pl-")) / "config.json"
    path.write_text(json.dumps(config))
    env = {"ATOMIC_AGENT_CONFIG": str(path), "ATOMIC_AGENT_PORT": str(port),
           "ATOMIC_AGENT_HOST": "127.0.0.1", "ATOMIC_AGENT_METRICS_PORT": "0",
           "ATOMIC_AGENT_API_KEY": "sk-bench", "ATOMIC_AGENT_LOG_LEVEL": "WARNING",
           "ATOMIC_AGENT_DRAIN_DELAY_SECONDS": "0"}
    proc = Proc([PY, "-m", "atomic_runtime"], cpu, env)
    wait_http(f"http://127.0.0.1:{port}/readyz", timeout=120)
    return proc, f"http://127.0.0.1:{port}"


def rendered_runner(doc: dict[str, Any], schemas: dict[str, AgentSchemas],
                    urls: dict[str, str]) -> dict[str, Any]:
    pipeline = AtomicPipeline.model_validate(doc)
    check = check_pipeline(pipeline, schemas)
    assert not check.problems, check.problems
    config = runner_config(pipeline, doc["metadata"]["name"], "bench", check, {},
                           "cluster.local")
    for step in config["steps"]:
        step["url"] = urls[step["agent"]]
    return config


def chain_doc() -> dict[str, Any]:
    steps = [{"name": "s1", "agentRef": {"name": "a1"},
              "input": {"request": {"from": "input.request"}, "priority": {"value": "high"}}}]
    for i in range(2, HOPS + 1):
        steps.append({"name": f"s{i}", "agentRef": {"name": f"a{i}"}, "input": {
            "request": {"template": f"continue: ${{steps.s{i - 1}.output.title}}"},
            "priority": {"value": "high"}}})
    return {"apiVersion": "atomicagents.io/v1alpha1", "kind": "AtomicPipeline",
            "metadata": {"name": "chain"},
            "spec": {"inputSchema": INPUT_SCHEMA, "steps": steps,
                     "output": {"from": f"steps.s{HOPS}.output"}}}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def chain_runs(runner: str, agents: list[str], runs: int) -> dict[str, list[float]]:
    _, other = cpus()
    os.sched_setaffinity(0, _cpu_set(other))
    out: dict[str, list[float]] = {"runner": [], "direct": [], "own": []}
    body = {"request": "paint the fence", "priority": "high"}
    async with aiohttp.ClientSession() as session:
        for i in range(runs + 20):  # the first 20 of each warm up
            t0 = time.perf_counter()
            async with session.post(f"{runner}/run", json=body) as answer:
                result = await answer.json()
            runner_s = time.perf_counter() - t0
            assert answer.status == 200, result
            calls = sum(a["durationMs"] for s in result["trace"] for c in s["calls"]
                        for a in c["attempts"]) / 1000
            t0 = time.perf_counter()
            value: dict[str, Any] = body
            for n, url in enumerate(agents):
                payload = value if n == 0 else {
                    "request": f"continue: {value['title']}", "priority": "high"}
                async with session.post(f"{url}/run", json=payload) as answer:
                    value = await answer.json()
                    assert answer.status == 200, value
            direct_s = time.perf_counter() - t0
            if i >= 20:
                out["runner"].append(runner_s)
                out["direct"].append(direct_s)
                out["own"].append(runner_s - calls)
    return out


def bench_chain(runs: int) -> None:
    fake, base_url = start_fake(latency=0.0)
    runner_cpu, other = cpus()
    procs: list[Proc] = [fake]
    try:
        urls = {}
        for i in range(1, HOPS + 1):
            proc, urls[f"a{i}"] = start_process(agent_config(base_url, 16, 64), other)
            procs.append(proc)
        schemas = {name: AgentSchemas(INPUT_SCHEMA, OUTPUT_SCHEMA) for name in urls}
        proc, runner = start_process(rendered_runner(chain_doc(), schemas, urls), runner_cpu)
        procs.append(proc)
        result = asyncio.run(chain_runs(runner, [urls[f"a{i}"] for i in range(1, HOPS + 1)],
                                        runs))
    finally:
        for proc in procs:
            proc.stop()
    ms = 1000.0
    own = [v * ms / HOPS for v in result["own"]]
    added50 = (pct(result["runner"], 0.5) - pct(result["direct"], 0.5)) * ms / HOPS
    added99 = (pct(result["runner"], 0.99) - pct(result["direct"], 0.99)) * ms / HOPS
    print(f"5-step chain, zero-latency fake, {runs} runs each way (after 20 warm-up):")
    print(f"  runner end to end    p50 {pct(result['runner'], 0.5) * ms:7.2f} ms   "
          f"p99 {pct(result['runner'], 0.99) * ms:7.2f} ms")
    print(f"  client calls agents  p50 {pct(result['direct'], 0.5) * ms:7.2f} ms   "
          f"p99 {pct(result['direct'], 0.99) * ms:7.2f} ms")
    print(f"  per hop, runner minus agents' call time  p50 {pct(own, 0.5):6.2f} ms   "
          f"p99 {pct(own, 0.99):6.2f} ms   mean {statistics.fmean(own):6.2f} ms")
    print(f"  per hop, runner minus direct client      p50 {added50:6.2f} ms   "
          f"p99 {added99:6.2f} ms")
    verdict = "meets" if pct(own, 0.5) <= 5 and pct(own, 0.99) <= 15 else "MISSES"
    print(f"  target <= 5 ms p50, <= 15 ms p99 per hop: {verdict}")
    ratio = pct(result["runner"], 0.5) / pct(result["direct"], 0.5)
    print(f"  ratio runner / direct client at p50: {ratio:.2f}")


def bench_for_each(items: int, concurrency: int, latency: float) -> None:
    lister_fake, lister_url = start_fake(latency=0.0)
    worker_fake, worker_url = start_fake(latency=latency)
    runner_cpu, other = cpus()
    procs: list[Proc] = [lister_fake, worker_fake]
    try:
        import httpx

        control = lister_url.removesuffix("/v1") + "/_control"
        httpx.post(control, json={"output": {"items": [f"item {i}" for i in range(items)]}})
        lister_cfg = {**agent_config(lister_url, 4, 4), "outputSchema": LIST_SCHEMA}
        proc, lister = start_process(lister_cfg, other)
        procs.append(proc)
        proc, worker = start_process(agent_config(worker_url, concurrency * 2, 64), other)
        procs.append(proc)
        doc = {"apiVersion": "atomicagents.io/v1alpha1", "kind": "AtomicPipeline",
               "metadata": {"name": "fan-out"},
               "spec": {"inputSchema": INPUT_SCHEMA, "output": {"from": "steps.work.output"},
                        "steps": [
                            {"name": "list", "agentRef": {"name": "lister"}},
                            {"name": "work", "agentRef": {"name": "worker"},
                             "forEach": "steps.list.output.items",
                             "maxConcurrency": concurrency,
                             "input": {"request": {"from": "item"},
                                       "priority": {"value": "low"}}}]}}
        schemas = {"lister": AgentSchemas(INPUT_SCHEMA, LIST_SCHEMA),
                   "worker": AgentSchemas(INPUT_SCHEMA, OUTPUT_SCHEMA)}
        runner_proc, runner = start_process(
            rendered_runner(doc, schemas, {"lister": lister, "worker": worker}), runner_cpu)
        procs.append(runner_proc)
        t0 = time.perf_counter()
        answer = httpx.post(f"{runner}/run", json={"request": "r", "priority": "low"},
                            timeout=600)
        wall = time.perf_counter() - t0
        result = answer.json()
        assert answer.status_code == 200, result
        assert len(result["output"]) == items
        work = next(s for s in result["trace"] if s["step"] == "work")
        rss = runner_proc.peak_rss_mb()
    finally:
        for proc in procs:
            proc.stop()
    ideal = items / concurrency * latency
    step_s = work["durationMs"] / 1000
    calls = [c["durationMs"] / 1000 for c in work["calls"]]
    mean_call = statistics.fmean(calls)
    print(f"forEach of {items} items, {concurrency} at a time, {latency:g} s per call:")
    print(f"  forEach step {step_s:6.2f} s, whole run {wall:6.2f} s, "
          f"ideal {ideal:.2f} s, ratio {step_s / ideal:.3f}")
    # what the agent calls themselves took (agent + fake + HTTP), against the fake's latency,
    # and the step against those calls packed perfectly: the runner's own share
    packed = items / concurrency * mean_call
    print(f"  one call (as the runner timed it) mean {mean_call:.3f} s "
          f"(fake {latency:g} s); step / perfectly packed calls {step_s / packed:.3f}")
    print(f"  runner peak RSS {rss:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--tiny", action="store_true", help="CI size: 20 runs, 20 items, 0.2 s")
    args = parser.parse_args()
    if args.tiny:
        args.runs, args.items, args.concurrency, args.latency = 20, 20, 5, 0.2
    bench_chain(args.runs)
    bench_for_each(args.items, args.concurrency, args.latency)


if __name__ == "__main__":
    main()
