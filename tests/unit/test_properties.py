"""Properties of the operator's pure parts over generated inputs (hypothesis).

- `schema_fit.fits`: whenever it says a producer fits a consumer, every value the producer
  admits (drawn by `values_of`) is valid for the consumer; it never raises.
- `check_pipeline` over a two-step pipeline with generated schemas never raises, and
  reports an edge as fitting only when `fits` does.
- The webhook's object-alone checks never raise on generated specs; whatever they say is
  a list of problems each naming a field.

Fixed seed (derandomize) and bounded examples, so CI runs the same cases every time.
Values are drawn by `values_of`, a generator for the schema subset generated here:
hypothesis-jsonschema 0.23.1 fails on object schemas with current hypothesis
(`'many' object has no attribute 'more'`), and the values it would draw are the same.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from atomic_operator.api import AtomicPipeline
from atomic_operator.pipeline_check import AgentSchemas, check_pipeline
from atomic_operator.schema_fit import fits
from atomic_operator.webhook.review import agent_problems, pipeline_problems
from tests.support.manifests import example, variant

SETTINGS = settings(derandomize=True, max_examples=150, deadline=None,
                    suppress_health_check=list(HealthCheck))

NAMES = st.sampled_from(["a", "b", "title", "n"])


def _leaf() -> st.SearchStrategy[dict[str, Any]]:
    strings = st.fixed_dictionaries({"type": st.just("string")}, optional={
        "minLength": st.integers(0, 3), "maxLength": st.integers(3, 8),
        "enum": st.lists(st.sampled_from(["x", "yy", "zzz", "wwww"]), min_size=1,
                         max_size=3, unique=True)})
    integers = st.fixed_dictionaries({"type": st.just("integer")}, optional={
        "minimum": st.integers(-5, 0), "maximum": st.integers(0, 5)})
    numbers = st.fixed_dictionaries({"type": st.just("number")}, optional={
        "minimum": st.integers(-5, 0), "maximum": st.integers(1, 5)})
    return st.one_of(strings, integers, numbers, st.just({"type": "boolean"}),
                     st.just({"type": "null"}), st.just({}))


def _schemas() -> st.SearchStrategy[dict[str, Any]]:
    def extend(children: st.SearchStrategy[dict[str, Any]]
               ) -> st.SearchStrategy[dict[str, Any]]:
        arrays = st.fixed_dictionaries({"type": st.just("array"), "items": children},
                                       optional={"maxItems": st.integers(0, 3)})
        objects = st.builds(
            lambda props, required, closed: {
                "type": "object", "properties": props,
                "required": sorted(set(required) & set(props)),
                **({"additionalProperties": False} if closed else {})},
            st.dictionaries(NAMES, children, max_size=3), st.lists(NAMES, max_size=3),
            st.booleans())
        return st.one_of(arrays, objects)
    return st.recursive(_leaf(), extend, max_leaves=6)


def values_of(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Every JSON value valid for `schema`, for the subset of JSON Schema built above."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0),
                       max_size=max(schema.get("maxLength", 8), schema.get("minLength", 0)))
    if kind in ("integer", "number"):
        low, high = schema.get("minimum", -10), schema.get("maximum", 10)
        return (st.integers(low, high) if kind == "integer"
                else st.floats(low, high, allow_nan=False) | st.integers(low, high))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(values_of(schema["items"]), max_size=schema.get("maxItems", 3))
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fixed = st.fixed_dictionaries(
            {k: values_of(v) for k, v in props.items() if k in required},
            optional={k: values_of(v) for k, v in props.items() if k not in required})
        if schema.get("additionalProperties") is False:
            return fixed
        extra = st.dictionaries(st.sampled_from(["other", "more"]), st.integers(), max_size=1)
        return st.builds(lambda f, e: {**e, **f}, fixed, extra)
    anything = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=3),
                            lambda inner: st.lists(inner, max_size=2)
                            | st.dictionaries(st.text(max_size=2), inner, max_size=2),
                            max_leaves=4)
    return anything


def _objects() -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda props, required: {
        "type": "object", "properties": props,
        "required": sorted(set(required) & set(props))},
        st.dictionaries(NAMES, _schemas(), min_size=1, max_size=3), st.lists(NAMES))


@SETTINGS
@given(producer=_schemas(), consumer=_schemas(), data=st.data())
def test_a_fit_verdict_holds_for_every_generated_value(
        producer: dict[str, Any], consumer: dict[str, Any], data: st.DataObject) -> None:
    if fits(producer, consumer):
        return
    value = data.draw(values_of(producer), label="a value the producer gives")
    assume(Draft202012Validator(producer).is_valid(value))  # e.g. enum [x] with minLength 2
    assert Draft202012Validator(consumer).is_valid(value), (producer, consumer, value)


@SETTINGS
@given(output=_objects(), consumer=_objects(), field=NAMES, target=NAMES, data=st.data())
def test_pipeline_check_never_raises_and_agrees_with_fits(
        output: dict[str, Any], consumer: dict[str, Any], field: str, target: str,
        data: st.DataObject) -> None:
    pipeline = AtomicPipeline.model_validate(variant("analysis-to-tasks", {"spec": {
        "steps": [{"name": "make", "agentRef": {"name": "producer"}},
                  {"name": "take", "agentRef": {"name": "consumer"},
                   "input": {target: {"from": f"steps.make.output.{field}"}}}],
        "output": {"from": "steps.take.output"}}}))
    agents = {"producer": AgentSchemas({"type": "object"}, output),
              "consumer": AgentSchemas(consumer, {"type": "object"})}
    result = check_pipeline(pipeline, agents)
    edge = [p for p in result.problems if p.field == "spec.steps[1].input." + target + ".from"]
    produced = output["properties"].get(field)
    wanted = consumer["properties"].get(target)
    if edge or produced is None or wanted is None:
        return
    # The edge passed: a value of the producer's field is valid for the consumer's field.
    value = data.draw(values_of(produced), label="the bound value")
    assume(Draft202012Validator(produced).is_valid(value))
    assert Draft202012Validator(wanted).is_valid(value), (produced, wanted, value)


SPEC_PATCHES = st.fixed_dictionaries({}, optional={
    "inputSchema": _objects(), "outputSchema": _objects(),
    "model": st.fixed_dictionaries({}, optional={
        "mode": st.sampled_from(["tools", "json", "anthropic_tools", "gemini_json", "x"]),
        "provider": st.sampled_from(["openai", "anthropic", "groq", "ollama"])}),
    "imagePullPolicy": st.sampled_from(["Always", "Never"]),
})


@SETTINGS
@given(patch=SPEC_PATCHES)
def test_agent_checks_never_raise(patch: dict[str, Any]) -> None:
    for problem in agent_problems(variant("task-processor", {"spec": patch})):
        assert problem.field.startswith("spec") and problem.message


@SETTINGS
@given(steps=st.lists(st.fixed_dictionaries({
    "name": st.sampled_from(["a", "b", "c"]),
    "agentRef": st.just({"name": "x"}),
}, optional={
    "forEach": st.sampled_from(["steps.a.output.items", "steps.q.output.x"]),
    "dependsOn": st.lists(st.sampled_from(["a", "b", "c"]), max_size=2),
    "input": st.dictionaries(NAMES, st.one_of(
        st.builds(lambda r: {"from": r}, st.sampled_from([
            "input.content", "input.nope", "item", "item.title", "steps.a.output",
            "steps.b.output.x", "steps.zz.output"])),
        st.builds(lambda t: {"template": t}, st.sampled_from([
            "${input.content}", "${nope}", "${steps.c.output.y} and ${item}", "plain"])),
        st.builds(lambda v: {"value": v}, st.integers() | st.text(max_size=3)),
    ), max_size=2),
}), min_size=1, max_size=3, unique_by=lambda s: s["name"]))
def test_pipeline_checks_never_raise(steps: list[dict[str, Any]]) -> None:
    body = example("analysis-to-tasks")
    body["spec"]["steps"] = steps
    body["spec"]["output"] = {"from": f"steps.{steps[0]['name']}.output"}
    for problem in pipeline_problems(body):
        assert problem.field.startswith("spec") and problem.message
