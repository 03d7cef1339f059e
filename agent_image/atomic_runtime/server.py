"""Process entry point: uvicorn with a drain that loses no request.

On SIGTERM Kubernetes has already started removing the pod from the Service endpoints, but
that takes a moment to reach every node. So readiness goes 503 at once, the listener stays
open for ATOMIC_AGENT_DRAIN_DELAY_SECONDS so late-routed requests are still served, and only
then uvicorn stops accepting connections and waits for every admitted request (in flight or
queued) to finish, bounded by the request deadline. A second signal forces the exit.
The process then exits 0 instead of re-raising the signal, as a finished drain is a success.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from types import FrameType
from typing import Protocol

import uvicorn

from .app import RuntimeState, create_app
from .byo import AgentRefError
from .config import load_config
from .llm import MissingAPIKeyError, api_key
from .logs import configure_logging

log = logging.getLogger("atomic_runtime.server")


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: RuntimeState, drain_delay: float) -> None:
        super().__init__(config)
        self.state = state
        self.drain_delay = drain_delay
        self._drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.state.draining:
            log.warning("second signal during drain, exiting now", extra={"signal": sig})
            self.force_exit = True
            self.should_exit = True
            return
        self.state.draining = True  # /readyz answers 503 from this instant
        log.info("draining", extra={"signal": sig, "delay_seconds": self.drain_delay})
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.should_exit = True
            return
        self._drain_task = loop.create_task(self._drain())

    async def _drain(self) -> None:
        await asyncio.sleep(self.drain_delay)
        log.info("closing listener, waiting for admitted requests")
        self.should_exit = True


class HasDeadline(Protocol):
    """An agent's or a pipeline runner's config: the drain waits out one request deadline."""

    @property
    def request_timeout_seconds(self) -> float: ...


def uvicorn_config(app: object, config: HasDeadline) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=os.environ.get("ATOMIC_AGENT_HOST", "0.0.0.0"),
        port=int(os.environ.get("ATOMIC_AGENT_PORT", "8080")),
        log_config=None,
        access_log=False,
        http="httptools",  # C parser; pure-Python h11 cost ~0.15 ms more per request here
        loop="asyncio",
        lifespan="on",
        server_header=False,
        backlog=2048,
        timeout_keep_alive=int(env_float("ATOMIC_AGENT_KEEPALIVE_SECONDS", 75)),
        timeout_graceful_shutdown=int(config.request_timeout_seconds + 5),
    )


def start_metrics_listener(app_metrics: object, port: int, host: str) -> None:
    """A separate listener for scrapes, in its own thread, so they never queue behind work."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=app_metrics.registry)  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    level = os.environ.get("ATOMIC_AGENT_LOG_LEVEL", "INFO")
    configure_logging(level)
    try:
        config = load_config()
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        log.error("cannot load the agent configuration", extra={"error": str(exc)})
        return 2
    configure_logging(level, secrets=[s for s in (api_key(config.model),) if s])
    state = RuntimeState()
    try:
        app = create_app(config, state)
    except (MissingAPIKeyError, AgentRefError, ValueError) as exc:
        log.error("cannot start the agent", extra={"error": str(exc)})
        return 2
    # Everything built so far (modules, models, clients) lives as long as the process: keep
    # it out of the cyclic GC's full collections, which stop the loop to scan it. Measured
    # at 300 clients: p99 33-51 ms over the model's latency with the freeze, 88-151 without.
    # (Timing full collections instead made them rarer but longer, and the p99 worse.)
    gc.freeze()
    ucfg = uvicorn_config(app, config)
    metrics_port = int(os.environ.get("ATOMIC_AGENT_METRICS_PORT", "9090") or 0)
    if metrics_port and metrics_port != ucfg.port:
        start_metrics_listener(app.state.metrics, metrics_port, ucfg.host)
    server = DrainingServer(ucfg, state, env_float("ATOMIC_AGENT_DRAIN_DELAY_SECONDS", 5.0))
    server.run()
    log.info("stopped")
    return 0 if server.started else 1


def run() -> None:
    sys.exit(main())
