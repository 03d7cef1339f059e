"""The node's network on this machine: one bridge, the CNI configuration, and the cleanup of
what the kubelet, kube-proxy and the CNI plugins write into the kernel.

The bridge is made (with the gateway address) before the API server starts, because the
API server, the kubelet and DNS bind to that address: pods reach them there, and the API
server reaches the kubelet there (`kubectl logs`, `exec`). Pods get addresses from
host-local on the bridge; `isDefaultGateway` gives them a route to the node, and the
`firewall` plugin admits their traffic where an engine left FORWARD's policy at DROP. No
masquerading: nothing is routed off the machine.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

from atomic_devcluster.realnode import BRIDGE, GATEWAY, POD_SUBNET

_PREFIXES = ("KUBE-", "CNI-")
_TABLES = ("filter", "nat", "mangle")
_NFT_TABLES = (("ip", "kube-proxy"), ("ip6", "kube-proxy"))


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def make_bridge() -> None:
    """The bridge with the gateway's address, up; an old one (a crashed run) is replaced."""
    remove_bridge()
    prefix = POD_SUBNET.split("/")[1]
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{GATEWAY}/{prefix}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")


def remove_bridge() -> None:
    _ip("link", "delete", BRIDGE, check=False)


def write_cni_config(conf_dir: Path, ipam_dir: Path) -> None:
    conf_dir.mkdir(parents=True, exist_ok=True)
    conflist = {
        "cniVersion": "1.0.0", "name": "atomic",
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "isDefaultGateway": True,
             "hairpinMode": True, "ipMasq": False,
             "ipam": {"type": "host-local", "dataDir": str(ipam_dir),
                      "ranges": [[{"subnet": POD_SUBNET, "gateway": GATEWAY}]]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "firewall"},
        ],
    }
    (conf_dir / "10-atomic.conflist").write_text(json.dumps(conflist, indent=2))


def remove_rules() -> None:
    """Delete the chains and rules kube-proxy, the kubelet and the CNI plugins added.

    One real node runs on a machine at a time, so every KUBE-* and CNI-* chain is ours.
    """
    for family, table in _NFT_TABLES:
        subprocess.run(["nft", "delete", "table", family, table], capture_output=True,
                       check=False)
    for table in _TABLES:
        dump = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True,
                              check=False).stdout
        chains = [line[1:].split()[0] for line in dump.splitlines()
                  if line.startswith(":") and line[1:].startswith(_PREFIXES)]
        for line in dump.splitlines():
            words = shlex.split(line)
            if (line.startswith("-A ") and not words[1].startswith(_PREFIXES)
                    and any(w.startswith(_PREFIXES) for w in words[2:])):
                subprocess.run(["iptables", "-t", table, "-D", *words[1:]],
                               capture_output=True, check=False)
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True,
                           check=False)
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True,
                           check=False)
