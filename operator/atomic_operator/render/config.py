"""The runtime configuration file (agent.json): the operator → runtime contract.

The shape is documented in docs/runtime-config.md. It carries no secret value: the API key
is named by an environment variable filled from the Secret, and Secret-backed context
providers are files the pod mounts.
"""

from __future__ import annotations

import json
from typing import Any

from atomic_operator import API_VERSION
from atomic_operator.api import AtomicAgent
from atomic_operator.naming import API_KEY_ENV, CONTEXT_DIR


def runtime_config(agent: AtomicAgent, name: str, namespace: str) -> dict[str, Any]:
    """The JSON document the runtime loads, derived only from the spec."""
    spec = agent.spec
    model = spec.model
    providers: list[dict[str, Any]] = []
    for provider in spec.context_providers:
        entry: dict[str, Any] = {"name": provider.name, "title": provider.title}
        if provider.text is not None:
            entry["text"] = provider.text
        else:
            entry["file"] = f"{CONTEXT_DIR}/{provider.name}"
        providers.append(entry)
    return {
        "apiVersion": API_VERSION,
        "kind": "AgentConfig",
        "name": name,
        "namespace": namespace,
        "model": {
            "provider": model.provider,
            "name": model.name,
            "baseURL": model.base_url,
            "apiKeyEnv": API_KEY_ENV if model.api_key_secret_ref else None,
            "temperature": model.temperature,
            "maxTokens": model.max_tokens,
            "timeoutSeconds": model.timeout_seconds,
            "maxRetries": model.max_retries,
            "mode": model.mode,
        },
        "systemPrompt": spec.system_prompt.model_dump(by_alias=True),
        "inputSchema": _schema(spec.input_schema),
        "outputSchema": _schema(spec.output_schema),
        "contextProviders": providers,
        "concurrency": {
            "maxInFlight": spec.concurrency.max_in_flight,
            "queueSize": spec.concurrency.queue_size,
        },
        "requestTimeoutSeconds": spec.concurrency.request_timeout_seconds,
        "maxBodyBytes": 1_048_576,
        "agentRef": spec.entrypoint,
    }


def config_json(config: dict[str, Any]) -> str:
    """agent.json exactly as the ConfigMap stores it: the size check measures this text and
    the config hash covers it, so neither can disagree with what is applied."""
    return json.dumps(config, indent=2, sort_keys=True)


def config_bytes(config: dict[str, Any]) -> int:
    """The stored size of agent.json, in bytes (UTF-8, as the API server counts them)."""
    return len(config_json(config).encode())


def _schema(schema: Any) -> dict[str, Any] | None:
    if schema is None:
        return None
    dumped: dict[str, Any] = schema.model_dump(by_alias=True, exclude_none=True)
    return dumped
