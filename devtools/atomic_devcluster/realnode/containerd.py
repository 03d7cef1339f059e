"""containerd as the node's CRI runtime: Debian's 1.6, its own socket, root and state.

Settings this machine needs, found by trying:
- `restrict_oom_score_adj = true`: the capability bounding set lacks CAP_SYS_RESOURCE, so
  runc cannot give a container a negative oom_score_adj (the kubelet asks for one for
  Guaranteed pods) and the container would fail to start;
- `SystemdCgroup = false`: there is no systemd; the kubelet uses the cgroupfs driver too;
- `netns_mounts_under_state_dir = true`: pod network namespaces live under our state
  directory, so the cleanup finds them;
- the sandbox image is the locally made pause (no registry), and the CNI binaries and
  configuration are ours.
The root directory (images and snapshots) is per cluster: images are imported at start
from the tarballs `make images` saved, so nothing from an earlier run leaks in.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from atomic_devcluster.realnode import PAUSE_IMAGE

CONTAINERD = "containerd"
CTR = "ctr"
NAMESPACE = "k8s.io"  # the CRI plugin's namespace: the kubelet sees images imported there


def write_config(path: Path, root: Path, state: Path, socket: Path, cni_bin: Path,
                 cni_conf: Path) -> None:
    path.write_text(f"""\
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
""")


def ctr(socket: Path, *args: str, check: bool = True, timeout: float = 300
        ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([CTR, f"--address={socket}", f"--namespace={NAMESPACE}", *args],
                          capture_output=True, text=True, check=False, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ctr {' '.join(args[:3])} failed: {proc.stderr.strip()[-2000:]}")
    return proc


def import_image(socket: Path, archive: Path) -> None:
    ctr(socket, "images", "import", str(archive))


def kill_all_tasks(socket: Path) -> None:
    """SIGKILL every container's task, so the shims exit and their mounts go."""
    listed = ctr(socket, "tasks", "ls", "-q", check=False, timeout=30).stdout.split()
    for task in listed:
        ctr(socket, "tasks", "kill", "--signal=SIGKILL", task, check=False, timeout=30)
    for task in listed:
        ctr(socket, "tasks", "delete", "--force", task, check=False, timeout=30)
