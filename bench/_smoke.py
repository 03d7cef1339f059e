"""Run every benchmark once at a tiny size, so a broken benchmark fails CI.

    .venv/bin/python -m bench._smoke [name ...]

The convention (bench/README.md): every ``bench/*.py`` is a benchmark unless its name starts
with ``_`` or ends with ``_common``, and each benchmark defines a module-level constant
``SMOKE_ARGS``, a list of string literals: the command-line arguments of a tiny run. The
runner reads it without importing the module (an import error is then the benchmark's own
failure, reported as such) and runs ``python -m bench.<name> *SMOKE_ARGS``. A benchmark
without ``SMOKE_ARGS`` fails the smoke run: nothing is skipped silently. The figures of a
tiny run mean nothing; only the exit status counts.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
TIMEOUT = float(os.environ.get("BENCH_SMOKE_TIMEOUT", "180"))


def benchmarks() -> list[Path]:
    return sorted(
        p for p in BENCH.glob("*.py")
        if not p.name.startswith("_") and not p.stem.endswith("_common")
    )  # fmt: skip


def smoke_args(path: Path) -> list[str]:
    """The literal ``SMOKE_ARGS = [...]`` of a benchmark; ValueError when absent or not literal."""
    for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "SMOKE_ARGS" for t in targets):
            value = ast.literal_eval(node.value)  # type: ignore[arg-type]
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
            raise ValueError(f"{path.name}: SMOKE_ARGS must be a list of strings")
    raise ValueError(f"{path.name}: no SMOKE_ARGS (see bench/README.md)")


def run(path: Path) -> tuple[bool, float, str]:
    try:
        args = smoke_args(path)
    except (ValueError, SyntaxError) as exc:
        return False, 0.0, str(exc)
    cmd = [sys.executable, "-m", f"bench.{path.stem}", *args]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return False, time.monotonic() - t0, f"timed out after {TIMEOUT:g}s\n{out}"
    took = time.monotonic() - t0
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        return False, took, f"exit {proc.returncode}: {' '.join(cmd[1:])}\n{output}"
    return True, took, output


def main(names: list[str]) -> int:
    selected = [p for p in benchmarks() if not names or p.stem in names]
    if names and len(selected) != len(set(names)):
        print(f"unknown benchmark in {names}", file=sys.stderr)
        return 2
    failed = []
    started = time.monotonic()
    for path in selected:
        ok, took, output = run(path)
        print(f"bench-smoke {'ok  ' if ok else 'FAIL'} {path.stem:<28} {took:6.1f} s", flush=True)
        if not ok:
            failed.append(path.stem)
            print("    " + output.strip().replace("\n", "\n    "), flush=True)
    print(f"bench-smoke: {len(selected) - len(failed)}/{len(selected)} passed "
          f"in {time.monotonic() - started:.0f} s")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
