"""One shared, provider-agnostic structured-output client per process.

Every provider goes through instructor so validation and re-asks behave the same way. The
client is built once at start-up (connection pools and TLS sessions are shared by all
requests), with the SDK's 600 s default timeout replaced by the agent's own. Provider SDKs
other than openai are imported only when the config names them: when groq's, gemini's or
anthropic's SDK is absent, their OpenAI-compatible endpoints are used instead.

Transport retries are the runtime's own (`Transport`), not the SDKs': the SDKs would sleep
out any ``Retry-After`` up to 60 s, past the request's deadline, and count their retries
where nobody sees them. Here every HTTP attempt is timed and counted, a ``Retry-After``
longer than what is left of the request is answered at once, and the answer's size is capped.
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
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from .compat.instructor import memoize_async_validator_check, prepared_response_model
from .compat.openai import chat_completions_call
from .config import ModelConfig
from .metrics import Metrics

__all__ = ["LLM", "LLMCallError", "MissingAPIKeyError", "prepared_response_model"]

log = logging.getLogger("atomic_runtime.llm")

OPENAI_COMPATIBLE_ENDPOINTS = {
    "groq": "https://api.groq.com/openai/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai/",
    "anthropic": "https://api.anthropic.com/v1/",
}
STANDARD_KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "groq": "GROQ_API_KEY",
    "gemini": "GEMINI_API_KEY",
}
DEFAULT_MODES = {
    "openai": "tools",
    "openai-compatible": "tools",
    "ollama": "json",
    "groq": "tools",
    "gemini": "genai_tools",
    "anthropic": "anthropic_tools",
}
PORTABLE_MODES = {
    "anthropic_tools": "tools",
    "anthropic_reasoning_tools": "tools",
    "anthropic_parallel_tools": "parallel_tools",
    "anthropic_json": "json",
    "genai_tools": "tools",
    "gemini_tools": "tools",
    "genai_structured_outputs": "json",
    "gemini_json": "json",
}
"""Provider-named modes the operator accepts, as the generic mode every client understands:
the native SDK path and the OpenAI-compatible fallback then agree on every allowed mode."""
KEYLESS_PROVIDERS = ("ollama", "openai-compatible")
NATIVE_SDKS = {"anthropic": "anthropic", "groq": "groq", "gemini": "google.genai"}
"""Providers whose own SDK, when installed, is used instead of the OpenAI-compatible endpoint."""

MAX_OUTPUT_BYTES = int(os.environ.get("ATOMIC_AGENT_MAX_OUTPUT_BYTES", str(1 << 20)))
"""The largest model answer (text and tool arguments, UTF-8) accepted; bigger ones are refused."""
MAX_RETRY_AFTER = 60.0
INITIAL_BACKOFF, MAX_BACKOFF = 0.5, 8.0

RawCreate = Callable[..., Awaitable[Any]]


class MissingAPIKeyError(RuntimeError):
    pass


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


def api_key(model: ModelConfig) -> str | None:
    """The key from the env var the operator fills from the Secret (never from the file)."""
    key = os.environ.get(model.api_key_env)
    if not key and model.provider in STANDARD_KEY_ENV:
        key = os.environ.get(STANDARD_KEY_ENV[model.provider])
    return key or None


def resolve_mode(model: ModelConfig, native: bool | None = None) -> Any:
    """The instructor mode for the configured name, portable across the provider's clients.

    groq's own SDK has no plain JSON mode in instructor; its markdown-tolerant JSON mode
    parses the same answers.
    """
    import instructor

    if native is None:
        native = uses_native_sdk(model.provider)
    name = model.mode or DEFAULT_MODES[model.provider]
    name = PORTABLE_MODES.get(name, name)
    if model.provider == "groq" and native and name == "json":
        name = "md_json"
    try:
        return instructor.Mode[name.upper()]
    except KeyError:
        raise ValueError(f"unknown instructor mode {model.mode!r}") from None


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a missing parent package ("google" for "google.genai")
        return False


def uses_native_sdk(provider: str) -> bool:
    return provider in NATIVE_SDKS and has_module(NATIVE_SDKS[provider])


# ---- errors: public exception types of the SDKs and transports, checked with isinstance


@dataclass(frozen=True)
class SdkErrors:
    """The exception types one provider SDK raises, by what they mean."""

    status: tuple[type[BaseException], ...]
    """carry the provider's HTTP status (``status_code`` or ``code``) and ``response``"""
    timeout: tuple[type[BaseException], ...] = ()
    connection: tuple[type[BaseException], ...] = ()
    closed: tuple[type[BaseException], ...] = field(default_factory=tuple)


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


def _chain(exc: BaseException) -> list[BaseException]:
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
    chain = _chain(exc)
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
        self, call: RawCreate, errors: SdkErrors, metrics: Metrics, max_retries: int
    ) -> None:
        self.call = call
        self.errors = errors
        self.metrics = metrics
        self.max_retries = max_retries
        self.max_output_bytes = MAX_OUTPUT_BYTES

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


# ---- clients


@dataclass
class Connection:
    """One provider's SDK client, its raw call, and how to read its errors."""

    client: Any
    call: RawCreate
    provider: Any
    errors: SdkErrors


def _openai_client(model: ModelConfig, key: str | None, base_url: str | None, pool: int) -> Any:
    import httpx2
    import openai

    timeout = httpx2.Timeout(model.timeout_seconds, connect=min(5.0, model.timeout_seconds))
    # admission already bounds concurrency; the pool must not add a lower, hidden bound
    # (the aiohttp transport defaults to 100 connections when none is given)
    limits = httpx2.Limits(max_connections=pool, max_keepalive_connections=pool)
    transport = os.environ.get("ATOMIC_AGENT_HTTP_CLIENT", "aiohttp").lower()
    if transport == "aiohttp":  # a third less CPU per call than httpx2, see docs/runtime.md
        http_client: Any = openai.DefaultAioHttpClient(timeout=timeout, limits=limits)
    else:
        http_client = openai.DefaultAsyncHttpxClient(timeout=timeout, limits=limits)
    return openai.AsyncOpenAI(
        api_key=key or "unused",
        base_url=base_url,
        timeout=timeout,
        max_retries=0,  # Transport retries
        http_client=http_client,
    )


def _connect(model: ModelConfig, key: str | None, mode: Any, pool: int, native: bool) -> Connection:
    import instructor

    provider = model.provider
    if provider in ("openai", "openai-compatible", "ollama") or not native:
        base = model.base_url
        if provider in OPENAI_COMPATIBLE_ENDPOINTS:
            base = base or OPENAI_COMPATIBLE_ENDPOINTS[provider]
            log.info("provider SDK not installed, using its OpenAI-compatible endpoint",
                     extra={"provider": provider, "base_url": base})  # fmt: skip
        client = _openai_client(model, key, base, pool)
        if mode in (instructor.Mode.RESPONSES_TOOLS,
                    instructor.Mode.RESPONSES_TOOLS_WITH_INBUILT_TOOLS):  # fmt: skip

            async def responses(*args: Any, messages: Any = None, **kwargs: Any) -> Any:
                return await client.responses.create(*args, input=messages, **kwargs)

            call: RawCreate = responses
        else:
            call = chat_completions_call(client)
        return Connection(client, call, instructor.Provider.OPENAI, sdk_errors("openai"))
    if provider in ("anthropic", "groq"):
        module = importlib.import_module(provider)
        factory = module.AsyncAnthropic if provider == "anthropic" else module.AsyncGroq
        client = factory(
            api_key=key,
            base_url=model.base_url,
            timeout=model.timeout_seconds,
            max_retries=0,  # Transport retries
        )
        if provider == "anthropic":
            return Connection(client, client.messages.create, instructor.Provider.ANTHROPIC,
                              sdk_errors(provider))  # fmt: skip
        return Connection(client, client.chat.completions.create, instructor.Provider.GROQ,
                          sdk_errors(provider))  # fmt: skip
    # gemini through google-genai
    genai = importlib.import_module("google.genai")
    types = importlib.import_module("google.genai.types")
    options = types.HttpOptions(timeout=int(model.timeout_seconds * 1000))
    if model.base_url:
        options.base_url = model.base_url
    gclient = genai.Client(api_key=key, http_options=options)

    async def generate(*args: Any, model: str = "", stream: bool = False, **kwargs: Any) -> Any:
        # the same call instructor's from_genai makes, as a plain function to meter
        return await gclient.aio.models.generate_content(model=model, **kwargs)

    return Connection(gclient, generate, instructor.Provider.GENAI, sdk_errors("google.genai"))


def build_instructor(
    model: ModelConfig, metrics: Metrics, pool: int = 100, native: bool | None = None
) -> Any:
    """The AsyncInstructor for the configured provider, its raw model call a `Transport`.

    ``native`` picks the provider's own SDK or its OpenAI-compatible endpoint (default: the
    SDK when it is installed).
    Built with instructor's public ``patch(create=...)`` and ``AsyncInstructor``; the mode is
    first checked against the provider with instructor's own factory (``from_openai``,
    ``from_anthropic``, ...), which also normalizes aliases such as ``tools_strict``.
    """
    import instructor

    key = api_key(model)
    if key is None and model.provider not in KEYLESS_PROVIDERS:
        raise MissingAPIKeyError(
            f"no API key: set the environment variable {model.api_key_env} "
            f"(the operator fills it from the Secret named in the AtomicAgent spec)"
        )
    if native is None:  # the provider's own SDK when installed; tests ask for either path
        native = uses_native_sdk(model.provider)
    mode = resolve_mode(model, native)
    conn = _connect(model, key, mode, pool, native)
    factory = {
        instructor.Provider.OPENAI: "from_openai",
        instructor.Provider.ANTHROPIC: "from_anthropic",
        instructor.Provider.GROQ: "from_groq",
        instructor.Provider.GENAI: "from_genai",
    }[conn.provider]
    try:
        extra = {"use_async": True} if conn.provider == instructor.Provider.GENAI else {}
        checked = getattr(instructor, factory)(conn.client, mode=mode, **extra)
    except Exception as exc:  # instructor's ModeError/ClientError
        raise ValueError(
            f"mode {model.mode or DEFAULT_MODES[model.provider]!r} does not work with "
            f"provider {model.provider}: {exc}"
        ) from exc
    transport = Transport(conn.call, conn.errors, metrics, model.max_retries)
    return instructor.AsyncInstructor(
        client=conn.client,
        create=instructor.patch(
            create=transport.create, mode=checked.mode, provider=checked.provider
        ),
        mode=checked.mode,
        provider=checked.provider,
    )


# ---- the client the agents use


_VALIDATION_TYPES: tuple[type[BaseException], ...] = (ValidationError, json.JSONDecodeError)


def _instructor_types() -> tuple[tuple[type[BaseException], ...], type[BaseException]]:
    from instructor.core import (
        AsyncValidationError,
        IncompleteOutputException,
        InstructorRetryException,
        ResponseParsingError,
    )
    from instructor.core import ValidationError as InstructorValidationError

    validation = (
        *_VALIDATION_TYPES,
        InstructorValidationError,
        ResponseParsingError,
        AsyncValidationError,
        IncompleteOutputException,
    )
    return validation, InstructorRetryException


def _validation_details(exc: BaseException) -> tuple[dict[str, str], ...]:
    from .schema_models import json_path

    if isinstance(exc, ValidationError):
        return tuple(
            {"path": json_path(list(e["loc"])), "message": e["msg"]}
            for e in exc.errors(include_url=False)
        )
    return ({"path": "$", "message": str(exc)[:300]},)


def classify(exc: BaseException, scope: RequestScope | None = None) -> LLMCallError:
    """Map whatever the instructor/SDK stack raised to one reason the API and metrics share.

    Transport failures were already classified by `Transport` (an `LLMCallError` in the
    chain); what is left is validation after the re-asks, or a bug.
    """
    attempts = scope.attempts if scope is not None else None
    chain = _chain(exc)
    for err in chain:
        if isinstance(err, LLMCallError):
            if attempts:
                err.attempts = attempts
            return err
    validation, retry_exception = _instructor_types()
    for err in chain:
        if isinstance(err, validation):
            tries = getattr(exc, "n_attempts", None) if isinstance(exc, retry_exception) else None
            return LLMCallError(
                "validation",
                "the model's output did not match the output schema after "
                f"{tries or 1} attempt(s)",
                attempts=attempts,
                details=_validation_details(err),
            )
    return LLMCallError("other", f"model call failed ({type(exc).__name__})", attempts=attempts)


class LLM:
    """The shared client plus the per-call settings."""

    def __init__(self, model: ModelConfig, metrics: Metrics, max_in_flight: int = 100) -> None:
        self.model = model
        self.metrics = metrics
        pool = max(16, max_in_flight + 8)
        self.client = build_instructor(model, metrics, pool)
        memoize_async_validator_check()
        self.extra: dict[str, Any] = {}
        native_anthropic = model.provider == "anthropic" and uses_native_sdk("anthropic")
        if model.temperature is not None and native_anthropic:
            # anthropic's SDK (2.x) no longer takes it as a parameter; the API still does
            self.extra["extra_body"] = {"temperature": model.temperature}
        elif model.temperature is not None:
            self.extra["temperature"] = model.temperature
        if model.max_tokens is not None:
            self.extra["max_tokens"] = model.max_tokens
        elif model.provider == "anthropic":
            self.extra["max_tokens"] = 4096  # anthropic refuses a call without it

    async def aclose(self) -> None:
        inner = self.client.client
        # google-genai closes its async side through .aio; the Stainless SDKs with close()
        close = getattr(getattr(inner, "aio", None), "aclose", None) or getattr(
            inner, "close", None)
        if close is not None:
            result = close()
            if hasattr(result, "__await__"):
                await result

    async def complete(
        self, messages: Sequence[dict[str, Any]], response_model: type[BaseModel]
    ) -> BaseModel:
        with request_scope() as scope:
            try:
                result = await self.client.chat.completions.create(
                    model=self.model.name,
                    messages=list(messages),
                    response_model=response_model,
                    max_retries=self.model.max_retries,
                    **self.extra,
                )
            except Exception as exc:
                raise classify(exc, scope) from exc
        assert isinstance(result, BaseModel)
        return result
