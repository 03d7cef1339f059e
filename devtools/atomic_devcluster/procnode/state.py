"""What the node agent must remember across its own restarts: the processes it started.

One JSON file, rewritten atomically on every change: pod uid → namespace, name, pod IP,
pid and start ticks, restart count. A restarted agent adopts the processes whose pods still
exist and kills the others; `ControlPlane.stop()` reads it to kill whatever an agent that
died hard left behind.
"""

from __future__ import annotations

import json
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

from atomic_devcluster.procnode.process import Process


@dataclass
class PodRecord:
    namespace: str
    name: str
    pod_ip: str
    pid: int = 0
    ticks: int = 0
    restarts: int = 0
    started_at: str = ""


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.pods: dict[str, PodRecord] = {}
        if path.exists():
            raw = json.loads(path.read_text() or "{}")
            self.pods = {uid: PodRecord(**rec) for uid, rec in raw.get("pods", {}).items()}

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pods": {u: asdict(r) for u, r in self.pods.items()}},
                                  indent=1))
        tmp.replace(self.path)


def kill_recorded(path: Path) -> int:
    """SIGKILL every recorded process that still runs; how many there were."""
    if not path.exists():
        return 0
    killed = 0
    for record in StateFile(path).pods.values():
        process = Process.find(record.pid, record.ticks) if record.pid else None
        if process is not None:
            process.signal(signal.SIGKILL)
            killed += 1
    return killed
