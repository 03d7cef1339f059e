"""Run an agent once on this machine: the engine behind ``atomicctl run-local``.

It uses the same config model, schema translation, prompt composition and LLM client as the
service, so what works locally works in the pod; only HTTP, admission and metrics are left out.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import ValidationError

from .config import parse_config
from .llm import LLMCallError
from .metrics import Metrics
from .schema_models import json_path, schema_errors


class LocalRunError(RuntimeError):
    """A failure with a message fit for a terminal: what failed and where."""

    def __init__(self, message: str, details: list[dict[str, str]] | None = None) -> None:
        lines = [message, *(f"  {d['path']}: {d['message']}" for d in details or [])]
        super().__init__("\n".join(lines))
        self.details = details or []


async def _run(config_data: dict[str, Any], payload: Any) -> dict[str, Any]:
    from jsonschema import Draft202012Validator

    from .app import build_agent

    try:
        config = parse_config(config_data)
    except ValidationError as exc:
        raise LocalRunError(
            "invalid agent configuration",
            [
                {"path": json_path(list(e["loc"])), "message": e["msg"]}
                for e in exc.errors(include_url=False)
            ],
        ) from exc
    agent = build_agent(config, Metrics(config.name))
    llm = getattr(agent, "llm", None)
    try:
        problems = schema_errors(Draft202012Validator(agent.input_schema), payload)
        if problems:
            raise LocalRunError("the input does not match the input schema", problems)
        data = agent.input_model.model_validate(payload)
        try:
            result = await asyncio.wait_for(agent.run(data), config.request_timeout_seconds)
        except TimeoutError as exc:
            raise LocalRunError(
                f"no answer within {config.request_timeout_seconds:g}s (requestTimeoutSeconds)"
            ) from exc
        except LLMCallError as failure:
            raise LocalRunError(f"model call failed: {failure}", list(failure.details)) from None
        dumped: dict[str, Any] = result.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return dumped
    finally:
        if llm is not None:
            await llm.aclose()


def run_local(config: dict[str, Any], input_json: str) -> dict[str, Any]:
    """Run the agent described by a runtime-config dict once and return its typed output.

    ``config`` has the shape of docs/runtime-config.md; the API key comes from the
    environment variable named by ``model.apiKeyEnv``. Raises LocalRunError with the failing
    JSON paths on bad input or output.
    """
    try:
        payload = json.loads(input_json)
    except ValueError as exc:
        raise LocalRunError(f"--input is not JSON: {exc}") from exc
    return asyncio.run(_run(config, payload))
