"""The real node: a kubelet and kube-proxy built from the control plane's pinned sources,
containerd as the container runtime, CNI plugins, a locally made pause image and CoreDNS.

What ships (the images, the chart's securityContext) is proven here: pods are real
containers on a bridge inside this machine, in network namespaces containerd makes, and the
runtime enforces each pod's securityContext. Nothing is routed off the machine. The
settings this kernel (cgroup v1 with cgroup2 beside it, no systemd, no CAP_SYS_RESOURCE in
the bounding set) needs are written down where they are set: `kubelet.py`,
`containerd.py`, `network.py`.

One real node runs on a machine at a time (it owns the bridge and the pod subnet); a lock
in the cache says who has it.
"""

from __future__ import annotations

NODE_NAME = "real-node"
BRIDGE = "atomic0"
POD_SUBNET = "10.244.0.0/24"
GATEWAY = "10.244.0.1"  # the bridge's address: the API server, the kubelet and DNS bind here
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "atomic.local/pause:3.10"

__all__ = ["BRIDGE", "CLUSTER_DOMAIN", "GATEWAY", "NODE_NAME", "PAUSE_IMAGE", "POD_SUBNET"]
