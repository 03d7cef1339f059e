"""The webhook's HTTPS endpoint, handed to kopf (`settings.admission.server`).

kopf's WebhookServer serves the admission requests and yields the client config kopf
writes into the ValidatingWebhookConfiguration. It reports a URL; in a cluster the API
server reaches the operator through a Service instead, so ServiceEndpoint rewrites the
client config into a service reference. The certificate is ours (certs.py) or
cert-manager's: kopf would need the certbuilder extra to make one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf

from atomic_operator.webhook.certs import self_signed
from atomic_operator.webhook.settings import WebhookSettings

SERVICE_PORT = 443


@dataclass(frozen=True)
class ServiceEndpoint:
    """A webhook server whose client config names a Service rather than a URL."""

    server: kopf.WebhookServer
    namespace: str
    name: str

    async def __call__(self, fn: Any) -> AsyncIterator[dict[str, Any]]:
        async for config in self.server(fn):
            out: dict[str, Any] = {"service": {"namespace": self.namespace, "name": self.name,
                                               "port": SERVICE_PORT}}
            if config.get("caBundle"):
                out["caBundle"] = config["caBundle"]
            yield out


class NoEndpoint:
    """The webhook is off: its handlers stay registered but nothing calls them."""

    async def __call__(self, fn: Any) -> AsyncIterator[dict[str, Any]]:
        await asyncio.Event().wait()
        yield {}  # pragma: no cover  (never reached; makes this an async generator)


def _hosts(settings: WebhookSettings) -> list[str]:
    if settings.service:
        namespace, name = settings.service.split("/")
        return [f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local",
                f"{name}.{namespace}", name]
    return [settings.host or "localhost"]


def webhook_endpoint(settings: WebhookSettings) -> Any:
    """What `settings.admission.server` gets for these settings."""
    if not settings.enabled:
        return NoEndpoint()
    if settings.cert_dir:
        folder = Path(settings.cert_dir)
        server = kopf.WebhookServer(addr=settings.listen, port=settings.port,
                                    host=settings.host or None,
                                    certfile=folder / "tls.crt", pkeyfile=folder / "tls.key",
                                    cafile=folder / "ca.crt")
    else:
        cert = self_signed(_hosts(settings))
        server = kopf.WebhookServer(addr=settings.listen, port=settings.port,
                                    host=settings.host or None, certfile=cert.certfile,
                                    pkeyfile=cert.keyfile, cadata=cert.ca_pem)
    if settings.service:
        namespace, name = settings.service.split("/")
        return ServiceEndpoint(server, namespace, name)
    return server
