"""Bodies that Python's json module accepts but JSON does not, against a real agent process.

Issue 22, items 8-10: input nested 256-999 levels inside a free-form field was a 500
("Maximum serialization depth exceeded"), a lone surrogate a 500 (UnicodeEncodeError on the
way to the provider), and NaN, Infinity, duplicate keys and a BOM were run (200). Each is now
a 400 naming the problem, before the model is ever called.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.openai_server import FakeServerThread

from .conftest import INPUT_SCHEMA, Fake, Runtime, make_config, metric_value

FREE_FORM = {**INPUT_SCHEMA,
             "properties": {**INPUT_SCHEMA["properties"], "extra": {"type": "object"}}}
HEAD = b'{"request": "paint the fence", "priority": "high", '

BAD_BODIES = {
    "nan": (HEAD + b'"extra": {"a": NaN}}', "NaN"),
    "infinity": (HEAD + b'"extra": {"a": -Infinity}}', "Infinity"),
    "duplicate-key": (HEAD + b'"priority": "low"}', "duplicate key 'priority'"),
    "bom": (b"\xef\xbb\xbf" + HEAD + b'"tags": []}', "byte order mark"),
    "lone-surrogate": (HEAD + b'"tags": ["\\ud800"]}', "unpaired surrogate"),
    "deep-free-form-256": (HEAD + b'"extra": {"a": ' + b"[" * 256 + b"]" * 256 + b"}}",
                           "nested deeper than"),
    "deep-free-form-999": (HEAD + b'"extra": {"a": ' + b"[" * 999 + b"]" * 999 + b"}}",
                           "nested deeper than"),
}


@pytest.fixture(scope="module")
def free_form(fake_server: FakeServerThread,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    rt = Runtime(make_config(fake_server.base_url, inputSchema=FREE_FORM),
                 tmp_path_factory.mktemp("strict")).start()
    yield rt
    rt.stop()


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_what_json_refuses_is_a_400_naming_it(free_form: Runtime, fake: Fake, case: str) -> None:
    body, named = BAD_BODIES[case]
    answer = httpx.post(f"{free_form.url}/run", content=body, timeout=10,
                        headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_json" and named in error["message"], error
    assert fake.requests() == []  # refused before the model was called
    assert "Traceback" not in free_form.logs()


def test_the_same_input_nested_within_the_limit_is_served(free_form: Runtime, fake: Fake) -> None:
    body = HEAD + b'"extra": {"a": ' + b"[" * 100 + b"]" * 100 + b"}}"
    answer = httpx.post(f"{free_form.url}/run", content=body, timeout=10,
                        headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert metric_value(free_form.metrics(), "agent_requests_total", agent="planner",
                        status="500") == 0
