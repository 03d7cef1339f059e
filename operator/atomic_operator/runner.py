"""Runs agent reconciles for the handlers: one at a time per agent, counted, reported.

Reconciles of one agent can be triggered from several kopf workers at once (its own
events, its children's, a Secret's), so each agent has a lock. Status goes through the one
`StatusWriter`, which also gives each reconcile the status the operator last wrote (kopf's
copies lag behind it until the watch delivers it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from atomic_operator.k8s import ApiError, KubeClient, gone_with_namespace, resource_path
from atomic_operator.metrics import (
    CHILDREN_APPLIED,
    CHILDREN_DELETED,
    ERRORS,
    RECONCILE_SECONDS,
    RECONCILES,
)
from atomic_operator.reconcile.agent import (
    AgentEnv,
    AgentOutcome,
    follow_deployment,
    reconcile_agent,
)
from atomic_operator.reconcile.status_writer import Event, StatusWriter
from atomic_operator.references import ObjectIndex, key_digests, secret_names
from atomic_operator.replicas import ExternalAutoscaler
from atomic_operator.settings import OperatorSettings

Key = tuple[str, str]
MAX_RETRY_DELAY = 300


def kopf_event(body: Mapping[str, Any], event: Event) -> None:
    """Post an event through kopf's queue (only inside a running operator)."""
    type_, reason, message = event
    kopf.event(body, type=type_, reason=reason, message=message[:1000])  # type: ignore[arg-type]


@dataclass
class AgentReconciler:
    """The operator's long-lived state, kept on kopf's memo."""

    client: KubeClient
    settings: OperatorSettings
    writer: StatusWriter
    _locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    _secrets_used: dict[Key, dict[Key, dict[str, str]]] = field(default_factory=dict)
    _failures: dict[Key, int] = field(default_factory=dict)
    _other_locks: dict[tuple[str, str, str], asyncio.Lock] = field(default_factory=dict)

    @classmethod
    def create(cls, client: KubeClient, settings: OperatorSettings) -> AgentReconciler:
        return cls(client, settings, StatusWriter(client, kopf_event))

    def _lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def lock(self, body: Mapping[str, Any]) -> asyncio.Lock:
        """The lock of any other object the operator writes status for (a pipeline)."""
        meta = body["metadata"]
        return self._other_locks.setdefault(
            (str(body.get("kind")), meta["namespace"], meta["name"]), asyncio.Lock())

    def forget_lock(self, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        self._other_locks.pop((str(body.get("kind")), meta["namespace"], meta["name"]), None)

    def forget(self, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        self.writer.forget(body)
        self._locks.pop((meta["namespace"], meta["name"]), None)
        self._secrets_used.pop((meta["namespace"], meta["name"]), None)
        self._failures.pop((meta["namespace"], meta["name"]), None)

    def _backoff(self, key: Key) -> float:
        """2 s after the first failure, doubling to at most 5 minutes."""
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        return float(min(2 ** failures, MAX_RETRY_DELAY))

    def _env(self, secrets: ObjectIndex, config_maps: ObjectIndex,
             existing_optional: frozenset[str], external: tuple[ExternalAutoscaler, ...]
             ) -> AgentEnv:
        return AgentEnv(self.client, self.settings, self.writer, secrets, config_maps,
                        existing_optional, external)

    async def read_secrets(self, body: Mapping[str, Any]) -> dict[Key, dict[str, str]]:
        """Key digests of the Secrets the agent names, read by name now; absent ones are
        left out (the reconcile reports them). Values are digested at once, never kept."""
        namespace = body["metadata"]["namespace"]
        found: dict[Key, dict[str, str]] = {}
        for name in sorted(secret_names(body.get("spec") or {})):
            try:
                secret = await self.client.get(resource_path("v1", "Secret", namespace, name))
            except ApiError as err:
                if err.status == 404:
                    continue
                raise kopf.TemporaryError(f"API error: {err}", delay=2) from err
            found[(namespace, name)] = key_digests(secret.get("data"))
        return found

    async def secrets_changed(self, body: Mapping[str, Any]) -> bool:
        """Whether the agent's Secrets differ from those its last reconcile used."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        used = self._secrets_used.get(key)
        if used is None:
            return False  # not reconciled by this process yet: its own reconcile reads them
        return await self.read_secrets(body) != used

    async def reconcile(self, body: Mapping[str, Any], *, trigger: str,
                        config_maps: ObjectIndex, existing_optional: frozenset[str],
                        external: tuple[ExternalAutoscaler, ...] = (),
                        logger: logging.Logger | Any) -> AgentOutcome:
        meta = body["metadata"]
        secrets = await self.read_secrets(body)
        env = self._env(secrets, config_maps, existing_optional, external)
        outcome = await self._run(body, trigger, lambda: reconcile_agent(env, body), logger)
        self._secrets_used[(meta["namespace"], meta["name"])] = secrets
        return outcome

    async def follow(self, body: Mapping[str, Any], deployment: Mapping[str, Any], *,
                     external: tuple[ExternalAutoscaler, ...] = (),
                     logger: logging.Logger | Any) -> AgentOutcome:
        """Follow a Deployment's state into its agent's status, without re-applying."""
        env = self._env({}, {}, frozenset(), external)
        return await self._run(body, "deployment-changed",
                               lambda: follow_deployment(env, body, deployment), logger)

    async def _run(self, body: Mapping[str, Any], trigger: str,
                   work: Callable[[], Awaitable[AgentOutcome]],
                   logger: logging.Logger | Any) -> AgentOutcome:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        started = time.perf_counter()
        async with self._lock(key):
            try:
                outcome = await work()
            except ApiError as err:
                if gone_with_namespace(err):
                    # The namespace is being deleted: its objects go, nothing to retry.
                    logger.debug("namespace going (%s): %s", trigger, err)
                    return AgentOutcome(result="gone")
                RECONCILES.labels("AtomicAgent", trigger, "error").inc()
                ERRORS.labels("AtomicAgent", err.reason or str(err.status)).inc()
                # Conflicts and server hiccups pass; kopf retries, backing off while the
                # same agent keeps failing so a lasting fault is no retry storm.
                raise kopf.TemporaryError(f"API error: {err}", delay=self._backoff(key)) \
                    from err
            finally:
                RECONCILE_SECONDS.labels("AtomicAgent").observe(time.perf_counter() - started)
            self._failures.pop(key, None)
        self._report(trigger, outcome, logger)
        return outcome

    @staticmethod
    def _report(trigger: str, outcome: AgentOutcome, logger: logging.Logger | Any) -> None:
        if outcome.result != "followed":
            RECONCILES.labels("AtomicAgent", trigger, outcome.result).inc()
        for kind in outcome.applied:
            CHILDREN_APPLIED.labels("AtomicAgent", kind).inc()
        for kind in outcome.deleted:
            CHILDREN_DELETED.labels("AtomicAgent", kind).inc()
        for problem in outcome.problems:
            ERRORS.labels("AtomicAgent", problem.reason).inc()
        if outcome.problems:
            logger.warning("spec problems: %s", "; ".join(map(str, outcome.problems)))
        elif outcome.applied:
            logger.info("reconciled (%s): applied %s", trigger, ", ".join(outcome.applied))
        if outcome.replicas_written is not None:
            logger.info("scaled the Deployment to %d (%s)", outcome.replicas_written, trigger)
