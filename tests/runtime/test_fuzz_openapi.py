"""Schema-driven fuzzing of a real runtime through its own OpenAPI document.

schemathesis generates valid and invalid requests for every operation the document declares
(a fixed seed through hypothesis' derandomize, and a bounded number of examples, so CI runs
the same cases each time in well under a minute). Every answer must be below 500, every
error must be the JSON envelope with the request id, and every answer must conform to the
document (status codes, content types, response schemas).
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.generation import GenerationMode

from .conftest import Runtime

EXAMPLES = {"/run": 60}  # the other endpoints take no input: a few examples cover them
PLAIN = {"/healthz", "/readyz", "/metrics"}


def header(response: Any, name: str) -> str:
    values = response.headers.get(name) or [""]  # schemathesis keeps every value in a list
    return str(values[0])


def check_answer(case: Any, response: Any) -> None:
    status = response.status_code
    assert status < 500, (case.path, case.body, status, response.text)
    if status >= 400 and case.path not in PLAIN:
        assert header(response, "content-type").startswith("application/json"), response.text
        error = response.json()["error"]
        assert error["type"] and error["message"]
        assert error["requestId"] == header(response, "x-request-id")


def test_fuzz_the_openapi_document(runtime: Runtime) -> None:
    schema = schemathesis.openapi.from_url(f"{runtime.url}/openapi.json")
    seen: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        # negative cases need something to break: only /run takes input
        modes = list(GenerationMode) if operation.path == "/run" else [GenerationMode.POSITIVE]
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=mode)

            @given(case=strategy)
            @settings(
                max_examples=EXAMPLES.get(operation.path, 5),
                derandomize=True,  # the fixed seed: the same cases on every run
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run_case(case: Any) -> None:
                response = case.call(base_url=runtime.url, timeout=10)
                seen.setdefault(case.path, set()).add(response.status_code)
                check_answer(case, response)
                case.validate_response(response)

            run_case()
    assert set(seen) >= {"/run", "/schema", "/healthz", "/readyz", "/metrics"}
    assert {200, 422} <= seen["/run"], seen  # both valid and invalid inputs were generated
