"""How the runtime talks to a provider: one bounded, metered attempt loop for every SDK.

Transport retries are the runtime's own, not the SDKs' (they are built with
``max_retries=0``): the SDKs would sleep out any ``Retry-After`` up to 60 s, past the
request's deadline, and count their retries where nobody sees them. Here every HTTP attempt
is timed and counted, a ``Retry-After`` longer than what is left of the request is answered
at once, the answer's size is capped, and errors are read with ``isinstance`` on the SDKs'
and HTTP stacks' public exception types.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import importlib
import importlib.util
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .metrics import Metrics

log = logging.getLogger("atomic_runtime.llm")

DEFAULT_MAX_OUTPUT_BYTES = 1 << 20
MAX_RETRY_AFTER = 60.0
INITIAL_BACKOFF, MAX_BACKOFF = 0.5, 8.0

RawCreate = Callable[..., Awaitable[Any]]


def max_output_bytes() -> int:
    """The largest model answer (text and tool arguments, UTF-8) accepted: a setting."""
    raw = os.environ.get("ATOMIC_AGENT_MAX_OUTPUT_BYTES", str(DEFAULT_MAX_OUTPUT_BYTES))
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError(f"ATOMIC_AGENT_MAX_OUTPUT_BYTES must be a positive integer, got {raw!r}")
    return int(raw)


class LLMCallError(Exception):
    """A failed model interaction, classified for the HTTP answer and the metrics.

    ``reason`` is one of rate_limit, timeout, upstream_5xx, validation, connection, closed,
    upstream_4xx, output_too_large, other: the label values of agent_llm_errors_total.
    ``attempts`` counts every HTTP call to the provider for the request, transport retries
    and re-asks included.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        attempts: int | None = None,
        details: tuple[dict[str, str], ...] = (),
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.attempts = attempts
        self.details = details


@dataclass
class RequestScope:
    """What one request did with the model so far."""

    model_calls: int = 0
    """instructor's calls of the raw create: every call after the first is a re-ask."""
    attempts: int = 0
    """HTTP calls to the provider, transport retries included."""


_scope: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar(
    "llm_request_scope", default=None
)
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "llm_request_deadline", default=None
)


@contextlib.contextmanager
def deadline_at(when: float | None) -> Iterator[None]:
    """The request's deadline on the event loop's clock: no retry waits past it."""
    token = _deadline.set(when)
    try:
        yield
    finally:
        _deadline.reset(token)


@contextlib.contextmanager
def request_scope() -> Iterator[RequestScope]:
    """Count the model calls and HTTP attempts of one request."""
    scope = RequestScope()
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a missing parent package ("google" for "google.genai")
        return False


# ---- errors: public exception types of the SDKs and transports, checked with isinstance


@dataclass(frozen=True)
class SdkErrors:
    """The exception types one provider SDK raises, by what they mean."""

    status: tuple[type[BaseException], ...]
    """carry the provider's HTTP status (``status_code`` or ``code``) and ``response``"""
    timeout: tuple[type[BaseException], ...] = ()
    connection: tuple[type[BaseException], ...] = ()
    closed: tuple[type[BaseException], ...] = ()


def _transport_errors() -> tuple[tuple[type[BaseException], ...], ...]:
    """(closed, timeout, connection) types of the HTTP stacks the SDKs run on."""
    closed: list[type[BaseException]] = []
    timeout: list[type[BaseException]] = [TimeoutError]
    connection: list[type[BaseException]] = [ConnectionError]
    for module_name in ("httpx2", "httpx"):
        if has_module(module_name):
            module = importlib.import_module(module_name)
            closed.append(module.RemoteProtocolError)
            timeout.append(module.TimeoutException)
            connection.append(module.TransportError)
    if has_module("aiohttp"):
        import aiohttp

        closed.append(aiohttp.ServerDisconnectedError)
        connection.append(aiohttp.ClientConnectionError)
    return tuple(closed), tuple(timeout), tuple(connection)


def sdk_errors(module_name: str) -> SdkErrors:
    closed, timeout, connection = _transport_errors()
    module = importlib.import_module(module_name)
    if module_name == "google.genai":
        errors = importlib.import_module("google.genai.errors")
        return SdkErrors((errors.APIError,), timeout, connection, closed)
    # the Stainless-generated SDKs (openai, anthropic, groq) share one error hierarchy
    return SdkErrors(
        (module.APIStatusError,),
        (module.APITimeoutError, *timeout),
        (module.APIConnectionError, *connection),
        closed,
    )


def exception_chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _headers(exc: BaseException) -> Any:
    return getattr(getattr(exc, "response", None), "headers", None)


def retry_after(exc: BaseException) -> float | None:
    """The provider's ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date)."""
    headers = _headers(exc)
    if headers is None:
        return None
    raw = headers.get("retry-after-ms")
    if raw:
        with contextlib.suppress(ValueError):
            return max(0.0, float(raw) / 1000)
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(raw)
        return max(0.0, when.timestamp() - time.time())
    return None


@dataclass(frozen=True)
class Failure:
    reason: str
    message: str
    retryable: bool
    status: int | None = None
    retry_after: float | None = None

    def error(self, attempts: int, retry_after: float | None = None) -> LLMCallError:
        return LLMCallError(
            self.reason,
            self.message,
            self.status,
            retry_after=self.retry_after if retry_after is None else retry_after,
            attempts=attempts,
        )


def transport_failure(exc: BaseException, errors: SdkErrors) -> Failure | None:
    """What went wrong talking to the provider, or None when it was not the transport."""
    chain = exception_chain(exc)
    if any(isinstance(err, errors.closed) for err in chain):
        # before timeouts: the aiohttp transport reports a dropped connection as ConnectTimeout
        return Failure("closed", "the model provider closed the connection without answering",
                       retryable=True)  # fmt: skip
    if any(isinstance(err, ConnectionError) for err in chain):
        # refused/reset; the aiohttp transport reports a refused connect as ConnectTimeout too
        return Failure("connection", "the model provider is unreachable", retryable=True)
    status_error = next((err for err in chain if isinstance(err, errors.status)), None)
    if status_error is not None:
        status = getattr(status_error, "status_code", None) or getattr(status_error, "code", None)
        if isinstance(status, int):
            return _status_failure(status_error, status)
    if any(isinstance(err, errors.timeout) for err in chain):
        return Failure("timeout", "the model provider did not answer in time", retryable=True)
    if any(isinstance(err, errors.connection) for err in chain):
        return Failure("connection", "the model provider is unreachable", retryable=True)
    return None


def _status_failure(exc: BaseException, status: int) -> Failure:
    after = retry_after(exc)
    should = (_headers(exc) or {}).get("x-should-retry")
    if status == 429:
        failure = Failure("rate_limit", "the model provider is rate-limiting this agent", True,
                          429, after)  # fmt: skip
    elif status >= 500:
        failure = Failure("upstream_5xx", f"the model provider failed with HTTP {status}", True,
                          status, after)  # fmt: skip
    else:
        failure = Failure("upstream_4xx", f"the model provider refused the call (HTTP {status})",
                          status in (408, 409), status)  # fmt: skip
    if should in ("true", "false"):  # the provider's own word, as the SDKs honour it
        failure = Failure(failure.reason, failure.message, should == "true", status,
                          failure.retry_after)  # fmt: skip
    return failure


def backoff(retries: int) -> float:
    """The Stainless SDKs' schedule: 0.5 s doubling to 8 s, with up to 25 % jitter."""
    return float(min(INITIAL_BACKOFF * 2.0**retries, MAX_BACKOFF) * (1 - 0.25 * random.random()))


# ---- the metered, bounded transport every provider's raw call goes through


def answer_bytes(response: Any) -> int:
    """Size of what the model wrote: message text and tool arguments, for every SDK shape."""
    size = 0
    for choice in getattr(response, "choices", None) or ():  # openai, groq
        message = choice.message
        size += len((message.content or "").encode())
        for call in message.tool_calls or ():
            size += len((getattr(call.function, "arguments", None) or "").encode())
    content = getattr(response, "content", None)
    if isinstance(content, list):  # anthropic
        for block in content:
            size += _part_bytes(getattr(block, "text", None), getattr(block, "input", None))
    for candidate in getattr(response, "candidates", None) or ():  # google-genai
        parts = getattr(getattr(candidate, "content", None), "parts", None) or ()
        for part in parts:
            call = getattr(part, "function_call", None)
            size += _part_bytes(getattr(part, "text", None), getattr(call, "args", None))
    return size


def _part_bytes(text: Any, data: Any) -> int:
    size = len(text.encode()) if isinstance(text, str) else 0
    if data is not None:
        size += len(json.dumps(data, default=str).encode())
    return size


class Transport:
    """The raw model call instructor patches: timed, counted, retried within the deadline.

    Wrapping the raw SDK call sees each attempt, re-asks included, at no cost per call;
    instructor's own hooks inspect every handler's signature on every event.
    """

    def __init__(
        self,
        call: RawCreate,
        errors: SdkErrors,
        metrics: Metrics,
        max_retries: int,
        attempt_timeout: float | None = None,
    ) -> None:
        self.call = call
        self.errors = errors
        self.metrics = metrics
        self.max_retries = max_retries
        self.attempt_timeout = attempt_timeout
        """model.timeoutSeconds: how long an attempt may take before the SDK gives up."""
        self.max_output_bytes = max_output_bytes()

    async def create(self, *args: Any, **kwargs: Any) -> Any:
        scope = _scope.get()
        if scope is None:
            scope = RequestScope()
        scope.model_calls += 1
        if scope.model_calls > 1:
            self.metrics.validation_retries_c.inc()
        retries = 0
        while True:
            scope.attempts += 1
            started = time.perf_counter()
            try:
                response = await self.call(*args, **kwargs)
            except Exception as exc:
                self.metrics.llm_duration_h.observe(time.perf_counter() - started)
                failure = transport_failure(exc, self.errors)
                if failure is None:
                    raise
                # the provider's own words, for debugging only (the API key is redacted)
                log.debug("model call attempt %d failed: %s", scope.attempts, exc)
                delay = self._retry_delay(failure, retries)
                if delay is None:
                    raise failure.error(scope.attempts) from exc
                deadline = _deadline.get()
                if deadline is not None and asyncio.get_running_loop().time() + delay >= deadline:
                    # waiting would outlive the request: answer now, with the provider's wait
                    raise failure.error(scope.attempts, retry_after=delay) from exc
                if self._cannot_finish(failure, delay, deadline):
                    raise failure.error(scope.attempts) from exc
                retries += 1
                await asyncio.sleep(delay)
                continue
            self.metrics.llm_duration_h.observe(time.perf_counter() - started)
            count_tokens(response, self.metrics)
            size = answer_bytes(response)
            if size > self.max_output_bytes:
                raise LLMCallError(
                    "output_too_large",
                    f"the model's answer is {size} bytes, over the {self.max_output_bytes}-byte "
                    "cap (ATOMIC_AGENT_MAX_OUTPUT_BYTES)",
                    attempts=scope.attempts,
                )
            return response

    def _cannot_finish(self, failure: Failure, delay: float, deadline: float | None) -> bool:
        """Whether a retry after a timeout would start with less time left than an attempt
        takes: the provider just took the whole attempt timeout, so the retry would most
        likely be cut by the request's deadline (a 504 deadline_exceeded after one more
        wasted provider call) instead of answering. The timeout is reported instead."""
        if failure.reason != "timeout" or deadline is None or self.attempt_timeout is None:
            return False
        left = deadline - asyncio.get_running_loop().time() - delay
        return left < self.attempt_timeout

    def _retry_delay(self, failure: Failure, retries: int) -> float | None:
        if not failure.retryable or retries >= self.max_retries:
            return None
        after = failure.retry_after
        if after is not None and after <= MAX_RETRY_AFTER:
            return after
        if after is not None and _deadline.get() is not None:
            return after  # longer than any deadline: answered at once with it
        return backoff(retries)


def count_tokens(response: Any, metrics: Metrics) -> None:
    usage = getattr(response, "usage", None) or getattr(response, "usage_metadata", None)
    if usage is None:
        return
    prompt = _first_int(usage, ("prompt_tokens", "input_tokens", "prompt_token_count"))
    completion = _first_int(usage, ("completion_tokens", "output_tokens", "candidates_token_count"))
    if prompt:
        metrics.prompt_tokens_c.inc(prompt)
    if completion:
        metrics.completion_tokens_c.inc(completion)


def _first_int(obj: Any, names: tuple[str, ...]) -> int:
    for name in names:
        value = getattr(obj, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0
