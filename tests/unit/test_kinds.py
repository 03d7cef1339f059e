"""The registry of kinds is the one list: what the renderer makes is what it lists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import atomic_operator
from atomic_operator import API_VERSION
from atomic_operator.api import AtomicAgent
from atomic_operator.k8s.kinds import AGENT, ATOMIC_AGENT, KINDS, children_of, optional_children
from atomic_operator.k8s.resources import object_path, resource_path
from atomic_operator.reconcile.agent import OPTIONAL_KINDS
from atomic_operator.render import AgentIdentity, render_agent
from atomic_operator.settings import OperatorSettings
from tests.support.manifests import variant


def _kinds(patch: dict[str, object]) -> list[tuple[str, str]]:
    agent = AtomicAgent.model_validate(variant("task-processor", patch))
    rendered = render_agent(agent, AgentIdentity("a", "ns", "u"), OperatorSettings())
    return [(c["apiVersion"], c["kind"]) for c in rendered.children]


def test_every_rendered_child_is_a_registered_child_kind() -> None:
    everything = _kinds({"spec": {"autoscaling": {"mode": "hpa", "minReplicas": 2},
                                  "access": {"networkPolicy": {"enabled": True}}}})
    registered = [(c.kind.api_version, c.kind.kind) for c in children_of(AGENT)]
    assert sorted(everything) == sorted(registered)
    least = _kinds({"spec": {"autoscaling": {"mode": "none"}, "replicas": 1}})
    assert sorted(set(everything) - set(least)) == sorted(
        (c.kind.api_version, c.kind.kind) for c in optional_children(AGENT))
    assert tuple(c.kind.kind for c in optional_children(AGENT)) == OPTIONAL_KINDS


def test_paths_come_from_the_registry() -> None:
    assert ATOMIC_AGENT.api_version == API_VERSION
    assert resource_path(API_VERSION, "AtomicAgent", "ns", "a", "status") == \
        "/apis/atomicagents.io/v1alpha1/namespaces/ns/atomicagents/a/status"
    assert resource_path("v1", "ConfigMap", "ns") == "/api/v1/namespaces/ns/configmaps"
    for kind in KINDS.values():
        obj = {"apiVersion": kind.api_version, "kind": kind.kind,
               "metadata": {"namespace": "ns", "name": "x"}}
        assert object_path(obj).endswith(f"/{kind.plural}/x")


PACKAGE = Path(atomic_operator.__file__).parent
REGISTRY = PACKAGE / "k8s" / "kinds.py"
# a kopf index is named after its function; this one's name reads like a plural
NOT_KINDS = {("handlers/indexes.py", "deployments")}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)):
            found.add(id(body[0].value))
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            found |= {id(n) for n in ast.walk(node.value)}
    return found


def test_no_kind_api_version_or_plural_is_written_outside_the_registry() -> None:
    """Every rule lives once: a kind's name, apiVersion and plural are read from
    `k8s/kinds.py` (templates get them as `api_versions`), never spelled again."""
    spelled = set()
    for kind in KINDS.values():
        spelled |= {kind.kind, kind.plural, kind.api_version}
    spelled.discard("v1")  # too common a word to police; the core kinds spell it in kinds.py
    leaks = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == REGISTRY:
            continue
        tree = ast.parse(path.read_text())
        skip = _docstrings(tree)
        rel = str(path.relative_to(PACKAGE))
        leaks += [f"{rel}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and node.value in spelled and id(node) not in skip
                  and (rel, node.value) not in NOT_KINDS]
    for template in sorted((PACKAGE / "templates").glob("*.j2")):
        leaks += [f"templates/{template.name}:{n}: {line.strip()}"
                  for n, line in enumerate(template.read_text().splitlines(), 1)
                  if re.match(r"\s*apiVersion:\s*[\w.]+/?v\d", line)]
    assert leaks == [], "spell these through atomic_operator.k8s.kinds:\n" + "\n".join(leaks)
