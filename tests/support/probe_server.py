"""A tiny HTTP server the process node runs as `test.local/probe-server:1`.

It listens on ATOMIC_AGENT_HOST:PORT (default 8080) and answers /healthz and /readyz with
200, until HEALTHY_SECONDS (if set) have passed since it started: then /healthz answers 500,
so a liveness probe fails and the node restarts it.
"""

from __future__ import annotations

import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = time.monotonic()
HEALTHY = float(os.environ.get("HEALTHY_SECONDS", "0") or 0)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        sick = self.path == "/healthz" and HEALTHY and time.monotonic() - STARTED > HEALTHY
        body = b"sick" if sick else b"ok"
        self.send_response(500 if sick else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    host = os.environ.get("ATOMIC_AGENT_HOST", "127.0.0.1")
    ThreadingHTTPServer((host, int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
