"""Helpers for tests that talk to the real control plane through the real kubectl."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from atomic_devcluster import ControlPlane


class Kube:
    """kubectl bound to one control plane and one namespace."""

    def __init__(self, cp: ControlPlane, namespace: str) -> None:
        self.cp = cp
        self.namespace = namespace

    def run(self, *args: str, input_text: str | None = None, check: bool = True) -> str:
        proc = self.cp.kubectl(f"--namespace={self.namespace}", *args, input_text=input_text,
                               check=check)
        return proc.stdout if proc.returncode == 0 else proc.stderr

    def apply(self, manifest: dict[str, Any] | str, *flags: str, check: bool = True
              ) -> tuple[int, str]:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        proc = self.cp.kubectl(f"--namespace={self.namespace}", "apply", *flags, "-f", "-",
                               input_text=text, check=check)
        return proc.returncode, proc.stdout + proc.stderr

    def get(self, kind: str, name: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.run("get", kind, name, "-o", "json"))
        return out


def eventually[T](probe: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.1,
               what: str = "condition") -> T:
    """Poll until probe returns something truthy, or fail saying what never happened."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout} s (last: {last!r})")
