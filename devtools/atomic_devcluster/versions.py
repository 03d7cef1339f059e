"""The one place where the control plane's pinned versions live."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Versions:
    """Pinned upstream versions; the build cache is keyed by them, so bumping one rebuilds it.

    Kubernetes is built with Go 1.26: a kube-apiserver built with Go 1.27 serves a broken
    /openapi/v2 (kubectl apply fails) unless GOEXPERIMENT=nojsonv2 is set.
    """

    kubernetes: str = "v1.36.3"
    kwok: str = "v0.8.0"
    helm: str = "v3.21.4"

    @property
    def staging(self) -> str:
        """The published version of the k8s.io/* staging modules that match `kubernetes`."""
        return "v0" + self.kubernetes[2:]


PINNED = Versions()


def cache_dir() -> Path:
    """Where built binaries live: outside the repository, shared by every clone and CI run."""
    explicit = os.environ.get("ATOMIC_OPERATOR_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "atomic-operator"
