"""The one strict JSON parser of request bodies (agent and runner): what RFC 8259 refuses,
duplicate keys and deep nesting are a JsonBodyError naming the problem (issue 22, 8-10)."""

from __future__ import annotations

import pytest

from atomic_runtime.jsonbody import MAX_DEPTH, JsonBodyError, parse_json


@pytest.mark.parametrize(("raw", "named"), [
    (b'{"a": NaN}', "NaN"),
    (b'{"a": Infinity}', "Infinity"),
    (b"[-Infinity]", "-Infinity"),
    (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
    (b'{"x": {"b": 1, "b": 1}}', "duplicate key 'b'"),
    (b'\xef\xbb\xbf{"a": 1}', "byte order mark"),
    (b'{"a": "\\ud800"}', "unpaired surrogate"),
    (b'["ok", ["\\uDC00x"]]', "unpaired surrogate"),
    (b'{"\\ud800": 1}', "unpaired surrogate"),
    (b'{"a": "\xff"}', "not UTF-8"),
    (b'"\x00\x00\x00"'.decode().encode("utf-16"), "not UTF-8"),
    (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), f"deeper than {MAX_DEPTH}"),
    (b"[" * 100_000 + b"]" * 100_000, f"deeper than {MAX_DEPTH}"),
    (b'{"a": 1', "not JSON"),
])
def test_refused_with_the_problem_named(raw: bytes, named: str) -> None:
    with pytest.raises(JsonBodyError, match=named.replace("-", r"\-")) as caught:
        parse_json(raw)
    assert isinstance(caught.value, ValueError)


def test_strict_json_is_parsed_as_json_loads_would() -> None:
    nested = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert parse_json(nested) is not None
    assert parse_json(b'{"a": "\\ud83d\\ude00", "b": [1.5, null, true], "c": {}}') == {
        "a": "\U0001f600", "b": [1.5, None, True], "c": {}}
    assert parse_json(b'"\\\\ud800"') == "\\ud800"  # an escaped backslash, no surrogate
