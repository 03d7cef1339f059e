"""Fetch the Ready pods' /metrics concurrently, with a short timeout, and keep the readings
that turn counters into rates.

A pod that does not answer keeps its last good sample, with the time it was taken: the rule
counts a sample older than three intervals as missing, so one slow scrape is not a hole and
a dead endpoint is never read as "no load".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import aiohttp

from atomic_operator.autoscaler.decision import PodSample
from atomic_operator.autoscaler.metrics import Reading, parse, sample
from atomic_operator.metrics import AUTOSCALER_SCRAPE_FAILURES


@dataclass(frozen=True, slots=True)
class Target:
    """One Ready pod to read: its name and its metrics URL."""

    pod: str
    url: str


@dataclass(frozen=True, slots=True)
class _Last:
    at: float
    reading: Reading
    sample: PodSample


class Scraper:
    """Readings of one agent's pods between ticks; one instance per autoscaled agent.

    ``clock`` is injectable so the times written into samples are the ones the rule
    compares with its ``now``.
    """

    def __init__(self, session: aiohttp.ClientSession, timeout: float = 1.0,
                 cpu_cores: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.cpu_cores = cpu_cores
        self.clock = clock
        self._last: dict[str, _Last] = {}
        self.failures = 0
        """Scrapes that failed, for the operator's own metrics."""

    async def _fetch(self, target: Target) -> tuple[float, Reading] | None:
        try:
            async with self.session.get(target.url, timeout=self.timeout) as response:
                if response.status != 200:
                    return None
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return self.clock(), parse(text)

    async def scrape(self, targets: Iterable[Target]) -> tuple[PodSample, ...]:
        """One sample per target: fresh when it answered, its last good one (or an empty
        one) when it did not. Pods no longer listed are forgotten."""
        targets = list(targets)
        results = await asyncio.gather(*(self._fetch(t) for t in targets))
        samples = []
        for target, result in zip(targets, results, strict=True):
            last = self._last.get(target.pod)
            if result is None:
                self.failures += 1
                AUTOSCALER_SCRAPE_FAILURES.inc()
                samples.append(last.sample if last else PodSample(target.pod, scraped_at=None))
                continue
            at, reading = result
            pod_sample = (sample(target.pod, at, reading, last.reading, at - last.at,
                                 self.cpu_cores) if last else sample(target.pod, at, reading))
            self._last[target.pod] = _Last(at, reading, pod_sample)
            samples.append(pod_sample)
        listed = {t.pod for t in targets}
        for gone in set(self._last) - listed:
            del self._last[gone]
        return tuple(samples)
