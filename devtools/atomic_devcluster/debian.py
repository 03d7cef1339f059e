"""Programs from Debian's packages that the harness needs, installed when missing.

The images and the real node use a few system programs (dockerd, debootstrap, containerd,
nft, iptables, ip). A fresh machine may lack them; as root on Debian they are installed on
first use, so `make images` and the tests need no manual step. Anywhere else the error
names the package to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from atomic_devcluster.build import BuildError, _log


def ensure_programs(programs: dict[str, str]) -> None:
    """Install the Debian package of each program (name -> package) not on PATH."""
    missing = sorted({pkg for prog, pkg in programs.items() if shutil.which(prog) is None})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BuildError(f"missing programs {sorted(programs)}: install Debian's "
                         f"{' '.join(missing)} (as root) or their equivalents")
    _log(f"installing Debian's {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BuildError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
