"""`atomicctl check`: the operator's checks on YAML files, with its messages and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from atomic_operator.cli import main
from tests.support.manifests import EXAMPLES, example, variant

INCOMPATIBLE = Path(__file__).resolve().parents[1] / "data" / "pipelines" / "incompatible.yaml"


def test_the_examples_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", str(EXAMPLES)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "ok    AtomicPipeline default/analysis-to-tasks: [analyze] → [make-tasks]; 6 " \
           "bindings across 2 steps fit their agents' schemas" in out
    assert out[-1].startswith("checked 4 agents and 2 pipelines in ")
    assert out[-1].endswith(": all pass")


def test_an_incompatible_edge_names_step_field_path_and_both_types(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", str(EXAMPLES), "-f", str(INCOMPATIBLE)]) == 1
    out = capsys.readouterr().out.splitlines()
    at = out.index("FAIL  AtomicPipeline default/insights-to-tasks: "
                   "SchemasCompatible=False SchemaMismatch")
    assert out[at + 1] == (
        "      spec.steps[1].input.description.from: step make-task: "
        "steps.analyze.output.insights does not fit agent task-processor's input field "
        "'description': $: the producer may give an array; the consumer accepts string")
    assert out[-1].endswith(": 1 failed")


def test_a_pipeline_without_its_agents_fails(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(example("analysis-to-tasks")))
    assert main(["check", "-f", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "SchemasCompatible=Unknown MissingAgent" in out
    assert "no AtomicAgent named content-analyzer, task-processor in this namespace" in out


def test_agents_get_the_operators_agent_checks(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    broken = {"model": {"mode": "anthropic_tools"},
              "inputSchema": {"properties": {"x": {"type": "strng"}}}}
    bad = variant("task-processor", {"spec": broken})
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    (tmp_path / "all.yml").write_text(yaml.safe_dump_all([bad, other]))
    assert main(["check", "-f", str(tmp_path / "all.yml")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "FAIL  AtomicAgent default/task-processor: InvalidSchema"
    assert any(line.startswith("      spec.model.mode: mode 'anthropic_tools' does not work")
               for line in out)
    assert out[-1] == "checked 1 agents and 0 pipelines in 1 files: 1 failed"


def test_namespaces_keep_agents_apart(tmp_path: Path) -> None:
    agents = [example("content-analyzer"), example("task-processor")]
    for doc in agents:
        doc["metadata"]["namespace"] = "team-a"
    (tmp_path / "agents.yaml").write_text(yaml.safe_dump_all(agents))
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(example("analysis-to-tasks")))
    assert main(["check", "-f", str(tmp_path)]) == 1  # the pipeline is in default
    assert main(["check", "-f", str(tmp_path), "-n", "team-a"]) == 0


def test_an_unterminated_template_fails_naming_the_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 22 #17: the same refusal as the webhook's, offline."""
    bad = variant("analysis-to-tasks", {"spec": {"steps": [
        {"name": "analyze", "agentRef": {"name": "content-analyzer"},
         "input": {"content": {"template": "see ${input.content"}}}],
        "output": {"from": "steps.analyze.output"}}})
    (tmp_path / "p.yaml").write_text(yaml.safe_dump_all([bad, example("content-analyzer")]))
    assert main(["check", "-f", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "SchemasCompatible=False InvalidTemplate" in out, out
    assert ("spec.steps[0].input.content.template: step analyze: the placeholder "
            "'${input.content' is not closed") in out, out
