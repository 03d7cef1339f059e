"""Admission control: a concurrency limit plus a bounded FIFO queue.

uvicorn's own limit answers 503 and has no queue. Here a request beyond ``maxInFlight`` waits
in a queue of ``queueSize`` places; beyond that it is refused at once with 429 and a
Retry-After computed from the observed service time, which clients and the openai SDK honour.
Nothing admitted is ever dropped: a slot freed by a finishing request is handed straight to
the oldest waiter.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from prometheus_client import Gauge


class AdmissionMetrics(Protocol):
    """Where admission publishes its gauges: an agent's Metrics or a pipeline runner's."""

    @property
    def agent(self) -> str: ...
    @property
    def max_concurrency(self) -> Gauge: ...
    @property
    def queue_capacity(self) -> Gauge: ...
    @property
    def inflight_g(self) -> Gauge: ...
    @property
    def queued_g(self) -> Gauge: ...


class OverloadedError(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"over capacity, retry after {retry_after}s")
        self.retry_after = retry_after


class Admission:
    def __init__(self, max_in_flight: int, queue_size: int, metrics: AdmissionMetrics) -> None:
        self.max_in_flight = max_in_flight
        self.queue_size = queue_size
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._metrics = metrics
        self._service_time = 1.0  # seconds, exponentially weighted
        metrics.max_concurrency.labels(metrics.agent).set(max_in_flight)
        metrics.queue_capacity.labels(metrics.agent).set(queue_size)

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the queue ahead drains at max_in_flight/W."""
        waves = (len(self._waiters) + 1) / self.max_in_flight
        return max(1, math.ceil(waves * self._service_time))

    def observe_service_time(self, seconds: float) -> None:
        self._service_time += 0.1 * (seconds - self._service_time)

    def _publish(self) -> None:
        self._metrics.inflight_g.set(self.in_flight)
        self._metrics.queued_g.set(len(self._waiters))

    async def _acquire(self) -> None:
        if self.in_flight < self.max_in_flight and not self._waiters:
            self.in_flight += 1
            self._publish()
            return
        if len(self._waiters) >= self.queue_size:
            raise OverloadedError(self.retry_after())
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._publish()
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot was handed to us just as we were cancelled
            else:
                self._waiters.remove(waiter)
                self._publish()
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # hand the slot over; in_flight is unchanged
                self._publish()
                return
        self.in_flight -= 1
        self._publish()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self._acquire()
        try:
            yield
        finally:
            self._release()
