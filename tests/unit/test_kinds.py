"""The registry of kinds is the one list: what the renderer makes is what it lists."""

from __future__ import annotations

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
    everything = _kinds({"spec": {"autoscaling": {"mode": "hpa", "minReplicas": 2}}})
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
