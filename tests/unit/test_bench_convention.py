"""Every benchmark follows the smoke convention of bench/README.md (checked without running)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench._smoke import benchmarks, smoke_args


def test_helpers_are_not_benchmarks() -> None:
    names = {p.stem for p in benchmarks()}
    assert "runtime_common" not in names and "_smoke" not in names
    assert {"runtime_throughput", "runtime_concurrency", "operator_scale"} <= names


@pytest.mark.parametrize("path", benchmarks(), ids=lambda p: p.stem)
def test_every_benchmark_declares_its_tiny_size(path: Path) -> None:
    args = smoke_args(path)
    assert args, f"{path.name}: SMOKE_ARGS is empty"


def test_a_benchmark_without_smoke_args_is_refused(tmp_path: Path) -> None:
    bench = tmp_path / "new_bench.py"
    bench.write_text("SIZE = 3\n")
    with pytest.raises(ValueError, match="no SMOKE_ARGS"):
        smoke_args(bench)
    bench.write_text("SMOKE_ARGS = ['--n', 3]\n")
    with pytest.raises(ValueError, match="list of strings"):
        smoke_args(bench)
