"""The control-plane harness is a dev tool: it stays out of the wheel and the images."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path


def test_wheel_holds_the_operator_and_runtime_but_not_the_harness(repo_root: Path,
                                                                   tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w",
                    str(tmp_path), str(repo_root)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {"atomic_operator", "atomic_runtime"} <= tops
    assert not [t for t in tops if "devcluster" in t], tops


def test_atomicctl_dev_outside_a_checkout_says_it_is_a_dev_tool(repo_root: Path) -> None:
    hide_harness = ("import sys; sys.path[:] = [p for p in sys.path if not "
                    "p.endswith('devtools')]; from atomic_operator.cli import main; "
                    "raise SystemExit(main(['dev', 'up']))")
    proc = subprocess.run([sys.executable, "-c", hide_harness], capture_output=True,
                          text=True, cwd="/", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "atomicctl dev: the embedded control plane is a dev tool; run it from a checkout of "
        "the repository after `make venv`"]
