"""What each compat patch buys: server CPU per call with every patch on, and with each one off.

    .venv/bin/python -m bench.compat_patches [--calls 600] [--rounds 5] [--transport aiohttp]

One runtime process per variant (all patches on; each patch switched off with
``ATOMIC_AGENT_COMPAT_OFF``), all pinned to the same CPU and kept warm, measured in turns,
round after round, against the same instant fake: load from other processes then falls on
every variant alike. Prints the median CPU ms per call of each variant and what each patch
saves against the all-on baseline measured in the same rounds. A patch that saves less than
0.1 ms per call is not worth its reach past a library's public API (docs/runtime.md).
"""

from __future__ import annotations

import argparse
import statistics

from bench.runtime_common import cpu_ms_per_call_in_turns, start_fake, start_runtime

PATCHES = (
    "openai.chat_post",
    "instructor.response_schema",
    "instructor.memoized_async_validator_check",
)


SMOKE_ARGS = ["--calls", "40", "--rounds", "1", "--clients", "4"]  # make bench-smoke


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=600, help="calls per variant per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--transport", choices=["httpx", "aiohttp"], default="aiohttp")
    args = parser.parse_args()
    fake, base_url = start_fake(latency=0.0)
    variants = {"all patches on": ""} | {f"without {p}": p for p in PATCHES}
    procs = {}
    try:
        for name, off in variants.items():
            env = {"ATOMIC_AGENT_HTTP_CLIENT": args.transport, "ATOMIC_AGENT_COMPAT_OFF": off}
            procs[name] = start_runtime(base_url, 256, 1024, env)
        samples = cpu_ms_per_call_in_turns(procs, args.clients, args.calls, args.rounds,
                                           warmup=max(100, args.calls // 4))
    finally:
        for proc, _ in procs.values():
            proc.stop()
        fake.stop()
    base = statistics.median(samples["all patches on"])
    print(f"transport={args.transport} calls={args.calls} x rounds={args.rounds} "
          f"clients={args.clients}, servers pinned to one CPU")  # fmt: skip
    print(f"{'variant':<52}{'median CPU ms/call':>20}{'rounds':>40}{'saves ms':>10}")
    for name, values in samples.items():
        median = statistics.median(values)
        rounds = " ".join(f"{v:.2f}" for v in values)
        saved = "" if name == "all patches on" else f"{median - base:.3f}"
        print(f"{name:<52}{median:>20.3f}{rounds:>40}{saved:>10}")


if __name__ == "__main__":
    main()
