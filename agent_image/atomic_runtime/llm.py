"""One shared, provider-agnostic structured-output client per process.

Every provider goes through instructor so validation and re-asks behave the same way. The
client is built once at start-up (connection pools and TLS sessions are shared by all
requests), with the SDK's 600 s default timeout replaced by the agent's own and the SDK's
transport retries bounded. Provider SDKs other than openai are imported only when the
config names them: they are optional and some are large. When groq's, gemini's or
anthropic's SDK is absent, their OpenAI-compatible endpoints are used instead.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import importlib.util
import json
import logging
import os
import sys
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from .config import ModelConfig
from .metrics import Metrics

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
    "gemini": "tools",
    "anthropic": "anthropic_tools",
}
KEYLESS_PROVIDERS = ("ollama", "openai-compatible")

_calls: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "llm_calls_in_request", default=None
)
"""Model calls made so far for the current request: every call after the first is a re-ask."""

RawCreate = Callable[..., Awaitable[Any]]


class MissingAPIKeyError(RuntimeError):
    pass


class LLMCallError(Exception):
    """A failed model interaction, classified for the HTTP answer and the metrics.

    ``reason`` is one of rate_limit, timeout, upstream_5xx, validation, connection,
    upstream_4xx, other: the label values of agent_llm_errors_total.
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


def api_key(model: ModelConfig) -> str | None:
    """The key from the env var the operator fills from the Secret (never from the file)."""
    key = os.environ.get(model.api_key_env)
    if not key and model.provider in STANDARD_KEY_ENV:
        key = os.environ.get(STANDARD_KEY_ENV[model.provider])
    return key or None


def resolve_mode(model: ModelConfig) -> Any:
    import instructor

    name = (model.mode or DEFAULT_MODES[model.provider]).upper()
    aliases = {"TOOLS": "TOOLS", "JSON": "JSON", "JSON_SCHEMA": "JSON_SCHEMA", "MD_JSON": "MD_JSON"}
    try:
        return instructor.Mode[aliases.get(name, name)]
    except KeyError:
        raise ValueError(f"unknown instructor mode {model.mode!r}") from None


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
        max_retries=model.max_retries,
        http_client=http_client,
    )


NATIVE_SDKS = {
    "anthropic": ("anthropic", "AsyncAnthropic", "from_anthropic"),
    "groq": ("groq", "AsyncGroq", "from_groq"),
}
"""Providers whose own SDK, when installed, is used: module, async client, instructor factory."""


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a missing parent package ("google" for "google.genai")
        return False


def build_instructor(model: ModelConfig, metrics: Metrics, pool: int = 100) -> Any:
    """Build the AsyncInstructor for the configured provider, its raw model call metered."""
    import instructor

    key = api_key(model)
    if key is None and model.provider not in KEYLESS_PROVIDERS:
        raise MissingAPIKeyError(
            f"no API key: set the environment variable {model.api_key_env} "
            f"(the operator fills it from the Secret named in the AtomicAgent spec)"
        )
    mode = resolve_mode(model)
    provider = model.provider
    if provider in ("openai", "openai-compatible", "ollama"):
        return _from_openai(_openai_client(model, key, model.base_url, pool), mode, metrics)
    if provider in NATIVE_SDKS and has_module(NATIVE_SDKS[provider][0]):
        module_name, client_class, factory = NATIVE_SDKS[provider]
        client = getattr(importlib.import_module(module_name), client_class)(
            api_key=key,
            base_url=model.base_url,
            timeout=model.timeout_seconds,
            max_retries=model.max_retries,
        )
        # instructor's factories read the SDK method when they patch it: meter it first
        resource = client.messages if provider == "anthropic" else client.chat.completions
        resource.create = metered(resource.create, metrics)
        return getattr(instructor, factory)(client, mode=mode)
    if provider == "gemini" and has_module("google.genai"):
        genai = importlib.import_module("google.genai")
        types = importlib.import_module("google.genai.types")
        options = types.HttpOptions(timeout=int(model.timeout_seconds * 1000))
        if model.base_url:
            options.base_url = model.base_url
        gclient = genai.Client(api_key=key, http_options=options)
        models = gclient.aio.models
        models.generate_content = metered(models.generate_content, metrics)
        gmode = instructor.Mode.GENAI_TOOLS if model.mode is None else mode
        return instructor.from_genai(gclient, mode=gmode, use_async=True)
    # SDK not installed: the provider's OpenAI-compatible endpoint with the openai SDK
    if model.mode is None or mode.name.startswith("ANTHROPIC"):
        mode = instructor.Mode.TOOLS
    base = model.base_url or OPENAI_COMPATIBLE_ENDPOINTS[provider]
    log.info(
        "provider SDK not installed, using its OpenAI-compatible endpoint",
        extra={"provider": provider, "base_url": base},
    )
    return _from_openai(_openai_client(model, key, base, pool), mode, metrics)


def _from_openai(client: Any, mode: Any, metrics: Metrics) -> Any:
    """instructor over the openai SDK, calling the model through ``chat_completions_call``.

    ``from_openai`` checks and normalizes the mode; its patched function is then rebuilt
    around the faster, metered call with instructor's public ``patch(create=...)``.
    """
    import instructor

    wrapped = instructor.from_openai(client, mode=mode)
    if not hasattr(wrapped, "create_fn"):  # an instructor that changed shape: fail loudly
        raise RuntimeError("unsupported instructor version: AsyncInstructor.create_fn is gone")
    wrapped.create_fn = instructor.patch(
        create=metered(chat_completions_call(client), metrics),
        mode=wrapped.mode,
        provider=wrapped.provider,
    )
    return wrapped


def chat_completions_call(client: Any) -> RawCreate:
    """``POST /chat/completions`` through the SDK's client, without ``create()``'s transform.

    ``AsyncCompletions.create`` first runs its params through a TypedDict-driven transform
    that visits every node of the messages and tools, the tool's JSON Schema included: a
    quarter of the runtime's CPU per call in a profile. For chat-completion params the
    transform changes nothing (no field has an alias or a wire format), and what instructor
    passes is already plain JSON. ``client.post`` is the SDK's documented way to call an
    endpoint directly and keeps everything else: auth, bounded retries honouring
    ``retry-after``, timeouts, typed errors and the parsed ``ChatCompletion``.
    """
    from openai.types.chat import ChatCompletion

    async def create(**params: Any) -> Any:
        if params.get("stream"):  # streaming needs the SDK's stream plumbing
            return await client.chat.completions.create(**params)
        options: dict[str, Any] = {}
        for name, option in (
            ("extra_headers", "headers"),
            ("extra_query", "params"),
            ("extra_body", "extra_json"),
            ("timeout", "timeout"),
        ):
            if name in params:
                options[option] = params.pop(name)
        return await client.post(
            "/chat/completions", body=params, cast_to=ChatCompletion, options=options
        )

    return create


def metered(call: RawCreate, metrics: Metrics) -> RawCreate:
    """Time every model call, count its tokens, and count re-asks.

    Wrapping the raw SDK call that instructor patches sees each attempt, re-asks included,
    at no cost per call; instructor's own hooks inspect every handler's signature on every
    event. Transport retries happen inside ``call`` and are one call here.
    """

    @functools.wraps(call)
    async def create(*args: Any, **kwargs: Any) -> Any:
        calls = _calls.get()
        if calls is not None:
            calls[0] += 1
            if calls[0] > 1:
                metrics.validation_retries_c.inc()
        started = time.perf_counter()
        try:
            response = await call(*args, **kwargs)
        finally:
            metrics.llm_duration_h.observe(time.perf_counter() - started)
        count_tokens(response, metrics)
        return response

    return create


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


@contextlib.contextmanager
def request_scope() -> Iterator[None]:
    """Count the model calls of one request, so calls after the first count as re-asks."""
    token = _calls.set([0])
    try:
        yield
    finally:
        _calls.reset(token)


class LLM:
    """The shared client plus the per-call settings."""

    def __init__(self, model: ModelConfig, metrics: Metrics, max_in_flight: int = 100) -> None:
        self.model = model
        self.metrics = metrics
        pool = max(16, max_in_flight + 8)
        self.client = build_instructor(model, metrics, pool)
        memoize_async_validator_check()
        self.extra: dict[str, Any] = {}
        if model.temperature is not None:
            self.extra["temperature"] = model.temperature
        if model.max_tokens is not None:
            self.extra["max_tokens"] = model.max_tokens
        elif model.provider == "anthropic":
            self.extra["max_tokens"] = 4096  # anthropic refuses a call without it

    async def aclose(self) -> None:
        inner = getattr(self.client, "client", None)
        close = getattr(inner, "close", None)
        if close is not None:
            result = close()
            if hasattr(result, "__await__"):
                await result

    async def complete(
        self, messages: Sequence[dict[str, Any]], response_model: type[BaseModel]
    ) -> BaseModel:
        try:
            with request_scope():
                result = await self.client.chat.completions.create(
                    model=self.model.name,
                    messages=list(messages),
                    response_model=response_model,
                    max_retries=self.model.max_retries,
                    **self.extra,
                )
        except Exception as exc:
            raise classify(exc) from exc
        assert isinstance(result, BaseModel)
        return result


def prepared_response_model(model: type[BaseModel]) -> type[BaseModel]:
    """Wrap the output model for instructor once, at start-up.

    instructor wraps a plain model into a new ResponseSchema subclass on every call, which
    also defeats its cache of the tool schema: about a third of the runtime's CPU per call
    in a profile. A model that already is a ResponseSchema is used as is.
    """
    try:
        from instructor.v2.core.function_calls import response_schema
    except ImportError:  # a future instructor without this helper: correct, only slower
        return model
    wrapped: type[BaseModel] = response_schema(model)
    return wrapped


def memoize_async_validator_check() -> None:
    """Run instructor's "no async validators" walk once per response model class.

    instructor walks every attribute of the model's whole MRO (pydantic's BaseModel included)
    seven times per call to refuse async validators; for a class that passed once the answer
    cannot change, and the walk was the largest single CPU cost left in a profile. Classes
    that passed are remembered weakly; anything else takes the original path.
    """
    try:
        from instructor.v2.validation import async_validators as module
    except ImportError:
        return
    original = module.reject_async_validators
    if getattr(original, "_atomic_memoized", False):
        return
    passed: weakref.WeakSet[type] = weakref.WeakSet()

    def reject_async_validators(response_model: Any) -> None:
        if isinstance(response_model, type):
            try:
                if response_model in passed:
                    return
            except TypeError:
                pass
        original(response_model)
        if isinstance(response_model, type):
            with contextlib.suppress(TypeError):
                passed.add(response_model)

    reject_async_validators._atomic_memoized = True  # type: ignore[attr-defined]
    # Modules that imported the function by name at import time (instructor.v2.core.patch)
    # hold the original; rebind it there too.
    for name, loaded in list(sys.modules.items()):
        if name.startswith("instructor") and getattr(
                loaded, "reject_async_validators", None) is original:
            loaded.reject_async_validators = reject_async_validators  # type: ignore[attr-defined]


def _first_int(obj: Any, names: tuple[str, ...]) -> int:
    for name in names:
        value = getattr(obj, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw:
            try:
                return float(raw) * scale
            except ValueError:
                continue
    return None


def _validation_details(exc: BaseException) -> tuple[dict[str, str], ...]:
    from .schema_models import json_path

    if isinstance(exc, ValidationError):
        return tuple(
            {"path": json_path(list(e["loc"])), "message": e["msg"]}
            for e in exc.errors(include_url=False)
        )
    return ({"path": "$", "message": str(exc)[:300]},)


def classify(exc: BaseException) -> LLMCallError:
    """Map whatever the SDK stack raised to one reason the API and the metrics share."""
    if isinstance(exc, LLMCallError):
        return exc
    chain = _chain(exc)
    attempts = getattr(exc, "n_attempts", None)
    if any(isinstance(err, ConnectionError) for err in chain):
        # refused/reset: the aiohttp transport reports a refused connect as a ConnectTimeout
        return LLMCallError("connection", "the model provider is unreachable", attempts=attempts)
    for err in chain:
        name = type(err).__name__
        status = getattr(err, "status_code", None)
        if not isinstance(status, int):
            status = getattr(getattr(err, "response", None), "status_code", None)
        if "Timeout" in name or isinstance(err, TimeoutError):
            return LLMCallError(
                "timeout", "the model provider did not answer in time", None, attempts=attempts
            )
        if status == 429 or "RateLimit" in name:
            return LLMCallError(
                "rate_limit",
                "the model provider is rate-limiting this agent",
                429,
                retry_after=_retry_after(err),
                attempts=attempts,
            )
        if isinstance(status, int) and status >= 500:
            return LLMCallError(
                "upstream_5xx",
                f"the model provider failed with HTTP {status}",
                status,
                retry_after=_retry_after(err),
                attempts=attempts,
            )
        if isinstance(status, int) and 400 <= status < 500:
            return LLMCallError(
                "upstream_4xx",
                f"the model provider refused the call (HTTP {status})",
                status,
                attempts=attempts,
            )
        if "Connection" in name or isinstance(err, ConnectionError):
            return LLMCallError(
                "connection", "the model provider is unreachable", attempts=attempts
            )
    for err in chain:
        if isinstance(err, ValidationError | json.JSONDecodeError) or type(err).__name__ in (
            "ResponseParsingError",
            "AsyncValidationError",
            "IncompleteOutputException",
        ):
            return LLMCallError(
                "validation",
                "the model's output did not match the output schema after "
                f"{attempts or 1} attempt(s)",
                attempts=attempts,
                details=_validation_details(err),
            )
    return LLMCallError("other", f"model call failed ({type(exc).__name__})", attempts=attempts)
