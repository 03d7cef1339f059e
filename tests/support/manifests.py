"""Load the examples and derive variants of them with JSON merge patches."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


def example(name: str) -> dict[str, Any]:
    """The single document of examples/<name>.yaml."""
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return doc


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def variant(name: str, patch: dict[str, Any]) -> dict[str, Any]:
    """An example with a merge patch applied."""
    out: dict[str, Any] = merge_patch(example(name), patch)
    return out
