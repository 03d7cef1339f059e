"""Evaluating the parsed references of a step against the values a run has so far.

The meaning is the one the operator's type check assumes: a `ref` binding copies the value
(and leaves the field out when the value is absent: an optional field not given, or an
optional step that failed); a template renders text (strings as they are, an absent value
as nothing, any other JSON value as compact JSON); a `value` is the literal. A forEach over
an absent list runs no items.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from .config import RefBinding, RefConfig, StepConfig, TemplateBinding


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()
"""A value that is not there, as opposed to a JSON null."""


class BindingError(Exception):
    """A value the type check promised is not what arrived (e.g. forEach over a non-list)."""


class TooManyItemsError(BindingError):
    """A forEach list longer than the step's maxItems: refused before any item runs."""

    def __init__(self, step: StepConfig, count: int) -> None:
        assert step.for_each is not None
        super().__init__(f"forEach {step.for_each.text} has {count} items, over the step's "
                         f"maxItems ({step.max_items})")
        self.count = count


@dataclass
class Scope:
    """What references can read during one run."""

    input: Any
    outputs: dict[str, Any] = field(default_factory=dict)
    """Step name → its output, or ABSENT when an optional step failed."""


def lookup(ref: RefConfig, scope: Scope, item: Any = ABSENT) -> Any:
    if ref.source == "input":
        value = scope.input
    elif ref.source == "item":
        value = item
    else:
        value = scope.outputs.get(str(ref.step), ABSENT)
    for name in ref.path:
        if not isinstance(value, dict) or name not in value:
            return ABSENT
        value = value[name]
    return value


def as_text(value: Any) -> str:
    if value is ABSENT or value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def step_input(step: StepConfig, scope: Scope, item: Any = ABSENT) -> Any:
    """The body sent to the step's agent (for one forEach item when `item` is given)."""
    if step.input_from is not None:
        whole = lookup(step.input_from, scope, item)
        if whole is ABSENT:
            raise BindingError(f"{step.input_from.text} is absent, and it is the whole input")
        return whole
    body: dict[str, Any] = {}
    for name, binding in step.input.items():
        if isinstance(binding, RefBinding):
            value = lookup(binding.ref, scope, item)
            if value is not ABSENT:
                body[name] = value
        elif isinstance(binding, TemplateBinding):
            body[name] = "".join(p if isinstance(p, str) else as_text(lookup(p, scope, item))
                                 for p in binding.parts)
        else:
            body[name] = binding.value
    return body


def items_of(step: StepConfig, scope: Scope) -> list[Any]:
    assert step.for_each is not None
    value = lookup(step.for_each, scope)
    if value is ABSENT:
        return []
    if not isinstance(value, list):
        raise BindingError(f"forEach {step.for_each.text} is a {type(value).__name__}, not a "
                           "list")
    if len(value) > step.max_items:
        raise TooManyItemsError(step, len(value))
    return value
