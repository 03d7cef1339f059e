"""Bring your own agent: serve an ``atomic_agents.AtomicAgent`` baked into the image.

``agentRef: "package.module:attribute"`` names either an AtomicAgent instance or a zero-argument
callable returning one. The library is imported only through the user's module, so images that
do not use this feature do not carry atomic-agents and its 400 MB dependency tree.

AtomicAgent objects keep conversation state (history, current input), so each request runs on
its own shallow copy with a fresh history; the runtime's shared async instructor client (with
its timeouts, bounded retries and metered model calls) and the configured model name replace the
ones the agent was built with, so the API key still comes only from the Secret. The agent's
schemas, system prompt generator and context providers are its own; context providers from
the config are added to them.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from .config import AgentConfig
from .context import build_providers
from .llm import LLM, classify, request_scope


class AgentRefError(RuntimeError):
    pass


def load_object(ref: str) -> Any:
    module_name, _, attr_path = ref.partition(":")
    if not module_name or not attr_path:
        raise AgentRefError(f"agentRef {ref!r} must look like 'package.module:attribute'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise AgentRefError(f"agentRef {ref!r}: cannot import {module_name!r}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AgentRefError(f"agentRef {ref!r}: {module_name} has no {attr_path!r}") from None
    return obj


AGENT_INTERFACE = ("input_schema", "output_schema", "run_async", "reset_history",
                   "get_context_provider", "register_context_provider", "client", "model",
                   "model_api_parameters")
"""What the runtime uses of an atomic_agents.AtomicAgent: its public methods, and the
attributes its AgentConfig documents (client, model, model_api_parameters), which the
runtime sets on each per-request copy. tests/runtime/test_byo.py holds these against the
real library (pinned in the Makefile's dev install)."""


def _looks_like_atomic_agent(obj: Any) -> bool:
    return all(hasattr(obj, attr) for attr in ("input_schema", "output_schema", "run_async"))


def _missing(obj: Any) -> list[str]:
    return [attr for attr in AGENT_INTERFACE if not hasattr(obj, attr)]


class ByoAgent:
    def __init__(self, config: AgentConfig, llm: LLM) -> None:
        assert config.agent_ref is not None
        self.name = config.name
        self.llm = llm
        target = load_object(config.agent_ref)
        self._factory: Callable[[], Any] | None = None
        if _looks_like_atomic_agent(target):
            template = target
        elif callable(target):
            self._factory = target
            template = target()
        else:
            template = None
        if template is None or not _looks_like_atomic_agent(template):
            raise AgentRefError(
                f"agentRef {config.agent_ref!r} is neither an AtomicAgent nor a callable "
                "returning one"
            )
        missing = _missing(template)
        if missing:  # a different atomic-agents: say so at start, not on every request
            raise AgentRefError(
                f"agentRef {config.agent_ref!r}: the agent lacks {', '.join(missing)}; the "
                "runtime serves atomic-agents 2.x AtomicAgents (tested with 2.15)"
            )
        self._template = template
        self.input_model: type[BaseModel] = template.input_schema
        self.output_model: type[BaseModel] = template.output_schema
        self.input_schema = self.input_model.model_json_schema()
        self.output_schema = self.output_model.model_json_schema()
        self._extra_providers = build_providers(config.context_providers)
        self._params = {**llm.extra, "max_retries": llm.model.max_retries}

    def fresh(self) -> Any:
        """A per-request agent: shared client and prompt generator, private history.

        The copy shares the template's hook registry: the runtime registers no hooks per
        request, and hooks would go to the shared client, so nothing leaks between requests.
        """
        if self._factory is not None:
            agent = self._factory()
        else:
            agent = copy.copy(self._template)
            agent.reset_history()  # a history of its own (the copy shared the template's)
        agent.client = self.llm.client
        agent.model = self.llm.model.name
        agent.model_api_parameters = {**(agent.model_api_parameters or {}), **self._params}
        for name, provider in self._extra_providers.items():
            try:
                agent.get_context_provider(name)  # the agent's own provider wins
            except KeyError:
                agent.register_context_provider(name, provider)
        return agent

    async def run(self, data: BaseModel) -> BaseModel:
        agent = self.fresh()
        with request_scope() as scope:
            try:
                result = await agent.run_async(data)
            except Exception as exc:
                raise classify(exc, scope) from exc
        assert isinstance(result, BaseModel)
        return result
