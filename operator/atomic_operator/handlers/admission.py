"""Validating admission: refuse at apply what a reconcile would report in status.

The failure policy is read at import because kopf takes it from the decorator; the
server and the ValidatingWebhookConfiguration are set up at start-up (lifecycle.py).
"""

from __future__ import annotations

from typing import Any, Literal

import kopf

from atomic_operator.k8s.kinds import ATOMIC_AGENT, ATOMIC_PIPELINE
from atomic_operator.problems import SpecProblem
from atomic_operator.runner import AgentReconciler
from atomic_operator.webhook.review import (
    agent_problems,
    pipeline_problems,
    pipeline_review,
    refusal,
    refused_children,
    spec_unchanged,
)
from atomic_operator.webhook.settings import WebhookSettings

IGNORE_FAILURES = WebhookSettings.from_env().failure_policy == "Ignore"
OPERATIONS: tuple[Literal["CREATE", "UPDATE"], ...] = ("CREATE", "UPDATE")
"""Never DELETE: removing an object must work whatever its spec says."""


def _refuse(problems: list[SpecProblem]) -> None:
    if problems:
        raise kopf.AdmissionError(refusal(problems), code=422)


@kopf.on.validate(ATOMIC_AGENT.group, ATOMIC_AGENT.version, ATOMIC_AGENT.plural,
                  id="validate-agent", operations=OPERATIONS, ignore_failures=IGNORE_FAILURES)
async def validate_agent(*, body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    if spec_unchanged(body, kwargs.get("old")):
        return
    problems = agent_problems(body)
    if not problems:  # only a valid spec renders children to dry-run
        reconciler: AgentReconciler = memo.reconciler
        problems = await refused_children(reconciler.client, body, reconciler.settings)
    _refuse(problems)


@kopf.on.validate(ATOMIC_PIPELINE.group, ATOMIC_PIPELINE.version, ATOMIC_PIPELINE.plural,
                  id="validate-pipeline",
                  operations=OPERATIONS, ignore_failures=IGNORE_FAILURES)
async def validate_pipeline(*, body: kopf.Body, memo: Any, warnings: list[str],
                            **kwargs: Any) -> None:
    if spec_unchanged(body, kwargs.get("old")):
        return
    problems = pipeline_problems(body)
    if not problems:  # only a valid pipeline is checked against its agents
        reconciler: AgentReconciler = memo.reconciler
        problems, missing = await pipeline_review(reconciler.client, body)
        warnings.extend(missing)
    _refuse(problems)
