"""Undo what containers leave in the kernel outside any directory: processes in the
kubelet's cgroups, mounts under the node's directories, and the cgroups themselves.

The kubelet (cgroupfs driver, cgroups per QoS class) puts every pod under `/kubepods` in
each cgroup v1 controller; runc puts each container below its pod. A stopped node must
leave none of them, nor a mount of a volume, a network namespace or a rootfs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
POD_CGROUP = "kubepods"


def _pod_cgroups() -> list[Path]:
    found: list[Path] = []
    for controller in CGROUP_ROOT.iterdir():
        top = controller / POD_CGROUP
        if top.is_dir():
            found += [Path(d) for d, _, _ in os.walk(top)]
    return found


def kill_pod_processes() -> int:
    """SIGKILL every process in the pods' cgroups; how many."""
    pids: set[int] = set()
    for cgroup in _pod_cgroups():
        try:
            pids |= {int(p) for p in (cgroup / "cgroup.procs").read_text().split()}
        except OSError:
            continue
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def remove_pod_cgroups(timeout: float = 10.0) -> list[Path]:
    """rmdir the pods' cgroups, deepest first; the ones that would not go."""
    deadline = time.monotonic() + timeout
    left = _pod_cgroups()
    while left and time.monotonic() < deadline:
        for cgroup in sorted(left, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                cgroup.rmdir()
        left = [c for c in _pod_cgroups() if c.exists()]
        if left:
            kill_pod_processes()
            time.sleep(0.2)
    return left


def unmount_under(*roots: Path) -> None:
    """Lazily unmount everything mounted below `roots`, deepest first."""
    prefixes = tuple(str(r.resolve()) + "/" for r in roots)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefixes):
            points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def kill_cmdline_containing(needle: str) -> int:
    """SIGKILL every process whose command line contains `needle` (containerd's shims)."""
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if needle in cmdline and int(entry.name) != os.getpid():
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed
