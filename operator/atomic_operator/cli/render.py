"""`atomicctl render -f FILE|DIR ...`: print the objects the operator would apply, offline.

For GitOps previews and reviews: an AtomicAgent's Deployment, ConfigMap, Service and
optional children, an AtomicPipeline's runner (Deployment, ConfigMap, Service), each from
the operator's own render functions. A pipeline is type-checked and configured against the
agents found in the same input (its namespace's), as the operator does against the
agents in the cluster: give the agents' files too, or the preview lacks their schemas,
step deadlines and tokens (a warning says so). Secrets are not read (there is no cluster),
so the config hash covers the configuration only; in the cluster it also covers the
referenced Secrets.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from atomic_operator.api import AtomicAgent
from atomic_operator.api.pipeline import AtomicPipeline
from atomic_operator.checks import check_agent
from atomic_operator.k8s.kinds import ATOMIC_AGENT, ATOMIC_PIPELINE
from atomic_operator.reconcile.pipeline import check_of
from atomic_operator.reconcile.pipeline_children import _blocking_problems
from atomic_operator.render import AgentIdentity, render_agent
from atomic_operator.render.pipeline import render_pipeline
from atomic_operator.settings import OperatorSettings

PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"
"""The uid is the cluster's to assign; a placeholder keeps the preview applyable only
through the operator, which is the point."""


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "render", help="print the Kubernetes objects AtomicAgents and AtomicPipelines "
                       "become (offline)")
    parser.add_argument("-f", "--filename", type=Path, action="append", required=True,
                        help="a YAML file or a directory of them with AtomicAgents and "
                             "AtomicPipelines ('-' for stdin); repeat for more")
    parser.add_argument("-n", "--namespace", default=None,
                        help="namespace when the manifest names none (default: default)")
    parser.set_defaults(run=run)


def _ignore(message: str) -> None:
    pass


def render_documents(docs: list[dict[str, Any]], namespace: str | None,
                     settings: OperatorSettings,
                     warn: Callable[[str], None] = _ignore) -> list[dict[str, Any]]:
    """Every child of every AtomicAgent and AtomicPipeline in `docs`, in their order;
    other kinds are skipped. Raises ValueError where the operator would refuse to apply;
    `warn` hears what makes a pipeline's preview differ from the cluster's."""
    agents: dict[str, dict[str, Mapping[str, Any]]] = {}  # namespace → name → body
    for doc in docs:
        if doc and doc.get("kind") == ATOMIC_AGENT.kind:
            meta = doc.get("metadata") or {}
            agents.setdefault(meta.get("namespace") or namespace or "default", {})[
                meta["name"]] = doc
    out: list[dict[str, Any]] = []
    for doc in docs:
        kind = (doc or {}).get("kind")
        if kind not in (ATOMIC_AGENT.kind, ATOMIC_PIPELINE.kind):
            continue
        meta = doc.get("metadata") or {}
        name = meta["name"]
        ns = meta.get("namespace") or namespace or "default"
        who = AgentIdentity(name=name, namespace=ns, uid=PLACEHOLDER_UID)
        if kind == ATOMIC_AGENT.kind:
            agent = AtomicAgent.model_validate(doc)
            rendered = render_agent(agent, who, settings)
            problems = check_agent(agent, rendered.config)
            if problems:
                raise ValueError(f"{name}: " + "; ".join(map(str, problems)))
            out += rendered.children
        else:
            out += _render_pipeline(doc, who, agents.get(ns, {}), settings, warn)
    return out


def _render_pipeline(doc: dict[str, Any], who: AgentIdentity,
                     agents: Mapping[str, Mapping[str, Any]], settings: OperatorSettings,
                     warn: Callable[[str], None]) -> list[dict[str, Any]]:
    pipeline = AtomicPipeline.model_validate(doc)
    check = check_of(pipeline, agents)
    rendered = render_pipeline(pipeline, who, check, agents, settings)
    blocking = _blocking_problems(who, agents, rendered.config)
    if blocking:
        raise ValueError(f"{who.name}: " + "; ".join(map(str, blocking)))
    missing = sorted({s.agent_ref.name for s in pipeline.spec.steps} - set(agents))
    if missing:
        warn(f"{who.name}: agents {', '.join(missing)} are not in the input: rendered "
             "without their schemas, step deadlines and tokens (give their files too)")
    if check.problems:
        warn(f"{who.name}: the operator applies this runner, but it stays unready while "
             "the schemas do not fit: " + "; ".join(map(str, check.problems)))
    return rendered.children


def _read(paths: list[Path]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        if str(path) == "-":
            texts = [sys.stdin.read()]
        elif path.is_dir():
            texts = [p.read_text() for p in sorted(path.rglob("*"))
                     if p.suffix in (".yaml", ".yml")]
        else:
            texts = [path.read_text()]
        for text in texts:
            docs += [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    return docs


def run(args: argparse.Namespace) -> int:
    def warn(message: str) -> None:
        print(f"atomicctl render: warning: {message}", file=sys.stderr)

    try:
        objects = render_documents(_read(args.filename), args.namespace,
                                   OperatorSettings.from_env(), warn)
    except (OSError, yaml.YAMLError) as err:
        print(f"atomicctl render: {err}", file=sys.stderr)
        return 2
    except (ValidationError, ValueError, KeyError) as err:
        print(f"atomicctl render: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False))
    return 0
