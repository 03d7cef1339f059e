"""The type check of an AtomicPipeline: its graph, and every edge's schemas.

Pure: it takes the parsed pipeline and the schemas of the agents it names, and returns the
execution order (steps grouped into waves that can run in parallel) and every problem, each
naming the field of the pipeline to fix and saying exactly which part of which value does
not fit. Producing the schemas (reading AtomicAgents) is the caller's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from atomic_operator.api.pipeline import AtomicPipeline, InputBinding, PipelineStep
from atomic_operator.checks import check_schema
from atomic_operator.pipeline_graph import (
    AgentSchemas,
    PipelineCheck,
    Reference,
    dependencies,
    parse_reference,
    references_of,
    template_parts,
    unterminated_placeholder,
    waves,
)
from atomic_operator.problems import SpecProblem
from atomic_operator.schema_fit import Schema, fits, resolve_ref

__all__ = ["AgentSchemas", "PipelineCheck", "Reference", "check_pipeline", "dependencies",
           "parse_reference", "template_parts", "waves"]
"""The graph's pieces are re-exported: callers of the check need nothing else."""

STEP_FIELD = re.compile(r"spec\.steps\[(\d+)\]")


@dataclass(frozen=True)
class _Value:
    schema: Schema
    root: Schema
    optional: bool
    """The value may be absent (it goes through a field its parent does not require)."""


NO_ITEM = _Value(False, False, False)
"""Stands for "this step has no forEach", as opposed to None: "the element is unknown"."""


def check_pipeline(pipeline: AtomicPipeline, agents: dict[str, AgentSchemas]) -> PipelineCheck:
    """Check the graph and every binding of `pipeline` against the `agents` it names."""
    return _Checker(pipeline, agents).run()


class _Checker:
    def __init__(self, pipeline: AtomicPipeline, agents: dict[str, AgentSchemas]) -> None:
        self.spec = pipeline.spec
        self.agents = agents
        self.steps = {s.name: s for s in self.spec.steps}
        self.index = {s.name: i for i, s in enumerate(self.spec.steps)}
        self.input_schema = self.spec.input_schema.model_dump(by_alias=True, exclude_none=True)
        self.result = PipelineCheck()

    def problem(self, where: str, reason: str, message: str) -> None:
        """Record a problem; one inside a step also names the step, not only its index."""
        located = STEP_FIELD.match(where)
        if located and int(located.group(1)) < len(self.spec.steps):
            message = f"step {self.spec.steps[int(located.group(1))].name}: {message}"
        self.result.problems.append(SpecProblem(where, reason, message))

    def run(self) -> PipelineCheck:
        self.result.problems += check_schema(self.spec.input_schema, "spec.inputSchema")
        layers, cycle = waves(self.spec.steps)
        self.result.waves = layers
        if cycle:
            self.problem("spec.steps", "DependencyCycle",
                         f"steps {', '.join(cycle)} depend on each other in a cycle")
        for step in self.spec.steps:
            self.check_step(step)
        output = self.resolve(self.spec.output.from_, "spec.output.from", item=NO_ITEM)
        if output is not None and isinstance(output.schema, dict):
            defs = output.root.get("$defs") if isinstance(output.root, dict) else None
            self.result.output_schema = {**output.schema, **({"$defs": defs} if defs else {})}
        return self.result

    # -- values ------------------------------------------------------------------------

    def agent(self, name: str) -> AgentSchemas | None:
        schemas = self.agents.get(name)
        if schemas is None or schemas.input is None or schemas.output is None:
            if name not in self.result.unresolved_agents:
                self.result.unresolved_agents.append(name)
            return None
        return schemas

    def step_output(self, name: str) -> _Value | None:
        step = self.steps.get(name)
        if step is None:
            return None
        schemas = self.agent(step.agent_ref.name)
        if schemas is None:
            return None
        assert schemas.output is not None  # agent() returns only agents with both schemas
        # An optional step's output is absent when it failed.
        if step.for_each:  # one result per element, in order
            return _Value({"type": "array", "items": schemas.output}, schemas.output,
                          step.optional)
        return _Value(schemas.output, schemas.output, step.optional)

    def resolve(self, reference: str, where: str, item: _Value | None) -> _Value | None:
        """The schema of the value a reference names; None (with a problem) when it has none.

        `item` is the forEach element of the step (NO_ITEM outside forEach steps). A reference
        through an unchecked agent's output resolves to None without a problem: the agent is
        reported once, as unresolved.
        """
        parsed = parse_reference(reference)
        value: _Value | None
        if parsed is None:
            self.problem(where, "InvalidReference",
                         f"{reference!r} is not a reference: use input.<field>, item.<field> "
                         "or steps.<step>.output.<field>")
            return None
        if parsed.source == "input":
            value = _Value(self.input_schema, self.input_schema, False)
            origin = "the pipeline input"
        elif parsed.source == "item":
            if item is None:
                return None
            if item is NO_ITEM:
                self.problem(where, "InvalidReference",
                             f"{reference!r}: item is only defined in a step with forEach")
                return None
            value, origin = item, "the forEach item"
        else:
            name = str(parsed.step)
            if name not in self.steps:
                self.problem(where, "InvalidReference", f"{reference!r}: no step named {name}")
                return None
            value = self.step_output(name)
            if value is None:
                return None
            origin = f"the output of step {name}"
        for segment in parsed.path:
            inner = self.field_of(value, segment)
            if inner is None:
                self.problem(where, "InvalidReference",
                             f"{reference!r}: {origin} has no field {segment!r}")
                return None
            value = inner
        return value

    @staticmethod
    def field_of(value: _Value, name: str) -> _Value | None:
        node = resolve_ref(value.schema, value.root)
        if not isinstance(node, dict):
            return None
        props = node.get("properties") or {}
        optional = value.optional or name not in (node.get("required") or [])
        if name in props:
            return _Value(props[name], value.root, optional)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return _Value(extra, value.root, True)
        return None

    # -- steps -------------------------------------------------------------------------

    def check_step(self, step: PipelineStep) -> None:
        base = f"spec.steps[{self.index[step.name]}]"
        for dep in step.depends_on:
            if dep not in self.steps:
                self.problem(f"{base}.dependsOn", "InvalidReference", f"no step named {dep}")
        schemas = self.agent(step.agent_ref.name)
        item: _Value | None = NO_ITEM
        if step.for_each:
            item = None  # unknown until the list it iterates over resolves
            items = self.resolve(step.for_each, f"{base}.forEach", item=NO_ITEM)
            if items is not None:
                item = self.items_of(items, f"{base}.forEach", step.for_each)
        consumer = schemas.input if schemas else None
        agent = step.agent_ref.name
        if not step.input:
            self.check_whole(step, base, consumer, item)
            return
        props: dict[str, Any] = (consumer or {}).get("properties") or {}
        for name, binding in step.input.items():
            where = f"{base}.input.{name}"
            target: Schema | None = None
            if consumer is not None:
                if name in props:
                    target = props[name]
                elif consumer.get("additionalProperties") is False:
                    self.problem(where, "UnknownField",
                                 f"agent {agent}'s input has no field {name!r}")
                    continue
                else:
                    extra = consumer.get("additionalProperties", True)
                    target = extra if isinstance(extra, dict) else True
            self.check_binding(binding, where, target, consumer, item, agent, name)
        if consumer is not None:
            for name in consumer.get("required") or []:
                if name not in step.input:
                    self.problem(f"{base}.input", "UnboundField",
                                 f"agent {agent}'s input requires {name!r}, which no binding "
                                 "sets")

    def items_of(self, value: _Value, where: str, reference: str) -> _Value | None:
        node = resolve_ref(value.schema, value.root)
        if isinstance(node, dict) and node.get("type") == "array":
            return _Value(node.get("items", True), value.root, False)
        self.problem(where, "SchemaMismatch", f"{reference!r} is not a list, so forEach "
                                              "cannot iterate over it")
        return None

    def check_whole(self, step: PipelineStep, base: str, consumer: dict[str, Any] | None,
                    item: _Value | None) -> None:
        """No bindings: the single upstream value is passed as the agent's input."""
        upstream = sorted(dependencies(step))
        if step.for_each:
            source, label = item, "the forEach item"
        elif len(upstream) > 1:
            self.problem(f"{base}.input", "AmbiguousInput",
                         f"steps {', '.join(upstream)} all feed this step; bind its input "
                         "fields to say which value goes where")
            return
        elif upstream:
            source, label = self.step_output(upstream[0]), f"the output of step {upstream[0]}"
        else:
            source = _Value(self.input_schema, self.input_schema, False)
            label = "the pipeline input"
        if source is None or consumer is None:
            return
        if source.optional and not step.for_each:
            self.problem(f"{base}.input", "SchemaMismatch",
                         f"{label} may be absent (an optional step), but it is agent "
                         f"{step.agent_ref.name}'s whole input; bind its fields instead")
        self.report(fits(source.schema, consumer, source.root, consumer), f"{base}.input",
                    f"{label} does not fit agent {step.agent_ref.name}'s input")

    def check_binding(self, binding: InputBinding, where: str, target: Schema | None,
                      consumer: dict[str, Any] | None, item: _Value | None, agent: str,
                      name: str) -> None:
        if binding.from_ is not None:
            value = self.resolve(binding.from_, f"{where}.from", item)
            if value is None or target is None or consumer is None:
                return
            required = name in (consumer.get("required") or [])
            if value.optional and required:
                self.problem(f"{where}.from", "SchemaMismatch",
                             f"{binding.from_} may be absent, but agent {agent}'s input "
                             f"requires {name!r}")
            self.report(fits(value.schema, target, value.root, consumer), f"{where}.from",
                        f"{binding.from_} does not fit agent {agent}'s input field {name!r}")
        elif binding.template is not None:
            if (open_ := unterminated_placeholder(binding.template)) is not None:
                self.problem(f"{where}.template", "InvalidTemplate",
                             f"the placeholder {open_!r} is not closed: write "
                             "${reference} with a closing '}'")
            for reference in references_of(binding):
                self.resolve(reference, f"{where}.template", item)
            if target is not None and consumer is not None:
                # at least as long as its literal text, whatever the placeholders give
                literal = sum(len(p) for p in template_parts(binding.template)
                              if isinstance(p, str))
                produced = {"type": "string", "minLength": literal}
                self.report(fits(produced, target, None, consumer),
                            f"{where}.template", f"a template gives a string, which agent "
                                                 f"{agent}'s input field {name!r} refuses")
        elif target is not None and consumer is not None:
            root = {**(target if isinstance(target, dict) else {}),
                    "$defs": consumer.get("$defs", {})}
            errors = sorted(Draft202012Validator(root).iter_errors(binding.value),
                            key=lambda e: list(e.absolute_path))
            for error in errors[:3]:
                self.problem(f"{where}.value", "SchemaMismatch",
                             f"the value does not fit agent {agent}'s input field {name!r}: "
                             f"{error.message}")

    def report(self, mismatches: list[Any], where: str, summary: str) -> None:
        if mismatches:
            detail = "; ".join(f"{m.path}: {m.message}" for m in mismatches[:5])
            more = f" (and {len(mismatches) - 5} more)" if len(mismatches) > 5 else ""
            self.problem(where, "SchemaMismatch", f"{summary}: {detail}{more}")
