"""CRD generation: the committed CRDs are what the models produce, and they are structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from atomic_operator.crdgen import CRD_KINDS, render_crds
from atomic_operator.crdgen.crd import render_crd
from atomic_operator.crdgen.structural import NonStructuralSchemaError, to_structural


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for key, value in node.items():
            out += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _walk(value, f"{path}[{i}]")
    return out


def test_committed_crds_are_current(repo_root: Path) -> None:
    for name, text in render_crds().items():
        committed = repo_root / "crds" / name
        assert committed.exists(), f"{committed} missing: run `make generate`"
        assert committed.read_text() == text, f"{committed} is stale: run `make generate`"


@pytest.mark.parametrize("kind", CRD_KINDS, ids=lambda k: k.kind)
def test_schema_is_structural(kind: Any) -> None:
    schema = render_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        if path.endswith(".properties") or "x-kubernetes-validations" in path:
            continue
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        assert node.get("type") != "null", path
        if "description" in node or "properties" in node or "items" in node:
            untyped_ok = node.get("x-kubernetes-preserve-unknown-fields") or node.get(
                "x-kubernetes-int-or-string")
            assert "type" in node or untyped_ok, f"untyped node at {path}"


def test_agent_crd_has_scale_and_status() -> None:
    crd = yaml.safe_load(render_crds()["atomicagents.atomicagents.io.yaml"])
    version = crd["spec"]["versions"][0]
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    assert version["subresources"]["status"] == {}
    assert crd["spec"]["names"]["categories"] == ["atomic"]


def test_optional_becomes_plain_field() -> None:
    out = to_structural({"type": "object", "properties": {
        "a": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None,
              "description": "A."}}})
    assert out["properties"]["a"] == {"type": "string", "description": "A."}


def test_int_or_string() -> None:
    out = to_structural({"anyOf": [{"type": "integer"}, {"type": "string"}]})
    assert out == {"x-kubernetes-int-or-string": True}


def test_exclusive_bound_becomes_openapi_v3() -> None:
    assert to_structural({"type": "number", "exclusiveMinimum": 0}) == {
        "type": "number", "minimum": 0, "exclusiveMinimum": True}


def test_real_unions_are_refused() -> None:
    with pytest.raises(NonStructuralSchemaError, match="unions are not structural"):
        to_structural({"anyOf": [{"type": "string"}, {"type": "object"}]})
