"""The node agent: registers the process node, runs its pods, serves its proxy.

It watches the pods bound to its node and keeps one worker per pod. At start it reads the
state file a previous agent left: a process whose pod still exists is adopted (its worker
probes it and carries on), one whose pod is gone is killed. Like the kubelet's status
manager, it checks every 10 s (and at once when the API server is back after an outage)
that each pod's status in the API is what its worker last saw, and rewrites it if not:
the node lifecycle controller marks every pod of a node it thinks lost unready. On
SIGTERM (the harness stopping) it kills its processes quickly and leaves the pods to the
API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from atomic_devcluster.procnode.images import ImageMap
from atomic_devcluster.procnode.kubeapi import Api
from atomic_devcluster.procnode.launch import NodeContext
from atomic_devcluster.procnode.network import Addresses, claim_cidr
from atomic_devcluster.procnode.node import STATUS_SECONDS, existing_cidr, heartbeat, register
from atomic_devcluster.procnode.process import Process
from atomic_devcluster.procnode.proxy import NodeProxy, ServiceDirectory
from atomic_devcluster.procnode.state import PodRecord, StateFile
from atomic_devcluster.procnode.worker import Node, PodWorker

log = logging.getLogger("procnode.agent")

STATE_FILE = "state.json"
HOST_IP = "127.0.0.1"


@dataclass(frozen=True)
class AgentOptions:
    kubeconfig: Path
    state_dir: Path
    node_name: str
    proxy_port: int
    pods: int
    images: ImageMap
    backoff_base: float = 10.0


class NodeAgent:
    def __init__(self, options: AgentOptions) -> None:
        self.options = options
        self.workers: dict[str, PodWorker] = {}
        self.state = StateFile(options.state_dir / STATE_FILE)
        self.adoptable: dict[str, Process] = {}

    async def run(self) -> None:
        opts = self.options
        (opts.state_dir / "pods").mkdir(parents=True, exist_ok=True)
        api = Api.from_kubeconfig(opts.kubeconfig)
        cidr, lock = claim_cidr(await existing_cidr(api, opts.node_name))
        self.addresses = Addresses(cidr)
        directory = ServiceDirectory(api)
        proxy = NodeProxy(directory)
        runner = await proxy.serve(HOST_IP, opts.proxy_port)
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                     trust_env=False)
        context = NodeContext(node_name=opts.node_name, host_ip=HOST_IP,
                              proxy_url=f"http://{HOST_IP}:{opts.proxy_port}",
                              images=opts.images)
        self.node = Node(api=api, context=context, state=self.state,
                         pods_dir=opts.state_dir / "pods", http=http,
                         backoff_base=opts.backoff_base)
        self._recover()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await register(api, opts.node_name, str(cidr), opts.pods, HOST_IP)
        resync = asyncio.Event()
        background = [asyncio.ensure_future(c) for c in (
            heartbeat(api, opts.node_name, opts.pods, HOST_IP, reconnected=resync.set),
            directory.run(), self._watch_pods(), self._resync_pods(resync))]
        proxy.ready.set()
        log.info("process node %s up; proxy on %s:%s", opts.node_name, HOST_IP,
                 opts.proxy_port)
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([stopping, *background], return_when=asyncio.FIRST_COMPLETED)
        for task in background:
            if task.done() and not task.cancelled() and task.exception():
                log.error("node agent task failed", exc_info=task.exception())
            task.cancel()
        await self._shutdown()
        await runner.cleanup()
        await proxy.close()
        await http.close()
        await api.close()
        lock.close()

    def _recover(self) -> None:
        """Adopt what a previous agent left running; forget what no longer runs."""
        for uid, record in list(self.state.pods.items()):
            self.addresses.take(record.pod_ip)
            process = Process.find(record.pid, record.ticks) if record.pid else None
            if process is not None:
                self.adoptable[uid] = process
        if self.state.pods:
            log.info("state file: %s pods, %s processes still running",
                     len(self.state.pods), len(self.adoptable))

    async def _watch_pods(self) -> None:
        selector = {"fieldSelector": f"spec.nodeName={self.options.node_name}"}
        async for kind, obj in self.node.api.watch("/api/v1/pods", selector):
            if kind == "SYNC":
                pods = {p["metadata"]["uid"]: p for p in obj["items"]}
                for uid, worker in list(self.workers.items()):
                    if uid not in pods:
                        worker.vanish()
                for uid in list(self.state.pods):
                    if uid not in pods and uid not in self.workers:
                        await self._orphan(uid)
                for pod in pods.values():
                    self._pod(pod)
            elif kind == "DELETED":
                gone = self.workers.get(obj["metadata"]["uid"])
                if gone is not None:
                    gone.vanish()
                elif obj["metadata"]["uid"] in self.state.pods:
                    await self._orphan(obj["metadata"]["uid"])
            else:
                self._pod(obj)

    async def _resync_pods(self, now: asyncio.Event) -> None:
        """Every STATUS_SECONDS, or when `now` is set: put back any pod status the API
        lost or someone else changed."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(now.wait(), STATUS_SECONDS)
            now.clear()
            for worker in list(self.workers.values()):
                await worker.resync()

    def _pod(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        existing = self.workers.get(uid)
        if existing is not None:
            existing.update(pod)
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp"):
            return  # finished before this agent started: nothing to run
        record = self.state.pods.get(uid)
        if record is None:
            record = PodRecord(namespace=pod["metadata"]["namespace"],
                               name=pod["metadata"]["name"], pod_ip=self._pod_ip(pod))
            self.state.pods[uid] = record
            self.state.save()
        worker = PodWorker(self.node, pod, record, self.adoptable.pop(uid, None))
        worker.update(pod)
        self.workers[uid] = worker
        worker.task = asyncio.ensure_future(self._run_worker(worker))

    def _pod_ip(self, pod: dict[str, Any]) -> str:
        """The IP the pod already reports (it keeps it across agent restarts), or a new one."""
        current = (pod.get("status") or {}).get("podIP")
        if current and current in self.addresses:
            self.addresses.take(current)
            return str(current)
        return self.addresses.allocate()

    async def _run_worker(self, worker: PodWorker) -> None:
        try:
            await worker.run()
        finally:
            self.workers.pop(worker.uid, None)
            if worker.uid not in self.state.pods:
                self.addresses.release(worker.record.pod_ip)

    async def _orphan(self, uid: str) -> None:
        """A recorded process whose pod is gone: kill it and forget it."""
        record = self.state.pods.pop(uid)
        process = self.adoptable.pop(uid, None)
        if process is not None:
            log.info("killing pid %s of deleted pod %s/%s", process.pid, record.namespace,
                     record.name)
            await process.stop(1.0)
        self.addresses.release(record.pod_ip)
        self.state.save()

    async def _shutdown(self) -> None:
        workers = list(self.workers.values())
        for worker in workers:
            if worker.task is not None:
                worker.task.cancel()
        await asyncio.gather(*(w.task for w in workers if w.task), return_exceptions=True)
        await asyncio.gather(*(w.kill_now() for w in workers), return_exceptions=True)
        for process in self.adoptable.values():
            with contextlib.suppress(Exception):
                await process.stop(1.0)
        self.state.pods.clear()
        self.state.save()
        log.info("node agent stopped; %s processes stopped", len(workers))
