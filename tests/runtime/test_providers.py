"""Every provider's client is built correctly; the openai family is called against the fake."""

from __future__ import annotations

import asyncio

import instructor
import pytest

from atomic_runtime.config import ModelConfig
from atomic_runtime.llm import MissingAPIKeyError, build_instructor, has_module
from atomic_runtime.metrics import Metrics


def model(provider: str, **extra: object) -> ModelConfig:
    return ModelConfig.model_validate(
        {"provider": provider, "name": "m", "apiKeyEnv": "TEST_PROVIDER_KEY", **extra}
    )


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PROVIDER_KEY", "k-0123456789")


@pytest.mark.parametrize(
    ("provider", "sdk", "fallback_url", "mode"),
    [
        ("anthropic", "anthropic", "https://api.anthropic.com/v1/", instructor.Mode.TOOLS),
        ("groq", "groq", "https://api.groq.com/openai/v1/", instructor.Mode.TOOLS),
        ("gemini", "google.genai",
         "https://generativelanguage.googleapis.com/v1beta/openai/", instructor.Mode.TOOLS),
    ],
)  # fmt: skip
def test_sdk_providers_construct(provider: str, sdk: str, fallback_url: str, mode: object) -> None:
    client = build_instructor(model(provider, timeoutSeconds=7, maxRetries=1), Metrics("m"))
    assert isinstance(client, instructor.AsyncInstructor)
    inner = client.client
    if not has_module(sdk):
        # SDK absent: the provider's OpenAI-compatible endpoint through the openai SDK
        assert str(inner.base_url) == fallback_url
        assert inner.max_retries == 1
        assert inner.timeout.read == 7
        assert client.mode == mode
    else:
        assert type(inner).__module__.startswith(sdk.split(".")[0])


def test_openai_timeout_and_retries_replace_the_sdk_defaults() -> None:
    client = build_instructor(model("openai"), Metrics("m"))
    assert client.client.timeout.read == 60  # not the SDK's 600 s
    assert client.client.max_retries == 0  # the runtime's Transport retries, within the deadline
    assert client.mode == instructor.Mode.TOOLS


def test_missing_key_fails_loudly_for_hosted_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_PROVIDER_KEY")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="TEST_PROVIDER_KEY"):
        build_instructor(model("openai"), Metrics("m"))


def test_ollama_needs_no_key_but_a_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_PROVIDER_KEY")
    client = build_instructor(model("ollama", baseURL="http://127.0.0.1:11434/v1"), Metrics("m"))
    assert client.mode == instructor.Mode.JSON
    with pytest.raises(ValueError, match="baseURL is required"):
        model("ollama")


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown instructor mode"):
        build_instructor(model("openai", mode="telepathy"), Metrics("m"))


@pytest.mark.parametrize("provider", ["openai", "groq"])
def test_model_calls_carry_instructor_kwargs_and_are_metered(provider: str) -> None:
    """openai: the direct ``/chat/completions`` call keeps what create() would send, extras
    included. groq: its own SDK (a dev dependency, so this path runs) with the metered method."""
    from pydantic import BaseModel

    from tests.fakes.openai_server import FakeServerThread

    class Answer(BaseModel):
        text: str

    metrics = Metrics("m")
    with FakeServerThread() as fake:
        # groq's SDK appends /openai/v1/chat/completions to its base URL
        base = fake.base_url if provider == "openai" else fake.base_url.removesuffix("/v1")
        client = build_instructor(model(provider, baseURL=base), metrics)

        async def call() -> Answer:
            try:
                result: Answer = await client.chat.completions.create(
                    model="m",
                    messages=[{"role": "user", "content": "hi"}],
                    response_model=Answer,
                    max_retries=0,
                    temperature=0.5,
                    extra_body={"seed": 7},
                    extra_headers={"x-trace": "1"},
                )
                return result
            finally:
                await client.client.close()

        answer = asyncio.run(call())
        sent = fake.app.requests[-1]
    assert type(client.client).__module__.startswith(provider)
    assert answer.text == "fake"
    assert sent["seed"] == 7 and sent["temperature"] == 0.5 and sent["model"] == "m"
    assert sent["tools"][0]["function"]["name"] == "Answer"
    assert "extra_body" not in sent and "extra_headers" not in sent
    text = metrics.render().decode()
    assert 'agent_llm_request_duration_seconds_count{agent="m"} 1.0' in text
    assert 'agent_llm_tokens_total{agent="m",type="completion"}' in text
    assert 'agent_llm_tokens_total{agent="m",type="completion"} 0.0' not in text
