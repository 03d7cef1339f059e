"""In-memory indexes kopf keeps current from its watches, so reconciles need no lookups.

kopf populates every index before any resource handler runs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from atomic_operator import GROUP, VERSION
from atomic_operator.naming import AGENT_LABEL, MANAGED_SELECTOR
from atomic_operator.references import key_digests

UNMANAGED = {"app.kubernetes.io/managed-by": kopf.ABSENT}
MANAGED = MANAGED_SELECTOR


class IndexView(Mapping[Any, Any]):
    """A kopf index whose keys each hold one object, read as a plain mapping."""

    def __init__(self, index: kopf.Index[Any, Any]) -> None:
        self._index = index

    def __getitem__(self, key: Any) -> Any:
        for value in self._index[key]:
            return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


@kopf.index("v1", "secrets")
def secret_digests(*, namespace: str | None, name: str, body: kopf.Body, **_: Any
                   ) -> dict[tuple[str | None, str], dict[str, str]]:
    """Digests of every Secret's keys: never the values."""
    return {(namespace, name): key_digests(body.get("data"))}


@kopf.index("v1", "configmaps", labels=UNMANAGED)
def config_map_digests(*, namespace: str | None, name: str, body: kopf.Body, **_: Any
                       ) -> dict[tuple[str | None, str], dict[str, str]]:
    """Digests of users' ConfigMaps (not the operator's own) for context providers."""
    data = {**(body.get("data") or {}), **(body.get("binaryData") or {})}
    return {(namespace, name): key_digests(data)}


@kopf.index(GROUP, VERSION, "atomicagents")
def agents(*, namespace: str | None, name: str, body: kopf.Body, **_: Any
           ) -> dict[tuple[str | None, str], dict[str, Any]]:
    """The latest body of every agent, for reconciles triggered by other objects' events."""
    return {(namespace, name): copy.deepcopy(dict(body))}


def _secret_names(spec: Mapping[str, Any]) -> set[str]:
    names = {(spec.get("model") or {}).get("apiKeySecretRef", {}).get("name")}
    names |= {(p.get("secretKeyRef") or {}).get("name") for p in spec.get("contextProviders") or []}
    return {n for n in names if n}


@kopf.index(GROUP, VERSION, "atomicagents")
def agents_by_secret(*, namespace: str | None, name: str, spec: kopf.Spec, **_: Any
                     ) -> dict[tuple[str | None, str], str]:
    """(namespace, Secret) → agents that reference it, to roll them when it changes."""
    return {(namespace, secret): name for secret in _secret_names(spec)}


@kopf.index(GROUP, VERSION, "atomicagents")
def agents_by_config_map(*, namespace: str | None, name: str, spec: kopf.Spec, **_: Any
                         ) -> dict[tuple[str | None, Any], str]:
    """(namespace, ConfigMap) → agents whose context providers read it."""
    names = {(p.get("configMapKeyRef") or {}).get("name")
             for p in spec.get("contextProviders") or []}
    return {(namespace, cm): name for cm in names if cm}


@kopf.index("autoscaling", "v2", "horizontalpodautoscalers", labels=MANAGED)
def agent_hpas(*, namespace: str | None, labels: kopf.Labels, **_: Any
               ) -> dict[tuple[str | None, str], str]:
    return {(namespace, labels.get(AGENT_LABEL, "")): "HorizontalPodAutoscaler"}


@kopf.index("policy", "v1", "poddisruptionbudgets", labels=MANAGED)
def agent_pdbs(*, namespace: str | None, labels: kopf.Labels, **_: Any
               ) -> dict[tuple[str | None, str], str]:
    return {(namespace, labels.get(AGENT_LABEL, "")): "PodDisruptionBudget"}


@dataclass(frozen=True)
class Indexes:
    """Every index above, as kopf passes them to handlers (by function name)."""

    agents: IndexView
    secrets: IndexView
    config_maps: IndexView
    hpas: kopf.Index[Any, Any]
    pdbs: kopf.Index[Any, Any]
    agents_by_secret: kopf.Index[Any, Any]
    agents_by_config_map: kopf.Index[Any, Any]

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> Indexes:
        return cls(
            agents=IndexView(kwargs["agents"]),
            secrets=IndexView(kwargs["secret_digests"]),
            config_maps=IndexView(kwargs["config_map_digests"]),
            hpas=kwargs["agent_hpas"],
            pdbs=kwargs["agent_pdbs"],
            agents_by_secret=kwargs["agents_by_secret"],
            agents_by_config_map=kwargs["agents_by_config_map"],
        )

    def optional_children(self, namespace: str, name: str) -> frozenset[str]:
        """Kinds of the optional children (HPA, PDB) the agent has now."""
        key = (namespace, name)
        return frozenset([*self.hpas.get(key, []), *self.pdbs.get(key, [])])
