"""Checking tools the chart's tests run: kubeconform and promtool, fetched once into the cache
(and the Prometheus server from the same Debian package, for the real node).

They are pinned and cached apart from the control plane's binaries (whose cache key is the
Kubernetes, kwok and helm versions), so adding or bumping a checker never rebuilds the
control plane. kubeconform is a plain Go module, built through the Go module proxy like kwok
and helm. promtool comes from Debian's `prometheus` package, unpacked without installing it
(no root needed unless the package lists must first be refreshed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from atomic_devcluster.build import BuildError, _go_install, _log
from atomic_devcluster.versions import cache_dir

KUBECONFORM_MODULE = "github.com/yannh/kubeconform/cmd/kubeconform"
KUBECONFORM_VERSION = "v0.8.0"
PROMETHEUS_PACKAGE = "prometheus"  # Debian's; it ships /usr/bin/promtool


def tools_dir() -> Path:
    return cache_dir() / "tools"


def ensure_kubeconform() -> Path:
    """kubeconform at the pinned version, built on first use."""
    bindir = tools_dir() / f"kubeconform-{KUBECONFORM_VERSION}"
    binary = bindir / "kubeconform"
    if not binary.exists():
        if shutil.which("go") is None:
            raise BuildError("Go 1.26 is needed to build kubeconform and is not on PATH")
        bindir.mkdir(parents=True, exist_ok=True)
        _go_install(KUBECONFORM_MODULE, KUBECONFORM_VERSION, bindir, "kubeconform")
    return binary


def ensure_promtool() -> Path:
    """promtool from Debian's prometheus package, unpacked into the cache on first use."""
    return _from_prometheus_package("promtool")


def ensure_prometheus() -> Path:
    """The Prometheus server from the same package (the real node's custom metrics)."""
    return _from_prometheus_package("prometheus")


def _from_prometheus_package(name: str) -> Path:
    binary = tools_dir() / "promtool-debian" / name
    if binary.exists():
        return binary
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise BuildError("promtool comes from Debian's prometheus package: apt-get and dpkg "
                         "are needed")
    with tempfile.TemporaryDirectory(prefix="promtool-") as tmp:
        work = Path(tmp)
        _log(f"apt-get download {PROMETHEUS_PACKAGE} (for {name})")
        fetched = _apt_download(work)
        if fetched.returncode != 0 and os.geteuid() == 0:
            # a fresh machine's package lists may be missing or name a superseded build
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
            fetched = _apt_download(work)
        debs = sorted(work.glob(f"{PROMETHEUS_PACKAGE}_*.deb"))
        if fetched.returncode != 0 or not debs:
            raise BuildError(f"apt-get download {PROMETHEUS_PACKAGE} failed (run `apt-get "
                             f"update` as root first):\n{fetched.stderr[-2000:]}")
        unpacked = work / "root"
        subprocess.run(["dpkg", "-x", str(debs[0]), str(unpacked)], check=True,
                       capture_output=True)
        binary.parent.mkdir(parents=True, exist_ok=True)
        staged = binary.with_suffix(".tmp")
        shutil.copy2(unpacked / "usr" / "bin" / name, staged)
        staged.replace(binary)
    return binary


def _apt_download(workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["apt-get", "download", "-qq", PROMETHEUS_PACKAGE], cwd=workdir,
                          capture_output=True, text=True, check=False)
