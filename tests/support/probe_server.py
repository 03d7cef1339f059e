"""A tiny HTTP server the process node runs as `test.local/probe-server:1`.

It listens on ATOMIC_AGENT_HOST:PORT (default 8080) and answers /healthz and /readyz with
200, until HEALTHY_SECONDS (if set) have passed since it started: then /healthz answers 500,
so a liveness probe fails and the node restarts it. With CALL_URL set it first POSTs
CALL_BODY there the way in-cluster clients do (aiohttp, trust_env=True, so through the
node's HTTP_PROXY), retrying until it gets a 200, and only then listens: Ready means the call
worked.
"""

from __future__ import annotations

import asyncio
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


async def call(url: str, body: str) -> None:
    import aiohttp

    async with aiohttp.ClientSession(trust_env=True) as session:
        while True:
            try:
                async with session.post(url, data=body,
                                        headers={"Content-Type": "application/json"}) as resp:
                    print(resp.status, await resp.text(), flush=True)
                    if resp.status == 200:
                        return
            except aiohttp.ClientError as err:
                print(err, flush=True)
            await asyncio.sleep(0.5)


if __name__ == "__main__":
    if os.environ.get("CALL_URL"):
        asyncio.run(call(os.environ["CALL_URL"], os.environ.get("CALL_BODY", "{}")))
    host = os.environ.get("ATOMIC_AGENT_HOST", "127.0.0.1")
    ThreadingHTTPServer((host, int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
