"""The Starlette application: routing, body limits, validation, admission, error mapping.

Starlette rather than FastAPI: the schemas are only known at run time, so FastAPI's
type-driven validation and OpenAPI generation would be bypassed anyway, and plain Starlette
serves a JSON endpoint about twice as fast (see docs/runtime.md for the measurements).
No BaseHTTPMiddleware either: it costs a task per request. Everything per-request lives in
``RunHandler`` and a 15-line ASGI wrapper for request ids.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .admission import Admission, OverloadedError
from .agent import Agent, ConfiguredAgent
from .config import AgentConfig
from .llm import LLM, LLMCallError
from .logs import request_id
from .metrics import Metrics
from .openapi import build_openapi
from .schema_models import SCHEMA_CHECKED, json_path, schema_errors

log = logging.getLogger("atomic_runtime.app")

# upstream failure reason -> (HTTP status, error type)
FAILURE_STATUS: dict[str, tuple[int, str]] = {
    "rate_limit": (503, "upstream_rate_limited"),
    "timeout": (504, "upstream_timeout"),
    "upstream_5xx": (502, "upstream_error"),
    "connection": (502, "upstream_unreachable"),
    "upstream_4xx": (502, "upstream_rejected"),
    "validation": (502, "invalid_model_output"),
    "other": (500, "internal_error"),
}
_RID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


@dataclass
class RuntimeState:
    """Lifecycle flags shared by the app and the server's signal handling."""

    ready: bool = False
    draining: bool = False
    started: float = field(default_factory=time.monotonic)


class BodyTooLargeError(Exception):
    pass


def error(
    status: int,
    kind: str,
    message: str,
    details: list[dict[str, str]] | None = None,
    retry_after: float | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": kind, "message": message}
    if details:
        body["details"] = details
    rid = request_id.get()
    if rid:
        body["requestId"] = rid
    headers = {}
    if retry_after is not None:
        seconds = max(1, int(retry_after + 0.999))
        body["retryAfterSeconds"] = seconds
        headers["Retry-After"] = str(seconds)
    return JSONResponse({"error": body}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


class RunHandler:
    def __init__(self, config: AgentConfig, agent: Agent, metrics: Metrics, state: RuntimeState):
        self.config = config
        self.agent = agent
        self.metrics = metrics
        self.state = state
        self.admission = Admission(
            config.concurrency.max_in_flight, config.concurrency.queue_size, metrics
        )
        self.input_validator = Draft202012Validator(agent.input_schema)
        self.deadline = config.request_timeout_seconds

    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        response = await self._handle(request)
        elapsed = time.perf_counter() - started
        self.metrics.count_request(response.status_code)
        self.metrics.request_duration_h.observe(elapsed)
        log.info(
            "run",
            extra={"status": response.status_code, "duration_ms": round(elapsed * 1000, 2)},
        )
        return response

    async def _handle(self, request: Request) -> Response:
        try:
            raw = await read_body(request, self.config.max_body_bytes)
        except BodyTooLargeError:
            return error(
                413,
                "body_too_large",
                f"the body exceeds {self.config.max_body_bytes} bytes (maxBodyBytes)",
            )
        except ClientDisconnect:
            return error(400, "client_disconnected", "the client went away")
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            return error(400, "invalid_json", f"the body is not JSON: {exc}")
        problems = schema_errors(self.input_validator, payload)
        if problems:
            return error(
                422, "invalid_input", "the input does not match the input schema", problems
            )
        try:
            data = self.agent.input_model.model_validate(payload, context=SCHEMA_CHECKED)
        except ValidationError as exc:
            details = [
                {"path": json_path(list(e["loc"])), "message": e["msg"]}
                for e in exc.errors(include_url=False)
            ]
            return error(422, "invalid_input", "the input does not match the input schema", details)
        try:
            async with asyncio.timeout(self.deadline):
                async with self.admission.slot():
                    t0 = time.perf_counter()
                    try:
                        result = await self.agent.run(data)
                    finally:
                        self.admission.observe_service_time(time.perf_counter() - t0)
        except OverloadedError as exc:
            return error(
                429,
                "overloaded",
                "this agent is at maxInFlight + queueSize",
                retry_after=exc.retry_after,
            )
        except TimeoutError:
            return error(
                504,
                "deadline_exceeded",
                f"no answer within requestTimeoutSeconds ({self.deadline:g}s)",
            )
        except LLMCallError as failure:
            return self._failure(failure)
        return JSONResponse(self._dump(result))

    def _dump(self, result: BaseModel) -> Any:
        return result.model_dump(mode="json", by_alias=True, exclude_unset=True)

    def _failure(self, failure: LLMCallError) -> Response:
        self.metrics.llm_error(failure.reason)
        status, kind = FAILURE_STATUS.get(failure.reason, FAILURE_STATUS["other"])
        log.warning(
            "llm call failed",
            extra={
                "reason": failure.reason,
                "upstream_status": failure.upstream_status,
                "attempts": failure.attempts,
            },
        )
        retry_after = None
        if failure.reason == "rate_limit":
            retry_after = failure.retry_after or 1.0
        return error(status, kind, failure.message, list(failure.details) or None, retry_after)


POD_NAME = os.environ.get("ATOMIC_AGENT_POD_NAME") or socket.gethostname()


def replica_of(scope: Scope) -> bytes:
    """`<pod>@<address>:<port>` of this process, for callers' traces (a pipeline runner
    records which replica answered each call, which a Service hides from it)."""
    server = scope.get("server")
    address = f"@{server[0]}:{server[1]}" if server else ""
    return f"{POD_NAME}{address}".encode()


class RequestIdMiddleware:
    """Tags the log context and the response with the caller's X-Request-ID (or a new one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                rid = candidate if _RID.fullmatch(candidate) else None
                break
        rid = rid or uuid.uuid4().hex
        token = request_id.set(rid)
        header = (b"x-request-id", rid.encode())
        replica = (b"x-atomic-replica", replica_of(scope))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header, replica]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


def build_agent(config: AgentConfig, metrics: Metrics) -> Agent:
    llm = LLM(config.model, metrics, config.concurrency.max_in_flight)
    if config.agent_ref:
        from .byo import ByoAgent

        return ByoAgent(config, llm)
    return ConfiguredAgent(config, llm)


def create_app(
    config: AgentConfig,
    state: RuntimeState | None = None,
    metrics: Metrics | None = None,
) -> Starlette:
    state = state or RuntimeState()
    metrics = metrics or Metrics(config.name)
    agent = build_agent(config, metrics)
    handler = RunHandler(config, agent, metrics, state)
    openapi = build_openapi(config.name, agent.input_schema, agent.output_schema)
    schema_doc = {"name": config.name, "input": agent.input_schema, "output": agent.output_schema}

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        if state.draining:
            return PlainTextResponse("draining", status_code=503)
        if not state.ready:
            return PlainTextResponse("starting", status_code=503)
        return PlainTextResponse("ready")

    async def schema(request: Request) -> Response:
        return JSONResponse(schema_doc)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi)

    async def metrics_text(request: Request) -> Response:
        metrics.ready_g.set(1 if state.ready and not state.draining else 0)
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.ready = True
        metrics.ready_g.set(1)
        log.info(
            "agent ready",
            extra={
                "agent": config.name,
                "max_in_flight": config.concurrency.max_in_flight,
                "queue_size": config.concurrency.queue_size,
            },
        )
        yield
        state.ready = False
        metrics.ready_g.set(0)
        close = getattr(getattr(agent, "llm", None), "aclose", None)
        if close is not None:
            await close()

    app = Starlette(
        routes=[
            Route("/run", handler.__call__, methods=["POST"]),
            Route("/schema", schema, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_text, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(RequestIdMiddleware)
    app.state.runtime = state
    app.state.metrics = metrics
    app.state.handler = handler
    return app
