"""Every reach past a library's public API lives here: one module per library.

Each patch is applied through `apply()`, which records whether it took effect. The policy is
the same for every library: when a patch cannot be applied (the library changed shape), the
runtime falls back to the library's public path and says so once, at WARNING, naming the
patch. Nothing crashes for a missing optimisation, and nothing fails silently either.
Contract tests (tests/runtime/test_compat_*.py) assert that each patch still *takes effect*
with the pinned library versions, not merely that it imports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("atomic_runtime.compat")

ACTIVE: dict[str, bool] = {}
"""Patch name (`library.what`) → whether it took effect in this process."""


def apply(name: str, patch: Callable[[], None]) -> bool:
    """Run `patch`; on any error keep the public path, record it, and warn once."""
    if name in ACTIVE:
        return ACTIVE[name]
    try:
        patch()
    except Exception as err:  # the library changed shape: the public path still works
        ACTIVE[name] = False
        log.warning("compat patch %s not applied, using the public path: %s: %s",
                    name, type(err).__name__, err)
        return False
    ACTIVE[name] = True
    return True
