"""One real node: containerd, CoreDNS, kube-proxy and the kubelet, started and undone.

`prepare()` runs before the API server (it binds to the bridge's address), `start()` after
the controllers, `stop()` first of all. A node that died hard (the test run was killed)
is undone by the next `prepare()`, from the state file it left in the cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import yaml

from atomic_devcluster.build import ensure_binaries
from atomic_devcluster.debian import ensure_programs
from atomic_devcluster.lifetime import die_with_parent
from atomic_devcluster.processes import Component, free_port
from atomic_devcluster.realnode import (
    CLUSTER_DOMAIN,
    GATEWAY,
    NODE_NAME,
    PAUSE_IMAGE,
    POD_SUBNET,
    containerd,
    custom_metrics,
    kernel,
    metrics_api,
    network,
)
from atomic_devcluster.realnode.binaries import NodeBinaries, ensure_node_binaries
from atomic_devcluster.realnode.pause_image import write_pause_archive
from atomic_devcluster.tools import ensure_prometheus
from atomic_devcluster.versions import cache_dir

NODE_PROGRAMS = {"containerd": "containerd", "ctr": "containerd", "runc": "runc",
                 "nft": "nftables", "iptables": "iptables", "ip": "iproute2"}


class NodeError(RuntimeError):
    """The real node could not start; the message quotes the failing component's log."""


@dataclass
class RealNode:
    """The node's processes and files; `home` is its directory inside the cluster's."""

    home: Path
    images: Sequence[Path] = ()
    binaries: NodeBinaries | None = None
    timings: dict[str, float] = field(default_factory=dict)
    _procs: list[Component] = field(default_factory=list)
    _lock: IO[str] | None = None

    @property
    def socket(self) -> Path:
        return self.home / "containerd.sock"

    # -- lifecycle -------------------------------------------------------------------

    def prepare(self) -> None:
        """Take the machine's one node slot, undo a dead node's leftovers, make the bridge."""
        ensure_programs(NODE_PROGRAMS)
        self.binaries = self.binaries or ensure_node_binaries()
        lock_path = cache_dir() / "realnode.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = lock_path.open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NodeError("another real node runs on this machine (it holds "
                            f"{lock_path}); one at a time") from None
        _undo_recorded(_state_path())
        self.home.mkdir(parents=True, exist_ok=True)
        _state_path().write_text(json.dumps({"home": str(self.home)}))
        network.remove_rules()
        network.make_bridge()

    def start(self, kubeconfig: Path, kubectl: Callable[..., subprocess.CompletedProcess[str]]
              ) -> None:
        assert self.binaries is not None
        started = time.monotonic()
        self._start_containerd()
        self._import_images()
        self.timings["images imported"] = time.monotonic() - started
        self._start_coredns(kubeconfig)
        self._start_kube_proxy(kubeconfig)
        self._start_kubelet(kubeconfig)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.popen.poll() is not None:
                    raise NodeError(f"{proc.name} exited with {proc.popen.returncode}:\n"
                                    f"{proc.tail()}")
            ready = kubectl("get", "node", NODE_NAME, "-o",
                            "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                            check=False).stdout
            if ready == "True":
                self.timings["node Ready"] = time.monotonic() - started
                break
            time.sleep(0.3)
        else:
            raise NodeError(f"node {NODE_NAME} not Ready after 120 s:\n"
                            f"{self._procs[-1].tail()}")
        self._start_metrics_server(kubeconfig, kubectl)
        self._start_custom_metrics(kubeconfig, kubectl)

    def stop(self) -> None:
        """Stop every container and component, then undo mounts, cgroups, rules, bridge."""
        if self.socket.exists():
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                containerd.kill_all_tasks(self.socket)
        for proc in reversed(self._procs):
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in reversed(self._procs):
            try:
                proc.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        self._procs.clear()
        _undo(self.home)
        _state_path().unlink(missing_ok=True)
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # -- components --------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> Component:
        log = self.home / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            # a harness that dies hard takes the components with it; the containers they
            # leave are undone by the next prepare()
            popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=die_with_parent(signal.SIGKILL))
        proc = Component(name, popen, log)
        self._procs.append(proc)
        return proc

    def _start_containerd(self) -> None:
        assert self.binaries is not None
        config = self.home / "containerd.toml"
        network.write_cni_config(self.home / "cni" / "net.d", self.home / "cni" / "ipam")
        containerd.write_config(config, root=self.home / "containerd" / "root",
                                state=self.home / "containerd" / "state", socket=self.socket,
                                cni_bin=self.binaries.cni_dir,
                                cni_conf=self.home / "cni" / "net.d")
        proc = self._spawn("containerd", [containerd.CONTAINERD, f"--config={config}"])
        deadline = time.monotonic() + 30
        while containerd.ctr(self.socket, "version", check=False, timeout=5).returncode:
            if proc.popen.poll() is not None or time.monotonic() > deadline:
                raise NodeError(f"containerd did not start:\n{proc.tail()}")
            time.sleep(0.1)

    def _import_images(self) -> None:
        assert self.binaries is not None
        pause = self.home / "pause.tar"
        write_pause_archive(self.binaries.pause, PAUSE_IMAGE, pause)
        for archive in (pause, *self.images):
            containerd.import_image(self.socket, archive)

    def _start_coredns(self, kubeconfig: Path) -> None:
        assert self.binaries is not None
        corefile = self.home / "Corefile"
        corefile.write_text(f"""\
.:53 {{
    bind {GATEWAY}
    errors
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
""")
        self._spawn("coredns", [str(self.binaries.coredns), "-conf", str(corefile)])

    def _start_metrics_server(self, kubeconfig: Path,
                              kubectl: Callable[..., subprocess.CompletedProcess[str]]) -> None:
        assert self.binaries is not None
        started = time.monotonic()
        port = free_port()
        proc = self._spawn("metrics-server", metrics_api.metrics_server_argv(
            self.binaries.metrics_server, kubeconfig, self.home, port))
        metrics_api.register(kubectl, port)
        try:
            metrics_api.wait_available(
                kubectl, lambda: proc.tail() if proc.popen.poll() is not None else None)
        except RuntimeError as err:
            raise NodeError(str(err)) from None
        self.timings["metrics API available"] = time.monotonic() - started

    def _start_custom_metrics(self, kubeconfig: Path,
                              kubectl: Callable[..., subprocess.CompletedProcess[str]]) -> None:
        assert self.binaries is not None
        started = time.monotonic()
        prometheus_port, port = free_port(), free_port()
        self._spawn("targets", custom_metrics.targets_argv(
            ensure_binaries().kubectl, kubeconfig, self.home))
        self._spawn("prometheus", custom_metrics.prometheus_argv(
            ensure_prometheus(), self.home, prometheus_port))
        proc = self._spawn("prometheus-adapter", custom_metrics.adapter_argv(
            self.binaries.prometheus_adapter, kubeconfig, self.home, port, prometheus_port))
        metrics_api.register(kubectl, port, custom_metrics.SERVICE, custom_metrics.APIS)
        try:
            metrics_api.wait_available(
                kubectl, lambda: proc.tail() if proc.popen.poll() is not None else None,
                custom_metrics.API_SERVICE)
        except RuntimeError as err:
            raise NodeError(str(err)) from None
        self.timings["custom metrics API available"] = time.monotonic() - started

    def _start_kube_proxy(self, kubeconfig: Path) -> None:
        assert self.binaries is not None
        config = self.home / "kube-proxy.yaml"
        config.write_text(yaml.safe_dump({
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "hostnameOverride": NODE_NAME,
            "mode": "nftables",
            "clusterCIDR": POD_SUBNET,
            "healthzBindAddress": f"127.0.0.1:{free_port()}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            "nodePortAddresses": [f"{GATEWAY}/32"],
            # pod -> Service -> pod on the same bridge: replies must come back through the
            # node, or conntrack never sees them
            "nftables": {"masqueradeAll": True},
            # leave the machine's conntrack sysctls as they are
            "conntrack": {"maxPerCore": 0, "min": 0},
            "oomScoreAdj": 0,
        }))
        self._spawn("kube-proxy", [str(self.binaries.kube_proxy), f"--config={config}"])

    def _start_kubelet(self, kubeconfig: Path) -> None:
        assert self.binaries is not None
        root = self.home / "kubelet"
        root.mkdir(parents=True, exist_ok=True)
        resolv = self.home / "resolv.conf"
        resolv.write_text("")  # pods resolve through cluster DNS only: nothing upstream
        config = self.home / "kubelet.yaml"
        config.write_text(yaml.safe_dump({
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "address": GATEWAY,
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            # the API server reaches the kubelet on the bridge only; the harness's cluster
            # is single-user, so the kubelet's API is open to it without certificates
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            # this kernel: cgroup v1 (the kubelet refuses it unless told), no systemd, swap
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "clusterDNS": [GATEWAY],
            "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": str(resolv),
            "podLogsDir": str(self.home / "pod-logs"),
            # never evict or collect images for a busy disk: the images come from no registry
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "maxPods": 110,
        }))
        self._spawn("kubelet", [
            str(self.binaries.kubelet), f"--config={config}", f"--kubeconfig={kubeconfig}",
            f"--root-dir={root}", f"--hostname-override={NODE_NAME}", f"--node-ip={GATEWAY}",
            "--v=1",
        ])


def _state_path() -> Path:
    return cache_dir() / "realnode.json"


def _undo(home: Path) -> None:
    # every component and shim names a path under home on its command line
    kernel.kill_cmdline_containing(str(home))
    kernel.kill_pod_processes()
    kernel.unmount_under(home)
    kernel.remove_pod_cgroups()
    network.remove_rules()
    network.remove_bridge()
    for link in Path("/var/log/containers").glob("*.log"):
        try:
            if str(home) in str(link.readlink()):
                link.unlink()
        except OSError:
            pass
    plugins = Path("/var/lib/kubelet/device-plugins")
    (plugins / "kubelet.sock").unlink(missing_ok=True)
    shutil.rmtree(home / "containerd", ignore_errors=True)


def _undo_recorded(state: Path) -> None:
    """Undo a node that died without stopping (its state file is still there)."""
    if not state.exists():
        return
    try:
        recorded = json.loads(state.read_text())
    except ValueError:
        recorded = {}
    if recorded.get("home"):
        _undo(Path(recorded["home"]))
    state.unlink(missing_ok=True)
