"""The runner's config as the operator renders it, read by the runner's own model."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from atomic_operator.api.pipeline import AtomicPipeline
from atomic_operator.pipeline_check import (
    Reference,
    check_pipeline,
    parse_reference,
    template_parts,
)
from atomic_operator.render.pipeline_config import runner_config
from atomic_runtime.pipeline.bindings import ABSENT, Scope, items_of, step_input
from atomic_runtime.pipeline.config import PipelineConfig, agent_tokens
from atomic_runtime.settings import SettingsError
from tests.support.manifests import example
from tests.unit.test_pipeline_check import AGENTS, schemas

ALL_AGENTS = {**AGENTS, "sentiment-analyzer": schemas("sentiment-analyzer"),
              "report-writer": schemas("report-writer")}
BODIES = {"task-processor": {"spec": {"concurrency": {"requestTimeoutSeconds": 30}}}}


def rendered(doc: dict[str, Any]) -> dict[str, Any]:
    pipeline = AtomicPipeline.model_validate(doc)
    check = check_pipeline(pipeline, ALL_AGENTS)
    return runner_config(pipeline, doc["metadata"]["name"], "shop", check, BODIES,
                         "cluster.local")


def test_reference_parsing_is_one_function() -> None:
    assert parse_reference("steps.make-tasks.output.a.b") == Reference("step", "make-tasks",
                                                                       ("a", "b"))
    assert parse_reference("item") == Reference("item", None, ())
    assert parse_reference("input.text").text == "input.text"  # type: ignore[union-attr]
    assert parse_reference("steps.x") is None and parse_reference("foo") is None
    assert template_parts("Do ${ item.title } by ${input.when}!") == [
        "Do ", Reference("item", None, ("title",)), " by ", Reference("input", None, ("when",)),
        "!"]
    assert template_parts("${nope}") == ["${nope}"]


def test_the_example_renders_a_config_the_runner_accepts() -> None:
    config = rendered(example("analysis-to-tasks"))
    parsed = PipelineConfig.model_validate(config)
    assert parsed.waves == [["analyze"], ["make-tasks"]] and parsed.problems == []
    make = parsed.step("make-tasks")
    assert make.url == "http://task-processor.shop.svc.cluster.local:80"
    assert make.after == ["analyze"] and make.timeout_seconds == 35  # the agent's 30 + 5
    assert parsed.step("analyze").timeout_seconds == 125  # unknown agent: 120 + 5
    assert make.max_concurrency == 10 and make.retries == 2 and not make.optional
    assert config["steps"][1]["forEach"] == {"source": "step", "step": "analyze",
                                             "path": ["recommendations"]}
    assert config["output"] == {"source": "step", "step": "make-tasks", "path": []}
    assert config["outputSchema"]["type"] == "array"
    assert config["requestTimeoutSeconds"] == 300
    assert config["concurrency"] == {"maxInFlight": 32, "queueSize": 64}


def test_bindings_evaluate_as_the_check_assumes() -> None:
    doc = example("analysis-to-tasks")
    doc["spec"]["steps"][1]["input"]["deadline"] = {"template": "${item} by ${input.when}"}
    parsed = PipelineConfig.model_validate(rendered(doc))
    make = parsed.step("make-tasks")
    scope = Scope({"content": "c"}, {"analyze": {"recommendations": ["a", "b"]}})
    assert items_of(make, scope) == ["a", "b"]
    # metadata is absent from the output: the field is left out; input.when renders as ""
    assert step_input(make, scope, "a") == {"description": "a", "priority": "medium",
                                            "deadline": "a by "}
    scope.outputs["analyze"] = ABSENT  # a failed optional step: no items
    assert items_of(make, scope) == []


def test_a_step_without_bindings_gets_the_single_upstream_value() -> None:
    doc = example("analysis-to-tasks")
    doc["spec"]["steps"][1]["input"] = {}
    config = rendered(doc)
    assert config["steps"][1]["inputFrom"] == {"source": "item", "path": []}
    doc["spec"]["steps"][1].pop("forEach")
    doc["spec"]["steps"][1]["dependsOn"] = ["analyze"]
    assert rendered(doc)["steps"][1]["inputFrom"] == {"source": "step", "step": "analyze",
                                                      "path": []}


def test_an_optional_step_cannot_feed_a_required_input() -> None:
    doc = example("parallel-review")
    assert rendered(doc)["problems"] == []
    doc["spec"]["steps"][0]["optional"] = True  # analyze feeds report's required summary
    problems = rendered(doc)["problems"]
    assert problems[0].startswith("spec.steps[2].input.summary.from: step report: "
                                  "steps.analyze.output.summary may be absent")


def test_an_incompatible_pipeline_renders_with_its_problems_and_is_never_run() -> None:
    doc = example("analysis-to-tasks")
    doc["spec"]["steps"][0]["dependsOn"] = ["make-tasks"]  # a cycle
    config = rendered(doc)
    assert config["problems"] == ["spec.steps: steps analyze, make-tasks depend on each other "
                                  "in a cycle"]
    assert PipelineConfig.model_validate(config).problems  # accepted, to say why


def test_the_runner_refuses_an_inconsistent_graph() -> None:
    config = rendered(example("analysis-to-tasks"))
    config["steps"][1]["after"] = []
    with pytest.raises(ValidationError, match=re.escape(
            "reads steps.analyze.output.recommendations without waiting for step analyze")):
        PipelineConfig.model_validate(config)
    config = rendered(example("analysis-to-tasks"))
    config["waves"] = [["analyze", "make-tasks"]]
    with pytest.raises(ValidationError, match="not in an earlier wave"):
        PipelineConfig.model_validate(config)


def test_the_runner_reads_each_named_token_once_and_refuses_a_missing_one() -> None:
    bodies = {**BODIES, "task-processor": {"spec": {"access": {"bearerTokenSecretRef": {
        "name": "tp-token", "key": "token"}}}}}
    doc = example("analysis-to-tasks")
    pipeline = AtomicPipeline.model_validate(doc)
    config = PipelineConfig.model_validate(runner_config(
        pipeline, "analysis-to-tasks", "shop", check_pipeline(pipeline, ALL_AGENTS), bodies,
        "cluster.local"))
    name = "ATOMIC_PIPELINE_AGENT_TOKEN_TASK_PROCESSOR"
    assert [s.token_env for s in config.steps] == [None, name]
    assert agent_tokens(config, {name: " tok-0123456789abcdef\n", "OTHER": "x"}) == {
        name: "tok-0123456789abcdef"}  # stripped, as the agent strips its own
    with pytest.raises(SettingsError, match=f"^{name} is not set: it holds the bearer token "
                                            "of agent task-processor"):
        agent_tokens(config, {})
    with pytest.raises(SettingsError, match=f"^{name} is empty"):
        agent_tokens(config, {name: "  "})
    with pytest.raises(ValidationError, match="tokenEnv"):
        PipelineConfig.model_validate({**config.model_dump(by_alias=True), "steps": [
            {**s.model_dump(by_alias=True), "tokenEnv": "not a name"} for s in config.steps]})
