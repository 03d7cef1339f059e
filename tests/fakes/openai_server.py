"""A fake model provider on loopback: the test double at the suite's network edge.

(The suite's other double is `tests/support/memory_api.py`, the operator's API client in
memory, for unit tests that count a reconcile's writes.)

It speaks three wire formats: OpenAI chat completions (``POST .../chat/completions``), the
Anthropic Messages API (``POST /v1/messages``) and Gemini's ``generateContent``
(``POST /v1beta/models/<model>:generateContent``), each with its own answer, usage and error
shapes; knobs and scripted behaviours apply to all three. `ClosingServer` is a socket that
accepts a request and closes without answering.

It speaks the API the way instructor uses it: in tools mode it answers with a ``tool_calls``
entry for the function it was offered, in JSON modes with a JSON message content built from
the schema it was shown (``response_format.json_schema`` or the schema instructor embeds in
the messages). The answer is a deterministic instance of that schema.

Knobs, all set through ``POST /_control`` (JSON) and read back with ``GET /_control``:

- ``latency``: seconds to wait before every answer (default 0).
- ``behavior``: what every request gets unless the script says otherwise: ``ok``,
  ``invalid`` (valid JSON that breaks the schema: required fields missing),
  ``malformed`` (not JSON), ``status:<code>`` (an OpenAI-style error with that HTTP status;
  429s carry ``retry-after-ms``; a 401 echoes the API key back in its message, as real
  providers do with part of it), ``hang`` (never answers).
- ``script``: a list of behaviors consumed one per request before falling back to ``behavior``.
- ``output``: a fixed object to answer with instead of the synthesized one.
- ``retry_after_ms``: the value of ``retry-after-ms`` on 429s (default 10).
- ``retry_after``: when set, 429s carry ``Retry-After: <seconds>`` instead (as Anthropic does).
- ``reset``: true to clear script, counters and recorded requests first.

``GET /_control/requests`` returns the recorded request bodies (the last 200), and
``GET /_control`` the counters. Run standalone with
``python -m tests.fakes.openai_server --port 8999``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "time": "00:00:00Z",
    "email": "fake@example.com", "uri": "https://example.com/fake",
    "uuid": "00000000-0000-4000-8000-000000000000", "hostname": "example.com",
    "ipv4": "192.0.2.1",
}
"""Values of the string formats clients commonly validate (instructor's pydantic models do)."""


def synthesize(schema: Any, root: dict[str, Any], depth: int = 0) -> Any:
    """A deterministic value that satisfies the common JSON Schema keywords."""
    if not isinstance(schema, dict) or depth > 12:
        return None
    if "$ref" in schema:
        node: Any = root
        for part in schema["$ref"][2:].split("/"):
            node = node[part]
        return synthesize(node, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if str(o.get("type")).lower() != "null"]
            options = options or schema[key]
            return synthesize(options[0], root, depth + 1)
    if "allOf" in schema:
        return synthesize(schema["allOf"][0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k.lower() != "null"), "null")
    if isinstance(kind, str):
        kind = kind.lower()  # Gemini's Schema spells types in upper case
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {name: synthesize(sub, root, depth + 1) for name, sub in props.items()}
    if kind == "array":
        count = max(1, schema.get("minItems", 1))
        if "maxItems" in schema:
            count = min(count, schema["maxItems"])
        return [synthesize(schema.get("items", {}), root, depth + 1) for _ in range(count)]
    if kind == "string":
        if schema.get("format") in _FORMATS:
            return _FORMATS[schema["format"]]
        text = "fake"
        text = text * (1 + schema.get("minLength", 0) // len(text))
        if "maxLength" in schema:
            text = text[: schema["maxLength"]]
        return text
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = low + 1 if "exclusiveMinimum" in schema and "minimum" not in schema else low
        if "maximum" in schema:
            value = min(value, schema["maximum"])
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    return None


def _schema_from_request(body: dict[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """(mode, function name, schema) as instructor presented the response model."""
    tools = body.get("tools")
    if tools:
        choice = body.get("tool_choice")
        fn = tools[0]["function"]
        if isinstance(choice, dict) and "function" in choice:
            fn = next(
                (
                    t["function"]
                    for t in tools
                    if t["function"]["name"] == choice["function"]["name"]
                ),
                fn,
            )
        return "tools", fn["name"], fn.get("parameters", {})
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return "json", None, fmt["json_schema"].get("schema", {})
    # JSON / MD_JSON modes: instructor puts the schema into the system message
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str) and "json_schema" in content:
            start = content.find("{")
            decoder = json.JSONDecoder()
            while start != -1:
                try:
                    schema, _ = decoder.raw_decode(content, start)
                except ValueError:
                    start = content.find("{", start + 1)
                    continue
                if isinstance(schema, dict) and ("properties" in schema or "type" in schema):
                    return "json", None, schema
                start = content.find("{", start + 1)
    return "json", None, {}


def _break(value: Any, schema: dict[str, Any]) -> Any:
    """Valid JSON that violates the schema: drop required fields, or use a wrong type."""
    if isinstance(value, dict):
        required = schema.get("required") or list(value)
        broken = {k: v for k, v in value.items() if k not in required}
        if not broken:
            broken = {"unexpected": 12345} if required else {required[0]: {"wrong": "type"}}
        return broken
    return {"wrong": "type"}


def _wire(path: str) -> str | None:
    """Which provider's API a POST path belongs to."""
    if path.endswith("/chat/completions"):
        return "openai"
    if path.endswith("/v1/messages"):
        return "anthropic"
    if path.endswith(":generateContent"):
        return "gemini"
    return None


def _tokens(text: str) -> int:
    return len(text) // 4 + 1


def _openai_answer(body: dict[str, Any], mode: str, fn: str | None, text: str, n: int) -> Any:
    message: dict[str, Any] = {"role": "assistant", "content": None}
    finish = "stop"
    if mode == "tools":
        message["tool_calls"] = [
            {"id": f"call_{n}", "type": "function", "function": {"name": fn, "arguments": text}}
        ]
        finish = "tool_calls"
    else:
        message["content"] = text
    prompt = _tokens("".join(str(m.get("content") or "") for m in body.get("messages", [])))
    return {
        "id": f"chatcmpl-fake-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": _tokens(text),
            "total_tokens": prompt + _tokens(text),
        },
    }


def _openai_error(status: int, text: str) -> Any:
    kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(status, "server_error")
    return {"error": {"message": text, "type": kind, "code": kind}}


def _anthropic_schema(body: dict[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """Messages API: tools carry ``input_schema``; JSON mode puts the schema in ``system``."""
    tools = body.get("tools")
    if tools:
        choice = body.get("tool_choice") or {}
        tool = next((t for t in tools if t.get("name") == choice.get("name")), tools[0])
        return "tools", tool["name"], tool.get("input_schema", {})
    system = body.get("system")
    if isinstance(system, list):
        system = " ".join(str(block.get("text", "")) for block in system)
    return _schema_from_request({"messages": [{"content": system or ""}, *body["messages"]]})


def _anthropic_answer(body: dict[str, Any], mode: str, fn: str | None, text: str, n: int) -> Any:
    if mode == "tools":
        try:
            data = json.loads(text)
        except ValueError:  # "malformed": a tool_use input is always an object on the wire
            data = {"unparseable": text}
        content = [{"type": "tool_use", "id": f"toolu_{n}", "name": fn, "input": data}]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": text}]
        stop = "end_turn"
    return {
        "id": f"msg_fake_{n}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "fake"),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": _tokens(json.dumps(body.get("messages"))),
            "output_tokens": _tokens(text),
        },
    }


def _anthropic_error(status: int, text: str) -> Any:
    kind = {429: "rate_limit_error", 401: "authentication_error", 529: "overloaded_error"}
    return {"type": "error", "error": {"type": kind.get(status, "api_error"), "message": text}}


def _gemini_schema(body: dict[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """generateContent: functionDeclarations in tools, or a response schema in the config."""
    for tool in body.get("tools") or []:
        for fn in tool.get("functionDeclarations") or []:
            schema = fn.get("parametersJsonSchema") or fn.get("parameters") or {}
            return "tools", fn["name"], schema
    config = body.get("generationConfig") or {}
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    if schema:
        return "json", None, schema
    texts = [part.get("text", "") for content in
             [body.get("systemInstruction") or {}, *body.get("contents", [])]
             for part in content.get("parts", [])]  # fmt: skip
    return _schema_from_request({"messages": [{"content": t} for t in texts]})


def _gemini_answer(body: dict[str, Any], mode: str, fn: str | None, text: str, n: int) -> Any:
    if mode == "tools":
        try:
            args = json.loads(text)
        except ValueError:  # "malformed": function-call args are always an object on the wire
            args = {"unparseable": text}
        part: dict[str, Any] = {"functionCall": {"name": fn, "args": args}}
    else:
        part = {"text": text}
    prompt = _tokens(json.dumps(body.get("contents")))
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": _tokens(text),
            "totalTokenCount": prompt + _tokens(text),
        },
        "modelVersion": "fake",
        "responseId": f"fake-{n}",
    }


def _gemini_error(status: int, text: str) -> Any:
    kind = {429: "RESOURCE_EXHAUSTED", 401: "UNAUTHENTICATED", 503: "UNAVAILABLE"}
    return {"error": {"code": status, "message": text, "status": kind.get(status, "INTERNAL")}}


WIRE_SCHEMAS = {"openai": _schema_from_request, "anthropic": _anthropic_schema,
                "gemini": _gemini_schema}  # fmt: skip
WIRE_ANSWERS = {"openai": _openai_answer, "anthropic": _anthropic_answer,
                "gemini": _gemini_answer}  # fmt: skip
WIRE_ERRORS = {"openai": _openai_error, "anthropic": _anthropic_error,
               "gemini": _gemini_error}  # fmt: skip


async def read_body(receive: Receive) -> bytes:
    """The whole request body of a raw ASGI request (also used by the benchmarks' bare app)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


class FakeOpenAI:
    def __init__(self) -> None:
        self.latency = 0.0
        self.behavior = "ok"
        self.script: deque[str] = deque()
        self.output: Any = None
        self.retry_after_ms = 10
        self.retry_after: int | None = None
        self.requests: deque[dict[str, Any]] = deque(maxlen=200)
        self.counts: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0

    def control(self, knobs: dict[str, Any]) -> None:
        if knobs.get("reset"):
            self.__init__()  # type: ignore[misc]
        if "latency" in knobs:
            self.latency = float(knobs["latency"])
        if "behavior" in knobs:
            self.behavior = str(knobs["behavior"])
        if "script" in knobs:
            self.script = deque(knobs["script"])
        if "output" in knobs:
            self.output = knobs["output"]
        if "retry_after_ms" in knobs:
            self.retry_after_ms = int(knobs["retry_after_ms"])
        if "retry_after" in knobs:
            self.retry_after = None if knobs["retry_after"] is None else int(knobs["retry_after"])

    def state(self) -> dict[str, Any]:
        return {
            "latency": self.latency,
            "behavior": self.behavior,
            "script": list(self.script),
            "counts": self.counts,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = await read_body(receive)
        path, method = scope["path"], scope["method"]
        if path == "/_control" and method == "POST":
            self.control(json.loads(body or b"{}"))
            await self._send(send, 200, self.state())
        elif path == "/_control" and method == "GET":
            await self._send(send, 200, self.state())
        elif path == "/_control/requests":
            await self._send(send, 200, list(self.requests))
        elif method == "POST" and (wire := _wire(path)) is not None:
            headers = dict(scope["headers"])
            auth = (headers.get(b"authorization") or headers.get(b"x-api-key")
                    or headers.get(b"x-goog-api-key") or b"").decode("latin-1")  # fmt: skip
            await self._completion(json.loads(body), send, auth, wire)
        elif path.endswith("/models"):
            await self._send(
                send, 200, {"object": "list", "data": [{"id": "fake", "object": "model"}]}
            )
        else:
            await self._send(
                send, 404, {"error": {"message": "not found", "type": "invalid_request_error"}}
            )

    async def _completion(
        self, body: dict[str, Any], send: Send, auth: str = "", wire: str = "openai"
    ) -> None:
        self.requests.append(body)
        behavior = self.script.popleft() if self.script else self.behavior
        self.counts[behavior] = self.counts.get(behavior, 0) + 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if behavior == "hang":
                await asyncio.sleep(3600)
            if self.latency:
                await asyncio.sleep(self.latency)
            match = re.fullmatch(r"status:(\d{3})", behavior)
            if match:
                status = int(match.group(1))
                headers: list[tuple[bytes, bytes]] = []
                if status == 429 and self.retry_after is not None:
                    headers = [(b"retry-after", str(self.retry_after).encode())]
                elif status == 429:
                    headers = [(b"retry-after-ms", str(self.retry_after_ms).encode())]
                text = f"fake {status}"
                if status == 401:  # like real providers, echo (part of) the key back
                    text = f"Incorrect API key provided: {auth.removeprefix('Bearer ')}"
                await self._send(send, status, WIRE_ERRORS[wire](status, text), headers)
                return
            mode, fn_name, schema = WIRE_SCHEMAS[wire](body)
            value = self.output if self.output is not None else synthesize(schema, schema)
            if behavior == "invalid":
                text = json.dumps(_break(value, schema))
            elif behavior == "malformed":
                text = '{"this is": not json'
            else:
                text = json.dumps(value)
            answer = WIRE_ANSWERS[wire](body, mode, fn_name, text, len(self.requests))
            await self._send(send, 200, answer)
        finally:
            self.in_flight -= 1

    @staticmethod
    async def _send(
        send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                    *(headers or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class FakeServerThread:
    """The fake on a real loopback socket, served by uvicorn in a background thread."""

    def __init__(self, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.app = FakeOpenAI()
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="off",
                access_log=False,
                timeout_keep_alive=75,
                timeout_graceful_shutdown=1,  # "hang" requests never finish on their own
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class ClosingServer:
    """A provider that reads each request and closes the connection without answering.

    A plain socket on loopback (an ASGI app cannot drop a connection silently). ``accepted``
    counts the requests it dropped, so a test can see the client's transport retries.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed by __exit__
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.accepted += 1

    def __enter__(self) -> ClosingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.sock.close()
        self.thread.join(timeout=5)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    app = FakeOpenAI()
    app.latency = args.latency
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=75,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
