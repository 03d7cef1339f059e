"""`atomicctl dev` actions: build and run the embedded control plane for local work."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from pathlib import Path
from typing import Any

from atomic_devcluster import demo, imagebuild
from atomic_devcluster.build import ensure_binaries
from atomic_devcluster.cluster import ControlPlane
from atomic_devcluster.realnode.binaries import ensure_node_binaries


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "dev", help="embedded control plane (etcd, kube-apiserver, controllers, kwok)")
    dev_sub = parser.add_subparsers(dest="dev_command", required=True, metavar="ACTION")
    build = dev_sub.add_parser("build", help="build the pinned binaries into the cache")
    build.set_defaults(run=run_build)
    images = dev_sub.add_parser("images", help="build the operator and runtime images (make "
                                               "images)")
    images.add_argument("--base", default=None,
                        help=f"base image for both (default: {imagebuild.OFFICIAL_BASE} if a "
                             f"registry answers, else one made from Debian's packages)")
    images.set_defaults(run=run_images)
    up = dev_sub.add_parser("up", help="start a control plane and keep it up until Ctrl-C")
    up.add_argument("--crds", type=Path, default=Path("crds"),
                    help="directory of CRDs to install before the controllers start")
    up.add_argument("--workdir", type=Path, default=Path(".devcluster"),
                    help="where data, logs and the kubeconfig go (default: .devcluster)")
    up.add_argument("--process-node", metavar="NAMESPACE", action="append", default=[],
                    help="add the process node and run this namespace's pods on it as "
                         "processes (repeatable; the namespace is created)")
    up.set_defaults(run=run_up)
    demo.register(dev_sub)


def run_build(args: argparse.Namespace) -> int:
    binaries = ensure_binaries()
    for name, path in (*vars(binaries).items(), *vars(ensure_node_binaries()).items()):
        print(f"{name}: {path}")
    return 0


def run_images(args: argparse.Namespace) -> int:
    over = 0
    for built in imagebuild.build_shipped(args.base):
        budget = built.image.max_mb
        mark = "" if built.size_mb <= budget else "  OVER BUDGET"
        over += built.size_mb > budget
        print(f"{built.image.tag:28} {built.size_mb:6.0f} MB (budget {budget} MB) "
              f"built in {built.seconds:5.1f} s{mark}", flush=True)
    return 1 if over else 0


def run_up(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    crds = sorted(args.crds.glob("*.yaml")) if args.crds.is_dir() else []
    with ControlPlane(crds=crds, workdir=args.workdir.resolve(),
                      process_node=bool(args.process_node)) as cp:
        for namespace in args.process_node:
            cp.kubectl("create", "namespace", namespace, check=False)
            cp.schedule_on_process_node(namespace)
        print(f"control plane up at {cp.server}", flush=True)
        exports = f"export KUBECONFIG={cp.kubeconfig}"
        if args.process_node:
            exports += " " + " ".join(f"{k}={v}" for k, v in cp.proxy_env().items())
        print(exports, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0
