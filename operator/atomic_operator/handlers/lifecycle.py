"""Start-up and clean-up: operator settings, the API client and the metrics server."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from atomic_operator import GROUP
from atomic_operator.bookkeeping import DigestDiffBaseStorage
from atomic_operator.handlers.types import Logger
from atomic_operator.k8s.login import client_for
from atomic_operator.metrics import serve
from atomic_operator.runner import AgentReconciler
from atomic_operator.settings import OperatorSettings
from atomic_operator.webhook.server import webhook_endpoint
from atomic_operator.webhook.settings import WebhookSettings


def _login(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    info = (kopf.login_with_service_account(settings=settings)
            or kopf.login_with_kubeconfig(settings=settings))
    if info is None:
        raise kopf.PermanentError("no credentials: neither in-cluster nor a kubeconfig")
    return info


@kopf.on.startup()
async def startup(*, settings: kopf.OperatorSettings, memo: Any, logger: Logger,
                  **_: Any) -> None:
    ours = OperatorSettings.from_env()
    # kopf's bookkeeping lives under our own API group, not kopf.zalando.org.
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = DigestDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    webhook = WebhookSettings.from_env()
    settings.admission.server = webhook_endpoint(webhook)
    settings.admission.managed = webhook.configuration if webhook.enabled else None
    # Reconnect watches every few minutes: long-lived streams die silently behind proxies.
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    # One worker per object is kopf's model; cap them so a flood of objects cannot
    # exhaust memory or the API server's priority-and-fairness budget.
    settings.queueing.worker_limit = 200
    # Our own events say what matters; kopf's per-handler "succeeded" events are noise.
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = 4

    client = client_for(_login(settings))
    memo.reconciler = AgentReconciler.create(client, ours)
    serve(ours.metrics_port)
    logger.info("atomic-operator started: runtime image %s, metrics on :%s, webhook %s",
                ours.runtime_image, ours.metrics_port,
                f"on :{webhook.port} ({webhook.failure_policy})" if webhook.enabled else "off")


@kopf.on.cleanup()
async def cleanup(*, memo: Any, **_: Any) -> None:
    reconciler: AgentReconciler | None = memo.get("reconciler")
    if reconciler is not None:
        await reconciler.client.close()
