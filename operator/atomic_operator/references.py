"""Resolve the Secrets and ConfigMaps an agent references, from key digests.

Users' ConfigMaps are indexed from the operator's watch; Secrets are never listed or
watched (their RBAC is `get`): the runner reads the ones an agent names, by name, before
each reconcile and again every `secretRecheckSeconds`, and keeps only key digests (never
values). Resolving is then a pure lookup.

A pipeline's runner references the bearer-token Secrets of the agents its steps call
(`pipeline_tokens`): it sends each agent that agent's own token, from the same Secret key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from atomic_operator.api import AtomicAgent
from atomic_operator.api.common import ConfigMapKeyRef, SecretKeyRef
from atomic_operator.k8s.kinds import CONFIG_MAP, SECRET
from atomic_operator.problems import SpecProblem

KeyDigests = Mapping[str, str]
"""key → sha256 of the value, for one Secret or ConfigMap."""

ObjectIndex = Mapping[tuple[str, str], KeyDigests]
"""(namespace, name) → key digests."""


def secret_names(spec: Mapping[str, Any]) -> set[str]:
    """The Secrets an agent's spec (as stored, camelCase) names."""
    names = {((spec.get("model") or {}).get("apiKeySecretRef") or {}).get("name")}
    names |= {(p.get("secretKeyRef") or {}).get("name") for p in spec.get("contextProviders") or []}
    names.add(((spec.get("access") or {}).get("bearerTokenSecretRef") or {}).get("name"))
    return {n for n in names if n}


def agent_token_ref(agent: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(Secret name, key) of an AtomicAgent body's `spec.access.bearerTokenSecretRef`."""
    spec = (agent or {}).get("spec") or {}
    ref = (spec.get("access") or {}).get("bearerTokenSecretRef") or {}
    name, key = ref.get("name"), ref.get("key")
    return (name, key) if isinstance(name, str) and isinstance(key, str) and name and key \
        else None


def pipeline_tokens(agent_names: Iterable[str], agents: Mapping[str, Mapping[str, Any]]
                    ) -> dict[str, tuple[str, str]]:
    """Agent → (Secret name, key) of its bearer token, for each distinct agent a pipeline's
    steps call that requires one (`agents`: name → AtomicAgent body, as stored)."""
    found = {name: agent_token_ref(agents.get(name)) for name in sorted(set(agent_names))}
    return {name: ref for name, ref in found.items() if ref is not None}


def tokens_digest(namespace: str, tokens: Mapping[str, tuple[str, str]],
                  secrets: ObjectIndex) -> str:
    """A digest of the token keys a pipeline's runner reads ("" when it reads none), for
    its config hash: a rotated token rolls the runner. A Secret or key not there yet is
    left out; the agent reports it, and its appearance changes the digest."""
    found = {f"Secret/{name}/{key}": digests[key]
             for name, key in sorted(set(tokens.values()))
             if key in (digests := secrets.get((namespace, name)) or {})}
    if not found:
        return ""
    return hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()


def key_digests(data: Mapping[str, str] | None) -> dict[str, str]:
    """What the index keeps of a Secret's or ConfigMap's data."""
    return {k: hashlib.sha256(v.encode()).hexdigest() for k, v in (data or {}).items()}


@dataclass(frozen=True)
class ResolvedReferences:
    """The outcome of looking up every reference of one agent."""

    secrets_digest: str
    problems: list[SpecProblem] = field(default_factory=list)


def _lookup(index: ObjectIndex, namespace: str, ref: SecretKeyRef | ConfigMapKeyRef,
            kind: str, field_path: str, found: dict[str, str]) -> SpecProblem | None:
    digests = index.get((namespace, ref.name))
    if digests is None:
        return SpecProblem(f"{field_path}.name", f"Missing{kind}",
                           f"{kind} {ref.name!r} does not exist in namespace {namespace}")
    if ref.key not in digests:
        keys = ", ".join(sorted(digests)) or "none"
        return SpecProblem(f"{field_path}.key", f"Missing{kind}Key",
                           f"{kind} {ref.name!r} has no key {ref.key!r} (keys: {keys})")
    found[f"{kind}/{ref.name}/{ref.key}"] = digests[ref.key]
    return None


def resolve_references(agent: AtomicAgent, namespace: str, secrets: ObjectIndex,
                       config_maps: ObjectIndex) -> ResolvedReferences:
    """Check every reference exists and digest the referenced Secret keys."""
    found: dict[str, str] = {}
    problems: list[SpecProblem | None] = []
    if agent.spec.model.api_key_secret_ref is not None:
        problems.append(_lookup(secrets, namespace, agent.spec.model.api_key_secret_ref,
                                SECRET.kind, "spec.model.apiKeySecretRef", found))
    token = agent.spec.access.bearer_token_secret_ref if agent.spec.access else None
    if token is not None:
        problems.append(_lookup(secrets, namespace, token, SECRET.kind,
                                "spec.access.bearerTokenSecretRef", found))
    for i, provider in enumerate(agent.spec.context_providers):
        where = f"spec.contextProviders[{i}]"
        if provider.secret_key_ref is not None:
            problems.append(_lookup(secrets, namespace, provider.secret_key_ref, SECRET.kind,
                                    f"{where}.secretKeyRef", found))
        if provider.config_map_key_ref is not None:
            # ConfigMap context is re-read by the runtime: checked, but not part of the hash.
            problems.append(_lookup(config_maps, namespace, provider.config_map_key_ref,
                                    CONFIG_MAP.kind, f"{where}.configMapKeyRef", {}))
    secret_part = {k: v for k, v in found.items() if k.startswith(f"{SECRET.kind}/")}
    digest = hashlib.sha256(json.dumps(secret_part, sort_keys=True).encode()).hexdigest()
    return ResolvedReferences(digest, [p for p in problems if p is not None])

