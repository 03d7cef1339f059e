"""The resource metrics API (metrics.k8s.io) on the real node: metrics-server as a host
process scraping the kubelet, registered with the API server's aggregator.

metrics-server is an aggregated API server: the API server proxies `pods.metrics.k8s.io`
to it, authenticating as the front proxy (a client certificate the harness makes, see
`front_proxy_flags`), and metrics-server reads who the caller is from the request headers.
It listens on the node's bridge address; a Service without a selector and an Endpoints
object name that address for the aggregator. This is what makes an HPA's CPU target work
here (`kubectl top pods` too).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from atomic_devcluster.realnode import GATEWAY

SERVICE = "metrics-server"
NAMESPACE = "kube-system"
API_SERVICE = "v1beta1.metrics.k8s.io"
FRONT_PROXY_CLIENT = "front-proxy-client"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def front_proxy_flags(certs: Path) -> list[str]:
    """Make the front proxy's CA and client certificate; the API server's flags for them."""
    ca_key, ca = certs / "front-proxy-ca.key", certs / "front-proxy-ca.crt"
    key, csr, crt = (certs / f"front-proxy-client.{ext}" for ext in ("key", "csr", "crt"))
    ext = certs / "front-proxy-client.ext"
    ext.write_text("extendedKeyUsage=clientAuth\n")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
             "-out", str(ca), "-days", "30", "-subj", "/CN=front-proxy-ca")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
             "-subj", f"/CN={FRONT_PROXY_CLIENT}")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(crt), "-days", "30", "-extfile", str(ext))
    return [
        f"--requestheader-client-ca-file={ca}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={crt}",
        f"--proxy-client-key-file={key}",
        # the aggregator calls an endpoint's address, not the Service's ClusterIP
        "--enable-aggregator-routing=true",
    ]


def metrics_server_argv(binary: Path, kubeconfig: Path, home: Path, port: int) -> list[str]:
    return [str(binary), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={GATEWAY}", f"--secure-port={port}",
            f"--cert-dir={home / 'metrics-server'}",
            # the kubelet's serving certificate is self-signed; it listens on the bridge
            "--kubelet-insecure-tls", "--kubelet-preferred-address-types=InternalIP",
            "--kubelet-use-node-status-port", "--metric-resolution=10s",
            "--kubelet-request-timeout=5s"]  # must be shorter than the resolution


def wait_available(kubectl: Callable[..., subprocess.CompletedProcess[str]],
                   alive: Callable[[], str | None], api_service: str = API_SERVICE,
                   timeout: float = 60.0) -> None:
    """Until the aggregator says the APIService is Available; raise with why if it is not
    (`alive` returns the server's log tail once it has exited)."""
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        exited = alive()
        if exited is not None:
            raise RuntimeError(f"the server of {api_service} exited:\n{exited}")
        status = kubectl("get", "apiservice", api_service, "-o",
                         "jsonpath={.status.conditions[?(@.type=='Available')].status}",
                         check=False).stdout
        if status == "True":
            return
        time.sleep(0.5)
    raise RuntimeError(f"APIService {api_service} not Available after {timeout:.0f} s")


def register(kubectl: Callable[..., subprocess.CompletedProcess[str]], port: int,
             service: str = SERVICE,
             apis: tuple[tuple[str, str], ...] = (("metrics.k8s.io", "v1beta1"),)) -> None:
    """A Service, its endpoint on the bridge, and an APIService per (group, version) of an
    aggregated API server running on this machine at `port`."""
    docs: list[dict[str, object]] = [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": service, "namespace": NAMESPACE},
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]}},
        {"apiVersion": "v1", "kind": "Endpoints",
         "metadata": {"name": service, "namespace": NAMESPACE},
         "subsets": [{"addresses": [{"ip": GATEWAY}],
                      "ports": [{"name": "https", "port": port}]}]},
    ]
    docs += [{"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
              "metadata": {"name": f"{version}.{group}"},
              "spec": {"service": {"name": service, "namespace": NAMESPACE, "port": 443},
                       "group": group, "version": version, "insecureSkipTLSVerify": True,
                       "groupPriorityMinimum": 100, "versionPriority": 100}}
             for group, version in apis]
    kubectl("apply", "-f", "-", input_text=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": docs}))
