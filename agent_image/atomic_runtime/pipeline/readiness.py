"""Whether every agent the pipeline calls has a ready endpoint, as seen through its Service.

A Service routes only to ready pods, so an agent's own /readyz answering through it means
at least one replica can take calls; no connection means none can. The runner polls in the
background and /readyz reads the last result, so probes stay instant.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

log = logging.getLogger("atomic_runtime.pipeline.readiness")


class AgentReadiness:
    def __init__(self, agents: dict[str, str], interval: float) -> None:
        self.agents = agents
        """Agent name → its Service's base URL."""
        self.interval = interval
        self.not_ready: dict[str, str] = {name: "not checked yet" for name in agents}
        """Agent name → why it is not ready (absent when it is)."""

    async def check(self, session: aiohttp.ClientSession) -> None:
        results = await asyncio.gather(*(self._probe(session, url)
                                         for url in self.agents.values()))
        previous = dict(self.not_ready)
        self.not_ready = {name: why for name, why in zip(self.agents, results, strict=True)
                          if why is not None}
        if self.not_ready != previous:
            log.info("agents checked", extra={"not_ready": self.not_ready})

    async def run(self, session: aiohttp.ClientSession) -> None:
        while True:
            await self.check(session)
            await asyncio.sleep(self.interval)

    async def _probe(self, session: aiohttp.ClientSession, url: str) -> str | None:
        timeout = aiohttp.ClientTimeout(total=min(2.0, self.interval))
        try:
            async with session.get(f"{url.rstrip('/')}/readyz", timeout=timeout) as answer:
                if answer.status == 200:
                    return None
                text = (await answer.text())[:80].strip()
                return f"/readyz answered {answer.status} {text}".rstrip()
        except aiohttp.ClientConnectionError:
            return "no ready endpoint (no connection)"
        except TimeoutError:
            return "/readyz did not answer in time"

    def summary(self) -> str:
        return "; ".join(f"{name}: {why}" for name, why in sorted(self.not_ready.items()))
