"""The custom autoscaler on real pods: the process node runs each replica as a real runtime
process, the operator scrapes their /metrics by pod IP (through the node's proxy, as it
would over a cluster network), and the load is real HTTP through the Service.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from atomic_devcluster import ControlPlane
from atomic_devcluster.operator_process import OperatorProcess
from tests.fakes.openai_server import FakeServerThread
from tests.support.kube import Kube, eventually
from tests.support.manifests import variant
from tests.support.procnode import Load, pod_processes

INPUT = {"description": "Write the release notes", "priority": "high"}
STABLE = 10


def live_agent(name: str, fake: FakeServerThread, **autoscaling: Any) -> dict[str, Any]:
    return variant("task-processor", {"metadata": {"name": name}, "spec": {
        "model": {"baseURL": fake.base_url, "maxRetries": 2},
        "replicas": 1,
        "concurrency": {"maxInFlight": 2, "queueSize": 16, "requestTimeoutSeconds": 60},
        "autoscaling": {"mode": "custom", "minReplicas": 1, "maxReplicas": 4,
                        "targetInFlightPerReplica": 2,
                        "scaleDownStabilizationSeconds": STABLE, **autoscaling}}})


@pytest.fixture
def live(proc_kube: Kube, operator: OperatorProcess) -> Iterator[Kube]:
    proc_kube.run("create", "secret", "generic", "openai-credentials",
                  "--from-literal=api-key=k")
    yield proc_kube


def replicas(kube: Kube, name: str) -> int:
    return int(kube.get("deployment", name)["spec"]["replicas"])


def ready_processes(kube: Kube, name: str) -> int:
    pods = json.loads(kube.run("get", "pods", "-l", f"atomicagents.io/agent={name}",
                               "-o", "json"))["items"]
    names = {p["metadata"]["name"] for p in pods if any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (p.get("status") or {}).get("conditions") or [])}
    return len(names & set(pod_processes()))


def events(kube: Kube, name: str, reason: str) -> list[dict[str, Any]]:
    out = json.loads(kube.run("get", "events", "-o", "json",
                              f"--field-selector=involvedObject.name={name},reason={reason}"))
    return list(out["items"])


def scaling(kube: Kube, name: str) -> dict[str, Any]:
    for cond in (kube.get("atomicagent", name).get("status") or {}).get("conditions") or []:
        if cond["type"] == "ScalingActive":
            return dict(cond)
    return {}


def test_a_burst_scales_up_in_seconds_and_down_only_after_the_stable_window(
        live: Kube, fake_llm: FakeServerThread, control_plane: ControlPlane) -> None:
    fake_llm.app.control({"latency": 1.0})
    live.apply(live_agent("bursty", fake_llm))
    live.run("wait", "--for=condition=Ready", "--timeout=60s", "atomicagent/bursty")
    url = f"http://bursty.{live.namespace}.svc.cluster.local/run"
    # 16 clients at 2 per replica need 8, twice maxReplicas 4: the need stays above 4
    # through the burst even as measured between calls. (8 sat exactly at 4 replicas'
    # target: in flight measured at 6-7 made the need dip to 3 before the burst ended,
    # so the scale-down after it came "early", 8.1 s after it in one run; the
    # queue-drain term's +1 for any queued request used to hide that.)
    with Load(url, control_plane.proxy_url, INPUT, clients=16) as burst:
        started = time.monotonic()
        eventually(lambda: replicas(live, "bursty") >= 4, timeout=30, interval=0.2,
                   what="scale-up to 4 replicas under 16 concurrent clients")
        reaction = time.monotonic() - started
        eventually(lambda: ready_processes(live, "bursty") >= 4, timeout=60, interval=0.3,
                   what="4 Ready pod processes")
        ready = time.monotonic() - started
        burst.wait_for(20)
    print(f"burst: scale write {reaction:.1f} s after the load started, 4 pods Ready after "
          f"{ready:.1f} s")
    assert reaction < 15, f"scale-up took {reaction:.1f} s"
    assert burst.failures == [], burst.failures[:5]
    scaled = events(live, "bursty", "ScaledUp")
    assert scaled and "demand" in scaled[-1]["message"], scaled
    status = live.get("atomicagent", "bursty")["status"]
    assert status["desiredReplicas"] == 4
    assert status["autoscaling"]["lastScaleTime"]
    assert status["autoscaling"]["inputs"]["podsReporting"] >= 1
    assert live.get("atomicagent", "bursty")["spec"]["replicas"] == 1  # never written

    # The burst ends; a trickle goes on. The count holds for the stable window, then drops,
    # and no request is lost while pods drain.
    with Load(url, control_plane.proxy_url, INPUT, clients=1) as trickle:
        ended = time.monotonic()
        eventually(lambda: replicas(live, "bursty") < 4, timeout=60, interval=0.2,
                   what="a scale-down after the burst")
        held = time.monotonic() - ended
        eventually(lambda: ready_processes(live, "bursty") == replicas(live, "bursty"),
                   timeout=60, interval=0.3, what="pods drained")
        trickle.wait_for(5)
    print(f"burst end: first scale-down after {held:.1f} s (stable window {STABLE} s)")
    assert held >= STABLE - 1, f"scaled down {held:.1f} s after the burst"
    assert trickle.failures == [], trickle.failures[:5]
    down = events(live, "bursty", "ScaledDown")
    assert down and f"for {STABLE} s" in down[-1]["message"], down


def test_provider_throttling_freezes_scale_up(
        live: Kube, fake_llm: FakeServerThread, control_plane: ControlPlane) -> None:
    fake_llm.app.control({"latency": 0.5, "behavior": "status:429", "retry_after_ms": 200})
    live.apply(live_agent("throttled", fake_llm))
    live.run("wait", "--for=condition=Ready", "--timeout=60s", "atomicagent/throttled")
    url = f"http://throttled.{live.namespace}.svc.cluster.local/run"
    with Load(url, control_plane.proxy_url, INPUT, clients=8) as load:
        cond = eventually(lambda: scaling(live, "throttled").get("reason") == "UpstreamSaturated"
                          and scaling(live, "throttled"), timeout=30, interval=0.3,
                          what="ScalingActive=UpstreamSaturated")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert replicas(live, "throttled") == 1
            time.sleep(0.5)
        assert load.failures and all(f.startswith("503") for f in load.failures[:20])
        assert "scale-up is frozen" in cond["message"]
        # the provider recovers: the same load now scales (the freeze was the reason)
        fake_llm.app.control({"behavior": "ok", "latency": 1.0})
        eventually(lambda: replicas(live, "throttled") > 1, timeout=40, interval=0.3,
                   what="scale-up once the provider answers")


def test_pods_that_stop_answering_cause_no_scale_down(
        live: Kube, fake_llm: FakeServerThread, control_plane: ControlPlane) -> None:
    fake_llm.app.control({"latency": 1.0})
    live.apply(live_agent("silent", fake_llm))
    live.run("wait", "--for=condition=Ready", "--timeout=60s", "atomicagent/silent")
    url = f"http://silent.{live.namespace}.svc.cluster.local/run"
    with Load(url, control_plane.proxy_url, INPUT, clients=6) as load:
        eventually(lambda: replicas(live, "silent") >= 3, timeout=30, interval=0.2,
                   what="scale-up")
        eventually(lambda: ready_processes(live, "silent") == replicas(live, "silent"),
                   timeout=60, interval=0.3, what="every pod Ready")
        load.wait_for(5)
    count = replicas(live, "silent")
    names = {p["metadata"]["name"] for p in json.loads(live.run(
        "get", "pods", "-l", "atomicagents.io/agent=silent", "-o", "json"))["items"]}
    pids = [pid for pod, pid in pod_processes().items() if pod in names]
    # Every pod stops answering (metrics, probes, everything) with no load left: twice the
    # stable window passes and the count holds.
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        seen = set()
        deadline = time.monotonic() + 2 * STABLE + 5
        while time.monotonic() < deadline:
            assert replicas(live, "silent") == count
            seen.add(scaling(live, "silent").get("reason"))
            time.sleep(0.5)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert seen & {"MetricsMissing", "WaitingForPods"}, seen
    # Back, and idle: now, and only now, the count comes down.
    eventually(lambda: replicas(live, "silent") < count, timeout=90, interval=0.5,
               what="a scale-down once the pods answer again")
