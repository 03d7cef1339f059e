"""Contract tests of compat/instructor.py: on real calls against the fake, instructor reuses
the output model wrapped once, and asks the memoized async-validator check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from atomic_runtime.compat import ACTIVE
from atomic_runtime.compat.instructor import (
    MEMOIZED_CHECK,
    RESPONSE_SCHEMA,
    STATS,
    prepared_response_model,
)
from atomic_runtime.config import ModelConfig
from atomic_runtime.llm import LLM
from atomic_runtime.metrics import Metrics
from atomic_runtime.schema_models import model_from_schema
from tests.fakes.openai_server import FakeServerThread

from .conftest import OUTPUT_SCHEMA

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def llm(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LLM]:
    monkeypatch.setenv("TEST_KEY", "k-1")
    with FakeServerThread() as fake:
        config = ModelConfig.model_validate({"provider": "openai", "name": "m", "mode": "tools",
                                             "apiKeyEnv": "TEST_KEY", "baseURL": fake.base_url})
        client = LLM(config, Metrics("m"))
        yield client
        await client.aclose()


async def test_the_prepared_output_model_is_not_rewrapped_per_call(llm: LLM) -> None:
    plain = model_from_schema(OUTPUT_SCHEMA, "out")
    prepared = prepared_response_model(plain)
    assert ACTIVE[RESPONSE_SCHEMA] and prepared is not plain
    wrappers = len(plain.__subclasses__())
    for _ in range(3):
        await llm.complete(MESSAGES, prepared)
    assert len(plain.__subclasses__()) == wrappers  # instructor made no wrapper per call
    assert prepared.__subclasses__() == []
    # the measure can fail: the plain model gets a new wrapper class on every call
    await llm.complete(MESSAGES, plain)
    assert len(plain.__subclasses__()) == wrappers + 1


async def test_the_async_validator_check_is_memoized(llm: LLM) -> None:
    assert ACTIVE[MEMOIZED_CHECK]
    prepared = prepared_response_model(model_from_schema(OUTPUT_SCHEMA, "out"))
    hits, walks = STATS["check_hits"], STATS["check_walks"]
    for _ in range(3):
        await llm.complete(MESSAGES, prepared)
    assert STATS["check_walks"] - walks <= 1  # the first sight of the class
    assert STATS["check_hits"] - hits >= 3  # every later check answered from memory


def test_a_patch_that_no_longer_applies_falls_back_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from atomic_runtime.compat import apply

    def broken() -> None:
        raise AttributeError("module 'lib' has no attribute 'gone'")

    with caplog.at_level("WARNING", logger="atomic_runtime.compat"):
        assert apply("test.broken", broken) is False
        assert apply("test.broken", broken) is False
    assert ACTIVE["test.broken"] is False
    warnings = [r for r in caplog.records if "test.broken" in r.getMessage()]
    assert len(warnings) == 1 and "public path" in warnings[0].getMessage()


def test_every_patch_can_be_switched_off(fake: Any, spawn: Any) -> None:
    """ATOMIC_AGENT_COMPAT_OFF=all: a real runtime serves on the public paths alone."""
    import httpx

    from .conftest import VALID_INPUT, make_config

    rt = spawn(make_config(fake.base_url), env={"ATOMIC_AGENT_COMPAT_OFF": "all"})
    assert httpx.post(f"{rt.url}/run", json=VALID_INPUT, timeout=15).status_code == 200
    logs = rt.logs()
    for name in ("openai.chat_post", RESPONSE_SCHEMA, MEMOIZED_CHECK):
        assert f"compat patch {name} switched off" in logs
