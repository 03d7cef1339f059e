"""Turn pydantic's JSON Schema into a Kubernetes structural schema.

The API server accepts only a subset of OpenAPI v3: no $ref, no `type: null`, no
draft-2020 numeric exclusive bounds, and every node typed unless it says it preserves
unknown fields. The rules below are the ones kube-custom-resource (azimuth) applies,
reduced to what our models use; anything else raises, so a new model construct cannot
silently produce a CRD the API server would reject or mis-prune.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_DROPPED = {"title", "$defs", "discriminator"}
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


class NonStructuralSchemaError(ValueError):
    """A model uses a construct that has no structural-schema equivalent."""


def to_structural(schema: Schema) -> Schema:
    """Return the structural equivalent of a pydantic `model_json_schema()` document."""
    return _convert(schema, schema.get("$defs", {}), path="")


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Inline a $ref, letting the referring node's own keys (its description) win."""
    if "$ref" not in node:
        return node
    name = node["$ref"].rsplit("/", 1)[-1]
    merged = {**_resolve(defs[name], defs), **{k: v for k, v in node.items() if k != "$ref"}}
    return merged


def _strip_null(node: Schema, defs: dict[str, Schema], path: str) -> Schema:
    """Optional[X] arrives as anyOf [X, null]: keep X (the API server drops explicit nulls)."""
    options = [o for o in node["anyOf"] if o.get("type") != "null"]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    if sorted(options, key=str) == _INT_OR_STRING or options == _INT_OR_STRING:
        return {**rest, "x-kubernetes-int-or-string": True}
    if len(options) != 1:
        raise NonStructuralSchemaError(f"{path or '<root>'}: unions are not structural")
    inner = _resolve(options[0], defs)
    # The outer node's description and default describe the field; keep them.
    return {**inner, **rest}


def _convert(node: Schema, defs: dict[str, Schema], path: str) -> Schema:
    node = _resolve(node, defs)
    if "anyOf" in node:
        node = _strip_null(node, defs, path)
        node = _resolve(node, defs)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "default" and value is None:
            continue
        if key == "description":
            # Attribute docstrings wrap at the source's line length; kubectl explain rewraps.
            out["description"] = " ".join(value.split())
        elif key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out["properties"] = {
                name: _convert(sub, defs, f"{path}.{name}") for name, sub in value.items()
            }
        elif key == "items":
            out["items"] = _convert(value, defs, f"{path}[]")
        elif key == "additionalProperties":
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out["additionalProperties"] = _convert(value, defs, f"{path}{{}}")
            # additionalProperties: false is the default for structural schemas.
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key in ("oneOf", "allOf", "not", "anyOf"):
            raise NonStructuralSchemaError(f"{path or '<root>'}: {key} is not supported")
        else:
            out[key] = value
    if "properties" in out and "type" not in out:
        out["type"] = "object"
    if out.get("x-kubernetes-preserve-unknown-fields") and "properties" not in out:
        out.pop("additionalProperties", None)
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    return out


def undescribed_fields(schema: Schema, path: str = "") -> list[str]:
    """Paths of properties without a description, so `kubectl explain` never shows a blank."""
    missing: list[str] = []
    for name, sub in schema.get("properties", {}).items():
        here = f"{path}.{name}"
        if not sub.get("description"):
            missing.append(here)
        missing += undescribed_fields(sub, here)
        if "items" in sub:
            missing += undescribed_fields(sub["items"], f"{here}[]")
    return missing
