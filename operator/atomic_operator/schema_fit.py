"""Does every value a producer schema allows also satisfy a consumer schema?

This is the type check of a pipeline edge: the producer is an upstream output (or a part of
it), the consumer the field of the downstream agent's input it is bound to. The answer must
be sound: an edge is reported as fitting only when the rules below prove it, and anything
they cannot prove (a keyword they do not know, a pattern the producer does not share) is a
mismatch that says so. A false alarm is fixed by tightening the producer's schema; a false
"fits" would be a failed request in production.

Two assumptions, both guaranteed by the agent runtime: outputs carry only the properties
their schema declares (undeclared ones are dropped), and the format keyword is an
annotation, as in draft 2020-12.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

Schema = dict[str, Any] | bool

ANNOTATIONS = frozenset({
    "$schema", "$id", "$comment", "$anchor", "$defs", "definitions", "title", "description",
    "default", "examples", "deprecated", "readOnly", "writeOnly", "format",
    "contentMediaType", "contentEncoding",
})
"""Keywords that never reject a value."""

UNDERSTOOD = ANNOTATIONS | {
    "$ref", "type", "enum", "const", "anyOf", "oneOf", "allOf", "properties", "required",
    "additionalProperties", "items", "minItems", "maxItems", "uniqueItems", "minLength",
    "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf",
}
"""Keywords these rules reason about; a consumer using any other cannot be proven fit."""


@dataclass(frozen=True)
class Mismatch:
    """One way a producible value may break the consumer's schema."""

    path: str
    """Where in the value, as a JSON path from the bound field: `$`, `$.steps[*].order`."""

    message: str


def resolve_ref(node: Schema, root: Schema) -> Schema:
    """Follow local $refs (`#/$defs/x`) from `root`; the referring node's own keys win.

    A $ref that points nowhere is left in place, so callers can say so instead of crashing
    on a schema that passed validation but names a missing definition.
    """
    for _ in range(32):
        if not (isinstance(node, dict) and "$ref" in node):
            break
        target: Any = root
        for part in str(node["$ref"]).removeprefix("#/").split("/"):
            if not part:
                continue
            key = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or key not in target:
                return node
            target = target[key]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **rest} if isinstance(target, dict) else target
    return node


class _Side:
    """A schema with the root its local $refs resolve against."""

    def __init__(self, root: Schema) -> None:
        self.root = root

    def resolve(self, node: Schema) -> Schema:
        return resolve_ref(node, self.root)


def fits(producer: Schema, consumer: Schema, producer_root: Schema | None = None,
         consumer_root: Schema | None = None) -> list[Mismatch]:
    """Every mismatch found; an empty list is a proof that the producer fits."""
    return _Fit(_Side(producer if producer_root is None else producer_root),
                _Side(consumer if consumer_root is None else consumer_root)
                ).check(producer, consumer, "$", 0)


def _types(schema: dict[str, Any]) -> set[str] | None:
    """The JSON types a schema admits, or None when it does not restrict them."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return set(kind)
    return None


def _admits_type(consumer_types: set[str] | None, kind: str) -> bool:
    if consumer_types is None:
        return True
    return kind in consumer_types or (kind == "integer" and "number" in consumer_types)


def _show(values: list[Any]) -> str:
    return ", ".join(repr(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")


class _Fit:
    def __init__(self, producer: _Side, consumer: _Side) -> None:
        self.p = producer
        self.c = consumer

    def check(self, p_node: Schema, c_node: Schema, path: str, depth: int) -> list[Mismatch]:
        p = self.p.resolve(p_node)
        c = self.c.resolve(c_node)
        if c is True or c == {} or depth > 24:
            return []
        if c is False:
            return [Mismatch(path, "the consumer accepts no value here")]
        assert isinstance(c, dict)
        if p is False:
            return []  # nothing is produced, so nothing can break the consumer
        if "$ref" in c:
            return [Mismatch(path, f"the consumer's $ref {c['$ref']!r} points nowhere")]
        if p is True or not isinstance(p, dict) or "$ref" in p:
            p = {}  # unknown: only an unconstrained consumer accepts it
        unknown = sorted(set(c) - UNDERSTOOD)
        if unknown:
            return [Mismatch(path, f"cannot prove the fit: the consumer uses {', '.join(unknown)}")]
        values = self._finite_values(p)
        if values is not None:
            return self._values_fit(values, c, path)
        for key in ("anyOf", "oneOf"):
            if key in p:  # every alternative the producer may take must fit
                found = []
                for option in p[key]:
                    merged = {**{k: v for k, v in p.items() if k != key}, **self._as_dict(option)}
                    found += self.check(merged, c, path, depth + 1)
                return found
        if "allOf" in p:  # a value of all of them: one fitting member is enough
            members = [{**{k: v for k, v in p.items() if k != "allOf"}, **self._as_dict(m)}
                       for m in p["allOf"]]
            results = [self.check(m, c, path, depth + 1) for m in members]
            return [] if any(not r for r in results) else results[0]
        if "allOf" in c:
            found = []
            for member in c["allOf"]:
                found += self.check(p, {**{k: v for k, v in c.items() if k != "allOf"},
                                        **self._as_dict(member)}, path, depth + 1)
            return found
        for key in ("anyOf", "oneOf"):
            if key in c:
                rest = {k: v for k, v in c.items() if k != key}
                results = [self.check(p, {**rest, **self._as_dict(o)}, path, depth + 1)
                           for o in c[key]]
                if any(not r for r in results):
                    return []
                return [Mismatch(path, f"fits none of the consumer's {key} alternatives "
                                       f"(closest: {results[0][0].message})")]
        if "enum" in c or "const" in c:
            allowed = c["enum"] if "enum" in c else [c["const"]]
            return [Mismatch(path, f"the producer may give any {self._describe(p)}; the "
                                   f"consumer accepts only {_show(allowed)}")]
        return self._typed(p, c, path, depth)

    # -- pieces ------------------------------------------------------------------------

    @staticmethod
    def _as_dict(node: Schema) -> dict[str, Any]:
        return node if isinstance(node, dict) else {}

    def _finite_values(self, p: dict[str, Any]) -> list[Any] | None:
        if "const" in p:
            return [p["const"]]
        if "enum" in p:
            return list(p["enum"])
        return None

    def _values_fit(self, values: list[Any], c: dict[str, Any], path: str) -> list[Mismatch]:
        root = self.c.root if isinstance(self.c.root, dict) else {}
        validator = Draft202012Validator({**c, "$defs": root.get("$defs", {}),
                                          "definitions": root.get("definitions", {})})
        bad = [v for v in values if not validator.is_valid(v)]
        if not bad:
            return []
        return [Mismatch(path, f"the producer may give {_show(bad)}, which the consumer "
                               f"refuses")]

    @staticmethod
    def _describe(p: dict[str, Any]) -> str:
        kinds = _types(p)
        return " or ".join(sorted(kinds)) if kinds else "value"

    def _typed(self, p: dict[str, Any], c: dict[str, Any], path: str,
               depth: int) -> list[Mismatch]:
        p_types = _types(p)
        if p_types is None:
            if "properties" in p:
                p_types = {"object"}
            elif "items" in p:
                p_types = {"array"}
        c_types = _types(c)
        if p_types is None:
            if c_types is None and not self._constrains(c):
                return []
            return [Mismatch(path, "the producer's schema does not say what it gives; the "
                                   "consumer needs " + self._describe(c))]
        found: list[Mismatch] = []
        for kind in sorted(p_types):
            if not _admits_type(c_types, kind):
                article = "an" if kind[0] in "aeiou" else "a"
                found.append(Mismatch(path, f"the producer may give {article} {kind}; the "
                                            f"consumer accepts {self._describe(c)}"))
                continue
            if kind == "string":
                found += self._string(p, c, path)
            elif kind in ("integer", "number"):
                found += self._number(p, c, path, kind)
            elif kind == "array":
                found += self._array(p, c, path, depth)
            elif kind == "object":
                found += self._object(p, c, path, depth)
        return found

    @staticmethod
    def _constrains(c: dict[str, Any]) -> bool:
        return any(k not in ANNOTATIONS for k in c)

    @staticmethod
    def _bounds(p: dict[str, Any], c: dict[str, Any], path: str, low: str, high: str,
                what: str) -> list[Mismatch]:
        found = []
        if low in c and p.get(low, 0) < c[low]:
            found.append(Mismatch(path, f"the producer allows {what} below {c[low]} "
                                        f"({low} {p.get(low, 0)} < {c[low]})"))
        if high in c and p.get(high, math.inf) > c[high]:
            found.append(Mismatch(path, f"the producer allows {what} above {c[high]} "
                                        f"({high} {p.get(high, 'unbounded')} > {c[high]})"))
        return found

    def _string(self, p: dict[str, Any], c: dict[str, Any], path: str) -> list[Mismatch]:
        found = self._bounds(p, c, path, "minLength", "maxLength", "a length")
        if "pattern" in c and p.get("pattern") != c["pattern"]:
            found.append(Mismatch(path, f"the consumer requires pattern {c['pattern']!r}, "
                                        "which the producer does not promise"))
        return found

    def _number(self, p: dict[str, Any], c: dict[str, Any], path: str,
                kind: str) -> list[Mismatch]:
        found = []
        for bound, exclusive, below in (("minimum", "exclusiveMinimum", True),
                                        ("maximum", "exclusiveMaximum", False)):
            p_value, p_open = self._bound(p, bound, exclusive)
            c_value, c_open = self._bound(c, bound, exclusive)
            if c_value is None:
                continue
            if p_value is None:
                found.append(Mismatch(path, f"the producer's {kind} is unbounded; the "
                                            f"consumer needs {bound} {c_value}"))
                continue
            outside = p_value < c_value if below else p_value > c_value
            if outside or (p_value == c_value and c_open and not p_open):
                found.append(Mismatch(path, f"the producer allows {p_value}; the consumer's "
                                            f"{exclusive if c_open else bound} is {c_value}"))
        step = c.get("multipleOf")
        if step is not None:
            mine = p.get("multipleOf")
            if mine is None or (mine / step) != int(mine / step):
                found.append(Mismatch(path, f"the consumer requires a multiple of {step}"))
        return found

    @staticmethod
    def _bound(s: dict[str, Any], inclusive: str, exclusive: str) -> tuple[float | None, bool]:
        values = []
        if isinstance(s.get(inclusive), int | float):
            values.append((s[inclusive], False))
        if isinstance(s.get(exclusive), int | float) and not isinstance(s[exclusive], bool):
            values.append((s[exclusive], True))
        if not values:
            return None, False
        pick = max if inclusive == "minimum" else min
        return pick(values, key=lambda v: (v[0], v[1] if inclusive == "minimum" else not v[1]))

    def _array(self, p: dict[str, Any], c: dict[str, Any], path: str,
               depth: int) -> list[Mismatch]:
        found = self._bounds(p, c, path, "minItems", "maxItems", "a number of items")
        if c.get("uniqueItems") and not p.get("uniqueItems"):
            found.append(Mismatch(path, "the consumer requires unique items"))
        if "items" in c:
            found += self.check(p.get("items", True), c["items"], f"{path}[*]", depth + 1)
        return found

    def _object(self, p: dict[str, Any], c: dict[str, Any], path: str,
                depth: int) -> list[Mismatch]:
        found: list[Mismatch] = []
        p_props: dict[str, Any] = p.get("properties") or {}
        c_props: dict[str, Any] = c.get("properties") or {}
        p_required = set(p.get("required") or [])
        for name in c.get("required") or []:
            if name in p_required:
                continue
            if name in p_props:
                found.append(Mismatch(f"{path}.{name}", "required by the consumer, but the "
                                                        "producer may leave it out"))
            else:
                found.append(Mismatch(f"{path}.{name}", "required by the consumer, but the "
                                                        "producer never gives it"))
        extra = c.get("additionalProperties", True)
        for name, sub in p_props.items():
            where = f"{path}.{name}"
            if name in c_props:
                found += self.check(sub, c_props[name], where, depth + 1)
            elif extra is False:
                found.append(Mismatch(where, "the producer may give this field; the consumer "
                                             "accepts no field of that name"))
            elif isinstance(extra, dict):
                found += self.check(sub, extra, where, depth + 1)
        # declared properties: the runtime drops the rest; none declared: a free-form map
        p_extra = p.get("additionalProperties", not p_props)
        if p_extra is not False and not p_props and extra is not True:
            # a map-like producer ({additionalProperties: schema}) into a constrained map
            found += self.check(p_extra if isinstance(p_extra, dict) else True,
                                extra if isinstance(extra, dict) else False, f"{path}.*",
                                depth + 1)
        return found
