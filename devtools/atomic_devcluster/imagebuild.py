"""`make images`: build the operator and runtime images from the repository's Dockerfiles.

The base is a build argument. Where `python:3.12-slim` is present or can be pulled, it is
used; machines that reach no registry get a base made from Debian's packages by
`hack/debian-base.sh` (debootstrap + `docker import`, kept in the engine's data under the
cache). The host's CA bundle goes to the build stage as a BuildKit secret, never into a
layer. Each image is also saved as a tarball in the cache, which the real node imports into
its containerd (no registry involved).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from atomic_devcluster.build import BuildError, _log
from atomic_devcluster.engine import Engine, docker_engine
from atomic_devcluster.versions import cache_dir

REPO = Path(__file__).resolve().parents[2]
OFFICIAL_BASE = "python:3.12-slim"
DEBIAN_BASE = "atomic-operator/python-base:trixie"
PULL_TIMEOUT = 30.0


@dataclass(frozen=True)
class ShippedImage:
    """One image the project ships: its tag, its Dockerfile and its size budget."""

    tag: str
    dockerfile: str
    max_mb: int

    @property
    def tarball(self) -> Path:
        return images_dir() / (self.tag.replace("/", "_").replace(":", "_") + ".tar")


OPERATOR_IMAGE = ShippedImage("atomic-operator:dev", "Dockerfile", 250)
RUNTIME_IMAGE = ShippedImage("atomic-agent-runtime:dev", "agent_image/Dockerfile", 300)
SHIPPED = (OPERATOR_IMAGE, RUNTIME_IMAGE)


@dataclass(frozen=True)
class Built:
    image: ShippedImage
    image_id: str
    size_mb: float
    seconds: float


def images_dir() -> Path:
    return cache_dir() / "images"


def host_ca_bundle() -> Path | None:
    """The CA bundle pip on this host trusts (intercepting proxies put their CA in it)."""
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"),
                      os.environ.get("REQUESTS_CA_BUNDLE"),
                      "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _has(engine: Engine, tag: str) -> bool:
    return engine.docker("image", "inspect", tag, check=False).returncode == 0


def choose_base(engine: Engine, explicit: str | None = None) -> str:
    """The official slim Python where a registry answers, else the Debian-made base."""
    if explicit:
        return explicit
    for tag in (OFFICIAL_BASE, DEBIAN_BASE):
        if _has(engine, tag):
            return tag
    try:
        if engine.docker("pull", "-q", OFFICIAL_BASE, check=False,
                         timeout=PULL_TIMEOUT).returncode == 0:
            return OFFICIAL_BASE
    except subprocess.TimeoutExpired:
        pass
    _log(f"no registry answers: making {DEBIAN_BASE} from Debian's packages (about a minute)")
    proc = subprocess.run([str(REPO / "hack" / "debian-base.sh"), DEBIAN_BASE], env=engine.env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"hack/debian-base.sh failed:\n{proc.stderr[-3000:]}")
    return DEBIAN_BASE


def build_image(engine: Engine, image: ShippedImage, base: str) -> Built:
    started = time.monotonic()
    args = ["build", "--network=host", f"--build-arg=BASE_IMAGE={base}",
            f"--file={REPO / image.dockerfile}", f"--tag={image.tag}"]
    ca = host_ca_bundle()
    if ca is not None:
        args.append(f"--secret=id=build-ca,src={ca}")
    engine.docker(*args, str(REPO))
    image_id = engine.docker("image", "inspect", "--format={{.Id}}", image.tag
                             ).stdout.decode().strip()
    size = int(engine.docker("image", "inspect", "--format={{.Size}}", image.tag
                             ).stdout.decode().strip())
    _save(engine, image, image_id)
    return Built(image, image_id, size / 1e6, time.monotonic() - started)


def _save(engine: Engine, image: ShippedImage, image_id: str) -> None:
    """Keep a tarball beside its image id; saving an unchanged image again is skipped."""
    stamp = image.tarball.with_suffix(".id")
    if image.tarball.exists() and stamp.exists() and stamp.read_text() == image_id:
        return
    images_dir().mkdir(parents=True, exist_ok=True)
    partial = image.tarball.with_suffix(".partial")
    engine.docker("save", f"--output={partial}", image.tag)
    partial.replace(image.tarball)
    stamp.write_text(image_id)


def build_shipped(base: str | None = None) -> list[Built]:
    with docker_engine() as engine:
        chosen = choose_base(engine, base)
        _log(f"base image: {chosen}")
        return [build_image(engine, image, chosen) for image in SHIPPED]


def tarballs_ready() -> bool:
    return all(image.tarball.exists() for image in SHIPPED)
