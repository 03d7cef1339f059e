"""The runner's Starlette application: the agent runtime's HTTP conventions, for a pipeline.

Same building blocks as an agent (body limit, JSON Schema check with paths, admission with
429 + Retry-After, request ids, error body shape, probes, metrics), so a pipeline is called,
scaled and watched like an agent. `POST /run` answers `{"output", "trace"}`; a failed run
answers the error with the trace so far, so the caller sees which step failed and how.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from jsonschema import Draft202012Validator
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..admission import Admission, OverloadedError
from ..app import (
    CLIENT_GONE,
    LOGGED,
    NOT_OBSERVED,
    BodyTooLargeError,
    Edge,
    RuntimeState,
    error,
    http_exception,
    json_media_type,
    read_body,
    server_error,
)
from ..compat.uvicorn import REFUSED
from ..jsonbody import JsonBodyError, parse_json
from ..logs import request_id
from ..schema_models import schema_errors
from ..settings import ServerSettings
from .bindings import ABSENT, TooManyItemsError
from .calls import AgentCaller
from .config import PipelineConfig, agent_tokens
from .metrics import PipelineMetrics
from .readiness import AgentReadiness
from .run import PipelineRun, StepFailedError

log = logging.getLogger("atomic_runtime.pipeline")


def failure(status: int, kind: str, message: str, run: PipelineRun,
            details: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": kind, "message": message, **(details or {})}
    rid = request_id.get()
    if rid:
        body["requestId"] = rid
    return JSONResponse({"error": body, "trace": run.trace()}, status_code=status)


class RunEndpoint:
    def __init__(self, config: PipelineConfig, metrics: PipelineMetrics,
                 state: RuntimeState, body_timeout: float) -> None:
        self.config = config
        self.metrics = metrics
        self.state = state
        self.admission = Admission(config.concurrency.max_in_flight,
                                   config.concurrency.queue_size, metrics)
        self.input_validator = Draft202012Validator(config.input_schema)
        self.deadline = config.request_timeout_seconds
        self.body_timeout = min(body_timeout, self.deadline)
        self.caller: AgentCaller | None = None
        """Set by the app's lifespan, which owns the HTTP session."""
        self._uploads: set[asyncio.Task[Any]] = set()

    def cut_uploads(self) -> None:
        """Shutdown: stop waiting for bodies still arriving (they are answered 503), so a
        stalled upload never holds the exit for the whole graceful timeout."""
        for task in list(self._uploads):
            task.cancel("draining")

    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        request.scope[LOGGED] = True  # counted and logged here, not again by the edge
        response = await self._handle(request)
        if request.scope.get(REFUSED):  # the connection layer answered (and counted) it
            return response
        elapsed = time.perf_counter() - started
        status = response.status_code
        self.metrics.count_run(status)
        if status not in NOT_OBSERVED:
            self.metrics.run_duration_h.observe(elapsed)
        extra: dict[str, Any] = {"pipeline": self.config.name, "status": status,
                                 "duration_ms": round(elapsed * 1000, 2)}
        if status >= 400:  # as an agent logs it: the error type beside the status
            extra["type"] = json.loads(bytes(response.body))["error"]["type"]
        log.info("run", extra=extra)
        return response

    async def _read(self, request: Request) -> bytes | Response:
        """The body, or the answer when it did not arrive whole: the agent's statuses (413,
        408 past the body timeout, 499 when the client left, 503 when shutting down)."""
        limit = self.config.max_body_bytes
        task = asyncio.current_task()
        assert task is not None
        self._uploads.add(task)
        body_timeout = 1.0 if self.state.closing else self.body_timeout
        try:
            async with asyncio.timeout(body_timeout):
                return await read_body(request, limit)
        except BodyTooLargeError:
            return error(413, "body_too_large", f"the body exceeds {limit} bytes (maxBodyBytes)")
        except ClientDisconnect:
            return error(CLIENT_GONE, "client_disconnected", "the client went away")
        except TimeoutError:
            self.metrics.client_timeout("body")
            return error(408, "client_timeout",
                         f"the body did not arrive within {body_timeout:g}s")
        except asyncio.CancelledError:
            if not (self.state.closing and task.uncancel() == 0):
                raise
            return error(503, "draining", "this runner is shutting down and the body had not "
                         "arrived; retry", retry_after=1)
        finally:
            self._uploads.discard(task)

    async def _handle(self, request: Request) -> Response:
        if not json_media_type(request.headers.get("content-type")):
            return error(415, "unsupported_media_type",
                         "the body must be JSON: send 'Content-Type: application/json'")
        raw = await self._read(request)
        if isinstance(raw, Response):
            return raw
        try:
            payload = parse_json(raw)
        except JsonBodyError as exc:
            return error(400, "invalid_json", str(exc))
        problems = schema_errors(self.input_validator, payload)
        if problems:
            return error(422, "invalid_input",
                         "the input does not match the pipeline's input schema", problems)
        if self.config.problems:
            return error(503, "incompatible", "the operator found this pipeline incompatible: "
                         + "; ".join(self.config.problems))
        assert self.caller is not None, "the lifespan starts before the first request"
        run = PipelineRun(self.config, self.caller, self.metrics,
                          request_id.get() or uuid.uuid4().hex)
        try:
            async with asyncio.timeout(self.deadline), self.admission.slot():
                t0 = time.perf_counter()
                try:
                    output = await run.execute(payload)
                finally:
                    self.admission.observe_service_time(time.perf_counter() - t0)
        except OverloadedError as exc:
            return error(429, "overloaded", "this pipeline runner is at maxInFlight + queueSize",
                         retry_after=exc.retry_after)
        except TimeoutError:
            return failure(504, "deadline_exceeded",
                           f"the run exceeded the pipeline's timeoutSeconds ({self.deadline:g}s)"
                           "; steps still running were cancelled", run)
        except StepFailedError as failed:
            details = failed.to_json()
            message = details.pop("message")
            if isinstance(failed.failure, TooManyItemsError):
                return failure(422, "too_many_items", message, run, details)
            log.warning("step failed", extra={k: v for k, v in details.items()
                                              if k != "agentError"})
            return failure(502, "step_failed", message, run, details)
        result = None if output is ABSENT else output
        return JSONResponse({"output": result, "trace": run.trace()})


def create_pipeline_app(config: PipelineConfig, state: RuntimeState | None = None,
                        metrics: PipelineMetrics | None = None,
                        tokens: Mapping[str, str] | None = None,
                        settings: ServerSettings | None = None) -> Starlette:
    """`tokens`: env var name → the agents' bearer tokens; None reads them from the
    environment (SettingsError when one the config names is missing)."""
    tokens = agent_tokens(config, os.environ) if tokens is None else tokens
    state = state or RuntimeState()
    settings = settings or ServerSettings()
    metrics = metrics or PipelineMetrics(config.name, [s.name for s in config.steps])
    endpoint = RunEndpoint(config, metrics, state, settings.body_timeout_seconds)
    agents = {s.agent: s.url for s in config.steps}
    readiness = AgentReadiness(agents, config.agent_check_seconds)
    schema_doc = {"name": config.name, "input": config.input_schema,
                  "output": config.output_schema}

    def not_ready() -> str | None:
        if state.draining:
            return "draining"
        if not state.ready:
            return "starting"
        if config.problems:
            return "incompatible: " + "; ".join(config.problems)
        if readiness.not_ready:
            return "agents not ready: " + readiness.summary()
        return None

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        why = not_ready()
        if why is not None:
            return PlainTextResponse(why, status_code=503)
        return PlainTextResponse("ready")

    async def schema(request: Request) -> Response:
        return JSONResponse(schema_doc)

    async def metrics_text(request: Request) -> Response:
        metrics.ready_g.set(0 if not_ready() else 1)
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # No pool limit: admission and each forEach's bound already cap the calls, and a
        # pool limit would queue calls invisibly behind them.
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
        session = aiohttp.ClientSession(connector=connector, trust_env=True,
                                        timeout=aiohttp.ClientTimeout(total=None))
        endpoint.caller = AgentCaller(session, metrics, tokens, config.max_answer_bytes)
        await readiness.check(session)
        poller = asyncio.create_task(readiness.run(session))
        state.ready = True
        log.info("pipeline runner ready", extra={
            "pipeline": config.name, "steps": len(config.steps),
            "max_in_flight": config.concurrency.max_in_flight,
            "not_ready": readiness.not_ready, "problems": config.problems})
        try:
            yield
        finally:
            state.ready = False
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            await session.close()

    app = Starlette(
        routes=[
            Route("/run", endpoint.__call__, methods=["POST"]),
            Route("/schema", schema, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_text, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception, Exception: server_error},
    )
    app.state.runtime = state
    app.state.metrics = metrics
    app.state.endpoint = endpoint
    app.state.edge = Edge(app, metrics)  # what uvicorn serves: request ids, the envelope
    return app
