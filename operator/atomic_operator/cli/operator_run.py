"""`atomicctl operator`: run the operator in this process.

The operator runs standalone (no kopf peering): the chart deploys one replica with the
Recreate strategy, so two operators never reconcile the same objects. Peering would need
extra CRDs and RBAC for a benefit (hot standby) that a restarted pod gives within seconds.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

import kopf

from atomic_operator.cli.logfold import install as install_log_folding
from atomic_operator.compat.kopf import QuietSuccesses, RefusalsAreInfo
from atomic_operator.webhook.settings import WebhookSettings


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "operator", help="run the operator against the cluster of the current kubeconfig")
    add_arguments(parser)
    parser.set_defaults(run=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", action="append", default=[],
                        help="watch only this namespace (repeatable); default: all")
    parser.add_argument("--liveness", default="http://0.0.0.0:8081/healthz",
                        help="liveness endpoint URL (empty to disable)")
    parser.add_argument("--log-format", choices=["json", "plain", "full"], default="json")
    parser.add_argument("--verbose", action="store_true")


def run(args: argparse.Namespace) -> int:
    try:
        WebhookSettings.from_env()  # read again by the handlers; a typo is one line here
    except ValueError as err:
        print(f"atomic-operator: {err}", file=sys.stderr)
        return 2
    import atomic_operator.handlers  # noqa: F401  (registers the handlers with kopf)

    name_this_operator()

    kopf.configure(verbose=args.verbose, log_format={
        "json": kopf.LogFormat.JSON, "plain": kopf.LogFormat.PLAIN,
        "full": kopf.LogFormat.FULL}[args.log_format], log_refkey="object")
    logging.getLogger("kopf.objects").addFilter(QuietSuccesses())
    logging.getLogger("kopf.objects").addFilter(RefusalsAreInfo())
    # One access-log line per admission review is noise; refusals are logged by kopf.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # An API server outage repeats the same errors many times a minute: one line each
    # per interval, with a count
    install_log_folding(float(os.environ.get("ATOMIC_OPERATOR_LOG_FOLD_SECONDS", "60")))
    kopf.run(standalone=True, clusterwide=not args.namespace, namespaces=args.namespace,
             liveness_endpoint=args.liveness or None)
    return 0


def name_this_operator() -> None:
    """Give kopf an identity without asking the password database.

    Left to itself, kopf names the operator after `getpass.getuser()` when `POD_ID` is
    unset (its documented variable); a container running as a uid with no passwd entry (the
    chart's 10001) then dies at start. The chart sets `POD_ID` from the downward API;
    anywhere else the host name and process id are unique enough for a standalone operator.
    """
    if not os.environ.get("POD_ID"):
        os.environ["POD_ID"] = f"{socket.gethostname()}/{os.getpid()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="atomic-operator", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
