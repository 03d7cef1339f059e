"""One container process: start it, find it again after a restart, signal it, await its end.

Each process leads its own session, so a signal reaches whatever it forked and the node
agent's own death does not take it along (a restarted agent adopts it). A pid is matched
with its start time from /proc, so a recycled pid is never mistaken for ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone (or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


@dataclass
class Process:
    pid: int
    ticks: int
    popen: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, argv: list[str], env: Mapping[str, str], cwd: Path, log: Path) -> Process:
        with log.open("ab") as out:
            popen = subprocess.Popen(argv, env=dict(env), cwd=cwd, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        ticks = start_ticks(popen.pid)
        return cls(popen.pid, ticks if ticks is not None else -1, popen)

    @classmethod
    def find(cls, pid: int, ticks: int) -> Process | None:
        """The process a previous node agent started, if it still runs."""
        return cls(pid, ticks) if start_ticks(pid) == ticks else None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return start_ticks(self.pid) == self.ticks

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    async def wait(self) -> int | None:
        """Wait for the end; the exit code, or None for an adopted process (not our child)."""
        if self.alive():
            loop = asyncio.get_running_loop()
            try:
                fd = os.pidfd_open(self.pid)
            except ProcessLookupError:
                fd = -1
            if fd >= 0:
                ended: asyncio.Future[None] = loop.create_future()

                def readable() -> None:
                    if not ended.done():
                        ended.set_result(None)

                loop.add_reader(fd, readable)
                try:
                    while self.alive():  # pidfd readiness is final; the loop guards zombies
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(asyncio.shield(ended), 1.0)
                finally:
                    loop.remove_reader(fd)
                    os.close(fd)
        if self.popen is not None:
            return self.popen.wait()
        return None

    async def stop(self, grace: float) -> int | None:
        """SIGTERM, up to `grace` seconds, then SIGKILL; the exit code as wait() gives it."""
        self.signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.wait(), timeout=max(grace, 0.01))
        except TimeoutError:
            self.signal(signal.SIGKILL)
            return await self.wait()
