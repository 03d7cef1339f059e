"""An embedded Kubernetes control plane for tests and local runs, built from upstream sources.

There is no container runtime on our machines, so instead of kind we run the real binaries
(etcd, kube-apiserver, kube-controller-manager, kube-scheduler) on 127.0.0.1 the way
controller-runtime's envtest does, plus kwok so that Pods of Deployments become Running and
Ready on fake nodes, and optionally the process node (`procnode/`), whose pods are real
local processes. `build` compiles what is missing into a cache outside the repository;
`ControlPlane` starts and stops one instance. A dev tool: it is not in the wheel or the
images, and only `atomicctl dev` (from a checkout) imports it.
"""

from atomic_devcluster.build import ensure_binaries
from atomic_devcluster.cluster import ControlPlane
from atomic_devcluster.versions import Versions

__all__ = ["ControlPlane", "Versions", "ensure_binaries"]
