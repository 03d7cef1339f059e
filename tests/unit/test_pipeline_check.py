"""The pipeline type check over the examples and broken variants of them."""

from __future__ import annotations

from typing import Any

from atomic_operator.api import AtomicAgent
from atomic_operator.api.pipeline import AtomicPipeline
from atomic_operator.pipeline_check import AgentSchemas, check_pipeline, waves
from tests.support.manifests import example, variant


def schemas(name: str) -> AgentSchemas:
    spec = AtomicAgent.model_validate(example(name)).spec
    assert spec.input_schema is not None and spec.output_schema is not None
    return AgentSchemas(spec.input_schema.model_dump(by_alias=True, exclude_none=True),
                        spec.output_schema.model_dump(by_alias=True, exclude_none=True))


AGENTS = {"content-analyzer": schemas("content-analyzer"),
          "task-processor": schemas("task-processor")}


def pipeline(steps: list[dict[str, Any]] | None = None, output: str | None = None
             ) -> AtomicPipeline:
    patch: dict[str, Any] = {"spec": {}}
    if steps is not None:
        patch["spec"]["steps"] = steps
    if output is not None:
        patch["spec"]["output"] = {"from": output}
    return AtomicPipeline.model_validate(variant("analysis-to-tasks", patch))


def analyze(**inputs: Any) -> dict[str, Any]:
    bindings = {"content": {"from": "input.content"}, "analysis_type": {"value": "x"}}
    return {"name": "analyze", "agentRef": {"name": "content-analyzer"},
            "input": {**bindings, **inputs}}


def problems(p: AtomicPipeline) -> list[tuple[str, str, str]]:
    return [(x.field, x.reason, x.message) for x in check_pipeline(p, AGENTS).problems]


def test_the_example_fits_and_runs_in_two_waves() -> None:
    result = check_pipeline(pipeline(), AGENTS)
    assert result.problems == [] and result.unresolved_agents == []
    assert result.waves == [["analyze"], ["make-tasks"]]


def test_a_wrong_edge_names_the_binding_the_path_and_the_reason() -> None:
    found = problems(pipeline([analyze(), {
        "name": "make-tasks", "agentRef": {"name": "task-processor"},
        "input": {"description": {"from": "steps.analyze.output.insights"}}}]))
    assert found == [(
        "spec.steps[1].input.description.from", "SchemaMismatch",
        "step make-tasks: steps.analyze.output.insights does not fit agent task-processor's "
        "input field "
        "'description': $: the producer may give an array; the consumer accepts string")]


def test_optional_upstream_fields_cannot_feed_required_inputs() -> None:
    found = problems(pipeline([analyze(), {
        "name": "make-tasks", "agentRef": {"name": "task-processor"},
        "input": {"description": {"from": "steps.analyze.output.metadata"}}}]))
    assert ("spec.steps[1].input.description.from", "SchemaMismatch") in [f[:2] for f in found]
    assert any("may be absent" in f[2] for f in found)


def test_values_templates_unbound_and_unknown_fields() -> None:
    found = problems(pipeline([analyze(depth={"value": "extreme"}), {
        "name": "make-tasks", "agentRef": {"name": "task-processor"},
        "forEach": "steps.analyze.output.recommendations",
        "input": {"priority": {"template": "p-${item}"}, "context": {"from": "item.nope"}}}]))
    fields = {(f[0], f[1]) for f in found}
    assert ("spec.steps[0].input.depth.value", "SchemaMismatch") in fields
    assert ("spec.steps[1].input.priority.template", "SchemaMismatch") in fields
    assert ("spec.steps[1].input.context.from", "InvalidReference") in fields
    assert ("spec.steps[1].input", "UnboundField") in fields


def test_for_each_needs_a_list_and_item_needs_for_each() -> None:
    found = problems(pipeline([analyze(), {
        "name": "make-tasks", "agentRef": {"name": "task-processor"},
        "forEach": "steps.analyze.output.summary",
        "input": {"description": {"from": "item"}}}]))
    assert ("spec.steps[1].forEach", "SchemaMismatch") in [f[:2] for f in found]
    found = problems(pipeline([analyze(description={"from": "item"})]
                              , output="steps.analyze.output"))
    assert ("spec.steps[0].input.description.from", "InvalidReference") in [f[:2] for f in found]


def test_cycles_and_unknown_references() -> None:
    steps = [
        {"name": "a", "agentRef": {"name": "task-processor"},
         "input": {"description": {"from": "steps.b.output.result"}}},
        {"name": "b", "agentRef": {"name": "task-processor"},
         "input": {"description": {"from": "steps.a.output.result"}}},
    ]
    found = problems(pipeline(steps, output="steps.nope.output"))
    assert ("spec.steps", "DependencyCycle") in [f[:2] for f in found]
    assert ("spec.output.from", "InvalidReference") in [f[:2] for f in found]
    assert waves(pipeline(steps).spec.steps) == ([], ["a", "b"])


def test_missing_agents_are_unresolved_not_mismatched() -> None:
    result = check_pipeline(pipeline(), {"task-processor": AGENTS["task-processor"]})
    assert result.unresolved_agents == ["content-analyzer"]
    assert result.problems == []
