"""`atomicctl check -f FILES|DIRS`: the operator's checks, offline, on a repository's YAML.

For a GitOps pipeline's CI: every AtomicAgent and AtomicPipeline found is checked by the
functions the operator itself runs (the API models, the agent checks, the pipeline type
check through the pipeline's status function), so the messages are the ones the operator
would write to status. Pipelines are checked against the agents found in the same files
and namespace. What needs the cluster (Secrets, ConfigMaps, admission's CEL rules) is not
checked here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from atomic_operator.checks import check_agent
from atomic_operator.k8s.kinds import ATOMIC_AGENT, ATOMIC_PIPELINE
from atomic_operator.reconcile.agent import parse_agent
from atomic_operator.reconcile.pipeline import PipelineObservation, pipeline_status
from atomic_operator.render import AgentIdentity, render_agent
from atomic_operator.settings import OperatorSettings

KINDS = (ATOMIC_AGENT.kind, ATOMIC_PIPELINE.kind)
PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "check", help="run the operator's checks on AtomicAgent/AtomicPipeline YAML (offline)")
    parser.add_argument("-f", "--filename", type=Path, action="append", required=True,
                        help="a YAML file or a directory (searched recursively for *.yaml, "
                             "*.yml); repeatable")
    parser.add_argument("-n", "--namespace", default="default",
                        help="namespace of manifests that name none (default: default)")
    parser.set_defaults(run=run)


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    failed: int = 0
    agents: int = 0
    pipelines: int = 0

    def ok(self, what: str, detail: str = "") -> None:
        self.lines.append(f"ok    {what}" + (f": {detail}" if detail else ""))

    def fail(self, what: str, headline: str, problems: Iterable[str]) -> None:
        self.failed += 1
        self.lines.append(f"FAIL  {what}: {headline}")
        self.lines += [f"      {p}" for p in problems]

    def warn(self, what: str, message: str) -> None:
        self.lines.append(f"warn  {what}: {message}")


def yaml_files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
        else:
            found.append(path)
    return found


def load_documents(files: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Every AtomicAgent and AtomicPipeline in `files` (other kinds are someone else's)."""
    out = []
    for path in files:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc.get("kind") in KINDS:
                out.append((path, doc))
    return out


def check_documents(docs: list[tuple[Path, dict[str, Any]]], namespace: str,
                    settings: OperatorSettings) -> Report:
    report = Report()
    agents: dict[str, dict[str, dict[str, Any]]] = {}  # namespace → name → body
    seen: set[tuple[str, str, str]] = set()
    for path, doc in docs:
        meta = doc.setdefault("metadata", {})
        meta.setdefault("namespace", namespace)
        key = (doc["kind"], meta["namespace"], str(meta.get("name")))
        if key in seen:
            report.fail(_what(doc), "defined twice", [f"again in {path}"])
        seen.add(key)
        if doc["kind"] == ATOMIC_AGENT.kind:
            agents.setdefault(meta["namespace"], {})[str(meta.get("name"))] = doc
    for _, doc in docs:
        if doc["kind"] == ATOMIC_AGENT.kind:
            report.agents += 1
            _check_agent(doc, settings, report)
    for _, doc in docs:
        if doc["kind"] == ATOMIC_PIPELINE.kind:
            report.pipelines += 1
            _check_pipeline(doc, agents.get(doc["metadata"]["namespace"], {}), report)
    return report


def _what(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    return f"{doc['kind']} {meta.get('namespace')}/{meta.get('name')}"


def _check_agent(doc: dict[str, Any], settings: OperatorSettings, report: Report) -> None:
    parsed = parse_agent(doc)
    if isinstance(parsed, list):
        report.fail(_what(doc), "InvalidSpec", map(str, parsed))
        return
    meta = doc["metadata"]
    who = AgentIdentity(name=str(meta.get("name")), namespace=meta["namespace"],
                        uid=PLACEHOLDER_UID)
    rendered = render_agent(parsed, who, settings)
    problems = check_agent(parsed, rendered.config)
    if problems:
        report.fail(_what(doc), problems[0].reason, map(str, problems))
    else:
        report.ok(_what(doc))


def _check_pipeline(doc: dict[str, Any], agents: dict[str, dict[str, Any]],
                    report: Report) -> None:
    outcome = pipeline_status(doc, PipelineObservation(agents))
    compatible = next(c for c in outcome.status.conditions if c.type == "SchemasCompatible")
    headline = f"SchemasCompatible={compatible.status} {compatible.reason}"
    if compatible.status == "True":
        waves = outcome.status.execution_order or []
        order = " → ".join("[" + ", ".join(w) + "]" for w in waves)
        report.ok(_what(doc), f"{order}; {compatible.message}")
    elif compatible.reason == "AgentSchemasUnknown":
        report.warn(_what(doc), compatible.message)
    else:
        report.fail(_what(doc), headline,
                    [str(p) for p in outcome.problems] or [compatible.message])


def run(args: argparse.Namespace) -> int:
    try:
        files = yaml_files(args.filename)
        docs = load_documents(files)
    except (OSError, yaml.YAMLError) as err:
        print(f"atomicctl check: {err}", file=sys.stderr)
        return 2
    report = check_documents(docs, args.namespace, OperatorSettings.from_env())
    for line in report.lines:
        print(line)
    verdict = f"{report.failed} failed" if report.failed else "all pass"
    print(f"checked {report.agents} agents and {report.pipelines} pipelines in {len(files)} "
          f"files: {verdict}")
    return 1 if report.failed else 0
