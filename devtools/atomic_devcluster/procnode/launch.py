"""From a pod to what its process needs: argv, environment, files, probe ports.

Like the kubelet, every reference is resolved through the API when the container starts:
`env[].valueFrom` (Secret and ConfigMap keys, the downward API fields our templates and
users use), `envFrom`, `$(VAR)` expansion, and ConfigMap, Secret, projected and emptyDir
volumes. What cannot be resolved raises LaunchError with the kubelet's reason and message
(`CreateContainerConfigError` for env, `ContainerCreating` for a volume whose source is not
there yet), and the worker retries.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from atomic_devcluster.procnode.images import ImageMap, UnknownImageError
from atomic_devcluster.procnode.kubeapi import Api


class LaunchError(Exception):
    """The container cannot start (yet): the waiting reason and message the pod shows."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]
    files: dict[PurePosixPath, tuple[bytes, int]] = field(default_factory=dict)
    dirs: list[PurePosixPath] = field(default_factory=list)

    def materialize(self, root: Path) -> None:
        """Write the volumes below root, where ATOMIC_AGENT_FS_ROOT points the process."""
        for directory in self.dirs:
            (root / directory.relative_to("/")).mkdir(parents=True, exist_ok=True)
        for path, (data, mode) in self.files.items():
            target = root / path.relative_to("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(data)
            tmp.chmod(mode & 0o777 | 0o600)  # readable by us whatever the pod's mode says
            tmp.replace(target)


@dataclass(frozen=True)
class NodeContext:
    """What the node adds to every process."""

    node_name: str
    host_ip: str
    proxy_url: str
    images: ImageMap


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known variables replaced, $$ escapes, others kept."""
    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))
    return _VAR.sub(one, text)


class _Sources:
    """ConfigMaps and Secrets of the pod's namespace, each read once per launch."""

    def __init__(self, api: Api, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self._cache: dict[tuple[str, str], dict[str, bytes] | None] = {}

    async def data(self, kind: str, name: str) -> dict[str, bytes] | None:
        key = (kind, name)
        if key not in self._cache:
            plural = "secrets" if kind == "Secret" else "configmaps"
            obj = await self.api.get(f"/api/v1/namespaces/{self.namespace}/{plural}/{name}")
            if obj is None:
                self._cache[key] = None
            elif kind == "Secret":
                self._cache[key] = {k: base64.b64decode(v)
                                    for k, v in (obj.get("data") or {}).items()}
            else:
                found = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
                found.update({k: base64.b64decode(v)
                              for k, v in (obj.get("binaryData") or {}).items()})
                self._cache[key] = found
        return self._cache[key]

    async def key(self, kind: str, ref: Mapping[str, Any]) -> bytes | None:
        """The key's value; None if optional and missing; LaunchError if required and missing."""
        name, key = str(ref.get("name", "")), str(ref.get("key", ""))
        data = await self.data(kind, name)
        optional = bool(ref.get("optional"))
        if data is None:
            if optional:
                return None
            raise LaunchError("CreateContainerConfigError",
                              f'{kind.lower()} "{name}" not found')
        if key not in data:
            if optional:
                return None
            raise LaunchError("CreateContainerConfigError",
                              f"couldn't find key {key} in {kind} {self.namespace}/{name}")
        return data[key]


def _field(pod: Mapping[str, Any], path: str, pod_ip: str, host_ip: str) -> str:
    meta = pod.get("metadata", {})
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": pod["spec"].get("nodeName"),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName"),
        "status.podIP": pod_ip, "status.podIPs": pod_ip,
        "status.hostIP": host_ip, "status.hostIPs": host_ip,
    }
    if path not in simple:
        raise LaunchError("CreateContainerConfigError",
                          f"fieldRef {path} is not supported by the process node")
    return str(simple[path] or "")


async def _env(container: Mapping[str, Any], pod: Mapping[str, Any], sources: _Sources,
               base: dict[str, str], pod_ip: str, host_ip: str) -> dict[str, str]:
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, ref_key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(ref_key)
            if ref is None:
                continue
            data = await sources.data(kind, ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise LaunchError("CreateContainerConfigError",
                                  f'{kind.lower()} "{ref["name"]}" not found')
            env.update({prefix + k: v.decode(errors="replace") for k, v in data.items()})
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        source = var["valueFrom"]
        value: bytes | None
        if "secretKeyRef" in source:
            value = await sources.key("Secret", source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            value = await sources.key("ConfigMap", source["configMapKeyRef"])
        elif "fieldRef" in source:
            value = _field(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip).encode()
        else:
            raise LaunchError("CreateContainerConfigError",
                              f"env {name}: {', '.join(source)} is not supported by the "
                              "process node")
        if value is not None:
            env[name] = value.decode(errors="replace")
    return env


def _items(data: dict[str, bytes], items: list[dict[str, Any]] | None, kind: str, name: str
           ) -> dict[str, bytes]:
    if not items:
        return dict(data)
    picked = {}
    for item in items:
        if item["key"] not in data:
            raise LaunchError("ContainerCreating",
                              f"{kind.lower()} {name!r} references non-existent config key: "
                              f"{item['key']}")
        picked[item.get("path", item["key"])] = data[item["key"]]
    return picked


async def _token(api: Api, pod: Mapping[str, Any], source: Mapping[str, Any]) -> bytes:
    """A bound service account token, asked for the way the kubelet asks (TokenRequest)."""
    meta = pod["metadata"]
    account = pod["spec"].get("serviceAccountName") or "default"
    spec: dict[str, Any] = {
        "expirationSeconds": int(source.get("expirationSeconds", 3600)),
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                           "uid": meta["uid"]}}
    if source.get("audience"):
        spec["audiences"] = [source["audience"]]
    answer = await api.request(
        "POST", f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
    return str(answer["status"]["token"]).encode()


def _downward(pod: Mapping[str, Any], source: Mapping[str, Any], pod_ip: str, host_ip: str
              ) -> dict[str, bytes]:
    out = {}
    for item in source.get("items") or []:
        if "fieldRef" not in item:
            raise LaunchError("ContainerCreating",
                              f"downwardAPI {item['path']}: only fieldRef is supported by the "
                              "process node")
        out[item["path"]] = _field(pod, item["fieldRef"]["fieldPath"], pod_ip, host_ip).encode()
    return out


async def _volume_files(volume: Mapping[str, Any], sources: _Sources, pod: Mapping[str, Any],
                        pod_ip: str, host_ip: str) -> dict[str, tuple[bytes, int]] | None:
    """Relative path → (bytes, mode) of a volume; None for an empty directory."""
    name = volume["name"]
    if "emptyDir" in volume:
        return None
    kinds = [k for k in volume if k != "name"]
    sources_of: list[Mapping[str, Any]]
    if "projected" in volume:
        sources_of = volume["projected"].get("sources") or []
        mode = int(volume["projected"].get("defaultMode", 0o644))
    elif kinds and kinds[0] in ("configMap", "secret", "downwardAPI"):
        sources_of = [{kinds[0]: volume[kinds[0]]}]
        mode = int(volume[kinds[0]].get("defaultMode", 0o644))
    else:
        raise LaunchError("ContainerCreating",
                          f"volume {name!r}: {', '.join(kinds)} volumes are not supported by "
                          "the process node")
    files: dict[str, tuple[bytes, int]] = {}
    for source in sources_of:
        if "serviceAccountToken" in source:
            ref = source["serviceAccountToken"]
            files[ref["path"]] = (await _token(sources.api, pod, ref), mode)
            continue
        if "downwardAPI" in source:
            for path, value in _downward(pod, source["downwardAPI"], pod_ip, host_ip).items():
                files[path] = (value, mode)
            continue
        if "configMap" in source:
            kind, ref = "ConfigMap", source["configMap"]
        elif "secret" in source:
            kind, ref = "Secret", dict(source["secret"])
            ref.setdefault("name", ref.get("secretName", ""))
        else:
            raise LaunchError("ContainerCreating",
                              f"volume {name!r}: {', '.join(source)} is not supported by the "
                              "process node")
        data = await sources.data(kind, str(ref.get("name", "")))
        if data is None:
            if ref.get("optional"):
                continue
            raise LaunchError("ContainerCreating",
                              f'MountVolume.SetUp failed for volume "{name}": '
                              f'{kind.lower()} "{ref.get("name")}" not found')
        for path, value in _items(data, ref.get("items"), kind, str(ref.get("name"))).items():
            files[path] = (value, mode)
    return files


async def resolve(api: Api, pod: Mapping[str, Any], node: NodeContext, pod_ip: str,
                  listen_ip: str, root: Path) -> Launch:
    """Everything needed to start the pod's (single) container."""
    containers = pod["spec"].get("containers") or []
    if len(containers) != 1 or pod["spec"].get("initContainers"):
        raise LaunchError("CreateContainerError",
                          "the process node runs pods of exactly one container")
    container = containers[0]
    try:
        argv, image_env = node.images.argv(container)
    except UnknownImageError as err:
        raise LaunchError("ErrImagePull", str(err)) from None
    sources = _Sources(api, pod["metadata"]["namespace"])
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root),
            "LANG": "C.UTF-8", "TMPDIR": str(root / "tmp"),
            "HOSTNAME": pod["metadata"]["name"], **image_env}
    env = await _env(container, pod, sources, base, pod_ip, node.host_ip)
    # What stands in for the container's network and file system on this node:
    env["ATOMIC_AGENT_HOST"] = listen_ip
    env["ATOMIC_AGENT_FS_ROOT"] = str(root)
    for key, value in (("HTTP_PROXY", node.proxy_url), ("NO_PROXY", "127.0.0.1,localhost")):
        env.setdefault(key, value)
        env.setdefault(key.lower(), env[key])
    launch = Launch([expand(a, env) for a in argv], env, dirs=[PurePosixPath("/tmp")])
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise LaunchError("CreateContainerConfigError",
                              f"volumeMount {mount['name']!r} names no volume of the pod")
        mount_path = PurePosixPath(mount["mountPath"])
        files = await _volume_files(volume, sources, pod, pod_ip, node.host_ip)
        sub = mount.get("subPath")
        if not sub:
            launch.dirs.append(mount_path)
        if files is None:
            continue
        for rel, content in files.items():
            if sub:
                if rel == sub:
                    launch.files[mount_path] = content
            else:
                launch.files[mount_path / rel] = content
    return launch
