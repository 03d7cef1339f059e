"""Start-up and clean-up: operator settings, the API client and the metrics server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import kopf

from atomic_operator import GROUP, heap
from atomic_operator.autoscaler.controller import Autoscalers
from atomic_operator.bookkeeping import ObservedGenerationDiffBase
from atomic_operator.compat.kopf import UnbrandedProgressStorage
from atomic_operator.handlers.types import Logger
from atomic_operator.k8s import KubeClient
from atomic_operator.k8s.credentials import Credentials, CredentialsError
from atomic_operator.metrics import serve
from atomic_operator.runner import AgentReconciler
from atomic_operator.settings import OperatorSettings
from atomic_operator.webhook.server import webhook_endpoint
from atomic_operator.webhook.settings import WebhookSettings


def _credentials(memo: Any) -> Credentials:
    """One Credentials per process, made by whichever of login or startup runs first."""
    if memo.get("credentials") is None:
        try:
            memo.credentials = Credentials()
        except CredentialsError as err:
            raise kopf.PermanentError(str(err)) from err
    credentials: Credentials = memo.credentials
    return credentials


@kopf.on.login()
def login(*, memo: Any, logger: Logger, **_: Any) -> kopf.ConnectionInfo:
    """kopf's own client logs in here: first at start, again whenever the API server
    refuses its token (then the token is loaded afresh: a rotated file, a new exec run)."""
    credentials = _credentials(memo)
    if memo.get("logged_in"):
        now = credentials.reload()
        logger.info("credentials reloaded after the API server refused them")
    else:
        now = credentials.current()
        memo.logged_in = True
    return kopf.ConnectionInfo(
        server=now.server, ca_path=now.ca_path, insecure=now.insecure, token=now.token,
        certificate_path=now.cert_path, private_key_path=now.key_path)


@kopf.on.startup()
async def startup(*, settings: kopf.OperatorSettings, memo: Any, logger: Logger,
                  **_: Any) -> None:
    ours = OperatorSettings.from_env()
    # kopf's bookkeeping lives under our own API group, not kopf.zalando.org.
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = UnbrandedProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = ObservedGenerationDiffBase()
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

    credentials = _credentials(memo)
    now = credentials.current()
    cert = (now.cert_path, now.key_path) if now.cert_path and now.key_path else None
    client = KubeClient.connect(now.server, ca_path=now.ca_path, insecure=now.insecure,
                                client_cert=cert, tokens=credentials)
    # one pooled session for every scrape of every autoscaled agent; HTTP(S)_PROXY and
    # NO_PROXY are honoured (add the pod CIDR to NO_PROXY where a proxy is set)
    scrapes = aiohttp.ClientSession(
        trust_env=True, connector=aiohttp.TCPConnector(limit=256, limit_per_host=4))
    memo.reconciler = AgentReconciler.create(
        client, ours, Autoscalers(scrapes, warning_seconds=ours.metrics_warning_seconds))
    memo.background_tasks = {}  # loops handlers start (handlers/references.py)
    serve(ours.metrics_port)
    heap.settle()
    logger.info("atomic-operator started: runtime image %s, metrics on :%s, webhook %s",
                ours.runtime_image, ours.metrics_port,
                f"on :{webhook.port} ({webhook.failure_policy})" if webhook.enabled else "off")


@kopf.on.cleanup()
async def cleanup(*, memo: Any, **_: Any) -> None:
    tasks: dict[str, asyncio.Task[None]] = memo.get("background_tasks") or {}
    for task in tasks.values():  # before the client they use is closed
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    reconciler: AgentReconciler | None = memo.get("reconciler")
    if reconciler is not None:
        await reconciler.cancel_later()  # held follows and pod checks use the client too
        await reconciler.client.close()
        if reconciler.autoscalers is not None:
            await reconciler.autoscalers.session.close()
