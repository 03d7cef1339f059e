"""The API models read what users write: examples, aliases, cross-field rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from atomic_operator.api import AtomicAgent, AtomicPipeline
from atomic_operator.api.pipeline import InputBinding
from tests.support.manifests import example, variant


def test_examples_parse() -> None:
    agent = AtomicAgent.model_validate(example("task-processor"))
    assert agent.spec.model.provider == "openai"
    assert agent.spec.input_schema is not None
    assert agent.spec.input_schema.required == ["description"]
    analyzer = AtomicAgent.model_validate(example("content-analyzer"))
    assert analyzer.spec.autoscaling.target_cpu_utilization_percentage == 70
    pipeline = AtomicPipeline.model_validate(example("analysis-to-tasks"))
    assert [s.name for s in pipeline.spec.steps] == ["analyze", "make-tasks"]
    assert pipeline.spec.steps[1].for_each == "steps.analyze.output.recommendations"


def test_wire_names_are_kubernetes_style() -> None:
    agent = AtomicAgent.model_validate(variant("task-processor", {"spec": {"model": {
        "provider": "ollama", "baseURL": "http://ollama:11434/v1"}}}))
    dumped = agent.model_dump(by_alias=True, exclude_none=True)
    assert dumped["spec"]["model"]["baseURL"] == "http://ollama:11434/v1"
    assert "targetCPUUtilizationPercentage" in dumped["spec"]["autoscaling"]
    assert "maxInFlight" in dumped["spec"]["concurrency"]


def test_schema_extras_survive() -> None:
    agent = AtomicAgent.model_validate(example("task-processor"))
    assert agent.spec.output_schema is not None
    dumped = agent.spec.output_schema.model_dump(by_alias=True, exclude_none=True)
    assert dumped["properties"]["confidence"]["maximum"] == 1


@pytest.mark.parametrize("binding", [{}, {"from": "input.a", "value": 1}])
def test_input_binding_needs_exactly_one_source(binding: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="exactly one of from, template or value"):
        InputBinding.model_validate(binding)


@pytest.mark.parametrize("mode", ["none", "custom", "hpa"])
def test_scale_to_zero_is_refused_in_every_mode(mode: str) -> None:
    with pytest.raises(ValidationError, match="minReplicas"):
        AtomicAgent.model_validate(variant("task-processor", {"spec": {"autoscaling": {
            "mode": mode, "minReplicas": 0}}}))
