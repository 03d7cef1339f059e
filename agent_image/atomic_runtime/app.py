"""The Starlette application: routing, body limits, validation, admission, error mapping.

Starlette rather than FastAPI: the schemas are only known at run time, so FastAPI's
type-driven validation and OpenAPI generation would be bypassed anyway, and plain Starlette
serves a JSON endpoint about twice as fast (see docs/runtime.md for the measurements).
No BaseHTTPMiddleware either: it costs a task per request. Everything per-request lives in
``RunHandler`` and ``Edge``, the outermost ASGI layer: request ids, and the guarantee that
every error answer (404, 405 and 500 included) is the one JSON envelope, counted and logged
once. Refusals before a request reaches the app (slow or oversized heads) come from the
connection layer in compat/uvicorn.py through ``Edge.refusal``, in the same envelope.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .admission import Admission, OverloadedError
from .agent import Agent, ConfiguredAgent
from .compat.uvicorn import ON_DISCONNECT, REFUSED
from .config import AgentConfig
from .context import build_providers, missing_files
from .jsonbody import JsonBodyError, parse_json
from .llm import LLM, LLMCallError, deadline_at
from .logs import request_id
from .metrics import Metrics
from .openapi import build_openapi
from .schema_models import SCHEMA_CHECKED, json_path, schema_errors
from .settings import ServerSettings

log = logging.getLogger("atomic_runtime.app")

# upstream failure reason -> (HTTP status, error type)
FAILURE_STATUS: dict[str, tuple[int, str]] = {
    "rate_limit": (503, "upstream_rate_limited"),
    "timeout": (504, "upstream_timeout"),
    "upstream_5xx": (502, "upstream_error"),
    "connection": (502, "upstream_unreachable"),
    "closed": (502, "upstream_closed"),
    "output_too_large": (502, "model_output_too_large"),
    "upstream_4xx": (502, "upstream_rejected"),
    "validation": (502, "invalid_model_output"),
    "other": (500, "internal_error"),
}
_RID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
LOGGED = "atomic_runtime.logged"
"""Scope key set by a handler that counted and logged its answer itself."""
CLIENT_GONE = 499  # nginx's "client closed request": nothing reaches the client
NOT_OBSERVED = frozenset({408, CLIENT_GONE})
"""Answers left out of the latency histogram: their duration is the client's slowness."""
ERROR_TYPES = {404: "not_found", 405: "method_not_allowed"}


@dataclass
class RuntimeState:
    """Lifecycle flags shared by the app and the server's signal handling."""

    ready: bool = False
    draining: bool = False
    closing: bool = False
    """The listener is closing: uploads still arriving are cut with 503."""
    started: float = field(default_factory=time.monotonic)


class BodyTooLargeError(Exception):
    pass


def error(
    status: int,
    kind: str,
    message: str,
    details: list[dict[str, str]] | None = None,
    retry_after: float | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": kind, "message": message}
    if details:
        body["details"] = details
    rid = request_id.get()
    if rid:
        body["requestId"] = rid
    headers = dict(headers or {})
    if retry_after is not None:
        seconds = max(1, int(retry_after + 0.999))
        body["retryAfterSeconds"] = seconds
        headers["Retry-After"] = str(seconds)
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def json_media_type(content_type: str | None) -> bool:
    """No Content-Type is taken as JSON; otherwise application/json or a +json type."""
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


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
    def __init__(
        self,
        config: AgentConfig,
        agent: Agent,
        metrics: Metrics,
        state: RuntimeState,
        settings: ServerSettings,
    ):
        self.config = config
        self.agent = agent
        self.metrics = metrics
        self.state = state
        self.admission = Admission(
            config.concurrency.max_in_flight, config.concurrency.queue_size, metrics
        )
        self.input_validator = Draft202012Validator(agent.input_schema)
        self.deadline = config.request_timeout_seconds
        self.body_timeout = min(settings.body_timeout_seconds, self.deadline)
        self.token = settings.auth_token.encode() if settings.auth_token else None
        self.contexts = build_providers(
            [c for c in config.context_providers if c.file is not None]
        )
        self._uploads: set[asyncio.Task[Any]] = set()

    def not_ready(self) -> str | None:
        """Why the agent cannot answer properly now (a missing context file), or None."""
        return missing_files(self.contexts) if self.contexts else None

    def cut_uploads(self) -> None:
        """Shutdown: stop waiting for bodies still arriving (they are answered 503)."""
        for task in list(self._uploads):
            task.cancel("draining")

    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            response = await self._handle(request)
        except Exception as exc:  # the one place a /run bug becomes an answer, not a traceback
            response = error(500, "internal_error", "the runtime failed; see its log")
            failure: BaseException | None = exc
        else:
            failure = None
        request.scope[LOGGED] = True
        if request.scope.get(REFUSED):  # the connection layer answered (and counted) it
            return response
        elapsed = time.perf_counter() - started
        status = response.status_code
        self.metrics.count_request(status)
        if status not in NOT_OBSERVED:
            self.metrics.request_duration_h.observe(elapsed)
        extra: dict[str, Any] = {"status": status, "duration_ms": round(elapsed * 1000, 2)}
        if status >= 400:
            extra["type"] = json.loads(bytes(response.body))["error"]["type"]
        if failure is not None:
            log.error("run", extra=extra, exc_info=failure)
        else:
            log.info("run", extra=extra)
        return response

    def _authorized(self, request: Request) -> bool:
        assert self.token is not None
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        given = credentials.strip().encode() if scheme.lower() == "bearer" else b""
        return hmac.compare_digest(given, self.token)

    async def _read_body(self, request: Request) -> bytes:
        task = asyncio.current_task()
        assert task is not None
        self._uploads.add(task)
        try:
            return await read_body(request, self.config.max_body_bytes)
        finally:
            self._uploads.discard(task)

    async def _handle(self, request: Request) -> Response:
        if self.token is not None and not self._authorized(request):
            return error(
                401,
                "unauthorized",
                "POST /run needs 'Authorization: Bearer <token>' (ATOMIC_AGENT_AUTH_TOKEN)",
                headers={"WWW-Authenticate": 'Bearer realm="atomic-agent"'},
            )
        if not json_media_type(request.headers.get("content-type")):
            return error(
                415,
                "unsupported_media_type",
                "the body must be JSON: send 'Content-Type: application/json'",
            )
        reason = self.not_ready()
        if reason is not None:
            return error(503, "not_ready", reason, retry_after=5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        reading = True
        body_timeout = 1.0 if self.state.closing else self.body_timeout
        task = asyncio.current_task()
        assert task is not None
        gone = False

        def client_gone() -> None:
            nonlocal gone
            gone = True
            task.cancel("the client went away")

        try:
            # one timer: the body timeout while the body arrives, then the request deadline,
            # which counts from the same start, so a slow upload eats into the deadline
            async with asyncio.timeout(body_timeout) as clock:
                raw = await self._read_body(request)
                reading = False
                clock.reschedule(started + self.deadline)
                # a client that leaves now cancels the work, provider calls included
                request.scope[ON_DISCONNECT] = client_gone
                try:
                    return await self._process(raw, started + self.deadline)
                finally:
                    request.scope.pop(ON_DISCONNECT, None)
        except BodyTooLargeError:
            return error(
                413,
                "body_too_large",
                f"the body exceeds {self.config.max_body_bytes} bytes (maxBodyBytes)",
            )
        except ClientDisconnect:
            return error(CLIENT_GONE, "client_disconnected", "the client went away")
        except asyncio.CancelledError:
            if gone and task.uncancel() == 0:
                return error(CLIENT_GONE, "client_disconnected",
                             "the client went away; its model call was cancelled")
            if not (reading and self.state.closing and task.uncancel() == 0):
                raise
            return error(
                503,
                "draining",
                "this replica is shutting down and the body had not arrived; retry",
                retry_after=1,
            )
        except TimeoutError:
            if reading:
                self.metrics.client_timeout("body")
                return error(
                    408,
                    "client_timeout",
                    f"the body did not arrive within {body_timeout:g}s",
                )
            return error(
                504,
                "deadline_exceeded",
                f"no answer within requestTimeoutSeconds ({self.deadline:g}s)",
            )

    async def _process(self, raw: bytes, deadline: float) -> Response:
        """`deadline`: when the request's time is up, on the event loop's clock."""
        try:
            payload = parse_json(raw)
        except JsonBodyError as exc:
            return error(400, "invalid_json", str(exc))
        try:
            problems = schema_errors(self.input_validator, payload)
            if problems:
                return error(
                    422, "invalid_input", "the input does not match the input schema", problems
                )
            data = self.agent.input_model.model_validate(payload, context=SCHEMA_CHECKED)
        except ValidationError as exc:
            details = [
                {"path": json_path(list(e["loc"])), "message": e["msg"]}
                for e in exc.errors(include_url=False)
            ]
            return error(422, "invalid_input", "the input does not match the input schema", details)
        except RecursionError:  # a recursive schema walked down a very deep input
            return error(400, "invalid_input", "the input is nested too deeply to validate")
        try:
            with deadline_at(deadline):  # no provider retry waits past it
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


class EdgeMetrics(Protocol):
    """What the edge counts: an agent's Metrics, or a pipeline runner's."""

    def count_request(self, status: int) -> None: ...
    def client_timeout(self, phase: str) -> None: ...


CLOSE = (b"connection", b"close")


def expects_body(scope: Scope) -> bool:
    """Whether the request has a body (chunked, or a Content-Length other than 0)."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False


class Edge:
    """The outermost layer: request ids, and one envelope, count and log line per error.

    Handlers that count and log their own answers (``/run``) mark the scope; every other
    error answer (404, 405, a 500 from any route) is counted and logged here. An exception
    that escapes everything still becomes the envelope (or, mid-answer, a closed
    connection), never uvicorn's text/plain 500 with a bare traceback.
    """

    def __init__(self, app: ASGIApp, metrics: EdgeMetrics) -> None:
        self.app = app
        self.metrics = metrics

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
        status = 0
        body_unread = expects_body(scope)

        async def receive_body() -> Message:
            nonlocal body_unread
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_unread = False
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = [header, replica]
                if body_unread:  # answered before the body arrived (413, 415, 401...):
                    extra.append(CLOSE)  # the rest of it cannot be skipped on this connection
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive_body if body_unread else receive, send_with_id)
        except Exception as exc:
            if status == 0:
                with suppress(Exception):  # the client is gone; the log line below stays
                    await internal_error()(scope, receive, send_with_id)
            self.metrics.count_request(status or 500)
            log.error(
                "request failed",
                exc_info=exc,
                extra={"status": status or 500, "method": scope["method"],
                       "path": scope["path"][:200]},
            )  # fmt: skip
        else:
            if status >= 400 and not scope.get(LOGGED):
                self.metrics.count_request(status)
                log.info(
                    "refused",
                    extra={"status": status, "method": scope["method"],
                           "path": scope["path"][:200]},
                )  # fmt: skip
        finally:
            request_id.reset(token)

    def refusal(self, status: int, kind: str, message: str) -> bytes:
        """A whole response for the connection layer (before any request scope exists)."""
        rid = uuid.uuid4().hex
        body = json.dumps({"error": {"type": kind, "message": message, "requestId": rid}})
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"x-request-id: {rid}\r\nconnection: close\r\n\r\n"
        )
        self.metrics.count_request(status)
        log.info("refused", extra={"status": status, "type": kind, "request_id": rid})
        return (head + body).encode()

    def timed_out(self, phase: str) -> None:
        self.metrics.client_timeout(phase)


def internal_error() -> JSONResponse:
    return error(500, "internal_error", "the runtime failed; see its log")


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's 404 and 405 (and any HTTPException), in the envelope."""
    assert isinstance(exc, HTTPException)
    kind = ERROR_TYPES.get(exc.status_code, "http_error")
    return error(exc.status_code, kind, exc.detail, headers=dict(exc.headers or {}))


async def server_error(request: Request, exc: Exception) -> Response:
    """Starlette's last-resort handler: the envelope; Edge logs the exception once."""
    return internal_error()


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
    settings: ServerSettings | None = None,
) -> Starlette:
    state = state or RuntimeState()
    metrics = metrics or Metrics(config.name)
    settings = settings or ServerSettings()
    agent = build_agent(config, metrics)
    handler = RunHandler(config, agent, metrics, state, settings)
    openapi = build_openapi(
        config.name, agent.input_schema, agent.output_schema, bearer=settings.auth_token is not None
    )
    schema_doc = {"name": config.name, "input": agent.input_schema, "output": agent.output_schema}

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        if state.draining:
            return PlainTextResponse("draining", status_code=503)
        if not state.ready:
            return PlainTextResponse("starting", status_code=503)
        reason = handler.not_ready()
        if reason is not None:
            return PlainTextResponse(reason, status_code=503)
        return PlainTextResponse("ready")

    async def schema(request: Request) -> Response:
        return JSONResponse(schema_doc)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi)

    def is_ready() -> float:
        return 1.0 if state.ready and not state.draining and handler.not_ready() is None else 0.0

    # read at scrape time, on either port (the metrics listener is another thread)
    metrics.ready_g.set_function(is_ready)

    async def metrics_text(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.ready = True
        handler.not_ready()  # a missing context file is warned about at start-up
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
        exception_handlers={HTTPException: http_exception, Exception: server_error},
    )
    app.state.runtime = state
    app.state.metrics = metrics
    app.state.handler = handler
    app.state.edge = Edge(app, metrics)
    return app
