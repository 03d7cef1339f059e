"""The Node object and its heartbeat: what makes the scheduler send pods here.

The node registers itself the way a kubelet does (kwok ignores it: no `kwok.x-k8s.io/node`
annotation), advertises a pod capacity this machine can hold (an agent runtime is about
100 MB), and keeps both of a kubelet's heartbeats: it renews its Lease every 10 s, so the
node lifecycle controller keeps it Ready, and it posts its status whenever the API's copy
is not what it would post (the controller marks a node whose Lease went stale `Ready:
Unknown`, and only the node itself ever sets it back), at least every 5 minutes, and at
once when the API server answers again after failed attempts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from atomic_devcluster.procnode import NODE_KIND_LABEL, TAINT_KEY
from atomic_devcluster.procnode.kubeapi import Api, ApiError
from atomic_devcluster.procnode.status import now

log = logging.getLogger("procnode.node")

RUNTIME_MEMORY_MB = 100
MAX_PODS = 40
LEASE_SECONDS = 40
STATUS_SECONDS = 10.0
"""How often the Lease is renewed and the node's status checked (the kubelet's
nodeStatusUpdateFrequency)."""
REPORT_SECONDS = 300.0
"""An unchanged status is posted anyway this often (the kubelet's nodeStatusReportFrequency)."""
RETRY_SECONDS = 1.0
"""After a failed attempt the next one comes this soon, so an API server that comes back
hears from the node within about a second, not a whole STATUS_SECONDS later."""
WANTED_CONDITIONS = {"MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False",
                     "Ready": "True"}


def default_pod_capacity() -> int:
    """As many ~100 MB runtimes as half the available memory holds, at most MAX_PODS."""
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
        meminfo = dict(line.split(":", 1) for line in lines)
        available_mb = int(meminfo["MemAvailable"].split()[0]) // 1024
    except (OSError, KeyError, ValueError):
        return 10
    return max(1, min(MAX_PODS, available_mb // 2 // RUNTIME_MEMORY_MB))


def node_manifest(name: str, cidr: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            NODE_KIND_LABEL: "process", "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr],
                 "taints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}]},
    }


def node_status(pods: int, host_ip: str, previous: list[dict[str, Any]] | None = None
                ) -> dict[str, Any]:
    """The whole status to post; a condition keeps its lastTransitionTime from `previous`
    (the API's copy) unless its status changes."""
    # Requests are not reserved on a shared machine: CPU is advertised so that `pods`
    # runtimes of the default 100m request fit, not as the count of cores.
    cpu = str(max(os.cpu_count() or 1, (pods + 9) // 10))
    capacity = {"cpu": cpu, "memory": f"{pods * 256}Mi", "pods": str(pods)}
    stamp = now()
    before = {c.get("type"): c for c in previous or []}

    def since(kind: str) -> str:
        old = before.get(kind)
        if old and old.get("status") == WANTED_CONDITIONS[kind]:
            return str(old.get("lastTransitionTime") or stamp)
        return stamp

    conditions = [
        {"type": kind, "status": "False", "reason": f"KubeletHas{reason}",
         "message": message, "lastHeartbeatTime": stamp, "lastTransitionTime": since(kind)}
        for kind, reason, message in (
            ("MemoryPressure", "SufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "NoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "SufficientPID", "kubelet has sufficient PID available"))
    ]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "message": "process node agent is posting ready status",
                       "lastHeartbeatTime": stamp, "lastTransitionTime": since("Ready")})
    return {
        "capacity": capacity, "allocatable": capacity, "conditions": conditions,
        "addresses": [{"type": "InternalIP", "address": host_ip},
                      {"type": "Hostname", "address": "localhost"}],
        "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux",
                     "kubeletVersion": "procnode", "kubeProxyVersion": "procnode",
                     "containerRuntimeVersion": "process://", "osImage": "local processes",
                     "kernelVersion": os.uname().release, "machineID": "", "systemUUID": "",
                     "bootID": ""},
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
    }


async def existing_cidr(api: Api, name: str) -> str | None:
    """The pod CIDR the Node already has (podCIDR cannot change once set), if it exists."""
    node = await api.get(f"/api/v1/nodes/{name}")
    cidr = (node or {}).get("spec", {}).get("podCIDR")
    return str(cidr) if cidr else None


def status_is_stale(node: dict[str, Any] | None) -> bool:
    """Whether the API's copy of the node's conditions is not what the node would post:
    e.g. `Ready: Unknown` from the node lifecycle controller after a stale Lease."""
    conditions = ((node or {}).get("status") or {}).get("conditions") or []
    posted = {c.get("type"): c.get("status") for c in conditions}
    return any(posted.get(kind) != status for kind, status in WANTED_CONDITIONS.items())


async def post_status(api: Api, name: str, pods: int, host_ip: str,
                      node: dict[str, Any] | None = None) -> None:
    previous = ((node or {}).get("status") or {}).get("conditions")
    await api.request("PATCH", f"/api/v1/nodes/{name}/status",
                      {"status": node_status(pods, host_ip, previous)},
                      content_type="application/merge-patch+json")


async def register(api: Api, name: str, cidr: str, pods: int, host_ip: str) -> None:
    manifest = node_manifest(name, cidr)
    try:
        await api.request("POST", "/api/v1/nodes", manifest)
    except ApiError as err:
        if err.status != 409:
            raise
        await api.request("PATCH", f"/api/v1/nodes/{name}",
                          {"metadata": {"labels": manifest["metadata"]["labels"]},
                           "spec": {"taints": manifest["spec"]["taints"]}},
                          content_type="application/merge-patch+json")
    await post_status(api, name, pods, host_ip)
    log.info("node %s registered: %s pods", name, pods)


async def renew_lease(api: Api, name: str) -> None:
    path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
    renew = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    spec = {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": renew}
    try:
        await api.request("PATCH", path, {"spec": spec},
                          content_type="application/merge-patch+json")
    except ApiError as err:
        if err.status != 404:
            raise
        await api.request(
            "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": name}, "spec": spec})


async def heartbeat(api: Api, name: str, pods: int, host_ip: str,
                    reconnected: Callable[[], None] = lambda: None,
                    interval: float = STATUS_SECONDS) -> None:
    """Forever: renew the Lease and post the status when the API's copy is stale.

    `reconnected` is called after the first round that succeeds following a failed one
    (the API server is back): the node agent re-checks its pods' statuses then, since the
    node lifecycle controller may have marked them unready meanwhile.
    """
    reported = time.monotonic()  # register() just posted it
    failing = False
    while True:
        await asyncio.sleep(RETRY_SECONDS if failing else interval)
        try:
            await renew_lease(api, name)
            node = await api.get(f"/api/v1/nodes/{name}")
            if failing or status_is_stale(node) or time.monotonic() - reported > REPORT_SECONDS:
                if status_is_stale(node):
                    log.info("node %s: the API shows it not Ready; posting Ready", name)
                await post_status(api, name, pods, host_ip, node)
                reported = time.monotonic()
        except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as err:
            if not failing:
                log.warning("node heartbeat failed, retrying every %gs: %s", RETRY_SECONDS,
                            err)
            failing = True
            continue
        if failing:
            log.info("node %s: the API server answers again; status posted", name)
            failing = False
            reconnected()
