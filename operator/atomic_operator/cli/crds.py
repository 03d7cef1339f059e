"""`atomicctl crds`: write the CRDs (and optionally the chart's generated files) from the models."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from atomic_operator.chart import write_chart_files
from atomic_operator.crdgen import write_crds
from atomic_operator.crdgen.reference import render_reference


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "crds", help="write crds/*.yaml from the API models")
    parser.add_argument("--out", type=Path, default=Path("crds"),
                        help="directory to write into (default: crds)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="also write the API reference (markdown) to this file")
    parser.add_argument("--chart", type=Path, default=None,
                        help="also write the Helm chart's values.yaml, values.schema.json and "
                             "CRD templates into this chart directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for path in write_crds(args.out):
        print(path)
    if args.reference is not None:
        args.reference.write_text(render_reference())
        print(args.reference)
    if args.chart is not None:
        for path in write_chart_files(args.chart):
            print(path)
    return 0
