"""`atomicctl dev`: the embedded control plane, a dev tool that lives only in a checkout.

The harness (`devtools/atomic_devcluster`) is not part of the wheel or the images: it builds
Kubernetes from source and runs processes as pods, which no installation needs. From a
checkout (`make venv`) it is importable and registers its own actions here; anywhere else
`atomicctl dev` says so in one line and exits 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Any

_HARNESS = "atomic_devcluster"


def register(sub: Any) -> None:
    if importlib.util.find_spec(_HARNESS) is not None:
        from atomic_devcluster.cli import register as register_harness

        register_harness(sub)
        return
    parser: argparse.ArgumentParser = sub.add_parser(
        "dev", help="embedded control plane (only from a checkout of the repository)")
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    parser.set_defaults(run=_missing)


def _missing(args: argparse.Namespace) -> int:
    print("atomicctl dev: the embedded control plane is a dev tool; run it from a checkout "
          "of the repository after `make venv`", file=sys.stderr)
    return 2
