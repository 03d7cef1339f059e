"""Fetch the Ready pods' /metrics concurrently, with a short timeout, and keep the readings
that turn counters into rates.

A pod that does not answer keeps its last good sample, with the time it was taken: the rule
counts a sample older than three intervals as missing, so one slow scrape is not a hole and
a dead endpoint is never read as "no load". Why it did not answer, and since when, is kept
too (`Scraper.unreachable`), so a gap that lasts can be reported with the pod and the error.

Rates cover the last interval only: a reading older than ``max_rate_seconds`` (three
intervals, the age at which a sample counts as missing) is no base for a rate, so the first
good scrape after a gap gives gauges only, and 429s from before the gap never reach the
rule as if they were recent.
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
class Failure:
    """A pod whose /metrics has not answered since `since`; `error` is the last reason."""

    pod: str
    url: str
    since: float
    error: str


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
                 cpu_cores: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 max_rate_seconds: float = 6.0) -> None:
        self.session = session
        self.seconds = timeout
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.cpu_cores = cpu_cores
        self.clock = clock
        self.max_rate_seconds = max_rate_seconds
        """A previous reading older than this is no base for rates (a gap, not an interval)."""
        self._last: dict[str, _Last] = {}
        self._failing: dict[str, Failure] = {}
        self.failures = 0
        """Scrapes that failed, for the operator's own metrics."""

    async def _fetch(self, target: Target) -> tuple[float, Reading] | str:
        """The reading, or why there is none (in words for a status message)."""
        try:
            async with self.session.get(target.url, timeout=self.timeout) as response:
                if response.status != 200:
                    return f"HTTP {response.status}"
                text = await response.text()
        except TimeoutError:
            return f"no answer within {self.seconds:g} s"
        except (aiohttp.ClientError, ValueError) as err:
            return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        return self.clock(), parse(text)

    def unreachable(self, seconds: float) -> list[Failure]:
        """The pods whose /metrics has not answered for at least `seconds`, longest first."""
        now = self.clock()
        return sorted((f for f in self._failing.values() if now - f.since >= seconds),
                      key=lambda f: (f.since, f.pod))

    async def scrape(self, targets: Iterable[Target]) -> tuple[PodSample, ...]:
        """One sample per target: fresh when it answered, its last good one (or an empty
        one) when it did not. Pods no longer listed are forgotten."""
        targets = list(targets)
        results = await asyncio.gather(*(self._fetch(t) for t in targets))
        samples = []
        now = self.clock()
        for target, result in zip(targets, results, strict=True):
            last = self._last.get(target.pod)
            if isinstance(result, str):
                self.failures += 1
                AUTOSCALER_SCRAPE_FAILURES.inc()
                failing = self._failing.get(target.pod)
                self._failing[target.pod] = Failure(
                    target.pod, target.url, failing.since if failing else now, result)
                samples.append(last.sample if last else PodSample(target.pod, scraped_at=None))
                continue
            self._failing.pop(target.pod, None)
            at, reading = result
            if last is not None and 0 < at - last.at <= self.max_rate_seconds:
                pod_sample = sample(target.pod, at, reading, last.reading, at - last.at,
                                    self.cpu_cores)
            else:  # a first reading, or the first after a gap: gauges only
                pod_sample = sample(target.pod, at, reading)
            self._last[target.pod] = _Last(at, reading, pod_sample)
            samples.append(pod_sample)
        listed = {t.pod for t in targets}
        for gone in set(self._last) - listed:
            del self._last[gone]
        for gone in set(self._failing) - listed:
            del self._failing[gone]
        return tuple(samples)
