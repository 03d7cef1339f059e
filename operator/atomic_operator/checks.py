"""Checks of an AtomicAgent spec beyond the CRD: pure functions over the parsed model."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, SchemaError

from atomic_operator.api import AtomicAgent
from atomic_operator.api.common import JSONSchemaObject
from atomic_operator.problems import SpecProblem, field_path
from atomic_operator.render.config import config_bytes

INSTRUCTOR_MODES: dict[str, frozenset[str]] = {
    "openai": frozenset({"tools", "tools_strict", "parallel_tools", "json", "json_schema",
                         "md_json", "json_o1", "responses_tools"}),
    "openai-compatible": frozenset({"tools", "tools_strict", "parallel_tools", "json",
                                    "json_schema", "md_json"}),
    "ollama": frozenset({"tools", "json", "json_schema", "md_json"}),
    "groq": frozenset({"tools", "json", "md_json"}),
    "anthropic": frozenset({"anthropic_tools", "anthropic_json", "anthropic_parallel_tools",
                            "anthropic_reasoning_tools"}),
    "gemini": frozenset({"gemini_json", "gemini_tools", "genai_tools",
                         "genai_structured_outputs"}),
}
"""Instructor modes each provider's client accepts (lower-case names of instructor.Mode)."""

MAX_CONFIG_BYTES = 900_000
"""Most bytes agent.json may take as stored: a ConfigMap holds at most 1 MiB; the rest is
room for metadata."""

KUBECTL_APPLY_LIMIT = 262_144
"""Most bytes of annotations an object may carry: plain (client-side) `kubectl apply` copies
the whole object into its `last-applied-configuration` annotation, so it refuses any object
over 256 KiB, long before MAX_CONFIG_BYTES; `kubectl apply --server-side` and
`kubectl create` keep no such copy."""

LARGE_SPEC_HINT = ("objects over 256 KiB need `kubectl apply --server-side` or `kubectl "
                   "create`: plain `kubectl apply` refuses them (its last-applied annotation)")
"""Said wherever a spec's size is the problem, so the limit people hit first is named."""


def check_schema(schema: JSONSchemaObject | None, field: str) -> list[SpecProblem]:
    """The schema must itself be valid JSON Schema (draft 2020-12)."""
    if schema is None:
        return []
    document = schema.model_dump(by_alias=True, exclude_none=True)
    problem = _schema_problem(json.dumps(document, sort_keys=True))
    if problem is None:
        return []
    where, message = problem
    return [SpecProblem(field_path([field, *where]), "InvalidSchema", message)]


@lru_cache(maxsize=1024)
def _schema_problem(document: str) -> tuple[tuple[str | int, ...], str] | None:
    """The meta-schema check, remembered per schema text: every reconcile of every agent
    asks again, and the check was a twentieth of the operator's CPU with 300 agents that
    share a schema. The result depends on the text alone, so it cannot go stale."""
    try:
        Draft202012Validator.check_schema(json.loads(document))
    except SchemaError as err:
        return tuple(err.absolute_path), f"not valid JSON Schema: {err.message}"
    return None


def check_agent(agent: AtomicAgent, rendered_config: dict[str, Any]) -> list[SpecProblem]:
    """Everything about the spec alone (no other objects) that makes it unservable."""
    spec = agent.spec
    problems = [*check_schema(spec.input_schema, "spec.inputSchema"),
                *check_schema(spec.output_schema, "spec.outputSchema")]
    mode = spec.model.mode
    if mode is not None and mode not in INSTRUCTOR_MODES[spec.model.provider]:
        allowed = ", ".join(sorted(INSTRUCTOR_MODES[spec.model.provider]))
        problems.append(SpecProblem(
            "spec.model.mode", "UnsupportedMode",
            f"mode {mode!r} does not work with provider {spec.model.provider}; use one of "
            f"{allowed}"))
    if spec.image_pull_policy == "Never" and spec.image is None:
        problems.append(SpecProblem(
            "spec.imagePullPolicy", "ImagePullPolicyConflict",
            "imagePullPolicy Never needs spec.image naming an image present on the nodes; "
            "the operator's default runtime image is pulled from its registry"))
    size = config_bytes(rendered_config)
    if size > MAX_CONFIG_BYTES:
        problems.append(SpecProblem(
            "spec", "ConfigTooLarge",
            f"the rendered configuration is {size} bytes; a ConfigMap holds under 1 MiB "
            f"(move long context into a configMapKeyRef context provider; {LARGE_SPEC_HINT})"))
    return problems
