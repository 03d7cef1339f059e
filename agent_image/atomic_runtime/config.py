"""The operator → runtime contract (docs/runtime-config.md) as a pydantic model.

The operator renders this file and the runtime refuses to start on anything it does not
understand, so a typo in a hand-written config fails at boot instead of at the first request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator, SchemaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

DEFAULT_CONFIG_PATH = "/etc/atomic-agent/agent.json"
FS_ROOT_ENV = "ATOMIC_AGENT_FS_ROOT"

Provider = Literal["openai", "anthropic", "groq", "gemini", "ollama", "openai-compatible"]


class _Camel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ModelConfig(_Camel):
    provider: Provider = "openai"
    name: str
    base_url: str | None = Field(default=None, alias="baseURL")
    api_key_env: str = "ATOMIC_AGENT_API_KEY"
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    timeout_seconds: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    mode: str | None = None

    @model_validator(mode="after")
    def _base_url_where_needed(self) -> ModelConfig:
        if self.provider in ("ollama", "openai-compatible") and not self.base_url:
            raise ValueError(f"model.baseURL is required for provider {self.provider!r}")
        return self


class SystemPromptConfig(_Camel):
    background: list[str] = Field(default_factory=list)
    steps: list[str] = Field(default_factory=list)
    output_instructions: list[str] = Field(default_factory=list)


class ContextProviderConfig(_Camel):
    name: str
    title: str
    text: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ContextProviderConfig:
        if (self.text is None) == (self.file is None):
            raise ValueError(
                f"contextProviders[{self.name}]: exactly one of 'text' or 'file' is required"
            )
        return self


class ConcurrencyConfig(_Camel):
    max_in_flight: int = Field(default=8, ge=1)
    queue_size: int = Field(default=32, ge=0)


class AgentConfig(_Camel):
    api_version: str = "atomicagents.io/v1alpha1"
    kind: Literal["AgentConfig"] = "AgentConfig"
    name: str
    namespace: str = "default"
    model: ModelConfig
    system_prompt: SystemPromptConfig = Field(default_factory=SystemPromptConfig)
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    context_providers: list[ContextProviderConfig] = Field(default_factory=list)
    concurrency: ConcurrencyConfig = Field(default_factory=ConcurrencyConfig)
    request_timeout_seconds: float = Field(default=120.0, gt=0)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    agent_ref: str | None = None

    @model_validator(mode="after")
    def _schemas_or_agent_ref(self) -> AgentConfig:
        if self.agent_ref is None and (self.input_schema is None or self.output_schema is None):
            raise ValueError("inputSchema and outputSchema are required unless agentRef is set")
        if self.agent_ref is not None and ":" not in self.agent_ref:
            raise ValueError("agentRef must look like 'module:attribute'")
        names = [p.name for p in self.context_providers]
        if len(names) != len(set(names)):
            raise ValueError("contextProviders names must be unique")
        for field, schema in (("inputSchema", self.input_schema),
                              ("outputSchema", self.output_schema)):  # fmt: skip
            if schema is not None:
                check_schema(field, schema)
        return self


def _pointer(path: Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _refs(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[str, tuple[Any, ...]]]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref, path
        for key, value in node.items():
            if key not in ("const", "enum", "default", "examples"):
                yield from _refs(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, (*path, index))


def check_schema(field: str, schema: dict[str, Any]) -> None:
    """Refuse a schema the runtime could not enforce, before the first request meets it.

    The metaschema check includes ``format: regex`` for ``pattern``; a ``$ref`` must be local
    (the runtime fetches nothing) and point at a schema inside the document.
    """
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(
            f"{field} is not a valid JSON Schema at {field}{_pointer(exc.path)}: {exc.message}"
        ) from None
    for ref, path in _refs(schema):
        where = f"{field}{_pointer(path)}.$ref"
        if not ref.startswith("#"):
            raise ValueError(f"{where}: only local references (#/...) are supported, got {ref!r}")
        node: Any = schema
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise ValueError(f"{where}: {ref!r} does not resolve inside {field}")
        if not isinstance(node, dict | bool):
            raise ValueError(f"{where}: {ref!r} does not point at a schema")


def describe_error(exc: BaseException) -> str:
    """One line for a configuration error: pydantic's report is several lines per error."""
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            parts.append(f"{loc}: {msg}" if loc else msg)
        return "; ".join(parts)
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON: {exc}"
    return " ".join(str(exc).split()) or type(exc).__name__


def parse_config(data: dict[str, Any]) -> AgentConfig:
    return AgentConfig.model_validate(data)


def mounted(path: str) -> Path:
    """Where a file the pod mounts really is: the path itself in a container.

    The dev harness's process node runs pods as plain processes without a mount namespace:
    it writes each pod's volumes below one directory and names it in ATOMIC_AGENT_FS_ROOT,
    which then stands in for ``/`` for the files the runtime reads (config, context files).
    """
    root = os.environ.get(FS_ROOT_ENV)
    if root and path.startswith("/"):
        return Path(root) / path.lstrip("/")
    return Path(path)


def load_config(path: str | None = None) -> AgentConfig:
    """Read the file the operator mounted; the path comes from ATOMIC_AGENT_CONFIG."""
    resolved = path or os.environ.get("ATOMIC_AGENT_CONFIG", DEFAULT_CONFIG_PATH)
    data = json.loads(mounted(resolved).read_text(encoding="utf-8"))
    for provider in data.get("contextProviders") or []:
        if isinstance(provider, dict) and isinstance(provider.get("file"), str):
            provider["file"] = str(mounted(provider["file"]))
    return parse_config(data)
