"""`atomicctl crds`: write the CRDs generated from the API models."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from atomic_operator.crdgen import write_crds


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "crds", help="write crds/*.yaml from the API models")
    parser.add_argument("--out", type=Path, default=Path("crds"),
                        help="directory to write into (default: crds)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for path in write_crds(args.out):
        print(path)
    return 0
