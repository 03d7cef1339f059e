"""One call of a step's agent over its Service: a deadline, bounded retries, a trace.

Retried: the agent's 429 (it is full; after its Retry-After), a 503 (the provider is
rate-limiting it; after its Retry-After), and no connection at all (a pod going away, an
endpoint not yet removed). Never retried: a 422 (the same input fails again) and every other
answer, which the agent has already retried on its own side where that made sense. A wait
the deadline cannot afford fails the call at once instead of sleeping into the timeout.
An answer is read up to maxAnswerBytes and a 200 must fit the agent's declared output
schema (answers.py): otherwise the call fails, never retried, naming the agent, the path
and the rule. A step whose agent requires a bearer token (`tokenEnv`) sends `Authorization: Bearer`;
the others send no Authorization header.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .answers import (
    AnswerTooLargeError,
    OutputSchemas,
    SchemaUnavailableError,
    read_capped,
    violations,
)
from .config import DEFAULT_MAX_ANSWER_BYTES, StepConfig
from .metrics import PipelineMetrics

RETRYABLE = frozenset({429, 503})
REPLICA_HEADER = "X-Atomic-Replica"
_REASON = re.compile(r"[a-z][a-z0-9_]{0,39}")


@dataclass
class Attempt:
    attempt: int
    status: int | None
    """The agent's HTTP status; None when no answer came (connection, deadline)."""
    duration_ms: float
    replica: str | None = None
    error: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"attempt": self.attempt, "status": self.status,
                               "durationMs": round(self.duration_ms, 2)}
        if self.replica:
            out["replica"] = self.replica
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class Call:
    item: int | None
    attempts: list[Attempt] = field(default_factory=list)
    duration_ms: float = 0.0
    output: Any = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"durationMs": round(self.duration_ms, 2),
                               "attempts": [a.to_json() for a in self.attempts]}
        if self.item is not None:
            out = {"item": self.item, **out}
        return out


class CallFailedError(Exception):
    """A call that ended without an output: why, on which attempt, and what the agent said."""

    def __init__(self, reason: str, message: str, attempt: int, attempts: int,
                 status: int | None = None, agent_error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.attempt = attempt
        self.attempts = attempts
        self.status = status
        self.agent_error = agent_error


def retry_after(headers: Any, body_error: dict[str, Any] | None) -> float | None:
    raw = headers.get("Retry-After")
    if raw is None and body_error is not None:
        raw = body_error.get("retryAfterSeconds")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


def backoff(attempt: int) -> float:
    return float(min(2.0, 0.1 * 2 ** (attempt - 1)))


class AgentCaller:
    def __init__(self, session: aiohttp.ClientSession, metrics: PipelineMetrics,
                 tokens: Mapping[str, str] | None = None,
                 max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES) -> None:
        self.session = session
        self.metrics = metrics
        self.max_answer_bytes = max_answer_bytes
        self.schemas = OutputSchemas(session)
        self.tokens = dict(tokens or {})
        """Env var name → bearer token (config.agent_tokens): sent to the steps naming it."""

    async def call(self, step: StepConfig, payload: Any, request_id: str, record: Call) -> Any:
        """The agent's output for `payload`, or CallFailedError. `record` collects the attempts."""
        url = f"{step.url.rstrip('/')}/run"
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-Request-ID": request_id}
        if step.token_env is not None:
            headers["Authorization"] = f"Bearer {self.tokens[step.token_env]}"
        total = step.retries + 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + step.timeout_seconds
        started = time.perf_counter()
        inflight = self.metrics.step_inflight.labels(self.metrics.pipeline, step.name)
        inflight.inc()
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    for n in range(1, total + 1):
                        wait = await self._attempt(step, url, body, headers, record, n, total)
                        if wait is None:
                            return record.output
                        if loop.time() + wait >= deadline:
                            last = record.attempts[-1]
                            raise CallFailedError(
                                "deadline", f"asked to retry after {wait:g}s, past the step's "
                                f"deadline ({step.timeout_seconds:g}s)", n, total, last.status,
                                last.error)
                        self.metrics.step_retries.labels(self.metrics.pipeline,
                                                         step.name).inc()
                        await asyncio.sleep(wait)
            except TimeoutError:
                raise CallFailedError("timeout", f"no answer within the step's timeoutSeconds "
                                            f"({step.timeout_seconds:g}s)",
                                 len(record.attempts), total) from None
        except CallFailedError as failure:
            self.metrics.step_errors.labels(self.metrics.pipeline, step.name,
                                            failure.reason).inc()
            raise
        finally:
            inflight.dec()
            record.duration_ms = (time.perf_counter() - started) * 1000
        raise AssertionError("the last attempt either answers or raises")

    async def _attempt(self, step: StepConfig, url: str, body: bytes, headers: dict[str, str],
                       record: Call, n: int, total: int) -> float | None:
        """One POST: None when it stored the output on `record`, else the wait before the
        next attempt; CallFailedError when there is no next attempt."""
        t0 = time.perf_counter()
        attempt = Attempt(n, None, 0.0)
        record.attempts.append(attempt)
        try:
            async with self.session.post(url, data=body, headers=headers) as response:
                attempt.status = response.status
                attempt.replica = response.headers.get(REPLICA_HEADER)
                response_headers = response.headers
                raw = await read_capped(response, self.max_answer_bytes)
        except AnswerTooLargeError:
            attempt.duration_ms = (time.perf_counter() - t0) * 1000
            message = (f"agent {step.agent} answered {attempt.status} with a body over "
                       f"{self.max_answer_bytes} bytes (maxAnswerBytes)")
            attempt.error = {"type": "answer_too_large", "message": message}
            self._count(step, str(attempt.status))
            raise CallFailedError("answer_too_large", message, n, total, attempt.status
                                  ) from None
        except aiohttp.ClientConnectionError as exc:
            attempt.duration_ms = (time.perf_counter() - t0) * 1000
            message = f"no connection to agent {step.agent} at {step.url}: {exc}"
            attempt.error = {"type": "connection", "message": message}
            self._count(step, "connection")
            if n < total:
                return backoff(n)
            raise CallFailedError("connection", message, n, total) from None
        except asyncio.CancelledError:
            attempt.duration_ms = (time.perf_counter() - t0) * 1000
            attempt.error = {"type": "cancelled", "message": "cancelled while in flight"}
            raise
        attempt.duration_ms = (time.perf_counter() - t0) * 1000
        self._count(step, str(attempt.status))
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        if attempt.status == 200:
            if data is None:
                attempt.error = {"type": "invalid_answer", "message": "the body is not JSON"}
                raise CallFailedError("invalid_answer", f"agent {step.agent} answered 200 with a "
                                 "body that is not JSON", n, total, 200)
            await self._check(step, data, n, total, attempt)
            record.output = data
            return None
        agent_error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(agent_error, dict):
            text = raw[:500].decode("utf-8", "replace")
            agent_error = {"type": f"http_{attempt.status}", "message": text}
        attempt.error = agent_error
        if attempt.status in RETRYABLE and n < total:
            return retry_after(response_headers, agent_error) or backoff(n)
        kind = str(agent_error.get("type", ""))
        reason = kind if _REASON.fullmatch(kind) else f"http_{attempt.status}"
        raise CallFailedError(reason, f"agent {step.agent} answered {attempt.status} {kind}: "
                                 f"{agent_error.get('message', '')}".rstrip(": "),
                         n, total, attempt.status, agent_error)

    async def _check(self, step: StepConfig, data: Any, n: int, total: int,
                     attempt: Attempt) -> None:
        """A 200's output against the agent's declared output schema: CallFailedError
        naming the agent, the path and the rule when it does not fit."""
        try:
            validator = await self.schemas.validator(step.agent, step.url)
        except SchemaUnavailableError as exc:
            message = (f"agent {step.agent} answered 200, but its output schema could not be "
                       f"read to check the answer: {exc}")
            attempt.error = {"type": "schema_unavailable", "message": message}
            raise CallFailedError("schema_unavailable", message, n, total, 200) from None
        found = violations(validator, data)
        if not found:
            return
        first = found[0]
        message = (f"agent {step.agent} answered 200 with an output that breaks its output "
                   f"schema: at {first['path']}, rule {first['rule']}: {first['message']}"
                   + (f" (and {len(found) - 1} more)" if len(found) > 1 else ""))
        attempt.error = {"type": "invalid_answer", "message": message, "details": found[:20]}
        raise CallFailedError("invalid_answer", message, n, total, 200, attempt.error)

    def _count(self, step: StepConfig, status: str) -> None:
        self.metrics.step_calls.labels(self.metrics.pipeline, step.name, status).inc()

