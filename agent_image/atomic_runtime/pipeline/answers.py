"""What the runner accepts from an agent: a bounded body that fits the agent's output schema.

An agent validates its own output, but the runner is the one that hands it on (to the next
step, or to the caller), so it does not take a 200 on trust: a buggy or replaced agent (a
user's own agentRef, an old replica mid-rollout) could answer anything. Each answer is read
up to ``maxAnswerBytes`` (a 60 MB answer is refused, not buffered) and checked against the
output schema the agent itself declares on ``GET /schema``, fetched through its Service on
first use and refreshed every ``SCHEMA_TTL_SECONDS`` (a rollout may change it).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from jsonschema import Draft202012Validator

from ..schema_models import json_path

SCHEMA_TTL_SECONDS = 30.0
SCHEMA_TIMEOUT_SECONDS = 5.0


class AnswerTooLargeError(Exception):
    """The agent's answer is longer than the runner reads."""


class SchemaUnavailableError(Exception):
    """The agent's declared output schema could not be read: its answers cannot be checked."""


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or AnswerTooLargeError as soon as it passes `limit` bytes."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise AnswerTooLargeError
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise AnswerTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


def violations(validator: Draft202012Validator, data: Any) -> list[dict[str, str]]:
    """Each way `data` breaks the schema: the path, the rule (JSON Schema keyword) and why."""
    found = [{"path": json_path(list(e.absolute_path)), "rule": str(e.validator),
              "message": e.message} for e in validator.iter_errors(data)]
    return sorted(found, key=lambda v: (v["path"], v["rule"], v["message"]))


@dataclass
class _Known:
    text: str
    validator: Draft202012Validator
    fetched: float


class OutputSchemas:
    """Agent name → a validator of its declared output schema, fetched when needed."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self._known: dict[str, _Known] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def validator(self, agent: str, url: str) -> Draft202012Validator:
        """The agent's output validator; SchemaUnavailableError when it cannot be read."""
        now = asyncio.get_running_loop().time()
        known = self._known.get(agent)
        if known is not None and now - known.fetched < SCHEMA_TTL_SECONDS:
            return known.validator
        async with self._locks.setdefault(agent, asyncio.Lock()):
            known = self._known.get(agent)
            if known is not None and now - known.fetched < SCHEMA_TTL_SECONDS:
                return known.validator  # fetched while this call waited for the lock
            return await self._fetch(agent, url, known)

    async def _fetch(self, agent: str, url: str, known: _Known | None) -> Draft202012Validator:
        timeout = aiohttp.ClientTimeout(total=SCHEMA_TIMEOUT_SECONDS)
        try:
            async with self.session.get(f"{url.rstrip('/')}/schema", timeout=timeout) as answer:
                if answer.status != 200:
                    raise SchemaUnavailableError(f"GET /schema answered {answer.status}")
                doc = json.loads(await read_capped(answer, 1 << 20))
        except (aiohttp.ClientError, TimeoutError, AnswerTooLargeError, ValueError) as exc:
            if known is not None:  # keep checking with the last schema it declared
                return known.validator
            raise SchemaUnavailableError(f"GET /schema failed: {exc or type(exc).__name__}"
                                         ) from None
        output = doc.get("output") if isinstance(doc, dict) else None
        if not isinstance(output, dict):
            raise SchemaUnavailableError("GET /schema has no output schema")
        text = json.dumps(output, sort_keys=True)
        validator = (known.validator if known is not None and known.text == text
                     else Draft202012Validator(output))
        self._known[agent] = _Known(text, validator, asyncio.get_running_loop().time())
        return validator
