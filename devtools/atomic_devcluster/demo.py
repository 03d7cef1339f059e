"""`atomicctl dev demo` (make run): the main job on one machine, with agents that answer.

Starts the embedded control plane with its process node (or uses the cluster of the current
kubeconfig), installs the CRDs, runs the operator, applies the examples, waits for the
agents to turn Ready, calls each one once through its Service and prints the typed output
and the time, then shows the custom autoscaler at work (a burst of concurrent calls against
`task-processor`, the write that asks for the replicas needed, the new pods Ready, the calls
answered; `burst.py`), and keeps everything up until Ctrl-C. The operator runs with the
process node's proxy env, as a real one reaches pod IPs, so it can read the pods' /metrics.

The agents need an LLM. Unless told otherwise the demo starts the loopback fake
(`tests/fakes/openai_server.py`, answers are schema-valid instances of the output schema)
and points the example agents at it. `--base-url URL` (any OpenAI-compatible server, e.g. a
local Ollama at http://localhost:11434/v1) with `--model NAME` uses a real one; its key,
if it needs one, comes from the environment variable ATOMIC_DEMO_API_KEY and goes only into
the agents' Secret.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from atomic_devcluster.build import ensure_binaries
from atomic_devcluster.burst import burst, slow_llm
from atomic_devcluster.cluster import ControlPlane
from atomic_devcluster.operator_process import running_operator
from atomic_devcluster.processes import free_port
from atomic_operator.cli.call import CallError, call_service
from atomic_operator.k8s import KubeClient

REPO = Path(__file__).resolve().parents[2]
BURST_AGENT = "task-processor"
"""The example agent in custom autoscaling mode the demo's burst runs against."""
API_KEY_ENV = "ATOMIC_DEMO_API_KEY"
DEMO_INPUTS: dict[str, dict[str, Any]] = {
    "task-processor": {"description": "Write the release notes for version 0.2",
                       "priority": "high"},
    "content-analyzer": {"content": "Our checkout page loads in 9 seconds on mobile and "
                                    "half the users leave before paying.",
                         "analysis_type": "recommendations"},
    "sentiment-analyzer": {"text": "The new checkout is fast and the support team was kind."},
    "report-writer": {"summary": "Checkout is slow on mobile.",
                      "recommendations": ["Compress the images", "Defer the chat widget"]},
    "analysis-to-tasks": {"content": "Our checkout page loads in 9 seconds on mobile and "
                                     "half the users leave before paying."},
    "parallel-review": {"content": "The new checkout is fast, but the receipts are late."},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--use-current-context", action="store_true",
                        help="use the cluster of the current kubeconfig, not an embedded one")
    parser.add_argument("--examples", type=Path, default=Path("examples"))
    parser.add_argument("--crds", type=Path, default=Path("crds"))
    parser.add_argument("--workdir", type=Path, default=Path(".devcluster"))
    parser.add_argument("--base-url", default=os.environ.get("ATOMIC_DEMO_BASE_URL"),
                        help="a real OpenAI-compatible LLM instead of the loopback fake "
                             f"(key, if any, from ${API_KEY_ENV})")
    parser.add_argument("--model", default=None, help="model name to use with --base-url")
    parser.add_argument("--exit", action="store_true",
                        help="stop after the calls instead of waiting for Ctrl-C")
    parser.add_argument("--no-burst", dest="burst", action="store_false",
                        help=f"skip the burst against {BURST_AGENT} that shows the custom "
                             "autoscaler (it runs only with the loopback fake LLM)")


@contextlib.contextmanager
def fake_llm(workdir: Path) -> Iterator[str]:
    """The loopback fake LLM as its own process; yields its base URL."""
    port = free_port()
    log = workdir / "logs" / "fake-llm.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(port)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            if popen.poll() is not None:
                raise RuntimeError(f"fake LLM exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_control", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("fake LLM did not start in 30 s") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        popen.terminate()
        popen.wait(timeout=10)


def example_documents(examples: Path, base_url: str | None, model: str | None
                      ) -> list[dict[str, Any]]:
    """The examples, with the agents pointed at the LLM the demo uses."""
    docs: list[dict[str, Any]] = []
    for path in sorted(examples.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    key = os.environ.get(API_KEY_ENV)
    for doc in docs:
        if doc.get("kind") == "AtomicAgent" and base_url:
            doc["spec"]["model"]["baseURL"] = base_url
            if model:
                doc["spec"]["model"]["name"] = model
        if doc.get("kind") == "Secret" and key:
            doc["stringData"] = {k: key for k in doc.get("stringData", {})}
    return docs


def demo_input(name: str, agent: dict[str, Any]) -> dict[str, Any]:
    """A sensible input for the examples; for any other agent, its required strings."""
    if name in DEMO_INPUTS:
        return DEMO_INPUTS[name]
    schema = agent["spec"].get("inputSchema") or {}
    props = schema.get("properties") or {}
    return {k: "hello" for k in schema.get("required", []) if props.get(k, {}).get("type")
            in ("string", None)}


@contextlib.contextmanager
def _cluster(args: argparse.Namespace) -> Iterator[ControlPlane | None]:
    crds = sorted(args.crds.glob("*.yaml"))
    if args.use_current_context:
        _kubectl(None, "apply", "--server-side", *(f"-f={p}" for p in crds))
        _kubectl(None, "wait", "--for=condition=Established", "--timeout=30s",
                 *(f"-f={p}" for p in crds))
        yield None
        return
    workdir = args.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)  # a previous run's data: start clean
    with ControlPlane(crds=crds, workdir=workdir, process_node=True) as cp:
        cp.schedule_on_process_node("default")
        print(f"control plane up at {cp.server} with a process node; "
              f"export KUBECONFIG={cp.kubeconfig}", flush=True)
        yield cp


def _kubectl(kubeconfig: Path | None, *args: str, input_text: str | None = None) -> str:
    cmd = [str(ensure_binaries().kubectl)]
    if kubeconfig is not None:
        cmd.append(f"--kubeconfig={kubeconfig}")
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, check=False,
                          input=input_text)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


async def call_each(cp: ControlPlane, agents: list[dict[str, Any]]) -> bool:
    """One call per agent or pipeline through its Service; prints output and time. True if
    all answered."""
    ca = (cp.workdir / "certs" / "apiserver.crt").read_bytes() if cp.workdir else None
    client = KubeClient.connect(cp.server, token=cp.token, ca_data=ca, limit=4)
    ok = True
    try:
        for agent in agents:
            name = agent["metadata"]["name"]
            payload = demo_input(name, agent)
            kind = "pipeline" if agent.get("kind") == "AtomicPipeline" else "agent"
            print(f"$ atomicctl call {kind}/{name} --input '{json.dumps(payload)}'",
                  flush=True)
            try:
                result = await call_service(client, "default", name, payload,
                                            proxy=cp.proxy_url)
            except CallError as err:
                print(f"  failed: {err}\n", flush=True)
                ok = False
                continue
            print(json.dumps(result.body, indent=2, ensure_ascii=False))
            print(f"  {result.status} from pod {result.endpoint.pod} "
                  f"({result.endpoint.address}) in {result.seconds * 1000:.0f} ms\n",
                  flush=True)
    finally:
        await client.close()
    return ok


async def run_burst(cp: ControlPlane) -> bool:
    """The custom autoscaler at work: a burst against BURST_AGENT, printed with times."""
    ca = (cp.workdir / "certs" / "apiserver.crt").read_bytes() if cp.workdir else None
    client = KubeClient.connect(cp.server, token=cp.token, ca_data=ca, limit=64)
    try:
        scaled = await burst(client, BURST_AGENT, DEMO_INPUTS[BURST_AGENT], cp.proxy_url)
    finally:
        await client.close()
    print()
    print("$ kubectl get pods -o wide -l atomicagents.io/agent=" + BURST_AGENT)
    print(_kubectl(cp.kubeconfig, "get", "pods", "-o", "wide", "-l",
                   f"atomicagents.io/agent={BURST_AGENT}"), flush=True)
    return scaled


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    workdir = args.workdir.resolve()
    with contextlib.ExitStack() as stack:
        cp = stack.enter_context(_cluster(args))
        kubeconfig = cp.kubeconfig if cp else None
        base_url = args.base_url
        if base_url is None and cp is not None:
            base_url = stack.enter_context(fake_llm(workdir))
            print(f"fake LLM at {base_url} (schema-valid answers; --base-url for a real one)")
        log = (workdir if cp else Path.cwd()) / "operator.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        # the process node's proxy env, as its pods get: the operator's autoscaler reads
        # the pods' /metrics by pod IP, which only that proxy reaches from outside them
        operator = stack.enter_context(running_operator(
            kubeconfig, log, env=cp.proxy_env() if cp is not None else None))
        print(f"operator running (log: {log}, metrics: {operator.metrics_url})", flush=True)
        docs = example_documents(args.examples, base_url, args.model)
        started = time.monotonic()
        print(_kubectl(kubeconfig, "apply", "-f", "-", input_text=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": docs})), end="", flush=True)
        _kubectl(kubeconfig, "wait", "--for=condition=Ready", "--timeout=180s",
                 "atomicagent", "--all")
        print(f"\nall agents Ready {time.monotonic() - started:.1f} s after apply:\n")
        if any(d.get("kind") == "AtomicPipeline" for d in docs):
            _kubectl(kubeconfig, "wait", "--for=condition=Ready", "--timeout=120s",
                     "atomicpipeline", "--all")
            print(f"all pipelines Ready {time.monotonic() - started:.1f} s after apply\n")
        print("$ kubectl get atomic")
        print(_kubectl(kubeconfig, "get", "atomic"))
        print("$ kubectl get pods -o wide -l app.kubernetes.io/managed-by=atomic-operator")
        print(_kubectl(kubeconfig, "get", "pods", "-o", "wide", "-l",
                       "app.kubernetes.io/managed-by=atomic-operator"), flush=True)
        answered = True
        if cp is not None:
            targets = [d for d in docs if d.get("kind") in ("AtomicAgent", "AtomicPipeline")]
            answered = asyncio.run(call_each(cp, targets))
            if args.burst and base_url is not None and args.base_url is None and any(
                    d.get("kind") == "AtomicAgent" and d["metadata"]["name"] == BURST_AGENT
                    for d in docs):
                with slow_llm(base_url):
                    answered = asyncio.run(run_burst(cp)) and answered
        if args.exit:
            return 0 if answered else 1
        if cp is not None:
            print("Up until Ctrl-C. In another shell:\n"
                  f"  export KUBECONFIG={cp.kubeconfig} HTTP_PROXY={cp.proxy_url} "
                  "NO_PROXY=127.0.0.1,localhost\n"
                  "  .venv/bin/atomicctl call agent/task-processor --input "
                  f"'{json.dumps(DEMO_INPUTS['task-processor'])}'", flush=True)
        else:
            print("Up until Ctrl-C.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while not stop.is_set() and operator.popen.poll() is None:
                stop.wait(1)
        if operator.popen.poll() not in (None, 0):
            print(f"operator exited: see {log}", file=sys.stderr)
            return 1
    return 0


def register(sub: Any) -> None:
    """Registered under `atomicctl dev`."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo", help="control plane + process node + operator + examples, each agent called")
    add_arguments(parser)
    parser.set_defaults(run=run)
