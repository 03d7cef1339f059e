"""An in-memory stand-in for `KubeClient`, for unit tests of the reconcile's orchestration.

It implements the client's four methods (apply, merge_patch, delete, list) over a dict of
objects, with just enough of the API server's behaviour for the order and the number of
writes to mean something: generations move when a spec changes, a new Deployment gets one
replica, the scale and status subresources write only their part, a 404 for what is not
there, and a refusal (422) for objects a test marks as refused. Every call is recorded.
Behaviour tests run against the real control plane (tests/k8s); this is only for what a
reconcile does, in what order, and how often.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from atomic_operator.k8s import ApiError
from atomic_operator.k8s.resources import object_path

Refusal = Callable[[dict[str, Any]], str | None]
"""Given an applied object, the API server's complaint, or None to accept it."""


@dataclass
class Call:
    method: str
    path: str
    body: Any = None
    field_manager: str | None = None
    dry_run: bool = False


def _split(path: str) -> tuple[str, str | None]:
    """(object path, subresource or None)."""
    parts = path.split("/")
    namespaced = parts.index("namespaces")
    if len(parts) > namespaced + 4:
        return "/".join(parts[:namespaced + 4]), parts[namespaced + 4]
    return path, None


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


@dataclass
class MemoryApi:
    """Objects by path; what the reconcile wrote, in order."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    refuse: Refusal = lambda obj: None
    fail: dict[tuple[str, str], int] = field(default_factory=dict)
    """(method, path) → an HTTP status to answer once instead (404, 409, 500, ...)."""
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        return obj

    def _maybe_fail(self, method: str, path: str) -> None:
        status = self.fail.pop((method, path), None)
        if status is not None:
            raise ApiError(status, "Injected", f"{method} {path} answered {status}")

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as if someone created it (an agent, say)."""
        stored = copy.deepcopy(obj)
        meta = stored.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        self.objects[object_path(stored)] = self._stamp(stored)
        return copy.deepcopy(stored)

    def update(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A user's edit of an object (a merge patch); the generation moves with its spec."""
        old = self.objects[path]
        new = _merge(old, patch)
        if new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] += 1
        self.objects[path] = self._stamp(new)
        return copy.deepcopy(new)

    def get(self, path: str) -> dict[str, Any]:
        return copy.deepcopy(self.objects[path])

    def writes(self, method: str | None = None) -> list[Call]:
        return [c for c in self.calls if not c.dry_run and (method is None or c.method == method)]

    async def apply(self, obj: dict[str, Any], field_manager: str, *,
                    dry_run: bool = False) -> dict[str, Any]:
        path = object_path(obj)
        self.calls.append(Call("apply", path, copy.deepcopy(obj), field_manager, dry_run))
        self._maybe_fail("apply", path)
        complaint = self.refuse(obj)
        if complaint:
            raise ApiError(422, "Invalid", complaint)
        old = self.objects.get(path)
        new = _merge(old or {}, obj)
        meta = new["metadata"]
        if old is None:
            meta["uid"] = str(uuid.uuid4())
            meta["generation"] = 1
            if obj["kind"] == "Deployment":
                new["spec"].setdefault("replicas", 1)
        elif new.get("spec") != old.get("spec"):
            meta["generation"] = old["metadata"]["generation"] + 1
        if dry_run:
            return new
        self.objects[path] = self._stamp(new)
        return copy.deepcopy(new)

    async def merge_patch(self, path: str, patch: dict[str, Any], field_manager: str
                          ) -> dict[str, Any]:
        self.calls.append(Call("merge_patch", path, copy.deepcopy(patch), field_manager))
        self._maybe_fail("merge_patch", path)
        target, subresource = _split(path)
        if target not in self.objects:
            raise ApiError(404, "NotFound", f"{target} not found")
        obj = self.objects[target]
        if subresource == "status":
            obj["status"] = _merge(obj.get("status") or {}, patch.get("status") or {})
        elif subresource == "scale":
            replicas = patch["spec"]["replicas"]
            if obj["spec"].get("replicas") != replicas:
                obj["spec"]["replicas"] = replicas
                obj["metadata"]["generation"] += 1
        else:
            self.objects[target] = obj = _merge(obj, patch)
        self._stamp(obj)
        return copy.deepcopy(obj)

    async def create(self, obj: dict[str, Any], field_manager: str, *,
                     dry_run: bool = False) -> dict[str, Any]:
        """A creation under a generated name, validated by `refuse`."""
        name = obj["metadata"].get("name") or obj["metadata"]["generateName"] + "abcde"
        named = {**obj, "metadata": {**obj["metadata"], "name": name}}
        path = object_path(named)
        self.calls.append(Call("create", path, copy.deepcopy(obj), field_manager, dry_run))
        complaint = self.refuse(named)
        if complaint:
            raise ApiError(422, "Invalid", complaint)
        if path in self.objects:
            raise ApiError(409, "AlreadyExists", f"{path} exists")
        if dry_run:
            return named
        return self.put(named)

    async def delete(self, path: str) -> bool:
        self.calls.append(Call("delete", path))
        self._maybe_fail("delete", path)
        return self.objects.pop(path, None) is not None

    async def list(self, path: str, label_selector: dict[str, str] | None = None
                   ) -> list[dict[str, Any]]:
        self.calls.append(Call("list", path))
        selector = label_selector or {}
        return [copy.deepcopy(o) for p, o in sorted(self.objects.items())
                if p.startswith(path + "/")
                and all((o["metadata"].get("labels") or {}).get(k) == v
                        for k, v in selector.items())]
