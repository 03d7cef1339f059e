"""One run of a pipeline: the graph executed in the operator's order, with a trace.

Each step starts as soon as every step it waits for has finished, so steps of one wave run
concurrently and a step never waits for an unrelated, slower sibling; a forEach runs its
items on maxConcurrency workers that each take the next item when free (never a task per
item: a long list costs no memory and no cancellation time up front), their outputs kept in
the list's order, and a list over maxItems fails the step before any call. A required
step that fails cancels everything still running (its calls in flight included) and fails
the run; an optional one leaves its output absent and the run goes on. The caller bounds
the whole run with the pipeline's deadline, which cancels the same way.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from .bindings import (
    ABSENT,
    BindingError,
    Scope,
    TooManyItemsError,
    items_of,
    lookup,
    step_input,
)
from .calls import AgentCaller, Call, CallFailedError
from .config import PipelineConfig, StepConfig
from .metrics import PipelineMetrics

_ID_ROOM = 48
"""Characters of the run's request id kept in each call's X-Request-ID (the agent's limit
is 128)."""


@dataclass
class StepTrace:
    step: str
    agent: str
    optional: bool
    status: str = "pending"
    """pending (never started), running, ok, failed, cancelled."""
    started_ms: float | None = None
    duration_ms: float | None = None
    items: int | None = None
    calls: list[Call] = field(default_factory=list)
    error: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "agent": self.agent, "status": self.status,
                               "optional": self.optional}
        if self.started_ms is not None:
            out["startedMs"] = round(self.started_ms, 2)
        if self.duration_ms is not None:
            out["durationMs"] = round(self.duration_ms, 2)
        if self.items is not None:
            out["items"] = self.items
        out["attempts"] = sum(len(c.attempts) for c in self.calls)
        out["calls"] = [c.to_json() for c in sorted(self.calls, key=lambda c: c.item or 0)]
        if self.error is not None:
            out["error"] = self.error
        return out


class StepFailedError(Exception):
    """A required step failed: the run's error names the step, the item and the attempt."""

    def __init__(self, step: StepConfig, item: int | None, failure: CallFailedError | BindingError
                 ) -> None:
        where = f"step {step.name}" + (f" (item {item})" if item is not None else "")
        if isinstance(failure, CallFailedError):
            message = (f"{where} failed on attempt {failure.attempt} of {failure.attempts}: "
                       f"{failure.message}")
        else:
            message = f"{where} could not build its input: {failure}"
        super().__init__(message)
        self.step = step
        self.item = item
        self.failure = failure
        self.message = message

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step.name, "agent": self.step.agent,
                               "message": self.message}
        if self.item is not None:
            out["item"] = self.item
        if isinstance(self.failure, CallFailedError):
            out["reason"] = self.failure.reason
            out["attempt"] = self.failure.attempt
            if self.failure.status is not None:
                out["agentStatus"] = self.failure.status
            if self.failure.agent_error is not None:
                out["agentError"] = self.failure.agent_error
        elif isinstance(self.failure, TooManyItemsError):
            out["reason"] = "too_many_items"
        else:
            out["reason"] = "binding"
        return out


class PipelineRun:
    def __init__(self, config: PipelineConfig, caller: AgentCaller, metrics: PipelineMetrics,
                 request_id: str) -> None:
        self.config = config
        self.caller = caller
        self.metrics = metrics
        self.request_id = request_id[:_ID_ROOM]
        self.traces = {s.name: StepTrace(s.name, s.agent, s.optional) for s in config.steps}
        self.started = time.perf_counter()

    def trace(self) -> list[dict[str, Any]]:
        order = [name for wave in self.config.waves for name in wave]
        return [self.traces[name].to_json() for name in order]

    async def execute(self, payload: Any) -> Any:
        """The pipeline's output (ABSENT when it comes from a failed optional step)."""
        scope = Scope(payload)
        finished = {s.name: asyncio.Event() for s in self.config.steps}
        try:
            async with asyncio.TaskGroup() as group:
                for wave in self.config.waves:
                    for name in wave:
                        group.create_task(self._run_step(self.config.step(name), scope,
                                                         finished))
        except* StepFailedError as failures:
            raise failures.exceptions[0] from None
        return lookup(self.config.output, scope)

    async def _run_step(self, step: StepConfig, scope: Scope,
                        finished: dict[str, asyncio.Event]) -> None:
        trace = self.traces[step.name]
        try:
            for name in step.after:
                await finished[name].wait()
        except asyncio.CancelledError:
            trace.status = "cancelled"
            raise
        trace.status = "running"
        t0 = time.perf_counter()
        trace.started_ms = (t0 - self.started) * 1000
        try:
            scope.outputs[step.name] = await self._step_output(step, scope, trace)
            trace.status = "ok"
        except StepFailedError as failed:
            trace.status = "failed"
            trace.error = failed.to_json()
            if not step.optional:
                raise
            scope.outputs[step.name] = ABSENT
            trace.error["message"] += "; the step is optional, so its output is absent"
        except asyncio.CancelledError:
            trace.status = "cancelled"
            self.metrics.step_errors.labels(self.metrics.pipeline, step.name,
                                            "cancelled").inc()
            raise
        finally:
            trace.duration_ms = (time.perf_counter() - t0) * 1000
            self.metrics.step_duration.labels(self.metrics.pipeline, step.name).observe(
                trace.duration_ms / 1000)
        finished[step.name].set()

    async def _step_output(self, step: StepConfig, scope: Scope, trace: StepTrace) -> Any:
        if step.for_each is None:
            return await self._call(step, scope, trace, None, ABSENT)
        try:
            items = items_of(step, scope)
        except BindingError as err:
            raise StepFailedError(step, None, err) from None
        trace.items = len(items)
        results: list[Any] = [None] * len(items)
        pending = iter(enumerate(items))

        async def worker() -> None:
            # the workers share one iterator: each takes the next item when it is free
            for index, item in pending:
                results[index] = await self._call(step, scope, trace, index, item)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(step.max_concurrency, len(items))):
                    group.create_task(worker())
                    # one worker's first call per turn of the loop, not all of them in one
                    # burst that keeps /healthz waiting (1000 at maxConcurrency 1000)
                    await asyncio.sleep(0)
        except* StepFailedError as failures:
            raise failures.exceptions[0] from None
        return results

    async def _call(self, step: StepConfig, scope: Scope, trace: StepTrace, index: int | None,
                    item: Any) -> Any:
        try:
            payload = step_input(step, scope, item)
        except BindingError as err:
            raise StepFailedError(step, index, err) from None
        record = Call(index)
        trace.calls.append(record)
        suffix = step.name if index is None else f"{step.name}.{index}"
        try:
            return await self.caller.call(step, payload, f"{self.request_id}.{suffix}", record)
        except CallFailedError as failure:
            raise StepFailedError(step, index, failure) from None
