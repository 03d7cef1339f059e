"""500 concurrent clients against one runtime process, with a 1 s fake LLM.

    .venv/bin/python -m bench.runtime_concurrency [--clients 500] [--seconds 10]

Two phases against the same fake server, in one run:
1. below the limit (maxInFlight >= clients): every request must succeed; the latency above the
   fake's 1 s is the runtime's overhead (p50/p99), plus throughput and peak RSS.
2. above the limit (maxInFlight + queueSize = 60% of the clients): every answer must be a 200
   or a clean 429 with Retry-After; no 5xx, no connection errors.
The same load against the bare openai-SDK endpoint gives the baseline overhead.

Clients start spread over one fake latency (the ramp, not counted), as independent users
would; see ``closed_loop``. ``--ramp 0`` fires them all at once instead.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bench.runtime_common import closed_loop, start_bare, start_fake, start_runtime

SMOKE_ARGS = ["--clients", "20", "--light-clients", "0", "--seconds", "0.5", "--latency", "0.1"]


def run_phase(
    proc_url: tuple[Any, str], clients: int, seconds: float, ramp: float
) -> dict[str, Any]:
    proc, url = proc_url
    try:
        asyncio.run(closed_loop(url, min(clients, 50), total=100))  # warm-up
        result = asyncio.run(closed_loop(url, clients, duration=seconds, ramp=ramp))
        result["rss_mb"] = proc.peak_rss_mb()
        return result
    finally:
        proc.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument(
        "--light-clients",
        type=int,
        default=300,
        help="a second, lighter load that keeps one core below saturation (0: skip it)",
    )
    parser.add_argument("--ramp", type=float, default=None, help="default: --latency")
    args = parser.parse_args()
    ramp = args.latency if args.ramp is None else args.ramp
    fake, base_url = start_fake(latency=args.latency)
    try:
        bare = run_phase(start_bare(base_url, "aiohttp"), args.clients, args.seconds, ramp)
        below = run_phase(
            start_runtime(base_url, args.clients + 12, 64), args.clients, args.seconds, ramp
        )
        light = args.light_clients
        bare_light = light_rt = None
        if light:
            bare_light = run_phase(start_bare(base_url, "aiohttp"), light, args.seconds, ramp)
            light_rt = run_phase(
                start_runtime(base_url, args.clients + 12, 64), light, args.seconds, ramp
            )
        limit = int(args.clients * 0.6)
        above = run_phase(
            start_runtime(base_url, limit * 2 // 3, limit - limit * 2 // 3),
            args.clients,
            args.seconds,
            ramp,
        )
    finally:
        fake.stop()
    lat = args.latency
    print(f"clients={args.clients} fake latency={lat}s duration={args.seconds}s, one process")
    print(f"{'phase':<34}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'p99 over':>10}"
          f"{'RSS MB':>8}  statuses")  # fmt: skip
    rows = [("bare openai SDK endpoint", bare), ("runtime, below the limit", below),
            (f"runtime, limit {limit} (<{args.clients})", above)]  # fmt: skip
    if bare_light is not None and light_rt is not None:
        rows += [(f"bare, {light} clients", bare_light), (f"runtime, {light} clients", light_rt)]
    for name, r in rows:
        print(f"{name:<34}{r['n'] / r['wall']:>8.0f}{1000 * r['p50']:>9.0f}{1000 * r['p99']:>9.0f}"
              f"{1000 * (r['p99'] - lat):>10.1f}{r['rss_mb']:>8.0f}  {r['statuses']}")  # fmt: skip
    errors_below = {k: v for k, v in below["statuses"].items() if k != "200"}
    unclean_above = {k: v for k, v in above["statuses"].items() if k not in ("200", "429")}
    print(f"runtime p99 overhead vs bare p99 at {args.clients} clients: "
          f"{1000 * (below['p99'] - bare['p99']):.1f} ms")  # fmt: skip
    if bare_light is not None and light_rt is not None:
        print(f"at {light} clients: {1000 * (light_rt['p99'] - bare_light['p99']):.1f} ms "
              f"(vs the fake's {lat:g}s: {1000 * (light_rt['p99'] - lat):.1f} ms)")  # fmt: skip
    print(
        f"errors below the limit: {errors_below or 0}; "
        f"non-200/429 above the limit: {unclean_above or 0}"
    )
    print("targets: p99 overhead <= 20 ms, peak RSS <= 300 MB, 0 errors below, clean 429s above")
    return 1 if errors_below or unclean_above else 0


if __name__ == "__main__":
    sys.exit(main())
