"""The node's programs, built once into the cache like the control plane's.

kubelet and kube-proxy come from the same wrapper module (and Go build cache) as the
control plane, so they are the same Kubernetes; the CNI plugins, CoreDNS, metrics-server and
prometheus-adapter through the Go module proxy; pause from the C source in the Kubernetes
module, linked statically.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from atomic_devcluster.build import (
    BuildError,
    _bindir,
    _build_kubernetes,
    _go_env,
    _go_install,
    _log,
    _run,
)
from atomic_devcluster.versions import PINNED, Versions, cache_dir

NODE_COMMANDS = ("kubelet", "kube-proxy")
CNI_MODULE = "github.com/containernetworking/plugins"
CNI_VERSION = "v1.10.0"
CNI_PLUGINS = ("main/bridge", "main/loopback", "ipam/host-local", "meta/portmap",
               "meta/firewall")
COREDNS_MODULE = "github.com/coredns/coredns"
COREDNS_VERSION = "v1.14.7"
METRICS_SERVER_MODULE = "sigs.k8s.io/metrics-server/cmd/metrics-server"
METRICS_SERVER_VERSION = "v0.8.0"
PROMETHEUS_ADAPTER_MODULE = "sigs.k8s.io/prometheus-adapter/cmd/adapter"
PROMETHEUS_ADAPTER_VERSION = "v0.12.0"


@dataclass(frozen=True)
class NodeBinaries:
    kubelet: Path
    kube_proxy: Path
    cni_dir: Path
    coredns: Path
    metrics_server: Path
    prometheus_adapter: Path
    pause: Path


def ensure_node_binaries(versions: Versions = PINNED) -> NodeBinaries:
    if shutil.which("go") is None:
        raise BuildError("Go 1.26 is needed to build the real node and is not on PATH")
    bindir = _bindir(versions)
    bindir.mkdir(parents=True, exist_ok=True)
    if not all((bindir / c).exists() for c in NODE_COMMANDS):
        _build_kubernetes(versions, bindir, NODE_COMMANDS)
    cni_dir = cache_dir() / "bin" / f"cni-{CNI_VERSION}"
    cni_dir.mkdir(parents=True, exist_ok=True)
    for plugin in CNI_PLUGINS:
        name = plugin.rsplit("/", 1)[1]
        if not (cni_dir / name).exists():
            _go_install(f"{CNI_MODULE}/plugins/{plugin}", CNI_VERSION, cni_dir, name)
    dns_dir = cache_dir() / "bin" / f"coredns-{COREDNS_VERSION}"
    if not (dns_dir / "coredns").exists():
        dns_dir.mkdir(parents=True, exist_ok=True)
        _go_install(COREDNS_MODULE, COREDNS_VERSION, dns_dir, "coredns")
    metrics_dir = cache_dir() / "bin" / f"metrics-server-{METRICS_SERVER_VERSION}"
    if not (metrics_dir / "metrics-server").exists():
        metrics_dir.mkdir(parents=True, exist_ok=True)
        _go_install(METRICS_SERVER_MODULE, METRICS_SERVER_VERSION, metrics_dir,
                    "metrics-server")
    adapter_dir = cache_dir() / "bin" / f"prometheus-adapter-{PROMETHEUS_ADAPTER_VERSION}"
    if not (adapter_dir / "adapter").exists():
        adapter_dir.mkdir(parents=True, exist_ok=True)
        _go_build_pinned(PROMETHEUS_ADAPTER_MODULE, PROMETHEUS_ADAPTER_VERSION, adapter_dir,
                         "adapter")
    pause = bindir / "pause"
    if not pause.exists():
        _build_pause(versions, pause)
    return NodeBinaries(kubelet=bindir / "kubelet", kube_proxy=bindir / "kube-proxy",
                        cni_dir=cni_dir, coredns=dns_dir / "coredns",
                        metrics_server=metrics_dir / "metrics-server",
                        prometheus_adapter=adapter_dir / "adapter", pause=pause)


def _go_build_pinned(package: str, version: str, bindir: Path, name: str) -> None:
    """`go install package@version` through a throw-away module requiring it.

    The proxy refuses the version list of some modules (prometheus-adapter's), which
    `go install` reads for deprecations; a module that requires the exact version does not.
    """
    module = package.split("/cmd/")[0]
    workdir = cache_dir() / "src" / f"{name}-{version}"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "go.mod").write_text(f"module atomic-operator.local/{name}-build\n\ngo 1.26\n\n"
                                    f"require {module} {version}\n")
    env = _go_env()
    env["GOFLAGS"] = "-mod=mod"
    _log(f"go build {package}@{version}")
    _run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(bindir / name), package],
         workdir, env)


def _build_pause(versions: Versions, target: Path) -> None:
    source = (Path.home() / "go" / "pkg" / "mod" / f"k8s.io/kubernetes@{versions.kubernetes}"
              / "build" / "pause" / "linux" / "pause.c")
    if not source.exists():
        subprocess.run(["go", "mod", "download", f"k8s.io/kubernetes@{versions.kubernetes}"],
                       capture_output=True, check=False)
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None or not source.exists():
        raise BuildError(f"pause needs a C compiler and {source}")
    _log("compiling pause (static)")
    proc = subprocess.run([compiler, "-Os", "-static", "-DVERSION=atomic-local", "-o",
                           str(target), str(source)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise BuildError(f"compiling pause failed:\n{proc.stderr[-2000:]}")
