"""Runtime overhead against an instant fake LLM, next to a bare openai-SDK ASGI endpoint.

    .venv/bin/python -m bench.runtime_throughput [--calls 3000] [--clients 16]
        [--transport aiohttp] [--compat-off openai.chat_post,instructor.response_schema,...]

Both servers are single uvicorn processes pinned to CPU 0, measured one after the other in the
same run against the same fake server. Figures: wall calls/s, server CPU ms per call and calls
per CPU-second ("per core"), plus the ratio runtime/bare and the CPU the runtime adds per call.
``--compat-off`` adds a runtime row per named compat patch with that patch switched off
(``ATOMIC_AGENT_COMPAT_OFF``), and prints the CPU per call the patch saves.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bench.runtime_common import closed_loop, start_bare, start_fake, start_runtime

SMOKE_ARGS = ["--calls", "60", "--clients", "4", "--transport", "aiohttp"]


def measure(start: Any, base_url: str, calls: int, clients: int) -> dict[str, float]:
    proc, url = start(base_url)
    try:
        asyncio.run(closed_loop(url, clients, total=max(200, calls // 10)))  # warm-up
        cpu0 = proc.cpu_seconds()
        result = asyncio.run(closed_loop(url, clients, total=calls))
        cpu = proc.cpu_seconds() - cpu0
        ok = result["statuses"].get("200", 0)
        assert ok == calls, result["statuses"]
        return {
            "calls_per_s_wall": calls / result["wall"],
            "cpu_ms_per_call": 1000 * cpu / calls,
            "calls_per_cpu_s": calls / cpu,
            "p50_ms": 1000 * result["p50"],
            "rss_mb": proc.peak_rss_mb(),
        }
    finally:
        proc.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--transport", choices=["httpx", "aiohttp", "both"], default="both")
    parser.add_argument("--compat-off", default="", help="comma-separated compat patch names")
    args = parser.parse_args()
    patches = [name for name in args.compat_off.split(",") if name]
    fake, base_url = start_fake(latency=0.0)
    try:
        rows: dict[str, dict[str, float]] = {}
        transports = ["httpx", "aiohttp"] if args.transport == "both" else [args.transport]
        for transport in transports:
            rows[f"bare ({transport})"] = measure(
                lambda u, t=transport: start_bare(u, t), base_url, args.calls, args.clients
            )
            rows[f"runtime ({transport})"] = measure(
                lambda u, t=transport: start_runtime(u, 256, 1024, {"ATOMIC_AGENT_HTTP_CLIENT": t}),
                base_url, args.calls, args.clients,
            )  # fmt: skip
            for patch in patches:
                env = {"ATOMIC_AGENT_HTTP_CLIENT": transport, "ATOMIC_AGENT_COMPAT_OFF": patch}
                rows[f"runtime ({transport}) -{patch}"] = measure(
                    lambda u, e=env: start_runtime(u, 256, 1024, e), base_url, args.calls,
                    args.clients,
                )  # fmt: skip
    finally:
        fake.stop()
    print(f"calls={args.calls} clients={args.clients} fake latency=0, server pinned to CPU 0")
    print(f"{'server':<58}{'calls/s wall':>14}{'CPU ms/call':>13}{'calls/CPU-s':>13}"
          f"{'p50 ms':>9}{'peak RSS MB':>13}{'ratio':>8}{'added CPU ms':>14}")  # fmt: skip
    for name, row in rows.items():
        bare = rows[f"bare ({name.split('(')[1].split(')')[0]})"]
        ratio = row["calls_per_cpu_s"] / bare["calls_per_cpu_s"]
        added = row["cpu_ms_per_call"] - bare["cpu_ms_per_call"]
        print(f"{name:<58}{row['calls_per_s_wall']:>14.0f}{row['cpu_ms_per_call']:>13.2f}"
              f"{row['calls_per_cpu_s']:>13.0f}{row['p50_ms']:>9.1f}{row['rss_mb']:>13.0f}"
              f"{ratio:>8.2f}{added:>14.2f}")  # fmt: skip
    print("ratio and added CPU are against the bare endpoint using the same HTTP transport;")
    if "bare (httpx)" in rows and "runtime (aiohttp)" in rows:
        r, b = rows["runtime (aiohttp)"], rows["bare (httpx)"]
        print(f"runtime as shipped (aiohttp) vs bare openai SDK defaults (httpx2): ratio "
              f"{r['calls_per_cpu_s'] / b['calls_per_cpu_s']:.2f}, added CPU "
              f"{r['cpu_ms_per_call'] - b['cpu_ms_per_call']:.2f} ms")  # fmt: skip
    for name, row in rows.items():
        if " -" in name:
            base = rows[name.split(" -")[0]]
            print(f"{name.split(' -')[1]} saves "
                  f"{row['cpu_ms_per_call'] - base['cpu_ms_per_call']:.3f} ms CPU per call "
                  f"({name.split(' -')[0]})")  # fmt: skip
    print("targets: ratio >= 0.70 of bare, added CPU <= 3 ms per call")


if __name__ == "__main__":
    main()
