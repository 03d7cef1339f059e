"""The operator's own loops (the autoscaler's ticks, the Secret re-check), started once.

kopf posts events only from inside its handling of some object, so each loop is started by
an agent's event handler and inherits that context. The handler is filtered with
`not_started`: kopf evaluates the filter on each event and skips the handler once its loop
runs, instead of invoking it for nothing on every event of every agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


def not_started(name: str) -> Callable[..., bool]:
    """A kopf `when` filter: true until loop `name` has been started."""
    def when(memo: Any, **_: Any) -> bool:
        tasks = memo.get("background_tasks")
        return tasks is not None and name not in tasks
    return when


def start(memo: Any, name: str, loop: Coroutine[Any, Any, None]) -> None:
    """Run `loop` as the operator's loop `name` unless it already runs (kopf hands each
    object a shallow copy of the memo: the dict made at start-up is shared)."""
    tasks: dict[str, asyncio.Task[None]] | None = memo.get("background_tasks")
    if tasks is None or name in tasks:
        loop.close()
        return
    tasks[name] = asyncio.create_task(loop)
