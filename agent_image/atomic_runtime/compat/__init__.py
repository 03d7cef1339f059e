"""Every reach past a library's public API lives here: one module per library.

Each patch is applied through `apply()`, which records whether it took effect. The policy is
the same for every library: when a patch cannot be applied (the library changed shape), the
runtime falls back to the library's public path and says so once, at WARNING, naming the
patch. Nothing crashes for a missing optimisation, and nothing fails silently either.
Contract tests (tests/runtime/test_compat_*.py) assert that each patch still *takes effect*
with the pinned library versions, not merely that it imports.

``ATOMIC_AGENT_COMPAT_OFF`` (a comma-separated list of patch names, or ``all``) turns patches
off, so what each one buys can be measured against the public path in the same build
(docs/runtime.md gives the commands).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

log = logging.getLogger("atomic_runtime.compat")

ACTIVE: dict[str, bool] = {}
"""Patch name (`library.what`) → whether it took effect in this process."""


def disabled(name: str) -> bool:
    """Whether the operator of this process switched the patch off (for measurements)."""
    off = {part.strip() for part in os.environ.get("ATOMIC_AGENT_COMPAT_OFF", "").split(",")}
    return name in off or "all" in off


def apply(name: str, patch: Callable[[], None]) -> bool:
    """Run `patch`; on any error keep the public path, record it, and warn once."""
    if name in ACTIVE:
        return ACTIVE[name]
    if disabled(name):
        ACTIVE[name] = False
        log.info("compat patch %s switched off by ATOMIC_AGENT_COMPAT_OFF", name)
        return False
    try:
        patch()
    except Exception as err:  # the library changed shape: the public path still works
        ACTIVE[name] = False
        log.warning("compat patch %s not applied, using the public path: %s: %s",
                    name, type(err).__name__, err)
        return False
    ACTIVE[name] = True
    return True
