"""instructor internals the runtime relies on for speed (instructor pinned to 1.17.x).

Two per-call costs of instructor's public path are paid once instead:

- ``instructor.response_schema``: instructor wraps a plain output model into a new
  ResponseSchema subclass on *every* call, which also defeats its cache of the tool schema.
  Wrapping it once at start-up with instructor's own helper makes each call reuse it.
- ``instructor.memoized_async_validator_check``: instructor walks every attribute of the
  model's whole MRO (pydantic's BaseModel included) several times per call to refuse async
  validators. For a class that passed once the answer cannot change, so it is remembered.

Both are applied through `atomic_runtime.compat.apply` and verify their own effect when
applied: a probe model must come back unchanged from instructor's per-call preparation, and
instructor's patched create must see the memoized check. ``STATS`` counts what the patched
paths did, so the contract tests (tests/runtime/test_compat_instructor.py) can prove on a real
call that they are taken.
"""

from __future__ import annotations

import contextlib
import sys
import weakref
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from . import apply

RESPONSE_SCHEMA = "instructor.response_schema"
MEMOIZED_CHECK = "instructor.memoized_async_validator_check"

STATS = {"prepared": 0, "check_hits": 0, "check_walks": 0}
"""prepared: models wrapped once; check_hits / check_walks: memoized answers / real walks."""

_wrap: Callable[[type[BaseModel]], type[BaseModel]] | None = None


def _load_response_schema() -> None:
    global _wrap
    from instructor.v2.core.function_calls import response_schema
    from instructor.v2.core.response_model import prepare_response_model

    class Probe(BaseModel):
        value: int

    wrapped = response_schema(Probe)
    if prepare_response_model(wrapped) is not wrapped:  # instructor would re-wrap per call
        raise RuntimeError("instructor re-wraps a prepared ResponseSchema on every call")
    _wrap = response_schema


def prepared_response_model(model: type[BaseModel]) -> type[BaseModel]:
    """The output model wrapped for instructor once; the model itself on the public path."""
    if not apply(RESPONSE_SCHEMA, _load_response_schema) or _wrap is None:
        return model
    STATS["prepared"] += 1
    return _wrap(model)


def _memoize_async_validator_check() -> None:
    from instructor.v2.core import patch as patch_module
    from instructor.v2.validation import async_validators as module

    original = module.reject_async_validators
    if getattr(original, "_atomic_memoized", False):
        return
    passed: weakref.WeakSet[type] = weakref.WeakSet()

    def reject_async_validators(response_model: Any) -> None:
        if isinstance(response_model, type):
            with contextlib.suppress(TypeError):
                if response_model in passed:
                    STATS["check_hits"] += 1
                    return
        STATS["check_walks"] += 1
        original(response_model)
        if isinstance(response_model, type):
            with contextlib.suppress(TypeError):
                passed.add(response_model)

    reject_async_validators._atomic_memoized = True  # type: ignore[attr-defined]
    # modules that imported the function by name (instructor.v2.core.patch) hold the
    # original: rebind it there too; the retry loop imports it from the module at call time
    for name, loaded in list(sys.modules.items()):
        if name.startswith("instructor") and getattr(
                loaded, "reject_async_validators", None) is original:
            loaded.reject_async_validators = reject_async_validators  # type: ignore[attr-defined]
    if getattr(patch_module, "reject_async_validators", None) is not reject_async_validators:
        raise RuntimeError("instructor's patched create no longer calls reject_async_validators")


def memoize_async_validator_check() -> bool:
    """Apply the memoized check (once per process); False means the public path is used."""
    return apply(MEMOIZED_CHECK, _memoize_async_validator_check)
