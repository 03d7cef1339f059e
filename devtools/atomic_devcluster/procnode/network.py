"""Pod IPs of the process node, and where on this machine each one listens.

The API server refuses loopback addresses in EndpointSlices, so a pod's IP comes from the
node's pod CIDR, which is not routable here, and the pod listens on the loopback twin of
that IP (10.X.y.z → 127.X.y.z: all of 127.0.0.0/8 is loopback on Linux, so every pod has
its own address and the same ports). The node proxy and the probes translate; `twin()` is
that one rule.

Several clusters may run on one machine at once (parallel test sessions, `make run`), and
their twins must not collide: each node agent claims a /16 of 10.128.0.0/9 (clear of kwok's
10.0.0.0/16 and the Services' 10.96.0.0/16) by holding a lock file for it while it lives.
A restarted agent claims the CIDR its Node already has.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import tempfile
from pathlib import Path
from typing import IO

POD_SUPERNET = ipaddress.IPv4Network("10.128.0.0/9")
_FIRST_HOST = 2  # .0 is the network, .1 the node itself
_LOCKS = Path(tempfile.gettempdir()) / "atomic-procnode-cidrs"


def twin(pod_ip: str) -> str:
    """The loopback address a process-node pod IP listens on; other addresses unchanged."""
    try:
        address = ipaddress.IPv4Address(pod_ip)
    except ValueError:
        return pod_ip
    if address not in POD_SUPERNET:
        return pod_ip
    return str(ipaddress.IPv4Address((127 << 24) | (int(address) & 0x00FFFFFF)))


def claim_cidr(preferred: str | None = None) -> tuple[ipaddress.IPv4Network, IO[bytes]]:
    """A /16 of the supernet no other live node agent on this machine holds, and its lock.

    Keep the returned file open for as long as the CIDR is used: the lock dies with it.
    """
    _LOCKS.mkdir(parents=True, exist_ok=True)
    candidates = list(POD_SUPERNET.subnets(new_prefix=16))[:-1]  # 10.255/16 stays unused
    if preferred is not None:
        wanted = ipaddress.IPv4Network(preferred)
        candidates = [wanted] if wanted in candidates else []
    for network in candidates:
        lock = (_LOCKS / f"{network.network_address}.lock").open("wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        lock.write(str(os.getpid()).encode())
        lock.flush()
        return network, lock
    raise RuntimeError(f"no free pod CIDR in {POD_SUPERNET} (wanted {preferred or 'any'}): "
                       "another process node holds it")


class Addresses:
    """Hands out pod IPs of one CIDR, never two alike, reusing freed ones lowest first."""

    def __init__(self, network: ipaddress.IPv4Network) -> None:
        self.network = network
        self._taken: set[int] = set()

    def __contains__(self, ip: str) -> bool:
        try:
            return ipaddress.IPv4Address(ip) in self.network
        except ValueError:
            return False

    def take(self, ip: str) -> None:
        self._taken.add(int(ipaddress.IPv4Address(ip)))

    def allocate(self) -> str:
        index = _FIRST_HOST
        while int(self.network[index]) in self._taken:
            index += 1
        value = int(self.network[index])
        self._taken.add(value)
        return str(ipaddress.IPv4Address(value))

    def release(self, ip: str) -> None:
        self._taken.discard(int(ipaddress.IPv4Address(ip)))
