"""`atomicctl call agent/NAME --input '{...}'`: one request to an agent or pipeline, by Service.

ClusterIPs route only inside a cluster's nodes; this command reads the Service's ready
endpoints from its EndpointSlices (`k8s/endpoints.py`, the rule the dev harness's node
proxy uses too) and POSTs the input to one of them: `agent/NAME` and `pipeline/NAME` mean
the Service of that name (the operator names an agent's Service after the agent, and a
pipeline runner's after the pipeline), port 80, path /run. The HTTP client honours
HTTP_PROXY (or --proxy): the embedded cluster's pod IPs are reachable through its process
node's proxy, which `make run` prints.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from atomic_operator.k8s.client import Api, ApiError
from atomic_operator.k8s.endpoints import Endpoint, ServicePortNotFoundError, service_endpoints
from atomic_operator.k8s.kinds import ATOMIC_AGENT, ATOMIC_PIPELINE

KINDS = {
    "agent": "agent", "aa": "agent", ATOMIC_AGENT.kind.lower(): "agent",
    ATOMIC_AGENT.plural: "agent", "pipeline": "pipeline", "apl": "pipeline",
    ATOMIC_PIPELINE.kind.lower(): "pipeline", ATOMIC_PIPELINE.plural: "pipeline",
    "service": "service", "svc": "service",
}


class CallError(Exception):
    """The call could not be made or was answered with an error; the message says which."""


@dataclass(frozen=True)
class CallResult:
    status: int
    body: Any
    endpoint: Endpoint
    seconds: float


def parse_target(target: str) -> tuple[str, str]:
    """('agent'|'pipeline'|'service', name) from KIND/NAME."""
    kind, _, name = target.partition("/")
    if not name or kind.lower() not in KINDS:
        raise CallError(f"target {target!r}: want agent/NAME, pipeline/NAME or service/NAME")
    return KINDS[kind.lower()], name


async def call_service(client: Api, namespace: str, service: str, payload: Any, *,
                       port: int = 80, path: str = "/run", proxy: str | None = None,
                       deadline_seconds: float = 120.0) -> CallResult:
    """POST payload to one ready endpoint of the Service; raise CallError unless 2xx."""
    try:
        ready, not_ready = await service_endpoints(client, namespace, service, port)
    except ServicePortNotFoundError as err:
        raise CallError(str(err)) from None
    if not ready:
        raise CallError(f"service {namespace}/{service} has no ready endpoints "
                        f"({not_ready} not ready)")
    endpoint = random.choice(ready)
    started = time.perf_counter()
    try:
        async with aiohttp.ClientSession(trust_env=proxy is None) as session, session.post(
                endpoint.url + path, json=payload, proxy=proxy,
                timeout=aiohttp.ClientTimeout(total=deadline_seconds)) as resp:
            text = await resp.text()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as err:
        raise CallError(f"{endpoint.address}:{endpoint.port} (pod {endpoint.pod}): "
                        f"{type(err).__name__}: {err}") from None
    seconds = time.perf_counter() - started
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    if status >= 300:
        shown = json.dumps(body, indent=2) if not isinstance(body, str) else body
        raise CallError(f"{endpoint.address}:{endpoint.port} (pod {endpoint.pod}) answered "
                        f"{status} in {seconds * 1000:.0f} ms:\n{shown}")
    return CallResult(status, body, endpoint, seconds)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "call", help="call an agent or pipeline through its Service's ready endpoints")
    parser.add_argument("target", help="agent/NAME, pipeline/NAME or service/NAME")
    parser.add_argument("--input", required=True, help="the input, as JSON")
    parser.add_argument("-n", "--namespace", default=None,
                        help="default: the current kubeconfig context's namespace")
    parser.add_argument("--port", type=int, default=80, help="the Service port (default 80)")
    parser.add_argument("--path", default="/run")
    parser.add_argument("--proxy", default=None,
                        help="HTTP proxy to reach pod IPs through (default: HTTP_PROXY)")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from atomic_operator.k8s.login import from_kubeconfig

    try:
        payload = json.loads(args.input)
        _, service = parse_target(args.target)
    except (ValueError, CallError) as err:
        print(f"atomicctl call: {err}", file=sys.stderr)
        return 2

    async def go() -> CallResult:
        client, namespace = from_kubeconfig()
        try:
            return await call_service(client, args.namespace or namespace, service, payload,
                                      port=args.port, path=args.path, proxy=args.proxy,
                                      deadline_seconds=args.timeout)
        finally:
            await client.close()

    try:
        result = asyncio.run(go())
    except LookupError as err:
        print(f"atomicctl call: {err}", file=sys.stderr)
        return 2
    except (CallError, ApiError) as err:
        print(f"atomicctl call: {args.target}: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result.body, indent=2, ensure_ascii=False))
    print(f"{result.status} from {result.endpoint.address}:{result.endpoint.port} "
          f"(pod {result.endpoint.pod}) in {result.seconds * 1000:.0f} ms", file=sys.stderr)
    return 0
