"""The one rule for a Service's ready endpoints, used by atomicctl call and the node proxy."""

from __future__ import annotations

from typing import Any

import pytest

from atomic_operator.k8s.endpoints import (
    Endpoint,
    ServicePortNotFoundError,
    port_name,
    ready_endpoints,
)

SERVICE = {"metadata": {"name": "echo", "namespace": "ns"},
           "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"},
                              {"name": "metrics", "port": 9090}]}}


def endpoint_slice(*endpoints: tuple[str, bool | None], port: int = 8080) -> dict[str, Any]:
    return {"addressType": "IPv4",
            "ports": [{"name": "http", "port": port}, {"name": "metrics", "port": 9090}],
            "endpoints": [{"addresses": [address], "targetRef": {"name": f"pod-{address}"},
                           **({"conditions": {"ready": ready}} if ready is not None else {})}
                          for address, ready in endpoints]}


def test_a_service_port_is_found_by_number_or_name() -> None:
    assert port_name(SERVICE, 80) == "http"
    assert port_name(SERVICE, "metrics") == "metrics"
    assert port_name(SERVICE, None) == "http"
    with pytest.raises(ServicePortNotFoundError, match=r"no port 81 .*http:80, metrics:9090"):
        port_name(SERVICE, 81)


def test_only_ready_endpoints_of_the_named_port_in_a_stable_order() -> None:
    slices = [endpoint_slice(("10.244.0.3", True), ("10.244.0.4", False)),
              endpoint_slice(("10.244.0.2", None), ("10.244.0.3", True))]
    assert ready_endpoints(slices, "http") == [
        Endpoint("10.244.0.2", 8080, "pod-10.244.0.2"),
        Endpoint("10.244.0.3", 8080, "pod-10.244.0.3")]
    assert [e.port for e in ready_endpoints(slices, "metrics")] == [9090, 9090]
    assert ready_endpoints(slices, "grpc") == []
    assert ready_endpoints([endpoint_slice(("10.244.0.5", False))], "http") == []
