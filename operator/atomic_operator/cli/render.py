"""`atomicctl render -f agent.yaml`: print the objects the operator would apply, offline.

For GitOps previews and reviews. Secrets are not read (there is no cluster), so the config
hash covers the configuration only; in the cluster it also covers the referenced Secrets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from atomic_operator.api import AtomicAgent
from atomic_operator.checks import check_agent
from atomic_operator.render import AgentIdentity, render_agent
from atomic_operator.settings import OperatorSettings


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "render", help="print the Kubernetes objects an AtomicAgent becomes (offline)")
    parser.add_argument("-f", "--filename", type=Path, required=True,
                        help="a YAML file with one or more AtomicAgents ('-' for stdin)")
    parser.add_argument("-n", "--namespace", default=None,
                        help="namespace when the manifest names none (default: default)")
    parser.set_defaults(run=run)


def render_documents(docs: list[dict[str, Any]], namespace: str | None,
                     settings: OperatorSettings) -> list[dict[str, Any]]:
    """Every child of every AtomicAgent in `docs`; other kinds are skipped."""
    out: list[dict[str, Any]] = []
    for doc in docs:
        if not doc or doc.get("kind") != "AtomicAgent":
            continue
        meta = doc.get("metadata") or {}
        name = meta["name"]
        ns = meta.get("namespace") or namespace or "default"
        agent = AtomicAgent.model_validate(doc)
        # The uid is the cluster's to assign; a placeholder keeps the preview applyable
        # only through the operator, which is the point.
        who = AgentIdentity(name=name, namespace=ns, uid="00000000-0000-0000-0000-000000000000")
        rendered = render_agent(agent, who, settings)
        problems = check_agent(agent, rendered.config)
        if problems:
            raise ValueError(f"{name}: " + "; ".join(map(str, problems)))
        out += rendered.children
    return out


def run(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if str(args.filename) == "-" else args.filename.read_text()
    try:
        objects = render_documents(list(yaml.safe_load_all(text)), args.namespace,
                                   OperatorSettings.from_env())
    except (ValidationError, ValueError, KeyError) as err:
        print(f"atomicctl render: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False))
    return 0
