"""JSON Schemas for kubeconform, made from a real API server's OpenAPI v2 document.

kubeconform downloads its schemas from the internet by default; here they come from the
kube-apiserver the tests run (v1.36.3, our CRDs installed), so the manifests are checked
against exactly the API that serves them. The conversion is openapi2jsonschema's, strict:
- every object with `properties` refuses unknown keys (unless the schema preserves them);
- IntOrString and Quantity accept what the API server accepts (a string or a number).
One `_definitions.json` holds every definition; each kind's file is a `$ref` into it, named
as kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json` template expects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LOCATION_TEMPLATE = "{{ .ResourceKind }}{{ .KindSuffix }}.json"
_INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
_QUANTITY = {"oneOf": [{"type": "string"}, {"type": "number"}]}
_SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": _INT_OR_STRING,
    "io.k8s.apimachinery.pkg.api.resource.Quantity": _QUANTITY,
}


def _strict(schema: Any) -> Any:
    """One schema made strict; maps of names to schemas are walked as maps, not schemas."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("format") == "int-or-string" or schema.get("x-kubernetes-int-or-string") is True:
        return dict(_INT_OR_STRING)
    out = {}
    for key, value in schema.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _strict(sub) for name, sub in value.items()}
        elif key in _SCHEMA_VALUES:
            out[key] = _strict(value)
        else:
            out[key] = value
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


_SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
_SCHEMA_VALUES = ("items", "additionalProperties", "allOf", "anyOf", "oneOf", "not")


def kind_file(group: str, version: str, kind: str) -> str:
    """kubeconform's name for a kind: `deployment-apps-v1.json`, `service-v1.json`."""
    suffix = f"-{group.split('.')[0].lower()}" if group else ""
    return f"{kind.lower()}{suffix}-{version}.json"


def write_schemas(openapi_v2: dict[str, Any], out: Path) -> int:
    """Write the strict schemas into `out`; return how many kinds have one."""
    out.mkdir(parents=True, exist_ok=True)
    definitions = {
        name: _SPECIAL.get(name) or _strict(schema)
        for name, schema in openapi_v2["definitions"].items()
    }
    (out / "_definitions.json").write_text(json.dumps({"definitions": definitions}))
    kinds = 0
    for name, schema in openapi_v2["definitions"].items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            ref = {"$ref": f"_definitions.json#/definitions/{name}"}
            path = out / kind_file(gvk["group"], gvk["version"], gvk["kind"])
            path.write_text(json.dumps(ref))
            kinds += 1
    return kinds
