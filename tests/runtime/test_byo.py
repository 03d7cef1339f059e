"""Bring your own agent: a user's AtomicAgent in the image, served the same way."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from .conftest import Fake, make_config


def test_real_atomic_agent_is_served_with_its_own_schemas(fake: Fake, spawn: Any) -> None:
    config = make_config(
        fake.base_url,
        agentRef="tests.runtime.byo_agents:agent",
        inputSchema=None,
        outputSchema=None,
        contextProviders=[{"name": "extra", "title": "Glossary", "text": "hola: hello"}],
    )
    rt = spawn(config)
    schema = httpx.get(f"{rt.url}/schema").json()
    assert schema["input"]["title"] == "TranslateInput"
    assert schema["input"]["required"] == ["text", "target"]
    assert schema["output"]["properties"]["confidence"]["maximum"] == 1
    doc = httpx.get(f"{rt.url}/openapi.json").json()
    assert doc["components"]["schemas"]["AgentInput"]["title"] == "TranslateInput"

    bad = httpx.post(f"{rt.url}/run", json={"text": "", "target": "english"})
    assert bad.status_code == 422
    assert {d["path"] for d in bad.json()["error"]["details"]} == {"$.text", "$.target"}

    fake.control(script=["invalid", "ok"])
    for _ in range(2):  # a second request must not see the first one's history
        response = httpx.post(f"{rt.url}/run", json={"text": "hola", "target": "en"}, timeout=10)
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"translation", "confidence"}
    calls = fake.requests()
    assert len(calls) == 3  # one re-ask, then one call
    last = calls[-1]
    assert [m["role"] for m in last["messages"]] == ["system", "user"]
    assert last["model"] == "gpt-fake"  # the configured model, through the runtime's client
    system = last["messages"][0]["content"]
    assert system.startswith("# IDENTITY and PURPOSE\n- You translate text.")
    assert "## Tone\nFormal register." in system and "## Glossary\nhola: hello" in system
    assert json.loads(last["messages"][1]["content"]) == {"text": "hola", "target": "en"}


def test_loader_accepts_a_factory_with_the_atomic_agent_interface(fake: Fake, spawn: Any) -> None:
    """Runs without atomic-agents: a zero-argument factory returning an agent-like object."""
    config = make_config(
        fake.base_url,
        agentRef="tests.runtime.byo_agents:make_minimal_agent",
        inputSchema=None,
        outputSchema=None,
    )
    rt = spawn(config)
    assert httpx.get(f"{rt.url}/schema").json()["input"]["title"] == "MinimalIn"
    for _ in range(2):
        response = httpx.post(f"{rt.url}/run", json={"question": "why?"}, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json() == {"answer": "fake"}


def test_bad_agent_ref_fails_at_start(fake: Fake, spawn: Any) -> None:
    config = make_config(
        fake.base_url, agentRef="tests.runtime.byo_agents:nothing_here",
        inputSchema=None, outputSchema=None,
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="has no 'nothing_here'"):
        spawn(config)
