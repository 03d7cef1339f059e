"""The edge type check: what it proves, and what it refuses to assume."""

from __future__ import annotations

from typing import Any

import pytest

from atomic_operator.schema_fit import fits

STR: dict[str, Any] = {"type": "string"}


@pytest.mark.parametrize(("producer", "consumer"), [
    (STR, STR),
    ({"type": "integer", "minimum": 1}, {"type": "number", "minimum": 0}),
    ({"enum": ["low", "high"]}, {"type": "string", "enum": ["low", "medium", "high"]}),
    ({"const": 3}, {"type": "integer", "maximum": 5}),
    ({"type": "string", "minLength": 2, "maxLength": 5}, {"type": "string", "maxLength": 10}),
    ({"type": "array", "items": {"type": "integer"}},
     {"type": "array", "items": {"type": "number"}}),
    ({"type": "object", "properties": {"a": STR, "b": STR}, "required": ["a", "b"]},
     {"type": "object", "properties": {"a": STR}, "required": ["a"]}),
    ({"anyOf": [STR, {"type": "null"}]}, {"type": ["string", "null"]}),
    (STR, {"anyOf": [{"type": "integer"}, STR]}),
    ({"$ref": "#/$defs/s", "$defs": {"s": STR}}, STR),
    ({"type": "object", "additionalProperties": True}, {"type": "object"}),
    ({"type": "number", "exclusiveMinimum": 0, "maximum": 1},
     {"type": "number", "minimum": 0, "maximum": 1}),
    ({"type": "boolean"}, {}),
])  # fmt: skip
def test_fits(producer: dict[str, Any], consumer: dict[str, Any]) -> None:
    assert fits(producer, consumer) == []


@pytest.mark.parametrize(("producer", "consumer", "path", "words"), [
    ({"type": "number"}, {"type": "integer"}, "$", "may give a number"),
    (STR, {"type": "string", "enum": ["a"]}, "$", "accepts only 'a'"),
    ({"enum": ["a", "z"]}, {"enum": ["a", "b"]}, "$", "may give 'z'"),
    ({"type": "integer"}, {"type": "integer", "minimum": 0}, "$", "unbounded"),
    ({"type": "number", "minimum": 0}, {"type": "number", "exclusiveMinimum": 0}, "$",
     "exclusiveMinimum"),
    (STR, {"type": "string", "maxLength": 10}, "$", "above 10"),
    (STR, {"type": "string", "pattern": "^[a-z]+$"}, "$", "pattern"),
    ({"type": "object", "properties": {"a": STR}},
     {"type": "object", "properties": {"a": STR}, "required": ["a"]}, "$.a", "may leave it out"),
    ({"type": "object", "properties": {}},
     {"type": "object", "required": ["a"]}, "$.a", "never gives it"),
    ({"type": "object", "properties": {"x": STR}},
     {"type": "object", "additionalProperties": False}, "$.x", "accepts no field"),
    ({"type": "array", "items": {"type": "object", "properties": {"n": {"type": "number"}}}},
     {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}},
     "$[*].n", "may give a number"),
    ({"anyOf": [STR, {"type": "integer"}]}, STR, "$", "may give an integer"),
    ({}, STR, "$", "does not say what it gives"),
    (STR, {"type": "string", "not": {"const": "x"}}, "$", "the consumer uses not"),
    ({"type": "array"}, {"type": "array", "uniqueItems": True}, "$", "unique"),
])  # fmt: skip
def test_mismatches_say_where_and_why(producer: dict[str, Any], consumer: dict[str, Any],
                                      path: str, words: str) -> None:
    found = fits(producer, consumer)
    assert found, "expected a mismatch"
    assert any(m.path == path and words in m.message for m in found), found


def test_a_dangling_ref_is_a_mismatch_not_a_crash() -> None:
    assert [m.message for m in fits(STR, {"$ref": "#/$defs/gone"})] == [
        "the consumer's $ref '#/$defs/gone' points nowhere"]
    assert fits({"$ref": "#/$defs/gone"}, STR)[0].message.startswith(
        "the producer's schema does not say what it gives")
