"""The process node: agent pods as real processes, probed, reachable, drained, cleaned up.

Everything here is real: the control plane, the operator, the node agent, the agent runtime
processes on their own loopback addresses, HTTP through the node's proxy; the LLM is the
loopback fake.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from typing import Any

import jsonschema

from atomic_devcluster import ControlPlane
from atomic_devcluster.operator_process import OperatorProcess
from atomic_devcluster.procnode import NODE_NAME
from atomic_devcluster.procnode.network import POD_SUPERNET, twin
from tests.fakes.openai_server import FakeServerThread
from tests.support.kube import Kube, eventually
from tests.support.manifests import example, variant
from tests.support.procnode import Load, pod_processes

INPUT = {"description": "Write the release notes", "priority": "high"}


def agent(name: str, fake: FakeServerThread, replicas: int = 1, **spec: Any) -> dict[str, Any]:
    return variant("task-processor", {
        "metadata": {"name": name},
        "spec": {"model": {"baseURL": fake.base_url}, "replicas": replicas,
                 "autoscaling": {"mode": "none"}, **spec},
    })


def with_secret(kube: Kube) -> Kube:
    kube.run("create", "secret", "generic", "openai-credentials", "--from-literal=api-key=k")
    return kube


def pods(kube: Kube, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        kube.run("get", "pods", "-l", selector, "-o", "json"))["items"]
    return items


def processes(kube: Kube, selector: str) -> dict[str, int]:
    names = {p["metadata"]["name"] for p in pods(kube, selector)}
    return {name: pid for name, pid in pod_processes().items() if name in names}


def slice_endpoints(kube: Kube, service: str) -> list[tuple[str, bool]]:
    out = json.loads(kube.run("get", "endpointslices", "-l",
                              f"kubernetes.io/service-name={service}", "-o", "json"))
    return [(address, bool((ep.get("conditions") or {}).get("ready")))
            for s in out["items"] for ep in s.get("endpoints") or []
            for address in ep["addresses"]]


def readyz(pod_ip: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{twin(pod_ip)}:8080/readyz", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def container_status(kube: Kube, pod: str) -> dict[str, Any]:
    statuses = kube.get("pod", pod).get("status", {}).get("containerStatuses") or [{}]
    return dict(statuses[0])


def atomicctl(cp: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBECONFIG=str(cp.kubeconfig), **cp.proxy_env())
    return subprocess.run([sys.executable, "-m", "atomic_operator.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_two_replicas_are_two_processes_ready_only_after_readyz(
        proc_kube: Kube, operator: OperatorProcess, fake_llm: FakeServerThread,
        control_plane: ControlPlane) -> None:
    kube = with_secret(proc_kube)
    kube.run("create", "configmap", "house-rules", "--from-literal=rules=Answer in haiku.")
    context = [{"name": "rules", "title": "House rules",
                "configMapKeyRef": {"name": "house-rules", "key": "rules"}}]
    kube.apply(agent("duo", fake_llm, replicas=2, contextProviders=context))
    seen: dict[str, list[bool]] = {}
    deadline = time.monotonic() + 120
    while True:
        endpoints = slice_endpoints(kube, "duo")
        for address, ready in endpoints:
            seen.setdefault(address, []).append(ready)
            if ready:  # listed ready: its /readyz must answer (read after the slice)
                assert readyz(address), f"{address} ready in the slice, /readyz silent"
        if len(endpoints) == 2 and all(ready for _, ready in endpoints):
            break
        assert time.monotonic() < deadline, f"endpoints never both ready: {endpoints}"
        time.sleep(0.1)
    assert all(False in states for states in seen.values()), seen  # not ready at first
    running = processes(kube, "atomicagents.io/agent=duo")
    assert len(running) == 2 and len(set(running.values())) == 2, running
    ips = {p["status"]["podIP"] for p in pods(kube, "atomicagents.io/agent=duo")}
    assert len(ips) == 2 and all(ipaddress.IPv4Address(ip) in POD_SUPERNET for ip in ips), ips
    assert set(seen) == ips

    call = atomicctl(control_plane, "call", "agent/duo", "-n", kube.namespace,
                     "--input", json.dumps(INPUT))
    assert call.returncode == 0, call.stderr
    output = json.loads(call.stdout)
    jsonschema.validate(output, example("task-processor")["spec"]["outputSchema"])
    assert re.search(r"^200 from 10\.\d+\.\d+\.\d+:8080 \(pod duo-\S+\) in \d+ ms$",
                     call.stderr.strip(), re.MULTILINE), call.stderr
    system = fake_llm.app.requests[-1]["messages"][0]["content"]
    assert "Answer in haiku." in system  # the ConfigMap volume, read by the process

    # A client in a pod reaches the Service by its cluster name through the node's proxy.
    url = f"http://duo.{kube.namespace}.svc.cluster.local/run"
    kube.apply(probe_pod("caller", env=[{"name": "CALL_URL", "value": url},
                                        {"name": "CALL_BODY", "value": json.dumps(INPUT)}]))
    kube.run("wait", "--for=condition=Ready", "--timeout=60s", "pod/caller")

    bad = atomicctl(control_plane, "call", "agent/duo", "-n", kube.namespace, "--input", "{}")
    assert bad.returncode == 1 and "answered 422" in bad.stderr, bad.stderr
    assert "description" in bad.stderr

    kube.run("delete", "atomicagent", "duo")
    eventually(lambda: not processes(kube, "atomicagents.io/agent=duo")
               and not any(n.startswith("duo-") for n in pod_processes()),
               timeout=40, what="no process left of the deleted agent")
    eventually(lambda: not pods(kube, "atomicagents.io/agent=duo"), timeout=20,
               what="pods finalized")


def test_scale_and_roll_under_load_lose_no_request(
        proc_kube: Kube, operator: OperatorProcess, fake_llm: FakeServerThread,
        control_plane: ControlPlane) -> None:
    kube = with_secret(proc_kube)
    fake_llm.app.control({"latency": 0.05})
    kube.apply(agent("steady", fake_llm))
    kube.run("wait", "--for=condition=Ready", "--timeout=120s", "atomicagent/steady")
    selector = "atomicagents.io/agent=steady"

    kube.run("scale", "atomicagent/steady", "--replicas=4")
    eventually(lambda: len(processes(kube, selector)) == 4
               and sum(r for _, r in slice_endpoints(kube, "steady")) == 4,
               timeout=120, interval=0.3, what="4 ready processes")

    url = f"http://steady.{kube.namespace}.svc.cluster.local/run"
    with Load(url, control_plane.proxy_url, INPUT) as load:
        load.wait_for(40)
        kube.run("scale", "atomicagent/steady", "--replicas=1")
        eventually(lambda: len(processes(kube, selector)) == 1, timeout=90, interval=0.3,
                   what="drained to 1 process")
        load.wait_for(20)
    assert load.failures == [], load.failures[:5]

    marker = "You answer in the new voice."
    with Load(url, control_plane.proxy_url, INPUT) as load:
        load.wait_for(20)
        before = set(processes(kube, selector))
        kube.run("patch", "atomicagent/steady", "--type=merge", "-p", json.dumps(
            {"spec": {"systemPrompt": {"background": [marker]}}}))
        most = 0
        deadline = time.monotonic() + 150
        while True:
            now = processes(kube, selector)
            most = max(most, len(now))
            if now and not set(now) & before and len(now) == 1 and all(
                    r for _, r in slice_endpoints(kube, "steady")):
                break
            assert time.monotonic() < deadline, f"roll did not finish: {now}"
            time.sleep(0.2)
        load.wait_for(20)
    assert load.failures == [], load.failures[:5]
    assert most >= 2, "the new pod must start before the old one stops"
    recent = [r["messages"][0]["content"] for r in list(fake_llm.app.requests)[-10:]]
    assert all(marker in system for system in recent), recent[-1]


def probe_pod(name: str, **container: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 5, "containers": [dict({
                "name": "main", "image": "test.local/probe-server:1",
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"},
                                   "periodSeconds": 1}}, **container)]}}


def test_missing_secret_key_is_create_container_config_error(proc_kube: Kube) -> None:
    proc_kube.run("create", "secret", "generic", "creds", "--from-literal=other=x")
    proc_kube.apply(probe_pod("keyless", env=[{"name": "TOKEN", "valueFrom": {
        "secretKeyRef": {"name": "creds", "key": "token"}}}]))

    def waiting() -> dict[str, Any] | None:
        state = container_status(proc_kube, "keyless").get("state", {}).get("waiting")
        return state if state and state.get("reason") == "CreateContainerConfigError" else None

    state = eventually(waiting, timeout=20, what="CreateContainerConfigError")
    assert state["message"] == f"couldn't find key token in Secret {proc_kube.namespace}/creds"
    assert "keyless" not in pod_processes()
    proc_kube.run("patch", "secret", "creds", "-p", '{"stringData": {"token": "t"}}')
    proc_kube.run("wait", "--for=condition=Ready", "--timeout=30s", "pod/keyless")


def test_crashing_process_goes_to_crash_loop_back_off(proc_kube: Kube) -> None:
    proc_kube.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "crasher"},
                     "spec": {"containers": [{"name": "main", "image": "test.local/crash:1"}]}})

    def backing_off() -> dict[str, Any] | None:
        status = container_status(proc_kube, "crasher")
        waiting = status.get("state", {}).get("waiting") or {}
        return status if waiting.get("reason") == "CrashLoopBackOff" else None

    status = eventually(backing_off, timeout=30, what="CrashLoopBackOff")
    assert status["restartCount"] >= 1
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert not status["ready"]


def test_failing_liveness_restarts_the_process(proc_kube: Kube) -> None:
    proc_kube.apply(probe_pod("sickly", env=[{"name": "HEALTHY_SECONDS", "value": "2"}],
                              livenessProbe={"httpGet": {"path": "/healthz", "port": 8080},
                                             "periodSeconds": 1, "failureThreshold": 2}))
    first = eventually(lambda: pod_processes().get("sickly"), timeout=20, what="a process")
    status = eventually(lambda: (s := container_status(proc_kube, "sickly"))
                        .get("restartCount", 0) >= 1 and s, timeout=30, what="a restart")
    assert status["lastState"]["terminated"]["message"] == "liveness probe failed"
    assert eventually(lambda: pod_processes().get("sickly") not in (None, first),
                      timeout=10, what="a new process")


def test_unknown_image_fails_visibly_and_other_namespaces_stay_on_kwok(
        proc_kube: Kube, kube: Kube, control_plane: ControlPlane) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web",
                                                          "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}
    proc_kube.apply(pod)
    kube.apply(pod)
    waiting = eventually(lambda: container_status(proc_kube, "web").get("state", {})
                         .get("waiting", {}).get("reason") == "ErrImagePull"
                         and container_status(proc_kube, "web")["state"]["waiting"],
                         timeout=20, what="ErrImagePull")
    assert "cannot run image 'nginx:1.27'" in waiting["message"]
    assert proc_kube.get("pod", "web")["spec"]["nodeName"] == "process-node"
    kube.run("wait", "--for=condition=Ready", "--timeout=30s", "pod/web")
    assert kube.get("pod", "web")["spec"]["nodeName"].startswith("kwok-node-")

    proc_kube.run("create", "service", "clusterip", "web", "--tcp=80:8080")
    eventually(lambda: slice_endpoints(proc_kube, "web"), what="the pod in the slice")
    for target, error in (("service/web", "has no ready endpoints (1 not ready)"),
                          ("service/gone", f"service {proc_kube.namespace}/gone not found"),
                          ("deployment/web", "want agent/NAME, pipeline/NAME or service/NAME")):
        call = atomicctl(control_plane, "call", target, "-n", proc_kube.namespace,
                         "--input", "{}")
        assert call.returncode in (1, 2) and error in call.stderr, call.stderr


def test_restarted_node_agent_adopts_live_pods_and_kills_deleted_ones(
        proc_kube: Kube, control_plane: ControlPlane) -> None:
    for name in ("kept", "dropped"):
        proc_kube.apply(probe_pod(name))
    for name in ("kept", "dropped"):
        proc_kube.run("wait", "--for=condition=Ready", "--timeout=30s", f"pod/{name}")
    pids = {name: pod_processes()[name] for name in ("kept", "dropped")}
    control_plane.kill_node_agent()
    try:
        assert {n: pod_processes().get(n) for n in pids} == pids  # they outlive the agent
        proc_kube.run("delete", "pod", "dropped", "--grace-period=0", "--force")
    finally:
        control_plane.start_node_agent()
    eventually(lambda: "dropped" not in pod_processes(), timeout=20,
               what="the deleted pod's process killed")
    assert pod_processes().get("kept") == pids["kept"]  # adopted, not restarted
    time.sleep(2)  # a few probe periods of the new agent
    status = container_status(proc_kube, "kept")
    assert status["ready"] and status["restartCount"] == 0, status
    proc_kube.run("delete", "pod", "kept", "--wait=true", "--timeout=30s")
    assert "kept" not in pod_processes()


def test_node_and_pods_marked_not_ready_come_back_within_a_status_period(
        proc_kube: Kube, control_plane: ControlPlane) -> None:
    """What an API server outage longer than the node monitor grace period leaves behind,
    written the way the node lifecycle controller writes it: every node condition Unknown,
    the pods' Ready False. Only the node itself sets them back, as a kubelet does, within
    its status period (10 s); before, the node stayed NotReady for good."""
    proc_kube.apply(probe_pod("steady"))
    proc_kube.run("wait", "--for=condition=Ready", "--timeout=30s", "pod/steady")
    lost = {"status": "Unknown", "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status."}
    control_plane.kubectl("patch", "node", NODE_NAME, "--subresource=status",
                          "--type=strategic", "-p", json.dumps({"status": {"conditions": [
                              {"type": kind, **lost} for kind in
                              ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")]}}))
    proc_kube.run("patch", "pod", "steady", "--subresource=status", "--type=strategic", "-p",
                  json.dumps({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}))
    assert node_condition(control_plane, "Ready")["status"] == "Unknown"
    started = time.monotonic()

    eventually(lambda: node_condition(control_plane, "Ready").get("status") == "True",
               timeout=15, what="the process node Ready again")
    eventually(lambda: pod_ready(proc_kube, "steady"), timeout=15, what="the pod Ready again")
    took = time.monotonic() - started
    assert took < 15, f"back after {took:.1f} s"
    conditions = {c["type"]: c["status"] for c in
                  control_plane_node(control_plane)["status"]["conditions"]}
    assert conditions == {"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False",
                          "PIDPressure": "False"}
    # The node lifecycle controller lifts the taints it put on the lost node.
    eventually(lambda: not [t for t in control_plane_node(control_plane)["spec"].get(
        "taints") or [] if t["key"].startswith("node.kubernetes.io/")], timeout=20,
        what="the node lifecycle controller's taints lifted")
    assert pod_ready(proc_kube, "steady")


def control_plane_node(cp: ControlPlane) -> dict[str, Any]:
    node: dict[str, Any] = json.loads(cp.kubectl("get", "node", NODE_NAME, "-o", "json").stdout)
    return node


def node_condition(cp: ControlPlane, kind: str) -> dict[str, Any]:
    return next((dict(c) for c in control_plane_node(cp)["status"].get("conditions") or []
                 if c["type"] == kind), {})


def pod_ready(kube: Kube, name: str) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in kube.get("pod", name).get("status", {}).get("conditions") or [])
