"""`python -m atomic_devcluster.procnode`: the node agent, as ControlPlane starts it."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path

from atomic_devcluster.procnode import NODE_NAME
from atomic_devcluster.procnode.agent import AgentOptions, NodeAgent
from atomic_devcluster.procnode.images import ImageMap
from atomic_devcluster.procnode.node import default_pod_capacity


def _image(text: str) -> tuple[str, list[str]]:
    name, _, argv = text.partition("=")
    parsed = json.loads(argv)
    if not name or not isinstance(parsed, list) or not parsed:
        raise argparse.ArgumentTypeError("want IMAGE=[\"argv\", ...] (a JSON list)")
    return name, [str(a) for a in parsed]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--proxy-port", type=int, required=True)
    parser.add_argument("--node-name", default=NODE_NAME)
    parser.add_argument("--pods", type=int, default=0, help="pod capacity (0: fit the machine)")
    parser.add_argument("--image", type=_image, action="append", default=[],
                        help='IMAGE=["{python}", "-m", "module"]: another image it can run')
    parser.add_argument("--backoff-seconds", type=float, default=10.0,
                        help="first CrashLoopBackOff delay (doubles up to 300 s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    options = AgentOptions(
        kubeconfig=args.kubeconfig, state_dir=args.state_dir, node_name=args.node_name,
        proxy_port=args.proxy_port, pods=args.pods or default_pod_capacity(),
        images=ImageMap.with_runtime(dict(args.image)), backoff_base=args.backoff_seconds)
    asyncio.run(NodeAgent(options).run())


if __name__ == "__main__":
    main()
