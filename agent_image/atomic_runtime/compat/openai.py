"""``POST /chat/completions`` without ``create()``'s param transform (openai pinned to 3.3.x).

``AsyncCompletions.create`` first runs its params through a TypedDict-driven transform that
visits every node of the messages and tools, the tool's JSON Schema included. For
chat-completion params it changes nothing (no field has an alias or a wire format) and what
instructor passes is already plain JSON. ``client.post`` is the SDK's documented call for any
endpoint; what goes past the documented surface is its ``options`` argument, which carries
``extra_headers``/``extra_query``/``extra_body``/``timeout`` the way ``create()`` would.
Auth, timeouts, typed errors and the parsed ``ChatCompletion`` stay the SDK's.

Applied through `atomic_runtime.compat.apply`: the probe checks that ``post`` still takes
``options`` and that a body goes out as given. When it does not, ``create()`` is used.
``STATS["fast_calls"]`` counts calls that took this path (tests/runtime/test_compat_openai.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from . import apply

CHAT_POST = "openai.chat_post"
STATS = {"fast_calls": 0}

_OPTION_NAMES = (
    ("extra_headers", "headers"),
    ("extra_query", "params"),
    ("extra_body", "extra_json"),
    ("timeout", "timeout"),
)


def _probe() -> None:
    import openai
    from openai.types.chat import ChatCompletion

    parameters = inspect.signature(openai.AsyncOpenAI.post).parameters
    missing = {"path", "cast_to", "body", "options"} - set(parameters)
    if missing:
        raise RuntimeError(f"AsyncOpenAI.post lost {sorted(missing)}")
    if "choices" not in ChatCompletion.model_fields:
        raise RuntimeError("ChatCompletion has no choices")


def chat_completions_call(client: Any) -> Callable[..., Awaitable[Any]]:
    """The raw chat-completions call instructor patches: the fast path or ``create()``."""
    if not apply(CHAT_POST, _probe):
        create: Callable[..., Awaitable[Any]] = client.chat.completions.create
        return create
    from openai.types.chat import ChatCompletion

    async def post(**params: Any) -> Any:
        if params.get("stream"):  # streaming needs the SDK's stream plumbing
            return await client.chat.completions.create(**params)
        options: dict[str, Any] = {}
        for name, option in _OPTION_NAMES:
            if name in params:
                options[option] = params.pop(name)
        STATS["fast_calls"] += 1
        return await client.post(
            "/chat/completions", body=params, cast_to=ChatCompletion, options=options
        )

    return post
