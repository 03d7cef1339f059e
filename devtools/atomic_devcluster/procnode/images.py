"""Which images the process node can run, and as what command.

A container image is a file system plus an entrypoint; here the file system is this
checkout's virtualenv, so an image is known by the command that plays its entrypoint and
the environment its Dockerfile sets. The agent runtime image (the operator's
ATOMIC_OPERATOR_RUNTIME_IMAGE, or its default) is always known; the harness adds more with
`--image NAME=JSON-ARGV` (ControlPlane(images={...})). `{python}` in an argv stands for
this interpreter. A container's `command` replaces the entrypoint and `args` follow it, as
in Kubernetes; a `python`/`python3` command means this interpreter too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from atomic_operator.settings import DEFAULT_RUNTIME_IMAGE

PYTHON = "{python}"


@dataclass(frozen=True)
class Image:
    entrypoint: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


CHECKOUT = Path(__file__).resolve().parents[3]
"""The checkout this harness runs from: the runtime image's code is its agent_image/ (what
the Dockerfile copies), even when the virtualenv's editable install is another checkout's
(a git worktree sharing one virtualenv)."""

# What agent_image/Dockerfile sets; the pod's own env comes on top.
_RUNTIME = Image(
    entrypoint=(PYTHON, "-m", "atomic_runtime"),
    env={"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
         "PYTHONPATH": str(CHECKOUT / "agent_image"),
         "ATOMIC_AGENT_CONFIG": "/etc/atomic-agent/agent.json", "ATOMIC_AGENT_PORT": "8080",
         "ATOMIC_AGENT_METRICS_PORT": "9090"},
)


class UnknownImageError(LookupError):
    pass


@dataclass(frozen=True)
class ImageMap:
    images: Mapping[str, Image]

    @classmethod
    def with_runtime(cls, extra: Mapping[str, Sequence[str]] = {}) -> ImageMap:
        runtime = os.environ.get("ATOMIC_OPERATOR_RUNTIME_IMAGE", DEFAULT_RUNTIME_IMAGE)
        images = {DEFAULT_RUNTIME_IMAGE: _RUNTIME, runtime: _RUNTIME}
        images.update({name: Image(tuple(argv), {"PYTHONUNBUFFERED": "1"})
                       for name, argv in extra.items()})
        return cls(images)

    def argv(self, container: Mapping[str, object]) -> tuple[list[str], Mapping[str, str]]:
        """(argv, the image's env) of a container; UnknownImageError if the image is not known."""
        name = str(container.get("image", ""))
        image = self.images.get(name)
        if image is None:
            known = ", ".join(sorted(self.images))
            raise UnknownImageError(f"the process node cannot run image {name!r}: it runs {known} "
                               "(the harness maps more with ControlPlane(images=...))")
        command = container.get("command")
        args = container.get("args") or []
        head = list(command) if isinstance(command, list) else list(image.entrypoint)
        argv = [*head, *(args if isinstance(args, list) else [])]
        if argv and argv[0] in (PYTHON, "python", "python3"):
            argv[0] = sys.executable
        return [str(a) for a in argv], image.env
