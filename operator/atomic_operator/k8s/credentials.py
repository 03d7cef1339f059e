"""Where the operator's credentials come from, and how they stay current.

The official `kubernetes` client loads them: in a pod, the projected service-account token
(`InClusterConfigLoader`), else the kubeconfig with everything it can say (exec plugins,
as EKS, GKE and AKS logins use; token files; client certificates). It is used only to load
and refresh; requests go through kopf's client and our aiohttp one, which ask `current()`
for the header each time.

Tokens change under a running operator: the kubelet rewrites the projected token file
well before it expires, and exec plugins hand out short-lived tokens. `current()` follows
the library's own refresh (an in-cluster token is re-read every minute, an exec token when
its expirationTimestamp passes), and `reload()`, called after a 401, loads everything
afresh at once: a revoked token is replaced by the one on disk now, or by a new run of the
exec plugin.
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from kubernetes.client import Configuration
from kubernetes.config import ConfigException, load_kube_config
from kubernetes.config.incluster_config import (
    SERVICE_HOST_ENV_NAME,
    SERVICE_PORT_ENV_NAME,
    InClusterConfigLoader,
)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SERVICE_ACCOUNT_DIR_ENV = "ATOMIC_OPERATOR_SERVICE_ACCOUNT_DIR"


class CredentialsError(RuntimeError):
    """Neither an in-cluster service account nor a usable kubeconfig."""


@dataclass(frozen=True)
class Snapshot:
    """The credentials as they are now."""

    server: str
    token: str | None
    ca_path: str | None
    cert_path: str | None
    key_path: str | None
    insecure: bool
    in_cluster: bool


class Credentials:
    """The operator's identity against one API server; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._config, self._in_cluster = _load()

    def current(self) -> Snapshot:
        with self._lock:
            hook = self._config.refresh_api_key_hook
            if hook is not None:
                hook(self._config)
            return _snapshot(self._config, self._in_cluster)

    def reload(self) -> Snapshot:
        """Load afresh (after a 401): the token file is re-read, the exec plugin re-run."""
        config, in_cluster = _load()
        with self._lock:
            self._config, self._in_cluster = config, in_cluster
        return self.current()

    # KubeClient's BearerSource
    def bearer(self) -> str | None:
        return self.current().token

    async def refresh(self) -> None:
        await asyncio.to_thread(self.reload)


def service_account_dir() -> Path:
    return Path(os.environ.get(SERVICE_ACCOUNT_DIR_ENV) or SERVICE_ACCOUNT_DIR)


def _load() -> tuple[Configuration, bool]:
    config = Configuration()
    folder = service_account_dir()
    if os.environ.get(SERVICE_HOST_ENV_NAME) and os.environ.get(SERVICE_PORT_ENV_NAME) \
            and (folder / "token").is_file():
        loader = InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=str(folder / "token"), cert_filename=str(folder / "ca.crt"),
            try_refresh_token=True)
        loader.load_and_set(config)  # type: ignore[no-untyped-call]
        return config, True
    try:
        load_kube_config(  # type: ignore[no-untyped-call]
            client_configuration=config, persist_config=False)
    except (ConfigException, OSError) as err:
        raise CredentialsError(f"no credentials: not in a pod ({folder}/token) and no usable "
                            f"kubeconfig: {err}") from err
    return config, False


def _snapshot(config: Configuration, in_cluster: bool) -> Snapshot:
    header = config.api_key.get("BearerToken") or config.api_key.get("authorization")
    token = header.split(" ", 1)[1] if header and " " in header else header
    return Snapshot(
        server=str(config.host).rstrip("/"),
        token=token or None,
        ca_path=config.ssl_ca_cert or None,
        cert_path=config.cert_file or None,
        key_path=config.key_file or None,
        insecure=not config.verify_ssl,
        in_cluster=in_cluster,
    )
