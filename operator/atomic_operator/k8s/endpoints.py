"""Which addresses serve a Service: the ready endpoints of its EndpointSlices.

This is how clients outside kube-proxy reach a Service (`atomicctl call`, and the dev
harness's node proxy that in-cluster clients use on the process node): the same rule the
kubelet-side proxies apply, in one place. A Service port maps to the EndpointSlice port of
the same name (its number is the resolved targetPort); an endpoint is used only while its
`conditions.ready` is true, which the EndpointSlice controller derives from the pod's
readiness and clears as soon as the pod is terminating.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from atomic_operator.k8s.client import Api

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class ServicePortNotFoundError(LookupError):
    """The Service does not exist or has no port with the asked number or name."""


@dataclass(frozen=True)
class Endpoint:
    """One ready address of a Service, with the container port behind the Service port."""

    address: str
    port: int
    pod: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"


def port_name(service: dict[str, Any], port: int | str | None) -> str:
    """The name of the Service port asked for by number or name (None: the only/first one)."""
    ports: list[dict[str, Any]] = service.get("spec", {}).get("ports") or []
    meta = service.get("metadata", {})
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    if not ports:
        raise ServicePortNotFoundError(f"service {where} has no ports")
    if port is None:
        return str(ports[0].get("name") or "")
    for entry in ports:
        if port in (entry.get("port"), entry.get("name")):
            return str(entry.get("name") or "")
    offered = ", ".join(f"{p.get('name') or '-'}:{p.get('port')}" for p in ports)
    raise ServicePortNotFoundError(f"service {where} has no port {port} (it has {offered})")


def ready_endpoints(slices: Iterable[dict[str, Any]], name: str) -> list[Endpoint]:
    """Ready addresses of the EndpointSlices' port called `name`, in a stable order."""
    found: dict[tuple[str, int], Endpoint] = {}
    for endpoint_slice in slices:
        if endpoint_slice.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
            continue
        number = next((p.get("port") for p in endpoint_slice.get("ports") or []
                       if (p.get("name") or "") == name), None)
        if number is None:
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            # Absent `ready` means ready (the API's own default for unknown state).
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            pod = (endpoint.get("targetRef") or {}).get("name")
            for address in endpoint.get("addresses") or []:
                found.setdefault((address, int(number)), Endpoint(address, int(number), pod))
    return [found[key] for key in sorted(found)]


async def service_endpoints(client: Api, namespace: str, service: str,
                            port: int | str | None = None
                            ) -> tuple[list[Endpoint], int]:
    """(ready endpoints, count of endpoints not ready) of a Service port, read from the API.

    Raises ServicePortNotFoundError when the Service or the port does not exist.
    """
    services = await client.list(f"/api/v1/namespaces/{namespace}/services")
    match = next((s for s in services if s["metadata"]["name"] == service), None)
    if match is None:
        raise ServicePortNotFoundError(f"service {namespace}/{service} not found")
    name = port_name(match, port)
    slices = await client.list(f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                               label_selector={SERVICE_NAME_LABEL: service})
    ready = ready_endpoints(slices, name)
    total = sum(len(e.get("addresses") or []) for s in slices for e in s.get("endpoints") or [])
    return ready, max(0, total - len(ready))
