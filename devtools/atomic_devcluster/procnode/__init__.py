"""The process node: a Node of the embedded cluster whose pods are local processes.

There is no container runtime on our machines, so the harness plays kubelet for one Node
that kwok does not manage (kwok takes only nodes annotated `kwok.x-k8s.io/node=fake`). The
node agent (`agent.py`, run as its own process by `ControlPlane(process_node=True)`) watches
the pods bound to it and runs each pod's container as a process of a known image
(`images.py`), with its env and volumes resolved through the API (`launch.py`), on a pod IP
of its own (`network.py`), probed like the kubelet probes (`worker.py`), with its status
written back (`status.py`); it remembers its processes in a state file so a restarted agent
adopts them (`state.py`). Its HTTP forward proxy (`proxy.py`) stands in for cluster DNS and
kube-proxy: processes reach `<service>.<namespace>.svc.cluster.local` through it.

Which pods land here: the node carries the taint `atomicagents.io/process-node` and the
label `atomicagents.io/node-kind=process`. A namespace opts in with two annotations that the
API server's PodNodeSelector and PodTolerationRestriction admission plugins turn into a
nodeSelector and a toleration on every pod created in it (`namespace_annotations()`), so
the operator's rendered pods stay as they are, and every other namespace keeps running on
kwok's fake nodes.
"""

from __future__ import annotations

import json

NODE_NAME = "process-node"
NODE_KIND_LABEL = "atomicagents.io/node-kind"
TAINT_KEY = "atomicagents.io/process-node"
NODE_SELECTOR_ANNOTATION = "scheduler.alpha.kubernetes.io/node-selector"
DEFAULT_TOLERATIONS_ANNOTATION = "scheduler.alpha.kubernetes.io/defaultTolerations"


def namespace_annotations() -> dict[str, str]:
    """Annotations that send every pod of a namespace to the process node."""
    toleration = {"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
    return {
        NODE_SELECTOR_ANNOTATION: f"{NODE_KIND_LABEL}=process",
        DEFAULT_TOLERATIONS_ANNOTATION: json.dumps([toleration]),
    }
