"""One pod on the process node, from binding to finalization: the kubelet's job for it.

Resolve the container's config (retrying while a Secret, ConfigMap or key is missing, with
the kubelet's waiting reasons), start the process on the pod's address, run its readiness
and liveness probes at their periods and thresholds, restart it when it exits or its
liveness fails (counting restarts, with CrashLoopBackOff's doubling delay between crashes),
and on deletion send SIGTERM, wait up to the grace period, SIGKILL, then delete the pod
with grace 0. Every change is written to the pod's status at once, so the controllers
(ReplicaSet, EndpointSlice, Deployment rollout) act on what the process really does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from atomic_devcluster.procnode.kubeapi import Api, ApiError
from atomic_devcluster.procnode.launch import Launch, LaunchError, NodeContext, resolve
from atomic_devcluster.procnode.network import twin
from atomic_devcluster.procnode.process import Process
from atomic_devcluster.procnode.state import PodRecord, StateFile
from atomic_devcluster.procnode.status import ContainerView, now, pod_status, status_differs

log = logging.getLogger("procnode.pod")

CONFIG_RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
"""Delays between attempts to resolve a pod's references (the kubelet retries too)."""
BACKOFF_RESET_SECONDS = 600


@dataclass(frozen=True)
class Probe:
    path: str
    port: int
    period: float
    timeout: float
    initial_delay: float
    failure_threshold: int
    success_threshold: int

    @classmethod
    def parse(cls, spec: Mapping[str, Any] | None, ports: Mapping[str, int]) -> Probe | None:
        if not spec:
            return None
        http = spec.get("httpGet")
        if http is None:  # exec and tcpSocket probes: treated as passing
            return None
        port = http.get("port")
        number = ports.get(port) if isinstance(port, str) else port
        if number is None:
            raise LaunchError("CreateContainerConfigError",
                              f"probe port {port!r} is not a named port of the container")
        return cls(path=http.get("path", "/"), port=int(number),
                   period=float(spec.get("periodSeconds", 10)),
                   timeout=float(spec.get("timeoutSeconds", 1)),
                   initial_delay=float(spec.get("initialDelaySeconds", 0)),
                   failure_threshold=int(spec.get("failureThreshold", 3)),
                   success_threshold=int(spec.get("successThreshold", 1)))


@dataclass
class Node:
    """What every worker shares."""

    api: Api
    context: NodeContext
    state: StateFile
    pods_dir: Path
    http: aiohttp.ClientSession
    backoff_base: float = 10.0
    backoff_cap: float = 300.0


class PodWorker:
    def __init__(self, node: Node, pod: dict[str, Any], record: PodRecord,
                 process: Process | None) -> None:
        self.node = node
        self.pod = pod
        self.uid: str = pod["metadata"]["uid"]
        self.record = record
        self.process = process
        container = pod["spec"]["containers"][0]
        self.view = ContainerView(name=container["name"], image=container.get("image", ""),
                                  restarts=record.restarts)
        if process is not None:  # adopted from a previous node agent
            self.view.state, self.view.reason = "running", ""
            self.view.started_at, self.view.pid = record.started_at, process.pid
            self.view.ever_started = True
        self.deleting = asyncio.Event()
        self.gone = False
        self.task: asyncio.Task[None] | None = None
        self._written: dict[str, Any] | None = None
        self._phase = "Running" if process is not None else "Pending"
        self._started = time.monotonic()

    @property
    def name(self) -> str:
        return f"{self.pod['metadata']['namespace']}/{self.pod['metadata']['name']}"

    @property
    def root(self) -> Path:
        meta = self.pod["metadata"]
        return self.node.pods_dir / f"{meta['namespace']}_{meta['name']}_{self.uid[:8]}"

    def update(self, pod: dict[str, Any]) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self.deleting.set()

    def vanish(self) -> None:
        """The pod object is gone (force-deleted): stop the process without ceremony."""
        self.gone = True
        self.deleting.set()

    # -- the lifecycle -----------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._lifecycle()
            await self._finalize()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s: worker failed", self.name)
            raise

    async def _lifecycle(self) -> None:
        crashes = 0
        while not self.deleting.is_set():
            if self.process is None:
                launch = await self._launch()
                if launch is None:
                    return  # deleted while waiting for its config
                try:
                    self._start(launch)
                except OSError as err:  # e.g. the mapped command does not exist
                    self.view.state, self.view.reason = "waiting", "RunContainerError"
                    self.view.message = f"{launch.argv[0]}: {err.strerror or err}"
                    await self._write()
                    if await self._sleep(self.node.backoff_base):
                        return
                    continue
            await self._write()
            outcome, code = await self._supervise()
            if outcome == "deleted":
                return
            self.process = None
            self.view.pid = 0
            if outcome == "liveness":
                self.view.ended(code, "Error")
                self.view.last_terminated = dict(self.view.last_terminated or {},
                                                 message="liveness probe failed")
                log.info("pod %s: liveness failed, restarting", self.name)
                crashes = 0
            else:
                self.view.ended(code)
                log.info("pod %s: process exited with %s", self.name, code)
                # Like the kubelet, forget the back-off once a container ran for 10 minutes.
                crashes = 1 if time.monotonic() - self._started > BACKOFF_RESET_SECONDS \
                    else crashes + 1
            if not self._restarts_after(code):
                self.view.state = "terminated"
                self._phase = "Succeeded" if code == 0 else "Failed"
                await self._write()
                await self.deleting.wait()
                return
            delay = 0.0 if crashes <= 1 else min(self.node.backoff_cap,
                                                 self.node.backoff_base * 2 ** (crashes - 2))
            if delay:
                meta = self.pod["metadata"]
                self.view.state, self.view.reason = "waiting", "CrashLoopBackOff"
                self.view.message = (f"back-off {delay:g}s restarting failed container="
                                     f"{self.view.name} pod={meta['name']}_{meta['namespace']}"
                                     f"({self.uid})")
                await self._write()
                if await self._sleep(delay):
                    return

    def _restarts_after(self, code: int | None) -> bool:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        return policy == "Always" or (policy == "OnFailure" and code != 0)

    async def _resolve(self) -> Launch:
        pod_ip = self.record.pod_ip
        return await resolve(self.node.api, self.pod, self.node.context, pod_ip, twin(pod_ip),
                             self.root)

    async def _launch(self) -> Launch | None:
        """Resolve until it works (None: the pod was deleted first)."""
        attempt = 0
        while not self.deleting.is_set():
            try:
                return await self._resolve()
            except LaunchError as err:
                if (self.view.reason, self.view.message) != (err.reason, err.message):
                    log.info("pod %s: %s", self.name, err)
                self.view.state, self.view.reason, self.view.message = ("waiting", err.reason,
                                                                        err.message)
                await self._write()
            except (ApiError, aiohttp.ClientError, TimeoutError) as err:
                log.warning("pod %s: reading its references failed, retrying: %s", self.name,
                            err)
            delay = CONFIG_RETRY_SECONDS[min(attempt, len(CONFIG_RETRY_SECONDS) - 1)]
            attempt += 1
            if await self._sleep(delay):
                return None
        return None

    def _start(self, launch: Launch) -> None:
        launch.materialize(self.root)
        if self.view.ever_started:
            self.view.restarts += 1
        self.process = Process.start(launch.argv, launch.env, self.root,
                                     self.root / "container.log")
        self._started = time.monotonic()
        started = now()
        self.view.state, self.view.reason, self.view.message = "running", "", ""
        self.view.started_at, self.view.pid, self.view.ready = started, self.process.pid, False
        self.view.ever_started = True
        self._phase = "Running"
        self.record.pid, self.record.ticks = self.process.pid, self.process.ticks
        self.record.restarts, self.record.started_at = self.view.restarts, started
        self.node.state.save()
        log.info("pod %s: started pid %s on %s", self.name, self.process.pid,
                 twin(self.record.pod_ip))

    async def _supervise(self) -> tuple[str, int | None]:
        """Until the process ends, its liveness fails or the pod is deleted."""
        assert self.process is not None
        container = self.pod["spec"]["containers"][0]
        ports = {p["name"]: int(p["containerPort"]) for p in container.get("ports") or []
                 if p.get("name")}
        broken = False
        try:
            readiness = Probe.parse(container.get("readinessProbe"), ports)
            liveness = Probe.parse(container.get("livenessProbe"), ports)
        except LaunchError as err:  # a probe on a port that does not exist never passes
            log.warning("pod %s: %s", self.name, err.message)
            readiness = liveness = None
            broken = True
        if readiness is None and not broken and not self.view.ready:
            self.view.ready = True
            await self._write()
        waits = {
            asyncio.ensure_future(self.process.wait()): "exited",
            asyncio.ensure_future(self.deleting.wait()): "deleted",
        }
        if readiness is not None:
            waits[asyncio.ensure_future(self._readiness(readiness))] = "never"
        if liveness is not None:
            waits[asyncio.ensure_future(self._liveness(liveness))] = "liveness"
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        first = next(iter(done))
        outcome = waits[first]
        if outcome == "exited":
            return outcome, first.result()
        if outcome == "liveness":
            return outcome, await self.process.stop(self._grace())
        return outcome, None

    async def _probe(self, probe: Probe) -> bool:
        url = f"http://{twin(self.record.pod_ip)}:{probe.port}{probe.path}"
        try:
            async with self.node.http.get(url, timeout=aiohttp.ClientTimeout(
                    total=probe.timeout)) as resp:
                await resp.read()
                return 200 <= resp.status < 400
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def _readiness(self, probe: Probe) -> None:
        await asyncio.sleep(probe.initial_delay)
        successes = failures = 0
        while True:
            ok = await self._probe(probe)
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if ok and not self.view.ready and successes >= probe.success_threshold:
                self.view.ready = True
                await self._write()
            elif not ok and self.view.ready and failures >= probe.failure_threshold:
                self.view.ready = False
                await self._write()
            await asyncio.sleep(probe.period)

    async def _liveness(self, probe: Probe) -> None:
        await asyncio.sleep(probe.initial_delay)
        failures = 0
        while failures < probe.failure_threshold:
            await asyncio.sleep(probe.period)
            failures = 0 if await self._probe(probe) else failures + 1

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless the pod is deleted first; True when it was."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.deleting.wait(), seconds)
        return self.deleting.is_set()

    def _grace(self) -> float:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return float(grace)

    # -- the end -----------------------------------------------------------------------

    async def _finalize(self) -> None:
        """Stop the process (SIGTERM, grace, SIGKILL), then remove the pod and its traces."""
        if self.process is not None:
            grace = 0.0 if self.gone else self._grace()
            log.info("pod %s: stopping pid %s (grace %gs)", self.name, self.process.pid, grace)
            await self.process.stop(grace)
            self.process = None
        if not self.gone:
            meta = self.pod["metadata"]
            path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
            with contextlib.suppress(ApiError):
                await self.node.api.request("DELETE", path, {
                    "gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}})
        self.node.state.pods.pop(self.uid, None)
        self.node.state.save()
        shutil.rmtree(self.root, ignore_errors=True)
        log.info("pod %s: finalized", self.name)

    async def kill_now(self) -> None:
        """The node shuts down: stop the process quickly, keep the pod."""
        if self.process is not None:
            await self.process.stop(1.0)

    async def resync(self) -> None:
        """Rewrite the status when the API's copy says something else than this worker."""
        if self.gone or self.deleting.is_set():
            return
        wanted = pod_status(self.pod, self.view, self.record.pod_ip, self.node.context.host_ip,
                            self._phase)
        if status_differs(self.pod.get("status"), wanted):
            log.info("pod %s: the API's status is not the node's; rewriting it", self.name)
            self._written = None
            await self._write()

    async def _write(self) -> None:
        if self.gone:
            return
        status = pod_status(self.pod, self.view, self.record.pod_ip, self.node.context.host_ip,
                            self._phase)
        comparable = {k: v for k, v in status.items() if k != "startTime"}
        if comparable == self._written:
            return
        meta = self.pod["metadata"]
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status"
        try:
            updated = await self.node.api.request(
                "PATCH", path, {"status": status},
                content_type="application/merge-patch+json")
        except ApiError as err:
            if err.status == 404:
                self.vanish()
                return
            log.warning("pod %s: status write failed: %s", self.name, err)
            return
        self._written = comparable
        self.pod["status"] = updated.get("status", status)
