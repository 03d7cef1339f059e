"""Helpers for tests on the process node: the process table, steady load, test images."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent.parent
PROBE_SERVER = ROOT / "tests" / "support" / "probe_server.py"

TEST_IMAGES = {
    "test.local/crash:1": ["{python}", "-c", "import sys; print('boom'); sys.exit(3)"],
    "test.local/probe-server:1": ["{python}", str(PROBE_SERVER)],
}
"""Images the session's process node runs besides the agent runtime."""


def pod_processes(under: Path | None = None) -> dict[str, int]:
    """Pod name → pid of every process a process node runs, read from the process table.

    A pod process is known by the environment the node gives it (HOSTNAME is the pod's name,
    ATOMIC_AGENT_FS_ROOT its directory), whichever node agent started it; `under` keeps
    only those of the control plane whose work directory it is.
    """
    found: dict[str, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] == "Z":
            continue
        env = dict(e.decode(errors="replace").split("=", 1) for e in environ if b"=" in e)
        root = env.get("ATOMIC_AGENT_FS_ROOT")
        if root and "HOSTNAME" in env and (under is None or root.startswith(f"{under}/")):
            found[env["HOSTNAME"]] = int(proc.name)
    return found


@dataclass
class Load:
    """Requests in a loop from `clients` tasks through the node proxy, counted."""

    url: str
    proxy: str
    payload: dict[str, Any]
    clients: int = 4
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=60)

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        start = self.ok
        while self.ok - start < count:
            assert time.monotonic() < deadline, f"load stalled: {self.ok} ok, {self.failures}"
            time.sleep(0.05)

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(self._client(session) for _ in range(self.clients)))

    async def _client(self, session: aiohttp.ClientSession) -> None:
        while not self._stop.is_set():
            try:
                async with session.post(self.url, json=self.payload, proxy=self.proxy,
                                        timeout=aiohttp.ClientTimeout(total=30)) as resp:
                    body = await resp.text()
                    if resp.status == 200:
                        self.ok += 1
                    else:
                        self.failures.append(f"{resp.status}: {body[:200]}")
            except (aiohttp.ClientError, TimeoutError) as err:
                self.failures.append(f"{type(err).__name__}: {err}")
