"""JSON Schema -> pydantic translation, checked against the schemas themselves."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from atomic_runtime.config import parse_config
from atomic_runtime.schema_models import SchemaTranslationError, model_from_schema

SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Everything at once.",
    "properties": {
        "name": {"type": "string", "minLength": 2, "maxLength": 5, "description": "A name"},
        "count": {"type": "integer", "minimum": 1, "maximum": 3},
        "ratio": {"type": "number", "exclusiveMinimum": 0},
        "flag": {"type": "boolean"},
        "color": {"enum": ["red", "green"]},
        "items": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
        "nested": {
            "type": "object",
            "properties": {"deep": {"type": "object", "properties": {"x": {"type": "string"}},
                                    "required": ["x"]}},
            "required": ["deep"],
        },
        "maybe": {"type": ["string", "null"]},
        "class": {"type": "string"},
        "with space": {"type": "string", "pattern": "^a"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["name", "count"],
}  # fmt: skip


def test_valid_data_round_trips_with_original_names() -> None:
    model = model_from_schema(SCHEMA, "all")
    data = {
        "name": "abc", "count": 2, "ratio": 0.5, "flag": True, "color": "red", "items": [1],
        "nested": {"deep": {"x": "y"}}, "maybe": None, "class": "c", "with space": "ab",
        "labels": {"a": "b"},
    }  # fmt: skip
    instance = model.model_validate(data)
    assert instance.model_dump(mode="json", by_alias=True, exclude_unset=True) == data
    assert model.__doc__ == "Everything at once."
    props = model.model_json_schema()["properties"]
    assert props["name"]["description"] == "A name"
    assert props["color"]["enum"] == ["red", "green"]
    assert props["count"]["minimum"] == 1 and props["count"]["maximum"] == 3
    assert props["ratio"]["type"] == "number"  # optional, but shown without a null branch


@pytest.mark.parametrize(
    ("patch", "where"),
    [
        ({"name": "a"}, "name"),
        ({"count": 9}, "count"),
        ({"ratio": 0}, "ratio"),
        ({"color": "blue"}, "color"),
        ({"items": []}, "items"),
        ({"nested": {"deep": {}}}, "x"),
        ({"with space": "b"}, "with space"),
        ({"labels": {"a": 1}}, "labels"),
    ],
)
def test_violations_are_rejected(patch: dict[str, Any], where: str) -> None:
    model = model_from_schema(SCHEMA, "all")
    with pytest.raises(ValidationError) as info:
        model.model_validate({"name": "abc", "count": 2, **patch})
    assert where in str(info.value)


def test_models_are_lenient_where_the_schema_is_not_broken() -> None:
    """LLM output "2" for an integer becomes 2, which satisfies the schema; raw HTTP input is
    checked against the JSON Schema itself before the model sees it (see test_api)."""
    model = model_from_schema(SCHEMA, "all")
    assert model.model_validate({"name": "abc", "count": "2"}).model_dump()["count"] == 2


def test_null_on_an_optional_non_nullable_field_counts_as_absent() -> None:
    model = model_from_schema(SCHEMA, "all")
    instance = model.model_validate({"name": "abc", "count": 1, "flag": None})
    assert instance.model_dump(by_alias=True, exclude_unset=True) == {"name": "abc", "count": 1}


def test_refs_and_defs_are_followed() -> None:
    schema = {
        "type": "object",
        "$defs": {"Step": {"type": "object", "properties": {"n": {"type": "integer"}},
                           "required": ["n"]}},
        "properties": {"steps": {"type": "array", "items": {"$ref": "#/$defs/Step"}}},
        "required": ["steps"],
    }  # fmt: skip
    model = model_from_schema(schema, "refs")
    assert model.model_validate({"steps": [{"n": 1}]})
    with pytest.raises(ValidationError):
        model.model_validate({"steps": [{"n": "x"}]})


def test_non_object_root_is_refused() -> None:
    with pytest.raises(SchemaTranslationError):
        model_from_schema({"type": "string"}, "s")


def test_contract_example_parses_and_rejects_typos() -> None:
    base: dict[str, Any] = {
        "name": "a",
        "model": {"provider": "openai", "name": "gpt-4o-mini"},
        "inputSchema": {"type": "object"},
        "outputSchema": {"type": "object"},
    }
    config = parse_config(base)
    assert config.model.timeout_seconds == 60 and config.concurrency.max_in_flight == 8
    with pytest.raises(ValidationError, match="maxInflight"):
        parse_config({**base, "concurrency": {"maxInflight": 3}})
    with pytest.raises(ValidationError, match="exactly one"):
        parse_config({**base, "contextProviders": [{"name": "x", "title": "X"}]})
