"""Runs agent reconciles for the handlers: one at a time per agent, counted, reported.

Reconciles of one agent can be triggered from several kopf workers at once (its own
events, its children's, a Secret's), so each agent has a lock. The status the operator last
wrote is cached, because the copy in kopf's index lags until the watch delivers it; only
the operator writes status, so the cache is always at least as new.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from atomic_operator.k8s import ApiError, KubeClient, resource_path
from atomic_operator.metrics import (
    CHILDREN_APPLIED,
    CHILDREN_DELETED,
    ERRORS,
    RECONCILE_SECONDS,
    RECONCILES,
    STATUS_WRITES,
)
from atomic_operator.reconcile.agent import (
    AgentEnv,
    AgentOutcome,
    reconcile_agent,
    status_from_deployment,
)
from atomic_operator.references import ObjectIndex
from atomic_operator.settings import FIELD_MANAGER, OperatorSettings

Key = tuple[str, str]
MAX_RETRY_DELAY = 300


@dataclass
class AgentReconciler:
    """The operator's long-lived state, kept on kopf's memo."""

    client: KubeClient
    settings: OperatorSettings
    _locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    _status: dict[Key, dict[str, Any]] = field(default_factory=dict)
    _failures: dict[Key, int] = field(default_factory=dict)

    def _lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def with_latest_status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        merged = dict(body)
        merged["status"] = {**(body.get("status") or {}), **self._status.get(key, {})}
        return merged

    def forget(self, key: Key) -> None:
        self._status.pop(key, None)
        self._locks.pop(key, None)
        self._failures.pop(key, None)

    def _backoff(self, key: Key) -> float:
        """2 s after the first failure, doubling to at most 5 minutes."""
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        return float(min(2 ** failures, MAX_RETRY_DELAY))

    async def reconcile(self, body: Mapping[str, Any], *, trigger: str,
                        secrets: ObjectIndex, config_maps: ObjectIndex,
                        existing_optional: frozenset[str], logger: logging.Logger | Any
                        ) -> AgentOutcome:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        env = AgentEnv(self.client, self.settings, secrets, config_maps, existing_optional)
        started = time.perf_counter()
        async with self._lock(key):
            latest = self.with_latest_status(body)
            try:
                outcome = await reconcile_agent(env, latest)
            except ApiError as err:
                RECONCILES.labels("AtomicAgent", trigger, "error").inc()
                ERRORS.labels("AtomicAgent", err.reason or str(err.status)).inc()
                # Conflicts and server hiccups pass; kopf retries, backing off while the
                # same agent keeps failing so a lasting fault is no retry storm.
                raise kopf.TemporaryError(f"API error: {err}", delay=self._backoff(key)) \
                    from err
            finally:
                RECONCILE_SECONDS.labels("AtomicAgent").observe(time.perf_counter() - started)
            self._failures.pop(key, None)
            self._remember(key, latest, outcome)
        self._report(body, trigger, outcome, logger)
        return outcome

    async def refresh_status(self, body: Mapping[str, Any], deployment: Mapping[str, Any]
                             ) -> None:
        """Follow a Deployment's status into its agent's status, without re-applying."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        async with self._lock(key):
            latest = self.with_latest_status(body)
            patch = status_from_deployment(latest, deployment)
            if not patch:
                return
            path = resource_path(latest["apiVersion"], "AtomicAgent", key[0], key[1], "status")
            try:
                await self.client.merge_patch(path, {"status": patch}, FIELD_MANAGER)
            except ApiError as err:
                if err.status == 404:
                    return
                raise kopf.TemporaryError(f"API error: {err}", delay=1) from err
            STATUS_WRITES.labels("AtomicAgent").inc()
            self._status[key] = {**self._status.get(key, {}), **patch}

    def _remember(self, key: Key, latest: Mapping[str, Any], outcome: AgentOutcome) -> None:
        if outcome.status_patch:
            STATUS_WRITES.labels("AtomicAgent").inc()
            self._status[key] = {**(latest.get("status") or {}), **outcome.status_patch}

    @staticmethod
    def _report(body: Mapping[str, Any], trigger: str, outcome: AgentOutcome,
                logger: logging.Logger | Any) -> None:
        RECONCILES.labels("AtomicAgent", trigger, outcome.result).inc()
        for kind in outcome.applied:
            CHILDREN_APPLIED.labels("AtomicAgent", kind).inc()
        for kind in outcome.deleted:
            CHILDREN_DELETED.labels("AtomicAgent", kind).inc()
        for problem in outcome.problems:
            ERRORS.labels("AtomicAgent", problem.reason).inc()
        for type_, reason, message in outcome.events:
            kopf.event(body, type=type_, reason=reason, message=message)  # type: ignore[arg-type]
        if outcome.problems:
            logger.warning("spec problems: %s", "; ".join(map(str, outcome.problems)))
        elif outcome.applied:
            logger.info("reconciled (%s): applied %s", trigger, ", ".join(outcome.applied))
