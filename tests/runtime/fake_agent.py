"""A stand-in for an agent that misbehaves on purpose, on loopback: it serves the agent's
/readyz and /schema like a real one, and answers /run with whatever the test set (a 200 that
breaks the schema it declares, a 60 MB body). Real agents check their own output, so only a
stand-in can show what the runner does when one does not."""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeAgent:
    def __init__(self, input_schema: dict[str, Any], output_schema: dict[str, Any]) -> None:
        self.schema = json.dumps({"name": "fake", "input": input_schema,
                                  "output": output_schema}).encode()
        self.answer = b"{}"
        self.runs = 0
        agent = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the runner stopped reading: fine
                    self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/schema":
                    self._send(200, agent.schema)
                else:
                    self._send(200, b"ready")

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                agent.runs += 1
                self._send(200, agent.answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeAgent:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
