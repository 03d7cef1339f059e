"""The pod status the kubelet would write, from what the worker observed: pure functions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerView:
    """The container as the worker sees it; becomes containerStatuses[0]."""

    name: str
    image: str
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: str = ""
    finished_at: str = ""
    exit_code: int = 0
    pid: int = 0
    ready: bool = False
    restarts: int = 0
    last_terminated: dict[str, Any] | None = None
    ever_started: bool = False

    def status(self) -> dict[str, Any]:
        state: dict[str, Any]
        if self.state == "running":
            state = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            state = {"terminated": self._terminated()}
        else:
            state = {"waiting": {"reason": self.reason, **({"message": self.message}
                                                            if self.message else {})}}
        out: dict[str, Any] = {
            "name": self.name, "image": self.image, "imageID": f"process://{self.image}",
            "ready": self.ready, "started": self.state == "running",
            "restartCount": self.restarts, "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if self.pid:
            out["containerID"] = f"process://{self.pid}"
        return out

    def _terminated(self) -> dict[str, Any]:
        return {"exitCode": self.exit_code, "reason": self.reason or "Error",
                "startedAt": self.started_at or None, "finishedAt": self.finished_at or now(),
                **({"message": self.message} if self.message else {}),
                **({"containerID": f"process://{self.pid}"} if self.pid else {})}

    def ended(self, exit_code: int | None, reason: str = "") -> None:
        """The process ended: remember it as lastState, as the kubelet does."""
        code = 137 if exit_code is None or exit_code < 0 else exit_code
        self.exit_code = code
        self.reason = reason or ("Completed" if code == 0 else "Error")
        self.finished_at = now()
        self.last_terminated = self._terminated()
        self.ready = False


def _conditions(previous: list[dict[str, Any]], wanted: dict[str, bool], container: str
                ) -> list[dict[str, Any]]:
    """Conditions with lastTransitionTime kept unless the status flips."""
    before = {c["type"]: c for c in previous}
    out = []
    for kind, ok in wanted.items():
        status = "True" if ok else "False"
        old = before.get(kind)
        since = old["lastTransitionTime"] if old and old.get("status") == status else now()
        entry = {"type": kind, "status": status, "lastTransitionTime": since,
                 "lastProbeTime": None}
        if not ok and kind in ("Ready", "ContainersReady"):
            entry["reason"] = "ContainersNotReady"
            entry["message"] = f"containers with unready status: [{container}]"
        out.append(entry)
    if "PodScheduled" in before:
        out.append(before["PodScheduled"])
    return out


def pod_status(pod: dict[str, Any], container: ContainerView, pod_ip: str, host_ip: str,
               phase: str) -> dict[str, Any]:
    """The whole status a merge patch writes (lists are replaced, as they must be)."""
    previous = pod.get("status") or {}
    view = container.status()
    view["name"] = container.name
    message = ""
    if container.state == "waiting" and container.reason not in ("", "ContainerCreating"):
        message = container.message
    ready = container.ready and container.state == "running"
    return {
        "phase": phase,
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
        "startTime": previous.get("startTime") or now(),
        "conditions": _conditions(previous.get("conditions") or [], {
            "PodReadyToStartContainers": True, "Initialized": True,
            "ContainersReady": ready, "Ready": ready}, container.name),
        "containerStatuses": [view],
        "message": message or None,
        "qosClass": previous.get("qosClass"),
    }


def _essence(status: dict[str, Any]) -> tuple[Any, ...]:
    """What a status says, without its timestamps and messages."""
    conditions = sorted((str(c.get("type")), str(c.get("status")))
                        for c in status.get("conditions") or [])
    containers = sorted((str(c.get("name")), bool(c.get("ready")), c.get("restartCount"),
                         tuple(sorted((c.get("state") or {}).keys())))
                        for c in status.get("containerStatuses") or [])
    return status.get("phase"), status.get("podIP"), tuple(conditions), tuple(containers)


def status_differs(current: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """Whether the API's copy of a pod's status says something else than the node would
    write: the node lifecycle controller marked it unready, or a write was lost while the
    API server was away (the kubelet's status manager checks the same)."""
    return _essence(current or {}) != _essence(wanted)
