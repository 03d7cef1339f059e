"""The process's own settings, from ``ATOMIC_AGENT_*`` environment variables.

The agent's behaviour comes from the rendered config file (config.py); how the process
listens, times out and logs comes from the environment, so one image runs anywhere. Every
variable is read and checked here, once, before anything starts: a typo gives one line naming
the variable and what it accepts (exit 2), never a traceback from deep inside uvicorn.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
HTTP_CLIENTS = ("aiohttp", "httpx")


class SettingsError(ValueError):
    """One environment variable with a value the runtime cannot use."""


@dataclass(frozen=True)
class ServerSettings:
    host: str = "0.0.0.0"
    port: int = 8080
    metrics_port: int = 9090
    log_level: str = "INFO"
    drain_delay_seconds: float = 5.0
    keepalive_seconds: float = 75.0
    """Idle time allowed between requests on a kept-alive connection."""
    header_timeout_seconds: float = 10.0
    """From the connection's opening (or a next request's first byte) to its last header."""
    body_timeout_seconds: float = 30.0
    """To receive a whole request body; the request deadline also covers it."""
    max_header_bytes: int = 16_384
    """Request line plus headers; beyond it the answer is 431 and the connection closes."""
    auth_token: str | None = None
    """Bearer token /run requires when set (from a Secret); never logged."""


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum or value == float("inf"):  # also refuses nan
        raise SettingsError(f"{name}={raw!r} must be a finite number >= {minimum:g}")
    return value


def _port(env: Mapping[str, str], name: str, default: int, *, allow_zero: bool = False) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    low = 0 if allow_zero else 1
    if not raw.isdigit() or not low <= int(raw) <= 65535:
        raise SettingsError(f"{name}={raw!r} is not a port number ({low}-65535)")
    return int(raw)


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    for value in allowed:
        if raw.lower() == value.lower():
            return value
    raise SettingsError(f"{name}={raw!r} is not one of {', '.join(allowed)}")


def load_settings(env: Mapping[str, str] | None = None) -> ServerSettings:
    """Read and check every ``ATOMIC_AGENT_*`` variable the process itself uses."""
    env = os.environ if env is None else env
    d = ServerSettings()
    _choice(env, "ATOMIC_AGENT_HTTP_CLIENT", "aiohttp", HTTP_CLIENTS)  # read by llm.py
    token = env.get("ATOMIC_AGENT_AUTH_TOKEN", "").strip() or None
    if token is not None and (len(token) < 16 or any(c.isspace() for c in token)):
        raise SettingsError(
            f"ATOMIC_AGENT_AUTH_TOKEN=(hidden, {len(token)} characters) must be at least 16 "
            "characters without whitespace"
        )
    # set but empty disables the extra listener, like 0 (as it did before these checks)
    metrics_default = 0 if "ATOMIC_AGENT_METRICS_PORT" in env else d.metrics_port
    return ServerSettings(
        host=env.get("ATOMIC_AGENT_HOST", "").strip() or d.host,
        port=_port(env, "ATOMIC_AGENT_PORT", d.port),
        metrics_port=_port(env, "ATOMIC_AGENT_METRICS_PORT", metrics_default, allow_zero=True),
        log_level=_choice(env, "ATOMIC_AGENT_LOG_LEVEL", d.log_level, LOG_LEVELS),
        drain_delay_seconds=_number(
            env, "ATOMIC_AGENT_DRAIN_DELAY_SECONDS", d.drain_delay_seconds, minimum=0
        ),
        keepalive_seconds=_number(
            env, "ATOMIC_AGENT_KEEPALIVE_SECONDS", d.keepalive_seconds, minimum=1
        ),
        header_timeout_seconds=_number(
            env, "ATOMIC_AGENT_HEADER_TIMEOUT_SECONDS", d.header_timeout_seconds, minimum=0.1
        ),
        body_timeout_seconds=_number(
            env, "ATOMIC_AGENT_BODY_TIMEOUT_SECONDS", d.body_timeout_seconds, minimum=0.1
        ),
        max_header_bytes=int(
            _number(env, "ATOMIC_AGENT_MAX_HEADER_BYTES", d.max_header_bytes, minimum=1024)
        ),
        auth_token=token,
    )
