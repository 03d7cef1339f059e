"""The demo's burst: the custom autoscaler at work on `task-processor`, printed with times.

Concurrent callers go through the process node's proxy to the agent's ready endpoints (the
same path as `atomicctl call`), closed loop, while the loopback fake LLM answers in a fixed
time: one replica holds `maxInFlight` calls and queues the rest, the autoscaler sees the
demand in its /metrics, writes the replicas needed in one write, the new pods turn Ready and
take calls. What the demo prints: the burst, that write (with the autoscaler's reason),
the pods Ready, and the calls answered per pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import statistics
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from atomic_operator.cli.call import CallError, call_service
from atomic_operator.k8s import KubeClient
from atomic_operator.k8s.resources import resource_path

NAMESPACE = "default"
LLM_SECONDS = 1.0
"""How long the fake LLM takes per answer during the burst: what makes calls overlap."""
MAX_SECONDS = 90.0
"""The burst ends this long after it began even if the pods never turn Ready."""
AFTER_READY_SECONDS = 6.0
"""The burst goes on this long once the new pods are Ready, so they are seen taking calls."""


@dataclass
class Tally:
    """The burst's calls: when each ended, how long it took, which pod answered."""

    began: float = field(default_factory=time.monotonic)
    done: list[tuple[float, float, str]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def at(self) -> float:
        return time.monotonic() - self.began


def set_llm_latency(base_url: str, seconds: float) -> None:
    """The loopback fake's answer time (its /_control knob, next to /v1)."""
    control = base_url.rstrip("/").removesuffix("/v1") + "/_control"
    request = urllib.request.Request(control, data=json.dumps({"latency": seconds}).encode(),
                                     headers={"Content-Type": "application/json"},
                                     method="POST")
    with urllib.request.urlopen(request, timeout=5):
        pass


def callers_for(spec: dict[str, Any]) -> tuple[int, int, float]:
    """(callers, replicas they need, target per replica): enough closed-loop callers to
    need most of maxReplicas, never more than one replica can hold (maxInFlight plus
    queueSize), so the burst is queued, not refused."""
    scaling = spec.get("autoscaling") or {}
    concurrency = spec.get("concurrency") or {}
    max_in_flight = int(concurrency.get("maxInFlight", 8))
    target = float(scaling.get("targetInFlightPerReplica") or 0.8 * max_in_flight)
    replicas = max(2, min(int(scaling.get("maxReplicas", 4)), 4))
    holds = max_in_flight + int(concurrency.get("queueSize", 0))
    callers = min(int(target * replicas), holds)
    return callers, math.ceil(callers / target - 1e-9), target


async def _caller(client: KubeClient, name: str, payload: dict[str, Any], proxy: str | None,
                  tally: Tally, stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.monotonic()
        try:
            result = await call_service(client, NAMESPACE, name, payload, proxy=proxy,
                                        deadline_seconds=60)
        except CallError as err:
            tally.failed.append(str(err))
            await asyncio.sleep(0.5)
            continue
        tally.done.append((tally.at(), time.monotonic() - started, result.endpoint.pod or "?"))


async def _get(client: KubeClient, kind: str, name: str, api_version: str) -> dict[str, Any]:
    return await client.get(resource_path(api_version, kind, NAMESPACE, name))


def _line(tally: Tally, text: str) -> None:
    print(f"  {tally.at():5.1f} s  {text}", flush=True)


async def burst(client: KubeClient, name: str, payload: dict[str, Any], proxy: str | None) -> bool:
    """Run the burst and print it; True when the autoscaler scaled up, the new pods turned
    Ready and every call was answered."""
    agent = await _get(client, "AtomicAgent", name, "atomicagents.io/v1alpha1")
    callers, needed, target = callers_for(agent.get("spec") or {})
    before = int((await _get(client, "Deployment", name, "apps/v1"))["spec"]["replicas"])
    print(f"$ # a burst: {callers} concurrent callers against agent/{name} (the fake LLM "
          f"answers in {LLM_SECONDS:g} s; target {target:g} in flight per replica, so "
          f"{needed} replicas needed, {before} running)", flush=True)
    tally = Tally()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_caller(client, name, payload, proxy, tally, stop))
             for _ in range(callers)]
    _line(tally, f"{callers} callers start")
    wrote_at: float | None = None
    ready_at: float | None = None
    desired = before
    try:
        while tally.at() < MAX_SECONDS:
            await asyncio.sleep(0.25)
            deployment = await _get(client, "Deployment", name, "apps/v1")
            replicas = int(deployment["spec"]["replicas"])
            if wrote_at is None and replicas != before:
                wrote_at, desired = tally.at(), replicas
                _line(tally, f"the autoscaler writes replicas {before} -> {replicas} "
                      f"(one write; {len(tally.done)} calls answered so far)")
                await _explain(client, name, tally)
            ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
            if wrote_at is not None and ready_at is None and ready >= desired:
                ready_at = tally.at()
                _line(tally, f"{ready}/{desired} pods Ready "
                      f"({ready_at - wrote_at:.1f} s after the write)")
            if ready_at is not None and tally.at() - ready_at >= AFTER_READY_SECONDS:
                break
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    _summary(tally, wrote_at, ready_at)
    return wrote_at is not None and ready_at is not None and not tally.failed


async def _explain(client: KubeClient, name: str, tally: Tally) -> None:
    """The autoscaler's own words for the write, from the agent's status (written with it)."""
    for _ in range(20):
        status = (await _get(client, "AtomicAgent", name, "atomicagents.io/v1alpha1")
                  ).get("status") or {}
        scaling = status.get("autoscaling") or {}
        if scaling.get("reason") == "ScaleUp":
            _line(tally, f"  status.autoscaling: {scaling.get('message')}")
            return
        await asyncio.sleep(0.1)


def _summary(tally: Tally, wrote_at: float | None, ready_at: float | None) -> None:
    end = tally.at()
    answered = len(tally.done)
    _line(tally, f"burst over: {answered} calls answered, {len(tally.failed)} failed")
    if tally.failed:
        print(f"           first failure: {tally.failed[0]}")
    for label, lo, hi in (("before the new pods were Ready", 0.0, ready_at or end),
                          ("after", ready_at, end)):
        if lo is None:
            continue
        times = [seconds for at, seconds, _ in tally.done if lo <= at < hi]
        if len(times) >= 2:
            p95 = statistics.quantiles(times, n=20)[-1]
            print(f"           {label}: {len(times)} calls, {len(times) / (hi - lo):.1f}/s, "
                  f"p50 {statistics.median(times):.1f} s, p95 {p95:.1f} s")
    pods = Counter(pod for _, _, pod in tally.done)
    print("           answered by pod: " + ", ".join(f"{pod} {n}" for pod, n in
                                                     sorted(pods.items())), flush=True)
    if wrote_at is None:
        print("           the autoscaler did not scale: see ScalingActive in "
              "`kubectl get atomicagent -o yaml` and the operator's Warning events")


@contextlib.contextmanager
def slow_llm(base_url: str) -> Iterator[None]:
    """The fake LLM answers in LLM_SECONDS for the duration, instantly again afterwards."""
    set_llm_latency(base_url, LLM_SECONDS)
    try:
        yield
    finally:
        set_llm_latency(base_url, 0.0)
