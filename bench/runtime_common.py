"""Shared pieces of the runtime benchmarks: processes on loopback, CPU accounting, load.

Everything runs on 127.0.0.1. The server under test is pinned to CPU 0 and everything else
(fake LLM, load generator) to the other CPUs, and the server's own CPU time is read from
/proc, so "CPU ms per call" does not depend on how fast the load generator is.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "request": {"type": "string", "minLength": 1},
        "priority": {"type": "string", "enum": ["low", "normal", "high"]},
    },
    "required": ["request", "priority"],
}
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "steps": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "order": {"type": "integer", "minimum": 1},
                    "text": {"type": "string"},
                },
                "required": ["order", "text"],
            },
        },
        "risk": {"type": "string", "enum": ["low", "medium", "high"]},
    },
    "required": ["title", "steps", "risk"],
}
INPUT = {"request": "paint the fence", "priority": "high"}
SYSTEM = "# IDENTITY and PURPOSE\n- You are a planner.\n\n# OUTPUT INSTRUCTIONS\n- Be brief."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpus() -> tuple[str, str]:
    """(cpu for the server under test, cpus for everything else)."""
    n = os.cpu_count() or 1
    return ("0", f"1-{n - 1}" if n > 2 else "1") if n > 1 else ("0", "0")


def _cpu_set(spec: str) -> set[int]:
    """``"1"`` or ``"1-3"`` (the taskset syntax ``cpus`` returns) as a set."""
    low, _, high = spec.partition("-")
    return set(range(int(low), int(high or low) + 1))


def agent_config(base_url: str, max_in_flight: int, queue_size: int) -> dict[str, Any]:
    return {
        "apiVersion": "atomicagents.io/v1alpha1",
        "kind": "AgentConfig",
        "name": "bench",
        "model": {"provider": "openai", "name": "fake", "baseURL": base_url,
                  "timeoutSeconds": 60, "maxRetries": 2, "mode": "tools"},
        "systemPrompt": {"background": ["You are a planner."], "outputInstructions": ["Be brief."]},
        "inputSchema": INPUT_SCHEMA,
        "outputSchema": OUTPUT_SCHEMA,
        "concurrency": {"maxInFlight": max_in_flight, "queueSize": queue_size},
        "requestTimeoutSeconds": 120,
        "maxBodyBytes": 1048576,
    }  # fmt: skip


class Proc:
    def __init__(self, args: list[str], cpu: str, env: dict[str, str] | None = None) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="bench-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["taskset", "-c", cpu, *args],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def wait_http(url: str, timeout: float = 120) -> None:  # cold starts on a loaded CI box
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def start_fake(latency: float) -> tuple[Proc, str]:
    port = free_port()
    _, other = cpus()
    proc = Proc([PY, "-m", "tests.fakes.openai_server", "--port", str(port),
                 "--latency", str(latency)], other)  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}/_control")
    return proc, f"http://127.0.0.1:{port}/v1"


def start_runtime(
    base_url: str, max_in_flight: int, queue_size: int, extra_env: dict[str, str] | None = None
) -> tuple[Proc, str]:
    port = free_port()
    cfg = Path(tempfile.mkdtemp(prefix="bench-rt-")) / "agent.json"
    cfg.write_text(json.dumps(agent_config(base_url, max_in_flight, queue_size)))
    env = {
        "ATOMIC_AGENT_CONFIG": str(cfg),
        "ATOMIC_AGENT_PORT": str(port),
        "ATOMIC_AGENT_HOST": "127.0.0.1",
        "ATOMIC_AGENT_METRICS_PORT": "0",
        "ATOMIC_AGENT_API_KEY": "sk-bench",
        "ATOMIC_AGENT_LOG_LEVEL": "WARNING",
        "ATOMIC_AGENT_DRAIN_DELAY_SECONDS": "0",
        **(extra_env or {}),
    }
    server_cpu, _ = cpus()
    proc = Proc([PY, "-m", "atomic_runtime"], server_cpu, env)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")
    except RuntimeError:
        proc.stop()  # never leave a server behind
        raise
    return proc, f"http://127.0.0.1:{port}"


def start_bare(base_url: str, transport: str = "httpx") -> tuple[Proc, str]:
    port = free_port()
    server_cpu, _ = cpus()
    args = [PY, "-m", "bench.runtime_common", "bare", str(port), base_url, transport]
    proc = Proc(args, server_cpu)
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return proc, f"http://127.0.0.1:{port}"


async def closed_loop(
    url: str,
    clients: int,
    total: int | None = None,
    duration: float | None = None,
    ramp: float = 0.0,
) -> dict[str, Any]:
    """``clients`` concurrent callers, each sending its next request when the last returns.

    With ``ramp`` > 0, client *i* starts at ``i * ramp / clients`` and only requests sent
    after the ramp are counted (``duration`` then runs from the end of the ramp). Independent
    users do not arrive in lock step; without the ramp, N clients fire together, and with a
    constant fake latency they stay in one wave forever, so every wave's last request
    waits for N requests' worth of CPU and p99 measures the burst, not the server.
    """
    import aiohttp

    _, other = cpus()
    os.sched_setaffinity(0, _cpu_set(other))  # the load stays off the server's CPU
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    body = json.dumps(INPUT).encode()
    sent = 0
    loop = asyncio.get_running_loop()
    counted_from = loop.time() + ramp
    stop_at = counted_from + duration if duration else None
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client(index: int) -> None:
            nonlocal sent
            if ramp:
                await asyncio.sleep(index * ramp / clients)
            while True:
                if total is not None and sent >= total:
                    return
                t0 = loop.time()
                if stop_at is not None and t0 >= stop_at:
                    return
                counted = t0 >= counted_from
                sent += counted
                try:
                    async with session.post(
                        f"{url}/run", data=body, headers={"content-type": "application/json"}
                    ) as r:
                        await r.read()
                        key = str(r.status)
                except aiohttp.ClientError as exc:
                    key = type(exc).__name__
                if counted:
                    latencies.append(loop.time() - t0)
                    statuses[key] = statuses.get(key, 0) + 1

        await asyncio.gather(*(client(i) for i in range(clients)))
        # a timed run counts the requests sent during ``duration``, so that is the wall time
        wall = duration if duration else loop.time() - counted_from
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0

    top = latencies[-1] if latencies else 0.0
    return {"n": len(latencies), "wall": wall, "statuses": statuses,
            "p50": pct(0.50), "p99": pct(0.99), "max": top}  # fmt: skip


# ---- the bare baseline: a raw ASGI endpoint making the same call with the plain openai SDK


def bare_app(base_url: str, transport: str) -> Any:
    import openai
    from tests.fakes.openai_server import read_body

    http_client = openai.DefaultAioHttpClient() if transport == "aiohttp" else None
    client = openai.AsyncOpenAI(
        api_key="sk-bench", base_url=base_url, timeout=60, max_retries=2, http_client=http_client
    )
    tools = [{"type": "function", "function": {"name": "BenchOutput", "description": "Output.",
                                               "parameters": OUTPUT_SCHEMA}}]  # fmt: skip
    choice = {"type": "function", "function": {"name": "BenchOutput"}}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        body = await read_body(receive)
        completion = await client.chat.completions.create(
            model="fake",
            messages=[{"role": "system", "content": SYSTEM},
                      {"role": "user", "content": body.decode()}],
            tools=tools,  # type: ignore[arg-type]
            tool_choice=choice,  # type: ignore[arg-type]
        )  # fmt: skip
        calls = completion.choices[0].message.tool_calls or []
        out = json.dumps(json.loads(calls[0].function.arguments)).encode()  # type: ignore[union-attr]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": out})

    return app


if __name__ == "__main__" and sys.argv[1:2] == ["bare"]:
    import uvicorn

    uvicorn.run(bare_app(sys.argv[3], sys.argv[4]), host="127.0.0.1", port=int(sys.argv[2]),
                log_level="warning", access_log=False, lifespan="off")  # fmt: skip


def cpu_ms_per_call_in_turns(procs: dict[str, tuple[Proc, str]], clients: int, calls: int,
                             rounds: int, warmup: int) -> dict[str, list[float]]:
    """Each server's CPU ms per call, one sample per round, the servers taking turns within
    each round (after `warmup` calls each): a busy spell of the machine hits every server
    of a round alike, so the medians compare."""
    for _, url in procs.values():
        asyncio.run(closed_loop(url, clients, total=warmup))
    samples: dict[str, list[float]] = {name: [] for name in procs}
    for _ in range(rounds):
        for name, (proc, url) in procs.items():
            cpu0 = proc.cpu_seconds()
            result = asyncio.run(closed_loop(url, clients, total=calls))
            assert result["statuses"].get("200", 0) == calls, result["statuses"]
            samples[name].append(1000 * (proc.cpu_seconds() - cpu0) / calls)
    return samples
