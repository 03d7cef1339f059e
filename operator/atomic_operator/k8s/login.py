"""From credentials kopf resolved (kubeconfig or in-cluster) to our API client."""

from __future__ import annotations

import kopf

from atomic_operator.k8s.client import KubeClient


def client_for(info: kopf.ConnectionInfo, limit: int = 100) -> KubeClient:
    cert = (str(info.certificate_path), str(info.private_key_path)) \
        if info.certificate_path and info.private_key_path else None
    return KubeClient.connect(
        info.server, token=info.token, ca_data=info.ca_data,
        ca_path=str(info.ca_path) if info.ca_path else None, insecure=info.insecure,
        client_cert=cert, limit=limit)


def from_kubeconfig() -> tuple[KubeClient, str]:
    """A client for the current kubeconfig context, and that context's namespace.

    Raises LookupError when there is no kubeconfig to read.
    """
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    if info is None:
        raise LookupError("no kubeconfig: set KUBECONFIG or write ~/.kube/config")
    return client_for(info, limit=4), info.default_namespace or "default"
