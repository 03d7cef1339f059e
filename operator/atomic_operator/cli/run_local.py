"""`atomicctl run-local -f agent.yaml --input '{...}'`: one call of an agent, on this machine.

The agent's spec is turned into the same runtime configuration the operator renders, and
the runtime's own engine runs it against whatever provider the spec names (a local Ollama,
an OpenAI-compatible server, or a hosted provider with its key in the environment). The API
key is read from ATOMIC_AGENT_API_KEY, or the provider's usual variable (OPENAI_API_KEY,
...); the Secret the spec references is for the cluster.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from atomic_operator.api import AtomicAgent
from atomic_operator.k8s.kinds import ATOMIC_AGENT
from atomic_operator.render import runtime_config


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "run-local", help="run an AtomicAgent once on this machine and print its output")
    parser.add_argument("-f", "--filename", type=Path, required=True,
                        help="a YAML file holding the AtomicAgent")
    parser.add_argument("--input", required=True, help="the input, as JSON")
    parser.add_argument("--base-url", default=None,
                        help="override spec.model.baseURL (e.g. http://localhost:11434/v1)")
    parser.add_argument("--context-dir", type=Path, default=Path(),
                        help="where ConfigMap/Secret context providers are read from, as "
                             "<dir>/<provider name> (default: the current directory)")
    parser.set_defaults(run=run)


def local_config(doc: dict[str, Any], base_url: str | None, context_dir: Path
                 ) -> dict[str, Any]:
    """The runtime configuration the operator would render, with local paths."""
    agent = AtomicAgent.model_validate(doc)
    meta = doc.get("metadata") or {}
    config = runtime_config(agent, meta.get("name", "agent"), meta.get("namespace", "local"))
    if base_url:
        config["model"]["baseURL"] = base_url
    for provider in config["contextProviders"]:
        if "file" in provider:
            provider["file"] = str(context_dir / provider["name"])
    return config


def run(args: argparse.Namespace) -> int:
    from atomic_runtime.local import LocalRunError, run_local

    docs = [d for d in yaml.safe_load_all(args.filename.read_text()) if d]
    agents = [d for d in docs if d.get("kind") == ATOMIC_AGENT.kind]
    if len(agents) != 1:
        print(f"atomicctl run-local: {args.filename} holds {len(agents)} AtomicAgents; "
              "want exactly one", file=sys.stderr)
        return 2
    try:
        config = local_config(agents[0], args.base_url, args.context_dir)
        output = run_local(config, args.input)
    except (ValidationError, LocalRunError) as err:
        print(f"atomicctl run-local: {err}", file=sys.stderr)
        return 1
    print(json.dumps(output, indent=2, ensure_ascii=False))
    return 0
