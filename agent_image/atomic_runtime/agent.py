"""The agent as the HTTP layer sees it: typed input in, typed output out.

Two implementations share this shape: one built from the operator's config (schemas and
prompt from the CR) and one wrapping a user's own Atomic Agents agent (see byo.py). The
HTTP layer, admission and metrics do not care which one they serve.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel

from .config import AgentConfig
from .context import build_providers
from .llm import LLM, prepared_response_model
from .prompt import SystemPrompt
from .schema_models import model_from_schema


class Agent(Protocol):
    name: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]

    async def run(self, data: BaseModel) -> BaseModel: ...


class ConfiguredAgent:
    """An agent defined entirely by the rendered config; stateless, so one serves all."""

    def __init__(self, config: AgentConfig, llm: LLM) -> None:
        assert config.input_schema is not None and config.output_schema is not None
        self.name = config.name
        self.llm = llm
        self.input_schema = config.input_schema
        self.output_schema = config.output_schema
        self.input_model = model_from_schema(config.input_schema, f"{config.name} input")
        self.output_model = model_from_schema(config.output_schema, f"{config.name} output")
        self._response_model = prepared_response_model(self.output_model)
        sp = config.system_prompt
        self.prompt = SystemPrompt(
            sp.background,
            sp.steps,
            sp.output_instructions,
            build_providers(config.context_providers),
        )

    def messages(self, data: BaseModel) -> list[dict[str, Any]]:
        # the same two messages an AtomicAgent sends on its first turn
        return [
            {"role": "system", "content": self.prompt.generate_prompt()},
            {"role": "user", "content": data.model_dump_json(by_alias=True, exclude_unset=True)},
        ]

    async def run(self, data: BaseModel) -> BaseModel:
        return await self.llm.complete(self.messages(data), self._response_model)
