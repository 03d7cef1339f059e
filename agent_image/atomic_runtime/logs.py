"""Structured JSON logs with request ids, and no secrets in them.

Every line is one JSON object so log pipelines need no parsing rules. The API key is known
to the process (it reads it from the environment), so instead of trusting every library to
never print it, the formatter removes it from each finished line, tracebacks included.
Prompts and model output are never logged by the runtime; the chattier SDK loggers are held at
WARNING unless ATOMIC_AGENT_LOG_LEVEL=DEBUG is asked for explicitly.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterable

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
_QUIET = ("instructor", "openai", "httpx2", "httpcore2", "httpx", "httpcore", "anthropic", "groq")
REDACTED = "[REDACTED]"


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # short values would redact innocent text; real keys are long
        self.secrets = sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid is not None:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = json.dumps(entry, default=str, ensure_ascii=False)
        for secret in self.secrets:
            if secret in line:
                line = line.replace(secret, REDACTED)
        return line


class _Refusals(logging.Filter):
    """uvicorn's own line for a malformed request: the runtime logs that refusal itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "Invalid HTTP request received."


def configure_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    debug = level.upper() == "DEBUG"
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
    # instructor logs failed attempts at ERROR with the model's output inside; the runtime
    # logs each failure itself (reason, status, attempts) without content
    logging.getLogger("instructor").setLevel(logging.DEBUG if debug else logging.CRITICAL)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.filters[:] = []
        lg.propagate = True
    logging.getLogger("uvicorn.error").addFilter(_Refusals())
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # /run logs its own line
