"""A Docker Engine to build the shipped images with: the one already running, or our own.

`make images` needs an engine. Where one answers (DOCKER_HOST, or the default socket) it is
used as it is. Otherwise, as root, Debian's `docker.io` is installed when missing and a
private `dockerd` is started with its data under the cache (layers and the base image
survive between runs), on its own socket, without touching iptables or making a bridge:
builds run with `--network host`, and the only traffic is pip reaching the package index.
It is stopped when the build is done.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from atomic_devcluster.build import BuildError, _log
from atomic_devcluster.debian import ensure_programs
from atomic_devcluster.versions import cache_dir

# Debian's CLI (20.10) drives BuildKit itself; a newer CLI without the buildx plugin cannot.
DEBIAN_DOCKER = Path("/usr/bin/docker")
# what a private engine and the Debian-made base need
ENGINE_PROGRAMS = {"dockerd": "docker.io", "debootstrap": "debootstrap"}


@dataclass(frozen=True)
class Engine:
    """How to reach an engine: the docker CLI and the environment it needs."""

    cli: str
    env: dict[str, str]

    def docker(self, *args: str, input_bytes: bytes | None = None, check: bool = True,
               timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run([self.cli, *args], env=self.env, input=input_bytes,
                              capture_output=True, check=False, timeout=timeout)
        if check and proc.returncode != 0:
            raise BuildError(f"docker {' '.join(args[:3])} failed:\n"
                             f"{proc.stderr.decode(errors='replace')[-4000:]}")
        return proc


def _cli() -> str:
    if DEBIAN_DOCKER.exists():
        return str(DEBIAN_DOCKER)
    found = shutil.which("docker")
    if found is None:
        raise BuildError("no docker CLI: install Debian's docker.io (or Docker with buildx)")
    return found


def _answers(cli: str, env: dict[str, str]) -> bool:
    try:
        return subprocess.run([cli, "info"], env=env, capture_output=True, check=False,
                              timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def docker_engine() -> Iterator[Engine]:
    """An engine for the duration of the block; ours is stopped afterwards."""
    env = dict(os.environ, DOCKER_BUILDKIT="1")
    cli = _cli() if DEBIAN_DOCKER.exists() or shutil.which("docker") else ""
    if cli and _answers(cli, env):  # the engine already running (DOCKER_HOST honoured)
        yield Engine(cli, env)
        return
    ensure_programs(ENGINE_PROGRAMS)
    cli = _cli()
    home = cache_dir() / "docker"
    home.mkdir(parents=True, exist_ok=True)
    socket = home / "docker.sock"
    env["DOCKER_HOST"] = f"unix://{socket}"
    if _answers(cli, env):  # ours, left by a run that is still going or died
        yield Engine(cli, env)
        return
    exec_root = Path("/run/atomic-operator-docker")
    log = (home / "dockerd.log").open("wb")
    proc = subprocess.Popen(
        ["dockerd", f"--data-root={home / 'data'}", f"--exec-root={exec_root}",
         f"--pidfile={exec_root}.pid", f"--host=unix://{socket}",
         "--iptables=false", "--ip-masq=false", "--bridge=none"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _answers(cli, env):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BuildError(f"dockerd did not start; its log is {home / 'dockerd.log'}")
            time.sleep(0.3)
        _log(f"started dockerd (data in {home})")
        yield Engine(cli, env)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
