"""run_local (the engine of ``atomicctl run-local``) and the non-tools instructor modes."""

from __future__ import annotations

import json

import pytest

from atomic_runtime.local import LocalRunError, run_local

from .conftest import API_KEY, OUTPUT_SCHEMA, VALID_INPUT, Fake, make_config


@pytest.fixture(autouse=True)
def api_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOMIC_AGENT_API_KEY", API_KEY)


def test_run_local_returns_the_typed_output(fake: Fake) -> None:
    output = run_local(make_config(fake.base_url), json.dumps(VALID_INPUT))
    assert set(output) >= set(OUTPUT_SCHEMA["required"])
    assert len(fake.requests()) == 1


@pytest.mark.parametrize("mode", ["json", "md_json", "json_schema", "tools"])
def test_ollama_provider_in_every_openai_compatible_mode(fake: Fake, mode: str) -> None:
    config = make_config(fake.base_url, model={"provider": "ollama", "mode": mode})
    output = run_local(config, json.dumps(VALID_INPUT))
    assert output["risk"] == "low" and output["steps"][0]["order"] == 1
    call = fake.requests()[-1]
    assert ("tools" in call) == (mode == "tools")


def test_openai_compatible_without_a_key_and_default_mode(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ATOMIC_AGENT_API_KEY")
    config = make_config(fake.base_url, model={"provider": "openai-compatible", "mode": None})
    assert run_local(config, json.dumps(VALID_INPUT))["title"] == "fake"


def test_run_local_reports_bad_input_paths(fake: Fake) -> None:
    with pytest.raises(LocalRunError) as info:
        run_local(make_config(fake.base_url), json.dumps({"priority": "urgent"}))
    paths = {d["path"] for d in info.value.details}
    assert paths == {"$.request", "$.priority"}
    assert fake.requests() == []


def test_run_local_reports_model_failures(fake: Fake) -> None:
    fake.control(behavior="invalid")
    with pytest.raises(LocalRunError, match="did not match the output schema"):
        run_local(make_config(fake.base_url, model={"maxRetries": 1}), json.dumps(VALID_INPUT))
    assert len(fake.requests()) == 2


def test_run_local_rejects_a_bad_config() -> None:
    with pytest.raises(LocalRunError, match=r"\$.model.baseURL|baseURL is required"):
        run_local(make_config("x", model={"provider": "ollama", "baseURL": None}), "{}")
