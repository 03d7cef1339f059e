"""Every claimed provider: its client is built for every mode the operator allows, and its
native SDK path serves /run in a real runtime process against the fake, metering included."""

from __future__ import annotations

from typing import Any

import httpx
import instructor
import pytest

from atomic_operator.checks import INSTRUCTOR_MODES
from atomic_runtime.config import ModelConfig
from atomic_runtime.llm import NATIVE_SDKS, MissingAPIKeyError, build_instructor
from atomic_runtime.metrics import Metrics

from .conftest import VALID_INPUT, Fake, make_config, metric_value


def model(provider: str, **extra: object) -> ModelConfig:
    return ModelConfig.model_validate(
        {"provider": provider, "name": "m", "apiKeyEnv": "TEST_PROVIDER_KEY", **extra}
    )


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PROVIDER_KEY", "k-0123456789")


SDK_MODULES = {"anthropic": "anthropic", "groq": "groq", "gemini": "google"}
FALLBACK_URLS = {
    "anthropic": "https://api.anthropic.com/v1/",
    "groq": "https://api.groq.com/openai/v1/",
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai/",
}


@pytest.mark.parametrize(
    ("provider", "mode", "native"),
    [
        (provider, mode, native)
        for provider, modes in sorted(INSTRUCTOR_MODES.items())
        for mode in [None, *sorted(modes)]
        for native in ([True, False] if provider in NATIVE_SDKS else [False])
    ],
)
def test_every_mode_the_operator_allows_builds(
    provider: str, mode: str | None, native: bool
) -> None:
    """The operator's allowed modes (checks.INSTRUCTOR_MODES) and the runtime agree, on the
    provider's own SDK and on its OpenAI-compatible fallback alike."""
    extra: dict[str, Any] = {"mode": mode, "timeoutSeconds": 7, "maxRetries": 1}
    if provider in ("ollama", "openai-compatible"):
        extra["baseURL"] = "http://127.0.0.1:1/v1"
    client = build_instructor(model(provider, **extra), Metrics("m"), native=native)
    assert isinstance(client, instructor.AsyncInstructor)
    inner = client.client
    if native:
        assert type(inner).__module__.startswith(SDK_MODULES[provider])
    else:
        assert type(inner).__module__.startswith("openai")
        assert inner.timeout.read == 7
        assert inner.max_retries == 0  # the runtime's Transport retries, within the deadline
        if provider in FALLBACK_URLS:
            assert str(inner.base_url) == FALLBACK_URLS[provider]


def test_openai_timeout_replaces_the_sdk_default() -> None:
    client = build_instructor(model("openai"), Metrics("m"))
    assert client.client.timeout.read == 60  # not the SDK's 600 s
    assert client.client.max_retries == 0
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


def test_a_mode_the_provider_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="does not work with provider gemini"):
        build_instructor(model("gemini", mode="md_json"), Metrics("m"), native=True)


ANSWER = {"title": "t", "steps": [{"order": 1, "text": "a"}], "risk": "low"}
"""A fixed answer: instructor's Gemini schema mapping drops keywords (``minimum``) that the
fake would need to synthesize a valid one."""

NATIVE = [
    # provider, mode, whether the fake must have been offered a tool (else asked for JSON)
    ("anthropic", None, True),
    ("anthropic", "anthropic_json", False),
    ("gemini", None, True),
    ("gemini", "gemini_json", False),
    ("groq", None, True),
]


@pytest.mark.parametrize(("provider", "mode", "tools"), NATIVE)
def test_native_sdk_serves_run_with_metering(
    fake: Fake, spawn: Any, provider: str, mode: str | None, tools: bool
) -> None:
    """The provider's own SDK against the fake's copy of its API: an answer, a re-ask after
    an invalid one, tokens, call durations and re-asks in /metrics."""
    config = make_config(
        fake.root,  # each SDK appends its own path: /v1/messages, /v1beta/models/..., /openai/v1
        model={"provider": provider, "mode": mode, "maxTokens": None},
        requestTimeoutSeconds=10,
    )
    rt = spawn(config)
    fake.control(script=["invalid", "ok"], output=ANSWER)
    response = httpx.post(f"{rt.url}/run", json=VALID_INPUT, timeout=15)
    assert response.status_code == 200, response.text
    assert response.json() == ANSWER
    sent = fake.requests()
    assert len(sent) == 2 and ("tools" in sent[0]) == tools
    assert sent[0].get("temperature", sent[0].get("generationConfig", {}).get("temperature")) == 0.2
    if provider == "anthropic":
        assert sent[0]["max_tokens"] == 4096  # the runtime's default: Anthropic requires it
    text = rt.metrics()
    assert metric_value(text, "agent_llm_request_duration_seconds_count", agent="planner") == 2
    assert metric_value(text, "agent_validation_retries_total", agent="planner") == 1
    assert metric_value(text, "agent_llm_tokens_total", agent="planner", type="prompt") > 0
    assert metric_value(text, "agent_llm_tokens_total", agent="planner", type="completion") > 0
    assert "provider SDK not installed" not in rt.logs()


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "groq"])
def test_native_sdk_errors_are_mapped_and_retried(
    fake: Fake, spawn: Any, provider: str
) -> None:
    """429 and 5xx in each provider's own error format: bounded retries, then the mapped
    answer and the error metric."""
    rt = spawn(make_config(fake.root, model={"provider": provider, "mode": None},
                           requestTimeoutSeconds=10))  # fmt: skip
    fake.control(behavior="status:429", retry_after_ms=10)
    response = httpx.post(f"{rt.url}/run", json=VALID_INPUT, timeout=15)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["type"] == "upstream_rate_limited"
    assert len(fake.requests()) == 3  # 1 + maxRetries
    fake.control(reset=True, script=["status:503", "ok"], output=ANSWER)
    assert httpx.post(f"{rt.url}/run", json=VALID_INPUT, timeout=15).status_code == 200
    assert len(fake.requests()) == 2  # a transient 5xx is retried transparently
    fake.control(reset=True, behavior="status:500")
    response = httpx.post(f"{rt.url}/run", json=VALID_INPUT, timeout=15)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_error"
    text = rt.metrics()
    for reason in ("rate_limit", "upstream_5xx"):
        assert metric_value(text, "agent_llm_errors_total", agent="planner", reason=reason) == 1


@pytest.mark.parametrize("provider", ["openai", "groq"])
def test_model_calls_carry_instructor_kwargs(fake: Fake, spawn: Any, provider: str) -> None:
    """openai: the direct ``/chat/completions`` call keeps what create() would send."""
    base = fake.base_url if provider == "openai" else fake.root
    rt = spawn(make_config(base, model={"provider": provider, "temperature": 0.5}))
    assert httpx.post(f"{rt.url}/run", json=VALID_INPUT, timeout=15).status_code == 200
    sent = fake.requests()[-1]
    assert sent["temperature"] == 0.5 and sent["model"] == "gpt-fake"
    assert sent["max_tokens"] == 512
    assert sent["tools"][0]["function"]["name"]
    assert sent["messages"][0]["role"] == "system"
