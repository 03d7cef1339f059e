"""The node's HTTP forward proxy: cluster DNS and kube-proxy for processes on this machine.

Services' ClusterIPs route nowhere here, and pod IPs only through their loopback twins. Every
process on the node gets HTTP_PROXY pointing here (and NO_PROXY=127.0.0.1,localhost), so an
unchanged in-cluster client calling `http://<service>.<namespace>.svc.cluster.local/run`
(aiohttp with trust_env=True, httpx, requests) is served: the proxy picks a ready endpoint
of the Service from its EndpointSlices, round-robin, with `atomic_operator.k8s.endpoints`
(the same rule as `atomicctl call`), and forwards the request. A request to a pod IP goes to
that pod's twin; any other host is forwarded as it is. Services and EndpointSlices are
watched, so a pod that stops being ready gets no new request from the next one on.

Each request is forwarded on its own (pooled upstream connections), never as a byte pipe: a
pod that closes its idle keep-alive connections while draining costs the client nothing,
and a connection refused before the request was sent is retried on the next endpoint.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import defaultdict
from typing import Any

import aiohttp
from aiohttp import web

from atomic_devcluster.procnode.kubeapi import Api
from atomic_devcluster.procnode.network import twin
from atomic_operator.k8s.endpoints import (
    SERVICE_NAME_LABEL,
    Endpoint,
    ServicePortNotFoundError,
    port_name,
    ready_endpoints,
)

log = logging.getLogger("procnode.proxy")

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
               "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
               "content-length"}
_ATTEMPTS = 3


def service_of(host: str) -> tuple[str, str] | None:
    """(namespace, service) for `<svc>.<ns>.svc[.cluster.local]`, else None."""
    parts = host.rstrip(".").lower().split(".")
    if (len(parts) == 3 and parts[2] == "svc") or parts[2:] == ["svc", "cluster", "local"]:
        return parts[1], parts[0]
    return None


class ServiceDirectory:
    """Services and EndpointSlices of the whole cluster, kept current by watches."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.services: dict[tuple[str, str], dict[str, Any]] = {}
        self.slices: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
        self.synced = asyncio.Event()
        self._synced: set[str] = set()
        self._turns: dict[tuple[str, str, str], itertools.count[int]] = {}

    async def run(self) -> None:
        await asyncio.gather(self._watch_services(), self._watch_slices())

    def _mark(self, what: str) -> None:
        self._synced.add(what)
        if len(self._synced) == 2:
            self.synced.set()

    async def _watch_services(self) -> None:
        async for kind, obj in self.api.watch("/api/v1/services"):
            if kind == "SYNC":
                self.services = {_key(s): s for s in obj["items"]}
                self._mark("services")
            elif kind == "DELETED":
                self.services.pop(_key(obj), None)
            else:
                self.services[_key(obj)] = obj

    async def _watch_slices(self) -> None:
        async for kind, obj in self.api.watch("/apis/discovery.k8s.io/v1/endpointslices"):
            if kind == "SYNC":
                self.slices.clear()
                for item in obj["items"]:
                    self._slice(item, keep=True)
                self._mark("slices")
            else:
                self._slice(obj, keep=kind != "DELETED")

    def _slice(self, obj: dict[str, Any], keep: bool) -> None:
        meta = obj["metadata"]
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if not service:
            return
        group = self.slices[(meta["namespace"], service)]
        if keep:
            group[meta["name"]] = obj
        else:
            group.pop(meta["name"], None)

    def endpoints(self, namespace: str, service: str, port: int) -> list[Endpoint]:
        """Ready endpoints, rotated so consecutive calls start at the next one."""
        found = self.services.get((namespace, service))
        if found is None:
            raise ServicePortNotFoundError(f"service {namespace}/{service} not found")
        name = port_name(found, port)
        ready = ready_endpoints(self.slices.get((namespace, service), {}).values(), name)
        if not ready:
            return []
        turn = next(self._turns.setdefault((namespace, service, name), itertools.count()))
        start = turn % len(ready)
        return ready[start:] + ready[:start]


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


class NodeProxy:
    def __init__(self, directory: ServiceDirectory) -> None:
        self.directory = directory
        self.session: aiohttp.ClientSession | None = None
        self.ready = asyncio.Event()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        url = request.url
        if request.raw_path.startswith("/"):  # origin-form: addressed to the proxy itself
            if url.path == "/healthz":
                ok = self.ready.is_set() and self.directory.synced.is_set()
                return web.Response(status=200 if ok else 503, text="ok" if ok else "starting")
            return web.Response(status=400, text="a forward proxy: send absolute URLs\n")
        host, port = url.host or "", url.port or 80
        service = service_of(host)
        targets: list[tuple[str, int]]
        if service is not None:
            try:
                ready = self.directory.endpoints(*service, port)
            except ServicePortNotFoundError as err:
                return web.Response(status=502, text=f"{err}\n")
            if not ready:
                return web.Response(status=503, text=f"no ready endpoints for service "
                                                     f"{service[0]}/{service[1]} port {port}\n")
            targets = [(twin(e.address), e.port) for e in ready]
        else:
            targets = [(twin(host), port)]
        return await self._forward(request, targets)

    async def _forward(self, request: web.BaseRequest, targets: list[tuple[str, int]]
                       ) -> web.StreamResponse:
        assert self.session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        last = ""
        for address, port in itertools.islice(itertools.cycle(targets), _ATTEMPTS):
            target = f"http://{address}:{port}{request.rel_url}"
            try:
                async with self.session.request(request.method, target, data=body,
                                                headers=headers, allow_redirects=False) as up:
                    data = await up.read()
                    out = {k: v for k, v in up.headers.items() if k.lower() not in _HOP_BY_HOP}
                    return web.Response(status=up.status, body=data, headers=out)
            except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as err:
                # Not sent (refused) or not read (an idle connection the pod closed): the
                # request had no effect there, so the next endpoint may take it.
                last = f"{address}:{port}: {err}"
                log.info("retrying %s %s after %s", request.method, request.url, last)
        return web.Response(status=502, text=f"upstream failed: {last}\n")

    async def serve(self, host: str, port: int) -> web.ServerRunner:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            auto_decompress=False, trust_env=False)
        runner = web.ServerRunner(web.Server(self.handle), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port, backlog=1024).start()
        return runner

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
