"""The one strict JSON parser for request bodies, shared by the agent and the pipeline runner.

Python's ``json.loads`` accepts more than RFC 8259: ``NaN`` and ``Infinity``, a byte order
mark, UTF-16 and UTF-32 bodies, lone surrogates (``"\\ud800"``) and duplicate keys (the last
one silently wins). Each of these later fails somewhere less helpful (a lone surrogate is a
UnicodeEncodeError when the input is sent to the provider, a NaN is not JSON on the way out)
or means two readers of the same body see different values. A document nested deeper than
``MAX_DEPTH`` is refused too: pydantic's serializer stops at a few hundred levels with a
500, and the C parser itself raises RecursionError near a thousand. Every refusal is one
``JsonBodyError`` whose message names the problem, for a 400.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

MAX_DEPTH = 128
"""Containers nested deeper than this are refused (pydantic serializes ~250 at most)."""
_BOM = b"\xef\xbb\xbf"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class JsonBodyError(ValueError):
    """The body is not the strict JSON the runtime accepts; the message says why."""


def _constant(name: str) -> NoReturn:
    raise JsonBodyError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonBodyError(f"duplicate key {key[:80]!r} in an object")
            seen.add(key)
    return out


_DECODER = json.JSONDecoder(parse_constant=_constant, object_pairs_hook=_object)


def parse_json(raw: bytes) -> Any:
    """The body's value, or JsonBodyError naming what RFC 8259 (or this runtime) refuses."""
    if raw.startswith(_BOM):
        raise JsonBodyError("the body starts with a byte order mark, which JSON forbids")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonBodyError(f"the body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        value = _DECODER.decode(text)
    except JsonBodyError:
        raise
    except RecursionError:
        raise JsonBodyError(f"the body is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise JsonBodyError(f"the body is not JSON: {exc}") from None
    _check(value, surrogates=_SURROGATE_ESCAPE.search(raw) is not None)
    return value


def _check(value: Any, surrogates: bool) -> None:
    """Depth of containers, and (only when the text had such escapes) lone surrogates."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
            if surrogates:
                for key in node:
                    _text(key)
        elif isinstance(node, list):
            children = node
        else:
            if surrogates and isinstance(node, str):
                _text(node)
            continue
        if depth > MAX_DEPTH:
            raise JsonBodyError(f"the body is nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children
                     if surrogates or isinstance(child, dict | list))


def _text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonBodyError(
            f"a string holds an unpaired surrogate ({text[:40]!r}), which is not Unicode text"
        ) from None
