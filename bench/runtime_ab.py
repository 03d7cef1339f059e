"""The runtime of this checkout against an earlier revision and the bare SDK endpoint, in turns.

    .venv/bin/python -m bench.runtime_ab [--baseline main] [--calls 600] [--rounds 5]

`bench.runtime_throughput` measures one server after the other; on a machine that also runs
other work the load changes between them by more than the differences being measured. Here
every server (bare endpoint, baseline runtime, this runtime; per HTTP transport) is started
once, kept warm, pinned to the same CPU, and measured in turns, round after round, against
the same instant fake: the median CPU per call of each, and its ratio to the bare endpoint
with the same transport. The baseline's ``atomic_runtime`` is exported with ``git archive``
into a temporary directory and put first on its ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.runtime_common import (
    REPO,
    cpu_ms_per_call_in_turns,
    start_bare,
    start_fake,
    start_runtime,
)

# make bench-smoke
SMOKE_ARGS = ["--baseline", "HEAD", "--calls", "40", "--rounds", "1", "--clients", "4"]


def export(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", rev, "agent_image"], cwd=REPO,
                             check=True, capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "agent_image"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default="main", help="git revision to compare with")
    parser.add_argument("--calls", type=int, default=600, help="calls per server per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    fake, base_url = start_fake(latency=0.0)
    procs = {}
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        baseline = export(args.baseline, Path(tmp))
        try:
            for t in ("aiohttp", "httpx"):
                env = {"ATOMIC_AGENT_HTTP_CLIENT": t}
                procs[f"bare ({t})"] = start_bare(base_url, t)
                procs[f"{args.baseline} runtime ({t})"] = start_runtime(
                    base_url, 256, 1024, {**env, "PYTHONPATH": f"{baseline}:{REPO}"})
                procs[f"this runtime ({t})"] = start_runtime(base_url, 256, 1024, env)
            samples = cpu_ms_per_call_in_turns(procs, args.clients, args.calls, args.rounds,
                                               warmup=max(100, args.calls // 3))
        finally:
            for proc, _ in procs.values():
                proc.stop()
            fake.stop()
    print(f"calls={args.calls} x rounds={args.rounds} clients={args.clients}, "
          "servers pinned to one CPU, measured in turns")  # fmt: skip
    print(f"{'server':<34}{'median CPU ms/call':>20}{'ratio vs bare':>15}   rounds")
    for name, values in samples.items():
        transport = name.rsplit("(", 1)[1]
        bare = statistics.median(samples[f"bare ({transport}"])
        median = statistics.median(values)
        rounds = " ".join(f"{v:.2f}" for v in values)
        print(f"{name:<34}{median:>20.3f}{bare / median:>15.2f}   {rounds}")


if __name__ == "__main__":
    main()
