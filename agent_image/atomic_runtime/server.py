"""Process entry point: uvicorn with a drain that loses no request.

On SIGTERM Kubernetes has already started removing the pod from the Service endpoints, but
that takes a moment to reach every node. So readiness goes 503 at once, the listener stays
open for ATOMIC_AGENT_DRAIN_DELAY_SECONDS so late-routed requests are still served, and only
then uvicorn stops accepting connections and waits for every admitted request (in flight or
queued) to finish, bounded by the request deadline. Uploads whose body is still arriving at
that point are answered 503 at once instead of holding the exit. A second signal forces the
exit. The process then exits 0 instead of re-raising the signal, as a finished drain is a
success.

Start-up failures (a bad variable, a config the runtime cannot serve) are one log line and
exit 2, never a traceback: the line is what ``kubectl logs --previous`` shows.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Callable
from typing import Any, Protocol

import uvicorn

from .app import RuntimeState, create_app
from .compat.uvicorn import HeadLimits, http_protocol, request_exit, signal_hooked_server
from .config import describe_error, load_config
from .llm import api_key
from .logs import configure_logging
from .settings import ServerSettings, SettingsError, load_settings

log = logging.getLogger("atomic_runtime.server")


class Drain:
    """What SIGTERM does: readiness off, a delay, then uvicorn's graceful shutdown."""

    def __init__(self, state: RuntimeState, delay: float, cut_uploads: Any) -> None:
        self.state = state
        self.delay = delay
        self.cut_uploads = cut_uploads
        self.server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def on_signal(self, sig: int) -> None:
        assert self.server is not None
        if self.state.draining:
            log.warning("second signal during drain, exiting now", extra={"signal": sig})
            request_exit(self.server, force=True)
            return
        self.state.draining = True  # /readyz answers 503 from this instant
        log.info("draining", extra={"signal": sig, "delay_seconds": self.delay})
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._close()
            return
        self._task = loop.create_task(self._after_delay())

    async def _after_delay(self) -> None:
        await asyncio.sleep(self.delay)
        self._close()

    def _close(self) -> None:
        assert self.server is not None
        log.info("closing listener, waiting for admitted requests")
        self.state.closing = True
        request_exit(self.server)
        self.cut_uploads()


class HasDeadline(Protocol):
    """An agent's or a pipeline runner's config: the drain waits out one request deadline."""

    @property
    def request_timeout_seconds(self) -> float: ...


def uvicorn_config(app: Any, config: HasDeadline, settings: ServerSettings) -> uvicorn.Config:
    edge = app.state.edge
    limits = HeadLimits(settings.header_timeout_seconds, settings.max_header_bytes)
    return uvicorn.Config(
        edge,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        # httptools: C parser; pure-Python h11 cost ~0.15 ms more per request here
        http=http_protocol(limits, edge.refusal, edge.timed_out),
        loop="asyncio",
        lifespan="on",
        server_header=False,
        backlog=2048,
        timeout_keep_alive=max(1, round(settings.keepalive_seconds)),
        timeout_graceful_shutdown=int(config.request_timeout_seconds + 5),
    )


def start_metrics_listener(app_metrics: object, port: int, host: str) -> None:
    """A separate listener for scrapes, in its own thread, so they never queue behind work."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=app_metrics.registry)  # type: ignore[attr-defined]


def load_startup[C](load: Callable[[], C], what: str) -> tuple[ServerSettings, C] | None:
    """The environment's settings and the mounted configuration, logging configured from
    them; None after one error line (the caller exits 2). The agent and the pipeline runner
    start the same way, so a bad start reads the same for both."""
    configure_logging("INFO")
    try:
        settings = load_settings()
    except SettingsError as exc:
        log.error("invalid environment", extra={"error": str(exc)})
        return None
    configure_logging(settings.log_level)
    try:
        config = load()
    except Exception as exc:  # OSError, JSON, pydantic: one line each, never a traceback
        log.error(f"cannot load the {what} configuration", extra={"error": describe_error(exc)})
        return None
    return settings, config


def main(argv: list[str] | None = None) -> int:
    started = load_startup(load_config, "agent")
    if started is None:
        return 2
    settings, config = started
    secrets = [s for s in (api_key(config.model), settings.auth_token) if s]
    configure_logging(settings.log_level, secrets=secrets)
    state = RuntimeState()
    try:
        app = create_app(config, state, settings=settings)
    except Exception as exc:  # a missing key, a bad agentRef, a schema the runtime cannot map
        log.error("cannot start the agent", extra={"error": describe_error(exc)})
        return 2
    # Everything built so far (modules, models, clients) lives as long as the process: keep
    # it out of the cyclic GC's full collections, which stop the loop to scan it. Measured
    # at 300 clients: p99 33-51 ms over the model's latency with the freeze, 88-151 without.
    # (Timing full collections instead made them rarer but longer, and the p99 worse.)
    gc.freeze()
    return serve(app, config, settings, state, app.state.handler.cut_uploads)


def serve(app: Any, config: HasDeadline, settings: ServerSettings, state: RuntimeState,
          cut_uploads: Callable[[], None]) -> int:
    """Open the metrics listener, run uvicorn with the drain hooked to SIGTERM, and say how
    it ended: the one serving sequence of the agent and the pipeline runner (exit 2 when
    it could not start)."""
    ucfg = uvicorn_config(app, config, settings)
    if settings.metrics_port and settings.metrics_port != settings.port:
        try:
            start_metrics_listener(app.state.metrics, settings.metrics_port, settings.host)
        except OSError as exc:
            log.error("cannot open the metrics port", extra={"error": describe_error(exc)})
            return 2
    drain = Drain(state, settings.drain_delay_seconds, cut_uploads)
    server = signal_hooked_server(ucfg, drain.on_signal)
    drain.server = server
    try:
        server.run()
    except SystemExit:  # uvicorn's start-up failure (it logged why: e.g. the address is taken)
        if server.started:
            raise
    if not server.started:
        return 2
    log.info("stopped")
    return 0


def run() -> None:
    sys.exit(main())
