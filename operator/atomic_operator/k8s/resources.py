"""URL paths of the resource kinds the operator touches (listed in `k8s/kinds.py`)."""

from __future__ import annotations

from typing import Any

from atomic_operator.k8s.kinds import KINDS


def resource_path(api_version: str, kind: str, namespace: str, name: str | None = None,
                  subresource: str | None = None) -> str:
    """/api/v1/... for the core group, /apis/<group>/<version>/... for the others."""
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{KINDS[kind].plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


def object_path(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return resource_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
