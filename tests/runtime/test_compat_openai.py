"""Contract test of compat/openai.py: the fast chat-completions call is taken on a real call
against the fake, and sends exactly what the SDK's public ``create()`` sends."""

from __future__ import annotations

import copy
from typing import Any

import openai

from atomic_runtime.compat import ACTIVE
from atomic_runtime.compat.openai import CHAT_POST, STATS, chat_completions_call
from atomic_runtime.config import ModelConfig
from atomic_runtime.llm import LLM
from atomic_runtime.metrics import Metrics
from atomic_runtime.schema_models import model_from_schema
from tests.fakes.openai_server import FakeServerThread

from .conftest import OUTPUT_SCHEMA

PARAMS: dict[str, Any] = {
    "model": "m",
    "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    "tools": [{"type": "function", "function": {
        "name": "Answer", "parameters": {"type": "object", "properties": {"text": {
            "type": "string"}}, "required": ["text"]}}}],
    "tool_choice": {"type": "function", "function": {"name": "Answer"}},
    "temperature": 0.5,
    "extra_body": {"seed": 7},
    "extra_headers": {"x-trace": "1"},
}  # fmt: skip


async def test_the_fast_call_is_taken_and_sends_what_create_sends() -> None:
    with FakeServerThread() as fake:
        client = openai.AsyncOpenAI(api_key="k", base_url=fake.base_url, max_retries=0)
        try:
            call = chat_completions_call(client)
            assert ACTIVE[CHAT_POST]
            before = STATS["fast_calls"]
            fast = await call(**copy.deepcopy(PARAMS))
            assert STATS["fast_calls"] == before + 1
            public = await client.chat.completions.create(**copy.deepcopy(PARAMS))
        finally:
            await client.close()
        via_fast, via_create = list(fake.app.requests)[-2:]
    assert via_fast == via_create  # extra_body merged, extra_headers not in the body
    assert via_fast["seed"] == 7 and "extra_body" not in via_fast
    assert type(fast) is type(public)
    [fast_call] = fast.choices[0].message.tool_calls
    [public_call] = public.choices[0].message.tool_calls
    assert type(fast_call) is type(public_call)
    assert fast_call.function == public_call.function  # the ids differ per answer
    assert fast.usage == public.usage


async def test_the_runtime_client_calls_the_model_through_it(
        monkeypatch: Any) -> None:  # fmt: skip
    monkeypatch.setenv("TEST_KEY", "k-1")
    output = model_from_schema(OUTPUT_SCHEMA, "out")
    with FakeServerThread() as fake:
        config = ModelConfig.model_validate({"provider": "openai", "name": "m", "mode": "tools",
                                             "apiKeyEnv": "TEST_KEY", "baseURL": fake.base_url})
        llm = LLM(config, Metrics("m"))
        try:
            before = STATS["fast_calls"]
            await llm.complete([{"role": "user", "content": "hi"}], output)
            assert STATS["fast_calls"] == before + 1
        finally:
            await llm.aclose()
