"""atomicctl: generate CRDs, preview rendered objects, run the embedded control plane."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from atomic_operator.cli import call, check, crds, dev, operator_run, render, run_local


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atomicctl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (call, check, crds, dev, operator_run, render, run_local):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
