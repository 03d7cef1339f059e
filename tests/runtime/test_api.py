"""POST /run, /schema, /openapi.json, /healthz, /readyz over real HTTP."""

from __future__ import annotations

import httpx
from jsonschema import Draft202012Validator

from .conftest import INPUT_SCHEMA, OUTPUT_SCHEMA, VALID_INPUT, Fake, Runtime


def test_valid_run_returns_output_valid_against_the_output_schema(
    runtime: Runtime, fake: Fake
) -> None:
    response = httpx.post(f"{runtime.url}/run", json=VALID_INPUT, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(Draft202012Validator(OUTPUT_SCHEMA).iter_errors(body)) == []
    assert body["risk"] == "low" and body["steps"][0]["order"] == 1
    assert response.headers["x-request-id"]
    sent = fake.requests()
    assert len(sent) == 1
    call = sent[0]
    assert call["model"] == "gpt-fake" and call["temperature"] == 0.2 and call["max_tokens"] == 512
    # tools mode: the output schema is offered as the one function to call
    assert call["tools"][0]["function"]["parameters"]["required"] == ["risk", "steps", "title"]
    assert [m["role"] for m in call["messages"]] == ["system", "user"]
    assert httpx.Response(200, content=call["messages"][1]["content"]).json() == VALID_INPUT


def test_system_prompt_has_the_atomic_agents_layout(runtime: Runtime, fake: Fake) -> None:
    httpx.post(f"{runtime.url}/run", json=VALID_INPUT, timeout=10).raise_for_status()
    prompt = fake.requests()[0]["messages"][0]["content"]
    assert prompt == (
        "# IDENTITY and PURPOSE\n- You are a planner.\n\n"
        "# INTERNAL ASSISTANT STEPS\n- Read the request.\n- Write the steps.\n\n"
        "# OUTPUT INSTRUCTIONS\n- Keep steps short.\n"
        "- Always respond using the proper JSON schema.\n"
        "- Always use the available additional information and context to enhance the "
        "response.\n\n"
        "# EXTRA INFORMATION AND CONTEXT\n## House style\nBe terse.\n\n"
        "## Glossary\n" + prompt.split("## Glossary\n", 1)[1]
    )


def test_system_prompt_matches_the_real_system_prompt_generator() -> None:
    """Same text as atomic_agents.context.SystemPromptGenerator for the same inputs."""
    from atomic_agents.context import BaseDynamicContextProvider, SystemPromptGenerator

    from atomic_runtime.context import TextContext
    from atomic_runtime.prompt import SystemPrompt

    class Provider(BaseDynamicContextProvider):
        def get_info(self) -> str:
            return "Be terse."

    ours = SystemPrompt(["bg"], ["s1", "s2"], ["o1"], {"style": TextContext("Style", "Be terse.")})
    theirs = SystemPromptGenerator(["bg"], ["s1", "s2"], ["o1"], {"style": Provider("Style")})
    assert ours.generate_prompt() == theirs.generate_prompt()
    assert SystemPrompt().generate_prompt() == SystemPromptGenerator().generate_prompt()


def test_bad_input_is_422_naming_every_failing_path(runtime: Runtime, fake: Fake) -> None:
    bad = {
        "request": "",
        "priority": "urgent",
        "budget": -5,
        "tags": ["a", 7],
        "owner": {"team": "x"},
    }
    response = httpx.post(f"{runtime.url}/run", json=bad, timeout=10)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "invalid_input"
    paths = {d["path"] for d in error["details"]}
    assert paths == {"$.request", "$.priority", "$.budget", "$.tags[1]", "$.owner.name"}
    assert any("name" in d["message"] for d in error["details"]
               if d["path"] == "$.owner.name")
    missing = httpx.post(f"{runtime.url}/run", json={"priority": "low"}, timeout=10)
    assert missing.status_code == 422
    assert "'request' is a required property" in missing.text
    assert fake.requests() == []  # bad input never reaches the LLM


def test_non_json_body_is_400(runtime: Runtime) -> None:
    response = httpx.post(f"{runtime.url}/run", content=b"{not json", timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_json"


def test_oversized_body_is_413_with_and_without_content_length(
    runtime: Runtime, fake: Fake
) -> None:
    big = {**VALID_INPUT, "request": "x" * 5000}  # maxBodyBytes is 4096
    response = httpx.post(f"{runtime.url}/run", json=big, timeout=10)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "body_too_large"

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b" " * 1000

    chunked = httpx.post(f"{runtime.url}/run", content=chunks(), timeout=10)
    assert chunked.status_code == 413
    assert fake.requests() == []


def test_schema_endpoint_serves_the_configured_schemas(runtime: Runtime) -> None:
    body = httpx.get(f"{runtime.url}/schema", timeout=5).json()
    assert body == {"name": "planner", "input": INPUT_SCHEMA, "output": OUTPUT_SCHEMA}


def test_openapi_carries_the_real_schemas(runtime: Runtime) -> None:
    doc = httpx.get(f"{runtime.url}/openapi.json", timeout=5).json()
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    assert schemas["AgentInput"] == INPUT_SCHEMA
    assert schemas["AgentOutput"] == OUTPUT_SCHEMA
    run = doc["paths"]["/run"]["post"]
    body_ref = run["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref == "#/components/schemas/AgentInput"
    ok_ref = run["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ok_ref == "#/components/schemas/AgentOutput"
    assert {"413", "422", "429", "502", "503", "504"} <= set(run["responses"])


def test_health_and_readiness_never_call_the_llm(runtime: Runtime, fake: Fake) -> None:
    fake.control(behavior="hang")
    assert httpx.get(f"{runtime.url}/healthz", timeout=2).status_code == 200
    assert httpx.get(f"{runtime.url}/readyz", timeout=2).status_code == 200
    assert fake.requests() == []


def test_caller_request_id_is_echoed_and_logged(runtime: Runtime) -> None:
    response = httpx.post(
        f"{runtime.url}/run", json={"x": 1}, headers={"X-Request-ID": "abc-123"}, timeout=10
    )
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["error"]["requestId"] == "abc-123"
    assert '"request_id": "abc-123"' in runtime.logs()
