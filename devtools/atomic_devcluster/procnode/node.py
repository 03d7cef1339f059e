"""The Node object and its heartbeat: what makes the scheduler send pods here.

The node registers itself the way a kubelet does (kwok ignores it: no `kwok.x-k8s.io/node`
annotation), advertises a pod capacity this machine can hold (an agent runtime is about
100 MB), and renews its Lease so the node lifecycle controller keeps it Ready.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any

from atomic_devcluster.procnode import NODE_KIND_LABEL, TAINT_KEY
from atomic_devcluster.procnode.kubeapi import Api, ApiError
from atomic_devcluster.procnode.status import now

log = logging.getLogger("procnode.node")

RUNTIME_MEMORY_MB = 100
MAX_PODS = 40
LEASE_SECONDS = 40


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


def node_status(pods: int, host_ip: str) -> dict[str, Any]:
    # Requests are not reserved on a shared machine: CPU is advertised so that `pods`
    # runtimes of the default 100m request fit, not as the count of cores.
    cpu = str(max(os.cpu_count() or 1, (pods + 9) // 10))
    capacity = {"cpu": cpu, "memory": f"{pods * 256}Mi", "pods": str(pods)}
    stamp = now()
    conditions = [
        {"type": kind, "status": "False", "reason": f"KubeletHas{reason}",
         "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
        for kind, reason in (("MemoryPressure", "SufficientMemory"),
                             ("DiskPressure", "NoDiskPressure"),
                             ("PIDPressure", "SufficientPID"))
    ]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "message": "process node agent is posting ready status",
                       "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
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
    await api.request("PATCH", f"/api/v1/nodes/{name}/status",
                      {"status": node_status(pods, host_ip)},
                      content_type="application/merge-patch+json")
    log.info("node %s registered: %s pods", name, pods)


async def heartbeat(api: Api, name: str) -> None:
    """Renew the node's Lease every 10 s, forever."""
    path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
    while True:
        renew = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": renew}
        try:
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
        except (ApiError, OSError, TimeoutError) as err:
            log.warning("lease renewal failed: %s", err)
        await asyncio.sleep(10)
