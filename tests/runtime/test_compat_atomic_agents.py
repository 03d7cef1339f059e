"""Contract test: what the runtime relies on in atomic_agents.AtomicAgent (byo.py) holds
for the real library at the version the dev install pins (Makefile: atomic-agents 2.15)."""

from __future__ import annotations

import copy

import pytest

from atomic_runtime.byo import AGENT_INTERFACE
from tests.runtime.byo_agents import agent as real_agent


def test_the_real_atomic_agent_has_the_interface_the_runtime_uses() -> None:
    assert real_agent is not None, "atomic-agents is not installed: `make venv` pins it"
    assert [a for a in AGENT_INTERFACE if not hasattr(real_agent, a)] == []


def test_a_copy_with_reset_history_keeps_the_templates_history_apart() -> None:
    assert real_agent is not None
    before = len(real_agent.history.get_history())
    fresh = copy.copy(real_agent)
    fresh.reset_history()
    assert fresh.history is not real_agent.history
    fresh.history.add_message("user", real_agent.input_schema(text="hola", target="en"))
    assert len(real_agent.history.get_history()) == before


def test_context_providers_are_found_by_name_or_refused_with_key_error() -> None:
    assert real_agent is not None
    assert real_agent.get_context_provider("tone").get_info() == "Formal register."
    with pytest.raises(KeyError):
        real_agent.get_context_provider("no-such-provider")
