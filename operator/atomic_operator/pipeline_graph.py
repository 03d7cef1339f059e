"""The shape of an AtomicPipeline's graph: its reference syntax, dependencies and waves.

Pure and free of schemas: the one parser of references (`parse_reference`,
`template_parts`), which the type check (`pipeline_check`) and the runner's configuration
(`render/pipeline_config`) both use, so what runs is what was checked; and the check's
result type, which rendering reads without depending on the checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from atomic_operator.api.pipeline import REFERENCE, InputBinding, PipelineStep
from atomic_operator.problems import SpecProblem

PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True)
class AgentSchemas:
    """What the pipeline needs to know of one AtomicAgent."""

    input: dict[str, Any] | None
    output: dict[str, Any] | None


@dataclass
class PipelineCheck:
    """The outcome: problems (empty when every edge fits) and the resolved graph."""

    problems: list[SpecProblem] = field(default_factory=list)
    waves: list[list[str]] = field(default_factory=list)
    unresolved_agents: list[str] = field(default_factory=list)
    """Agents that are missing or declare no schemas: their edges could not be checked."""
    output_schema: dict[str, Any] | None = None
    """The schema of what the pipeline returns, when it resolves (a self-contained document)."""


@dataclass(frozen=True)
class Reference:
    """A parsed reference: where the value comes from and the field path inside it."""

    source: str
    """input, item or step."""

    step: str | None
    """The step whose output is read (source step only)."""

    path: tuple[str, ...]
    """Field names from the source down to the value."""

    @property
    def text(self) -> str:
        head = f"steps.{self.step}.output" if self.source == "step" else self.source
        return ".".join((head, *self.path))


REFERENCE_SYNTAX = re.compile(REFERENCE)


def parse_reference(reference: str) -> Reference | None:
    """The one parser of the reference syntax (None when it is not a reference)."""
    if not REFERENCE_SYNTAX.match(reference):
        return None
    parts = reference.split(".")
    if parts[0] == "steps":
        return Reference("step", parts[1], tuple(parts[3:]))
    return Reference(parts[0], None, tuple(parts[1:]))


def template_parts(template: str) -> list[str | Reference]:
    """A template split into literal text and parsed placeholders, in order.

    A placeholder that is not a reference stays text here; `check_binding` reports it.
    """
    parts: list[str | Reference] = []
    position = 0
    for match in PLACEHOLDER.finditer(template):
        if match.start() > position:
            parts.append(template[position:match.start()])
        parsed = parse_reference(match.group(1).strip())
        parts.append(parsed if parsed is not None else match.group(0))
        position = match.end()
    if position < len(template):
        parts.append(template[position:])
    return parts


def unterminated_placeholder(template: str) -> str | None:
    """The text from a `${` that no `}` closes to the end of the template (None when every
    placeholder is closed): `template_parts` would read it as literal text, so a typo such
    as "see ${input.content" would silently send the placeholder itself to the agent."""
    literal = PLACEHOLDER.sub("", template)
    start = literal.find("${")
    if start < 0:
        return None
    rest = literal[start:]
    return rest if len(rest) <= 40 else rest[:40] + "..."


def references_of(binding: InputBinding) -> list[str]:
    if binding.from_ is not None:
        return [binding.from_]
    if binding.template is not None:
        return [m.strip() for m in PLACEHOLDER.findall(binding.template)]
    return []


def _step_of(reference: str) -> str | None:
    parsed = parse_reference(reference)
    return parsed.step if parsed is not None else None


def dependencies(step: PipelineStep) -> set[str]:
    """dependsOn plus every step a binding or forEach reads from."""
    found = set(step.depends_on)
    for binding in step.input.values():
        found |= {s for r in references_of(binding) if (s := _step_of(r))}
    if step.for_each and (s := _step_of(step.for_each)):
        found.add(s)
    return found


def waves(steps: list[PipelineStep]) -> tuple[list[list[str]], list[str]]:
    """Steps layered so each wave depends only on earlier ones; and the steps in a cycle."""
    pending = {s.name: dependencies(s) & {t.name for t in steps} for s in steps}
    done: set[str] = set()
    layers: list[list[str]] = []
    while pending:
        ready = sorted(n for n, deps in pending.items() if deps <= done)
        if not ready:
            return layers, sorted(pending)
        layers.append(ready)
        done |= set(ready)
        for name in ready:
            del pending[name]
    return layers, []
