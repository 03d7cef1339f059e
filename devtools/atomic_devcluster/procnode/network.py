"""Pod IPs of the process node, and where on this machine each one listens.

The API server refuses loopback addresses in EndpointSlices, so a pod's IP comes from the
node's pod CIDR (10.244.0.0/16), which is not routable here, and the pod listens on the
loopback twin of that IP (10.244.x.y → 127.244.x.y: all of 127.0.0.0/8 is loopback on
Linux, so every pod has its own address and the same port). The node proxy and the probes
translate; `twin()` is that one rule.
"""

from __future__ import annotations

import ipaddress

from atomic_devcluster.procnode import POD_CIDR

_NETWORK = ipaddress.IPv4Network(POD_CIDR)
_FIRST_HOST = 2  # .0 is the network, .1 the node itself


def twin(pod_ip: str) -> str:
    """The loopback address a pod IP of this node listens on; other addresses unchanged."""
    try:
        address = ipaddress.IPv4Address(pod_ip)
    except ValueError:
        return pod_ip
    if address not in _NETWORK:
        return pod_ip
    return str(ipaddress.IPv4Address((127 << 24) | (int(address) & 0x00FFFFFF)))


class Addresses:
    """Hands out pod IPs, never two alike, reusing freed ones lowest first."""

    def __init__(self) -> None:
        self._taken: set[int] = set()

    def take(self, ip: str) -> None:
        self._taken.add(int(ipaddress.IPv4Address(ip)))

    def allocate(self) -> str:
        index = _FIRST_HOST
        while int(_NETWORK[index]) in self._taken:
            index += 1
        value = int(_NETWORK[index])
        self._taken.add(value)
        return str(ipaddress.IPv4Address(value))

    def release(self, ip: str) -> None:
        self._taken.discard(int(ipaddress.IPv4Address(ip)))
