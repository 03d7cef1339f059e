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
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from atomic_operator.api import AtomicAgent
from atomic_operator.autoscaler.controller import Autoscalers, scale_event
from atomic_operator.autoscaler.scrape import Target
from atomic_operator.conditions import Cond, pod_trouble
from atomic_operator.drift import OwnedFields
from atomic_operator.k8s import ApiError, KubeClient, gone_with_namespace, resource_path
from atomic_operator.k8s.kinds import AGENT, PIPELINE, POD, SECRET
from atomic_operator.metrics import (
    AUTOSCALER_DECISIONS,
    CHILDREN_APPLIED,
    CHILDREN_DELETED,
    ERRORS,
    RECONCILE_SECONDS,
    RECONCILES,
)
from atomic_operator.naming import AGENT_LABEL
from atomic_operator.reconcile.agent import (
    AgentEnv,
    AgentOutcome,
    follow_deployment,
    reconcile_agent,
)
from atomic_operator.reconcile.pipeline_children import PipelineEnv, PipelineResult
from atomic_operator.reconcile.status_writer import Event, StatusWriter
from atomic_operator.references import (
    ObjectIndex,
    key_digests,
    pipeline_tokens,
    secret_names,
)
from atomic_operator.replicas import ExternalAutoscaler, HpaCondition, custom_mode
from atomic_operator.settings import OperatorSettings

Key = tuple[str, str]
MAX_RETRY_DELAY = 300
POD_CHECK_SECONDS = 10.0
"""How long an agent waits for pods before they are read for why (`AgentReconciler.follow`):
longer than a normal rollout's steps, so a healthy rollout costs no read."""
HOLD_SECONDS = 5.0
"""How long a rollout's progress may wait before it is written (`follow_deployment`).
bench/operator_scale.py --agents 300, median of 3 rounds: 1.22 with 5 s, 1.32-1.37 with
2 s (a step still current 2 s on is written after all), 1.33-1.37 holding nothing."""
log = logging.getLogger(__name__)


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
    autoscalers: Autoscalers | None = None
    """The custom autoscalers (custom mode); None in tests that do not need them."""
    _locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    _secrets_used: dict[Key, dict[Key, dict[str, str]]] = field(default_factory=dict)
    _failures: dict[Key, int] = field(default_factory=dict)
    _other_locks: dict[tuple[str, str, str], asyncio.Lock] = field(default_factory=dict)
    _held: dict[Key, asyncio.Task[None]] = field(default_factory=dict)
    owned: OwnedFields = field(default_factory=OwnedFields)
    """What the operator's last apply of each child owned (the child handlers compare)."""
    _pod_trouble: dict[Key, Cond] = field(default_factory=dict)
    """Why an agent's pods are stuck, read from them while it waits for pods."""
    _waiting: set[Key] = field(default_factory=set)
    """Agents whose last follow saw them waiting for pods."""

    @classmethod
    def create(cls, client: KubeClient, settings: OperatorSettings,
               autoscalers: Autoscalers | None = None) -> AgentReconciler:
        return cls(client, settings, StatusWriter(client, kopf_event), autoscalers)

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
        if self.autoscalers is not None:
            self.autoscalers.drop((meta["namespace"], meta["name"]))
        self._failures.pop((meta["namespace"], meta["name"]), None)
        self._pod_trouble.pop((meta["namespace"], meta["name"]), None)
        self._waiting.discard((meta["namespace"], meta["name"]))
        for key in ((meta["namespace"], meta["name"]),
                    (meta["namespace"], f"{POD.kind}/{meta['name']}")):
            held = self._held.pop(key, None)
            if held is not None:
                held.cancel()

    def _backoff(self, key: Key) -> float:
        """2 s after the first failure, doubling to at most 5 minutes."""
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        return float(min(2 ** failures, MAX_RETRY_DELAY))

    def _env(self, secrets: ObjectIndex, config_maps: ObjectIndex,
             existing_optional: frozenset[str], external: tuple[ExternalAutoscaler, ...],
             body: Mapping[str, Any], pipelines: tuple[str, ...] | None = None,
             hpa: HpaCondition | None = None) -> AgentEnv:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        autoscaler = None
        if self.autoscalers is not None:
            if not custom_mode(((body.get("spec") or {}).get("autoscaling") or {}).get("mode")):
                self.autoscalers.drop(key)  # a later custom mode starts afresh
            autoscaler = self.autoscalers.observation(key)
        return AgentEnv(self.client, self.settings, self.writer, secrets, config_maps,
                        existing_optional, external, autoscaler, hpa, pipelines=pipelines,
                        owned=self.owned, pod_trouble=self._pod_trouble.get(key))

    async def read_secrets(self, body: Mapping[str, Any]) -> dict[Key, dict[str, str]]:
        """Key digests of the Secrets the agent names, read by name now; absent ones are
        left out (the reconcile reports them). Values are digested at once, never kept."""
        return await self._read_named(body["metadata"]["namespace"],
                                      secret_names(body.get("spec") or {}))

    async def _read_named(self, namespace: str, names: Iterable[str]
                          ) -> dict[Key, dict[str, str]]:
        found: dict[Key, dict[str, str]] = {}
        for name in sorted(set(names)):
            try:
                secret = await self.client.get(
                    resource_path(SECRET.api_version, SECRET.kind, namespace, name))
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
                        pipelines: tuple[str, ...] | None = None,
                        hpa: HpaCondition | None = None,
                        logger: logging.Logger | Any) -> AgentOutcome:
        meta = body["metadata"]
        secrets = await self.read_secrets(body)
        # the environment is read under the agent's lock (in `work`): the autoscaler's
        # recommendation and last write may change while a reconcile waits for it
        outcome = await self._run(body, trigger, lambda: reconcile_agent(
            self._env(secrets, config_maps, existing_optional, external, body,
                      pipelines, hpa), body), logger)
        self._secrets_used[(meta["namespace"], meta["name"])] = secrets
        return outcome

    async def follow(self, body: Mapping[str, Any], deployment: Mapping[str, Any], *,
                     external: tuple[ExternalAutoscaler, ...] = (),
                     pipelines: tuple[str, ...] | None = None,
                     hpa: HpaCondition | None = None,
                     again: Callable[[], Awaitable[object]] | None = None,
                     hold: bool = True,
                     logger: logging.Logger | Any) -> AgentOutcome:
        """Follow a Deployment's state into its agent's status, without re-applying.
        `again` follows the latest state without holding: with `hold`, a rollout's progress
        is held (`follow_deployment`) and `again` runs HOLD_SECONDS later; while the agent
        waits for pods, they are read POD_CHECK_SECONDS later and `again` says why."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        outcome = await self._run(body, "deployment-changed", lambda: follow_deployment(
            self._env({}, {}, frozenset(), external, body, pipelines, hpa), body,
            self._with_our_write(body, deployment), hold=again is not None and hold), logger)
        if outcome.held and again is not None:
            self._later(key, again)
        if not outcome.waiting_for_pods:
            self._pod_trouble.pop(key, None)
            self._waiting.discard(key)
        elif again is not None:
            self._waiting.add(key)
            self._later((key[0], f"{POD.kind}/{key[1]}"),
                        lambda: self._check_pods(key, again), POD_CHECK_SECONDS)
        return outcome

    async def _check_pods(self, key: Key, again: Callable[[], Awaitable[object]]) -> None:
        """Read the agent's pods (by its label) and follow again if why they are stuck
        changed; `again` reads them again later while the agent still waits for pods. One
        list per waiting agent per POD_CHECK_SECONDS: a normal rollout is done sooner."""
        if key not in self._waiting:
            return  # available meanwhile: nothing to read
        try:
            pods = await self.client.list(resource_path(POD.api_version, POD.kind, key[0]),
                                          {AGENT_LABEL: key[1]})
        except ApiError as err:  # say it, and keep the status the Deployment gives
            log.warning("reading the pods of %s/%s failed: %s", *key, err)
            return
        trouble = pod_trouble(pods)
        if trouble == self._pod_trouble.get(key):
            if trouble is None:
                return  # nothing to say yet; the next Deployment event checks again
        elif trouble is None:
            self._pod_trouble.pop(key, None)
        else:
            self._pod_trouble[key] = trouble
        await again()

    async def cancel_later(self) -> None:
        """Cancel every pending `later` (at shutdown, before the client closes)."""
        tasks, self._held = list(self._held.values()), {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def later(self, key: Key, work: Callable[[], Awaitable[object]],
              delay: float | None = None) -> None:
        """Run `work` `delay` seconds from now, once for all the requests for `key`
        meanwhile (the task inherits kopf's context, so it can post events)."""
        self._later(key, work, delay)

    def _later(self, key: Key, work: Callable[[], Awaitable[object]],
               delay: float | None = None) -> None:
        if key in self._held:
            return

        async def run() -> None:
            await asyncio.sleep(HOLD_SECONDS if delay is None else delay)
            self._held.pop(key, None)
            try:
                await work()
            except kopf.TemporaryError as err:  # the next Deployment event follows again
                log.warning("following %s/%s failed: %s", *key, err)
            except Exception:  # nobody awaits this task: say what failed
                log.exception("following %s/%s failed", *key)

        self._held[key] = asyncio.create_task(run())

    def _with_our_write(self, body: Mapping[str, Any], deployment: Mapping[str, Any]
                        ) -> Mapping[str, Any]:
        """The Deployment with the count the autoscaler wrote moments ago, when the event
        or index that carried it predates that write: a lagging copy must not make the
        policy write the old count back."""
        if self.autoscalers is None:
            return deployment
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        scaler = self.autoscalers.scalers.get(key)
        live = (deployment.get("spec") or {}).get("replicas")
        if scaler is None or live is None:
            return deployment
        generation = (deployment.get("metadata") or {}).get("generation")
        current = scaler.current(int(live), generation)
        if current == live:
            return deployment
        return {**deployment, "spec": {**(deployment.get("spec") or {}), "replicas": current}}

    async def autoscale(self, body: Mapping[str, Any], deployment: Mapping[str, Any],
                        targets: list[Target], *, external: tuple[ExternalAutoscaler, ...] = (),
                        logger: logging.Logger | Any) -> AgentOutcome | None:
        """One tick of an agent's custom autoscaler: scrape its Ready pods, decide, and let
        the replica policy write (through the same path as a Deployment event, under the
        agent's lock). Nothing is scraped or written while someone else scales it."""
        if self.autoscalers is None or external:
            return None
        try:
            agent = AtomicAgent.model_validate({"spec": body.get("spec") or {}})
        except ValueError:
            return None  # the reconcile reports the spec problem
        if not custom_mode(agent.spec.autoscaling.mode):
            return None
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        scaler = self.autoscalers.scaler(key)
        live = (deployment.get("spec") or {}).get("replicas")
        if live is None:
            return None  # not defaulted yet: nothing to decide from
        rec = await scaler.step(agent.spec, int(live), targets,
                                (deployment.get("metadata") or {}).get("generation"))
        AUTOSCALER_DECISIONS.labels(rec.reason).inc()
        warned = scaler.warning()
        if warned is not None:  # a lasting spell of unreadable metrics: said once, loudly,
            # to the agent's owner (the Warning event); the operator's log only records it
            logger.info("autoscaler of %s/%s: %s", *key, warned[1])
            self.writer.emit(body, ("Warning", *warned))
        scaled = scale_event(rec)
        event: Event | None = ("Normal", *scaled) if scaled else None
        outcome = await self._run(body, "autoscaler", lambda: follow_deployment(
            self._env({}, {}, frozenset(), external, body), body,
            self._with_our_write(body, deployment), event), logger)
        if outcome.replicas_written is not None:
            logger.info("autoscaler: %s", rec.message)
        return outcome

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
                RECONCILES.labels(AGENT, trigger, "error").inc()
                ERRORS.labels(AGENT, err.reason or str(err.status)).inc()
                # Conflicts and server hiccups pass; kopf retries, backing off while the
                # same agent keeps failing so a lasting fault is no retry storm.
                raise kopf.TemporaryError(f"API error: {err}", delay=self._backoff(key)) \
                    from err
            finally:
                RECONCILE_SECONDS.labels(AGENT).observe(time.perf_counter() - started)
            self._failures.pop(key, None)
        self._report(trigger, outcome, logger)
        if outcome.replicas_written is not None and self.autoscalers is not None and (
                (body.get("spec") or {}).get("autoscaling") or {}).get("mode") == "custom":
            # a count written for the autoscaler (held after a start, or its own) is what
            # it decides from next, even before the Deployment's watch shows it
            self.autoscalers.scaler(key).wrote(outcome.replicas_written)
        return outcome

    async def pipeline(self, body: Mapping[str, Any], trigger: str,
                       work: Callable[[PipelineEnv], Awaitable[PipelineResult]], *,
                       agents: Mapping[str, Mapping[str, Any]],
                       external: tuple[ExternalAutoscaler, ...] = (),
                       renders: bool = True,
                       logger: logging.Logger | Any) -> PipelineResult | None:
        """Run one pipeline reconcile (or follow) at a time per pipeline, counted; None
        when its namespace is being deleted. A reconcile that `renders` first reads, by
        name, the token Secrets of the agents the pipeline calls (key digests only)."""
        meta = body["metadata"]
        key = (meta["namespace"], f"{PIPELINE}/{meta['name']}")
        secrets: dict[Key, dict[str, str]] = {}
        if renders:
            steps = (body.get("spec") or {}).get("steps") or []
            tokens = pipeline_tokens(
                (str((s.get("agentRef") or {}).get("name")) for s in steps), agents)
            secrets = await self._read_named(meta["namespace"],
                                             (name for name, _ in tokens.values()))
        env = PipelineEnv(self.client, self.settings, self.writer, agents, external, secrets,
                          self.owned)
        started = time.perf_counter()
        async with self.lock(body):
            try:
                result = await work(env)
            except ApiError as err:
                if gone_with_namespace(err):
                    logger.debug("namespace going (%s): %s", trigger, err)
                    return None
                RECONCILES.labels(PIPELINE, trigger, "error").inc()
                ERRORS.labels(PIPELINE, err.reason or str(err.status)).inc()
                raise kopf.TemporaryError(f"API error: {err}", delay=self._backoff(key)) \
                    from err
            finally:
                RECONCILE_SECONDS.labels(PIPELINE).observe(time.perf_counter() - started)
            self._failures.pop(key, None)
        if result.result != "followed":
            RECONCILES.labels(PIPELINE, trigger, result.result).inc()
        for kind in result.applied:
            CHILDREN_APPLIED.labels(PIPELINE, kind).inc()
        for problem in result.outcome.problems:
            ERRORS.labels(PIPELINE, problem.reason).inc()
        if result.status_patch is not None:
            if result.outcome.problems:
                logger.warning("pipeline problems (%s): %s", trigger,
                               "; ".join(map(str, result.outcome.problems)))
            else:
                logger.info("pipeline reconciled (%s): applied %s", trigger,
                            ", ".join(result.applied) or "nothing")
        return result

    @staticmethod
    def _report(trigger: str, outcome: AgentOutcome, logger: logging.Logger | Any) -> None:
        if outcome.result != "followed":
            RECONCILES.labels(AGENT, trigger, outcome.result).inc()
        for kind in outcome.applied:
            CHILDREN_APPLIED.labels(AGENT, kind).inc()
        for kind in outcome.deleted:
            CHILDREN_DELETED.labels(AGENT, kind).inc()
        for problem in outcome.problems:
            ERRORS.labels(AGENT, problem.reason).inc()
        if outcome.problems:
            logger.warning("spec problems: %s", "; ".join(map(str, outcome.problems)))
        elif outcome.applied:
            logger.info("reconciled (%s): applied %s", trigger, ", ".join(outcome.applied))
        if outcome.replicas_written is not None:
            logger.info("scaled the Deployment to %d (%s)", outcome.replicas_written, trigger)
