"""Turn the agent's JSON Schemas into pydantic models.

instructor needs a pydantic model to describe the output to the LLM and to re-ask when the
answer does not fit; the HTTP layer needs the same types for the input. The JSON Schema stays
the contract: every model also checks its data against the original schema, so a keyword the
translation does not map (``pattern`` inside ``anyOf``, ``uniqueItems``...) is still
enforced, and an LLM answer that breaks it triggers a re-ask like any other validation error.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    model_validator,
)

_SCALARS: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "null": type(None),
}
_RESERVED = set(dir(BaseModel)) | {"model_config"}


class SchemaTranslationError(ValueError):
    """The schema uses a shape the runtime cannot serve (for example a non-object root)."""


def json_path(parts: Iterator[Any] | list[Any] | tuple[Any, ...]) -> str:
    """Render a location as ``$.items[2].name``: what a caller can find in their own JSON."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(part)):
            out += f".{part}"
        else:
            out += f"[{str(part)!r}]"
    return out


def schema_errors(validator: Draft202012Validator, data: Any) -> list[dict[str, str]]:
    """All violations, each with the JSON path a client can act on, sorted for stable output."""
    errors: list[SchemaError] = list(validator.iter_errors(data))
    found = [{"path": json_path(_error_location(e)), "message": e.message} for e in errors]
    return sorted(found, key=lambda item: (item["path"], item["message"]))


def _error_location(error: SchemaError) -> list[Any]:
    """Where to look; for a missing required field, the field itself rather than its parent,
    so `$.description` names what to add instead of `$`."""
    location = list(error.absolute_path)
    required = error.validator_value
    if error.validator == "required" and isinstance(error.instance, dict) and isinstance(
            required, list):
        for name in required:
            if name not in error.instance and repr(name) in error.message:
                return [*location, name]
    return location


def _class_name(text: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", text)
    name = "".join(w[:1].upper() + w[1:] for w in words) or "Model"
    return name if name[0].isalpha() else f"M{name}"


def _field_name(prop: str, taken: set[str]) -> str:
    base = re.sub(r"\W", "_", prop)
    if not base or base[0].isdigit() or keyword.iskeyword(base):
        base = f"f_{base}"
    if base.startswith("_") or base in _RESERVED:
        base = f"f{base}" if base.startswith("_") else f"{base}_"
    name = base
    n = 2
    while name in taken:
        name = f"{base}_{n}"
        n += 1
    taken.add(name)
    return name


class _Translator:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.models: dict[str, type[BaseModel]] = {}
        self.resolving: set[str] = set()

    def resolve(self, ref: str) -> dict[str, Any]:
        if not ref.startswith("#/"):
            raise SchemaTranslationError(f"only local $ref is supported, got {ref!r}")
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        if not isinstance(node, dict):
            raise SchemaTranslationError(f"$ref {ref!r} does not point at a schema")
        return node

    def type_of(self, schema: dict[str, Any] | bool, hint: str) -> Any:
        if schema is True or schema == {}:
            return Any
        if schema is False:
            raise SchemaTranslationError(f"{hint}: a 'false' schema accepts nothing")
        assert isinstance(schema, dict)
        if "$ref" in schema:
            ref = schema["$ref"]
            if ref in self.resolving:  # recursive schema: keep it loose, the validator checks it
                return Any
            self.resolving.add(ref)
            try:
                return self.type_of(self.resolve(ref), ref.rsplit("/", 1)[-1])
            finally:
                self.resolving.discard(ref)
        if "const" in schema:
            return Literal[schema["const"]]
        if "enum" in schema:
            return Literal[tuple(schema["enum"])]
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self.type_of(s, f"{hint}{i}") for i, s in enumerate(schema[key])]
                return Union[tuple(options)]  # noqa: UP007 - built at runtime from a tuple
        if "allOf" in schema and len(schema["allOf"]) == 1:
            return self.type_of(schema["allOf"][0], hint)
        kind = schema.get("type")
        if isinstance(kind, list):
            options = [self.type_of({**schema, "type": k}, hint) for k in kind]
            return Union[tuple(options)]  # noqa: UP007
        if kind == "object" or (kind is None and "properties" in schema):
            return self.object_model(schema, hint)
        if kind == "array":
            items = schema.get("items", True)
            inner = self.type_of(items, f"{hint}Item")
            return Annotated[
                list[inner],  # type: ignore[valid-type]
                Field(min_length=schema.get("minItems"), max_length=schema.get("maxItems")),
            ]
        if kind == "string":
            return Annotated[
                str,
                Field(
                    min_length=schema.get("minLength"),
                    max_length=schema.get("maxLength"),
                    pattern=schema.get("pattern"),
                ),
            ]
        if kind in ("integer", "number"):
            return Annotated[
                _SCALARS[kind],
                Field(
                    ge=schema.get("minimum"),
                    le=schema.get("maximum"),
                    gt=schema.get("exclusiveMinimum"),
                    lt=schema.get("exclusiveMaximum"),
                    multiple_of=schema.get("multipleOf"),
                ),
            ]
        if kind in _SCALARS:
            return _SCALARS[kind]
        return Any

    def object_model(self, schema: dict[str, Any], hint: str) -> Any:
        props: dict[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties", True)
        if not props and isinstance(extra, dict):
            return dict[str, self.type_of(extra, f"{hint}Value")]  # type: ignore[misc]
        if not props:
            return dict[str, Any]
        name = _class_name(schema.get("title") or hint)
        while name in self.models:
            name += "_"
        return self.build(schema, name, validator=None)

    def build(
        self,
        schema: dict[str, Any],
        name: str,
        validator: Draft202012Validator | None,
    ) -> type[BaseModel]:
        props: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        taken: set[str] = set()
        fields: dict[str, Any] = {}
        unset_if_null: list[tuple[str, str]] = []
        for prop, sub in props.items():
            py_name = _field_name(prop, taken)
            annotation = self.type_of(sub, _class_name(f"{name} {prop}"))
            info: dict[str, Any] = {"alias": prop}
            if isinstance(sub, dict) and sub.get("description"):
                info["description"] = sub["description"]
            if prop in required:
                fields[py_name] = (annotation, Field(**info))
            elif isinstance(sub, dict) and "default" in sub:
                fields[py_name] = (annotation, Field(default=sub["default"], **info))
            else:
                # absent and null both mean "not given"; the LLM is shown the plain type
                info["json_schema_extra"] = _hide_null_default
                fields[py_name] = (annotation | None, Field(default=None, **info))
                if not _accepts_null(sub):
                    unset_if_null.append((py_name, prop))
        forbid = schema.get("additionalProperties") is False
        config = ConfigDict(
            populate_by_name=True,
            serialize_by_alias=True,
            extra="forbid" if forbid else "ignore",
        )
        validators: dict[str, Any] = {}
        if unset_if_null:
            names, aliases = zip(*unset_if_null, strict=True)
            validators["_null_means_absent"] = _null_means_absent(
                names, aliases, frozenset(props)
            )
        if validator is not None:
            validators["_check_against_json_schema"] = _schema_check(validator)
        model = create_model(
            name,
            __config__=config,
            __doc__=schema.get("description") or f"{name}.",
            __validators__=validators,
            **fields,
        )
        self.models[name] = model
        return model


def _accepts_null(schema: Any) -> bool:
    if not isinstance(schema, dict) or not schema:
        return True
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    if "const" in schema:
        return schema["const"] is None
    if "enum" in schema:
        return None in schema["enum"]
    options = [*schema.get("anyOf", []), *schema.get("oneOf", [])]
    if options:
        return any(_accepts_null(o) for o in options)
    return kind is None and "$ref" not in schema and "properties" not in schema


def _hide_null_default(field_schema: dict[str, Any]) -> None:
    """Show the LLM the property's own type, not pydantic's ``anyOf [T, null]``."""
    options = field_schema.get("anyOf")
    if isinstance(options, list):
        rest = [o for o in options if o != {"type": "null"}]
        if len(rest) == 1:
            del field_schema["anyOf"]
            field_schema.update(rest[0])
        else:
            field_schema["anyOf"] = rest
    if "default" in field_schema and field_schema["default"] is None:
        del field_schema["default"]


def _null_means_absent(
    names: tuple[str, ...], aliases: tuple[str, ...], properties: frozenset[str]
) -> Any:
    """Drop null values of these fields before validation, so they end up unset, not None.

    Done on the input (by alias and by name) rather than on the built model, so the field
    is simply absent: ``exclude_unset`` dumps and the JSON Schema check see what a caller
    who left it out would have sent.
    """
    # a Python name that is also another property's JSON name stays that property's
    keys = frozenset(aliases) | (frozenset(names) - properties)

    def drop(data: Any) -> Any:
        if isinstance(data, dict) and not keys.isdisjoint(data):
            return {k: v for k, v in data.items() if v is not None or k not in keys}
        return data

    return model_validator(mode="before")(drop)


SCHEMA_CHECKED = {"json_schema_checked": True}
"""Validation context for data the caller has already checked against the same JSON Schema
(the HTTP layer does, to report every failing path): the model then skips its own check."""


def _schema_check(validator: Draft202012Validator) -> Any:
    def check(model: BaseModel, info: ValidationInfo) -> BaseModel:
        if info.context is SCHEMA_CHECKED:
            return model
        problems = schema_errors(
            validator, model.model_dump(mode="json", by_alias=True, exclude_unset=True)
        )
        if problems:
            text = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
            raise ValueError(f"does not match the JSON Schema: {text}")
        return model

    return model_validator(mode="after")(check)


def model_from_schema(schema: dict[str, Any], name: str) -> type[BaseModel]:
    """Build a pydantic model for an object schema, checked against the schema itself."""
    if schema.get("type", "object") != "object":
        raise SchemaTranslationError(f"{name}: the root of an agent schema must be an object")
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    return _Translator(schema).build(schema, _class_name(schema.get("title") or name), validator)
