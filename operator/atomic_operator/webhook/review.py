"""What the webhook refuses: the reconcile's own checks, run on the object alone.

No rule lives here. An agent goes through the same parse and `check_agent` as a reconcile;
a pipeline through the same parse and `check_pipeline`, given no agents, so only what the
object itself decides is found (schema validity, binding sources, references between its
steps). Checks that need other objects (Secrets, the agents a pipeline names) stay in
status, so a GitOps sync in any order never blocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from atomic_operator.api import AtomicPipeline
from atomic_operator.checks import check_agent
from atomic_operator.pipeline_check import check_pipeline
from atomic_operator.problems import SpecProblem, from_validation_error
from atomic_operator.reconcile.agent import parse_agent
from atomic_operator.render.config import runtime_config


def agent_problems(body: Mapping[str, Any]) -> list[SpecProblem]:
    parsed = parse_agent(body)
    if isinstance(parsed, list):
        return parsed
    meta = body.get("metadata") or {}
    config = runtime_config(parsed, str(meta.get("name", "")), str(meta.get("namespace", "")))
    return check_agent(parsed, config)


def pipeline_problems(body: Mapping[str, Any]) -> list[SpecProblem]:
    try:
        pipeline = AtomicPipeline.model_validate({"spec": body.get("spec") or {}})
    except ValidationError as err:
        return from_validation_error(err)
    return check_pipeline(pipeline, {}).problems


def spec_unchanged(body: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """Metadata-only writes (finalizers, annotations, labels) pass untouched: an object
    stored before the webhook existed must still be deletable and annotatable."""
    return old is not None and old.get("spec") == body.get("spec")


def refusal(problems: list[SpecProblem]) -> str:
    """One message naming every field, as `kubectl apply` prints it."""
    return "; ".join(str(p) for p in problems)
