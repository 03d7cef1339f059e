"""uvicorn past its public API: per-connection limits, and the SIGTERM hook for the drain.

uvicorn has no header-read timeout (a connection that sends nothing, or half a request head,
stays open for ever), no header size limit (httptools buffers a 64 MB header whole), and no
public way to act on SIGTERM before it stops accepting connections. It also closes a
connection answered before its body arrived (a 413) outright, which resets it under a
client still sending, so the client gets a connection error instead of the answer: here
such a close half-closes and drains first (a "lingering close"). Both patches below
subclass a uvicorn class and override methods uvicorn does not document; everything else
(parsing, the ASGI cycle, keep-alive, graceful shutdown) stays uvicorn's.

Fallback (the policy of ``atomic_runtime.compat``): when uvicorn changed shape, the runtime
serves with plain ``httptools`` and ``uvicorn.Server`` and warns once: it still serves and
still shuts down gracefully, without the head limits and without the drain delay.
tests/runtime/test_compat_uvicorn.py checks that both patches take effect with the pinned
uvicorn, over real sockets and a real signal.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn

from . import apply


@dataclass(frozen=True)
class HeadLimits:
    header_timeout: float
    """Seconds from the connection's opening, or a next request's first byte, to its last header."""
    max_header_bytes: int
    """Request line plus headers."""


LINGER_SECONDS = 2.0
"""How long at most a connection answered before its body arrived keeps reading (and
discarding) after its answer and a half-close, so closing it does not reset it under the
client (a reset can destroy the answer before the client reads it)."""
LINGER_IDLE_SECONDS = 0.25
"""...and it closes sooner once the client has sent nothing for this long (a stalled upload
must not hold a shutdown)."""
REFUSED = "atomic_runtime.refused"
"""Scope key set when the connection layer refused a request the app had started on (a
malformed chunk): the app's own answer (a 499, as the client seems gone) is neither counted
nor logged, as the refusal already was."""

ON_DISCONNECT = "atomic_runtime.on_disconnect"
"""Scope key of a callable the app may set while it works on a request: called when the
client's connection is lost before the answer was sent, so the work (and the provider calls
it makes) is cancelled instead of finished for nobody. A hook rather than a task per request
watching ``receive()`` for ``http.disconnect``."""

Refuse = Callable[[int, str, str], bytes]
"""(status, error type, message) → the whole HTTP response to write before closing."""
TimedOut = Callable[[str], None]
"""Called with the phase ("headers") when a connection is cut for being too slow."""

_PROTOCOL_HOOKS = (
    "connection_made", "connection_lost", "data_received", "send_400_response",
    "on_message_begin", "on_headers_complete", "on_body",
    "on_message_complete", "on_response_complete",
)  # fmt: skip


class _LingeringTransport:
    """The connection's transport, whose ``close`` goes through the protocol's lingering
    close; everything else is the transport's own."""

    def __init__(self, transport: Any, close: Callable[[], None]) -> None:
        self._transport = transport
        self._close = close
        self.lingering = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        self._close()

    def is_closing(self) -> bool:
        return self.lingering or bool(self._transport.is_closing())


def _guarded_protocol(limits: HeadLimits, refuse: Refuse, timed_out: TimedOut) -> type[Any]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    missing = [n for n in _PROTOCOL_HOOKS if not callable(getattr(HttpToolsProtocol, n, None))]
    if missing:
        raise AttributeError(f"HttpToolsProtocol lacks {', '.join(missing)}")
    params = list(inspect.signature(HttpToolsProtocol.__init__).parameters)
    if params[:4] != ["self", "config", "server_state", "app_state"]:
        raise TypeError(f"HttpToolsProtocol.__init__{params} changed")

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with a clock and a size limit on each request head."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_open = False  # a request head has begun and is not complete yet
            self._head_bytes = 0  # bytes of that head fed to the parser so far
            self._body_pending = False  # a request's body is not fully received
            self._events = 0  # heads completed and messages completed, to spot them per feed
            self._timer: asyncio.TimerHandle | None = None
            self._refused = False

        def connection_made(self, transport: Any) -> None:
            self._raw = transport
            self._wrapped = _LingeringTransport(transport, self._close_transport)
            self._linger: asyncio.TimerHandle | None = None
            self._linger_until = 0.0
            super().connection_made(self._wrapped)  # type: ignore[arg-type]
            self._arm()  # a new connection owes its first request head within the timeout

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._linger is not None:
                self._linger.cancel()
                self._linger = None
            cycle = self.cycle
            hook = None
            if cycle is not None and not cycle.response_complete:
                hook = cycle.scope.get(ON_DISCONNECT)
            super().connection_lost(exc)
            if callable(hook):
                hook()

        def _close_transport(self) -> None:
            """Close; but while the request body is still arriving, send the answer and a
            FIN, then read and drop the rest for up to LINGER_SECONDS: closing a socket
            with unread data sends a reset, which can destroy the answer before the client
            reads it (a 413 on a large upload)."""
            raw = self._raw
            if self._wrapped.lingering:
                return
            if not self._body_pending or raw.is_closing() or not raw.can_write_eof():
                raw.close()
                return
            self._wrapped.lingering = True
            self._disarm()
            raw.write_eof()
            raw.resume_reading()
            self._linger_until = self.loop.time() + LINGER_SECONDS
            self._linger_more()

        def _linger_more(self) -> None:
            """(Re)arm the lingering close: idle time, within the overall bound."""
            if self._linger is not None:
                self._linger.cancel()
            when = min(self.loop.time() + LINGER_IDLE_SECONDS, self._linger_until)
            self._linger = self.loop.call_at(when, self._raw.close)

        def _arm(self) -> None:
            if self._timer is None:
                self._timer = self.loop.call_later(limits.header_timeout, self._head_expired)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _head_expired(self) -> None:
            self._timer = None
            if self._refused or self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                self._arm()  # a pipelined head waits behind an answer still being made
                return
            timed_out("headers")
            if self._head_open:
                self._refuse(408, "client_timeout",
                             f"the request head was not complete within "
                             f"{limits.header_timeout:g}s")  # fmt: skip
            else:
                self._refused = True
                self.transport.close()

        def _refuse(self, status: int, kind: str, message: str) -> None:
            if self._refused:
                return
            self._refused = True
            self._disarm()
            if not self.transport.is_closing():
                self.transport.write(refuse(status, kind, message))
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self._wrapped.lingering:
                self._linger_more()  # the client is still sending: drop it, keep reading
                return
            if self._refused:
                return
            started_in_head = not self._body_pending
            events = self._events
            super().data_received(data)
            if self._refused or self.transport.is_closing() or not self._head_open:
                return
            self._arm()
            # a chunk that also held a body says nothing exact about the head that follows;
            # on_headers_complete measures every complete head exactly anyway
            if started_in_head and events == self._events:
                self._head_bytes += len(data)
                if self._head_bytes > limits.max_header_bytes:
                    self._refuse(431, "headers_too_large", self._too_large())

        def _too_large(self) -> str:
            return (f"the request line and headers exceed {limits.max_header_bytes} bytes "
                    "(ATOMIC_AGENT_MAX_HEADER_BYTES)")  # fmt: skip

        def send_400_response(self, msg: str) -> None:
            if self.cycle is not None and not self.cycle.response_complete:
                scope: dict[str, Any] = self.cycle.scope  # type: ignore[assignment]
                scope[REFUSED] = True  # this 400 is the request's one answer
            self._refuse(400, "invalid_http", msg)

        def on_message_begin(self) -> None:
            self._head_open = True
            self._head_bytes = 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            if self._refused:
                return
            self._events += 1
            self._head_open = False
            self._disarm()
            # url and headers are uvicorn's, collected by its on_url and on_header
            size = len(self.url) + 16 + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > limits.max_header_bytes:
                self._refuse(431, "headers_too_large", self._too_large())
                return
            self._body_pending = True
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self._refused:
                return
            self._events += 1
            self._body_pending = False
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._body_pending and not self.transport.is_closing():
                # answered before the body arrived (413, 415, 401, 404...): the rest of the
                # body must not hold the connection, so it closes, as HTTP allows
                self.transport.close()

    return GuardedHttpToolsProtocol


def http_protocol(limits: HeadLimits, refuse: Refuse, timed_out: TimedOut) -> type[Any] | str:
    """The protocol class for ``uvicorn.Config(http=...)``: guarded, or plain "httptools"."""
    made: list[type[Any]] = []
    if apply("uvicorn.head_limits",
             lambda: made.append(_guarded_protocol(limits, refuse, timed_out))):  # fmt: skip
        return made[0]
    return "httptools"


OnSignal = Callable[[int], None]


class _SignalHookedServer(uvicorn.Server):
    """uvicorn's server with its signal handler replaced by the caller's."""

    def __init__(self, config: uvicorn.Config, on_signal: OnSignal) -> None:
        super().__init__(config)
        self._on_signal = on_signal

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_signal(sig)


def _check_server() -> None:
    params = list(inspect.signature(uvicorn.Server.handle_exit).parameters)
    if params != ["self", "sig", "frame"]:
        raise TypeError(f"uvicorn.Server.handle_exit{params} changed")
    source = inspect.getsource(uvicorn.Server.capture_signals)
    if "self.handle_exit" not in source:
        raise TypeError("uvicorn.Server.capture_signals no longer installs handle_exit")
    server = uvicorn.Server(uvicorn.Config(app=None, log_config=None))  # type: ignore[arg-type]
    for flag in ("should_exit", "force_exit", "started"):
        if not isinstance(getattr(server, flag, None), bool):
            raise AttributeError(f"uvicorn.Server.{flag} is gone")


def signal_hooked_server(config: uvicorn.Config, on_signal: OnSignal) -> uvicorn.Server:
    """A server whose SIGTERM/SIGINT call ``on_signal`` instead of stopping it at once.

    The caller stops it later with ``request_exit``. Fallback: a plain server, which stops
    accepting at the first signal (``on_signal`` is then never called).
    """
    if apply("uvicorn.signal_hook", _check_server):
        return _SignalHookedServer(config, on_signal)
    return uvicorn.Server(config)


def request_exit(server: uvicorn.Server, *, force: bool = False) -> None:
    """Make uvicorn's main loop stop accepting, close idle connections and wind down."""
    if force:
        server.force_exit = True
    server.should_exit = True
