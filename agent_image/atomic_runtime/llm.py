"""One shared, provider-agnostic structured-output client per process.

Every provider goes through instructor so validation and re-asks behave the same way. The
client is built once at start-up (connection pools and TLS sessions are shared by all
requests), with the SDK's 600 s default timeout replaced by the agent's own. Provider SDKs
other than openai are imported only when the config names them: when groq's, gemini's or
anthropic's SDK is absent, their OpenAI-compatible endpoints are used instead.

instructor is built through its public ``patch(create=...)`` and ``AsyncInstructor``, around
the provider's raw call wrapped in a `transport.Transport` (retries, deadline, metering).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from .compat.instructor import memoize_async_validator_check, prepared_response_model
from .compat.openai import chat_completions_call
from .config import ModelConfig
from .metrics import Metrics
from .transport import (
    LLMCallError,
    RawCreate,
    RequestScope,
    SdkErrors,
    Transport,
    deadline_at,
    exception_chain,
    has_module,
    request_scope,
    sdk_errors,
)

__all__ = [
    "LLM",
    "LLMCallError",
    "MissingAPIKeyError",
    "deadline_at",
    "prepared_response_model",
    "request_scope",
]

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

class MissingAPIKeyError(RuntimeError):
    pass


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


def uses_native_sdk(provider: str) -> bool:
    return provider in NATIVE_SDKS and has_module(NATIVE_SDKS[provider])


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
    transport = Transport(
        conn.call, conn.errors, metrics, model.max_retries, model.timeout_seconds
    )
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
    chain = exception_chain(exc)
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
