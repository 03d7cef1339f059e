"""The operator → runner contract: a pipeline's graph with every reference already parsed.

The operator type-checks the pipeline and renders this document (`pipeline.json` in the
runner's ConfigMap). References arrive parsed (source, step, path), templates arrive split
into text and references, and the waves are the operator's own execution order: the runner
only evaluates, so what runs is exactly what the type check proved, and no reference parser
exists twice. The runner still refuses a document whose graph is inconsistent, so a
hand-written config fails at boot instead of in the middle of a run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ..config import ConcurrencyConfig, _Camel, mounted
from ..settings import SettingsError

DEFAULT_CONFIG_PATH = "/etc/atomic-agent/agent.json"
KIND = "PipelineConfig"
DEFAULT_MAX_ITEMS = 1000
DEFAULT_MAX_ANSWER_BYTES = 4 << 20


class RefConfig(_Camel):
    """A parsed reference: `input.a.b` is source input, path [a, b]."""

    source: Literal["input", "item", "step"]
    step: str | None = None
    path: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _step_when_source_is_step(self) -> RefConfig:
        if (self.source == "step") != (self.step is not None):
            raise ValueError("step is set exactly when source is 'step'")
        return self

    @property
    def text(self) -> str:
        head = f"steps.{self.step}.output" if self.source == "step" else self.source
        return ".".join((head, *self.path))


class RefBinding(_Camel):
    kind: Literal["ref"]
    ref: RefConfig


class TemplateBinding(_Camel):
    kind: Literal["template"]
    parts: list[str | RefConfig]
    """Literal text and references, in order; references render as text."""


class ValueBinding(_Camel):
    kind: Literal["value"]
    value: Any


Binding = Annotated[RefBinding | TemplateBinding | ValueBinding, Field(discriminator="kind")]


class StepConfig(_Camel):
    name: str
    agent: str
    url: str
    """The agent Service's base URL, e.g. http://task-processor.default.svc.cluster.local:80."""
    after: list[str] = Field(default_factory=list)
    """Every step this one waits for (dependsOn and every step its references read)."""
    for_each: RefConfig | None = None
    input: dict[str, Binding] = Field(default_factory=dict)
    """Field name → binding. Empty: `inputFrom` is the whole input."""
    input_from: RefConfig | None = None
    timeout_seconds: float = Field(gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    optional: bool = False
    max_concurrency: int = Field(default=10, ge=1)
    max_items: int = Field(default=DEFAULT_MAX_ITEMS, ge=1)
    """forEach only: the longest list the step runs over; a longer one fails the run (422)
    before any item is called, instead of a fan-out that outlives the deadline."""
    token_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    """The env var holding the agent's bearer token (the operator fills it from the agent's
    Secret); unset: the agent requires none and no Authorization header is sent."""

    @model_validator(mode="after")
    def _one_input_shape(self) -> StepConfig:
        if bool(self.input) == (self.input_from is not None):
            raise ValueError(f"step {self.name}: set exactly one of input or inputFrom")
        return self

    def references(self) -> list[RefConfig]:
        found = [r for r in (self.for_each, self.input_from) if r is not None]
        for binding in self.input.values():
            if isinstance(binding, RefBinding):
                found.append(binding.ref)
            elif isinstance(binding, TemplateBinding):
                found += [p for p in binding.parts if isinstance(p, RefConfig)]
        return found


class PipelineConfig(_Camel):
    api_version: str = "atomicagents.io/v1alpha1"
    kind: Literal["PipelineConfig"] = "PipelineConfig"
    name: str
    namespace: str = "default"
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None
    """The schema of the returned value, when the operator could resolve it (for /schema)."""
    steps: list[StepConfig] = Field(min_length=1)
    waves: list[list[str]]
    output: RefConfig
    request_timeout_seconds: float = Field(default=300.0, gt=0)
    """The pipeline's deadline: one run, queueing included."""
    concurrency: ConcurrencyConfig = Field(default_factory=ConcurrencyConfig)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_answer_bytes: int = Field(default=DEFAULT_MAX_ANSWER_BYTES, gt=0)
    """The longest answer read from an agent (one call); a longer one fails the step."""
    problems: list[str] = Field(default_factory=list)
    """Why the operator found the pipeline incompatible. Non-empty: /readyz and /run answer
    503 with them, and the graph is not executed (it may not even be one: a cycle)."""
    agent_check_seconds: float = Field(default=2.0, gt=0)
    """How often /readyz's view of the agents' own /readyz is refreshed."""

    @model_validator(mode="after")
    def _consistent_graph(self) -> PipelineConfig:
        names = [s.name for s in self.steps]
        if len(names) != len(set(names)):
            raise ValueError("step names must be unique")
        if self.problems:
            return self  # never executed (/run answers 503): kept so the runner can say why
        flat = [n for wave in self.waves for n in wave]
        if sorted(flat) != sorted(names):
            raise ValueError("waves must list every step exactly once")
        wave_of = {n: i for i, wave in enumerate(self.waves) for n in wave}
        for step in self.steps:
            for dep in step.after:
                if wave_of.get(dep, len(self.waves)) >= wave_of[step.name]:
                    raise ValueError(f"step {step.name} waits for {dep}, which is not in an "
                                     "earlier wave")
            for ref in step.references():
                if ref.source == "step" and ref.step not in step.after:
                    raise ValueError(f"step {step.name} reads {ref.text} without waiting for "
                                     f"step {ref.step}")
                if ref.source == "item" and step.for_each is None:
                    raise ValueError(f"step {step.name} reads {ref.text} but has no forEach")
        if self.output.source == "item" or (self.output.source == "step"
                                            and self.output.step not in names):
            raise ValueError(f"output {self.output.text} names no step")
        return self

    def step(self, name: str) -> StepConfig:
        return next(s for s in self.steps if s.name == name)


def agent_tokens(config: PipelineConfig, env: Mapping[str, str]) -> dict[str, str]:
    """Env var name → bearer token, for every `tokenEnv` a step names, read once at start
    (stripped, as the agent strips its own). A variable named but unset or empty is a
    start-up error naming the variable and the agents, never a value: the runner would
    otherwise get 401 from those agents on every run."""
    agents: dict[str, list[str]] = {}
    for step in config.steps:
        if step.token_env is not None:
            agents.setdefault(step.token_env, [])
            if step.agent not in agents[step.token_env]:
                agents[step.token_env].append(step.agent)
    tokens = {name: env.get(name, "").strip() for name in agents}
    missing = [name for name, token in tokens.items() if not token]
    if missing:
        raise SettingsError("; ".join(
            f"{name} is {'empty' if name in env else 'not set'}: it holds the bearer token "
            f"of agent {', '.join(agents[name])} (spec.access.bearerTokenSecretRef)"
            for name in missing))
    return tokens


def config_path() -> str:
    return os.environ.get("ATOMIC_AGENT_CONFIG", DEFAULT_CONFIG_PATH)


def is_pipeline_config(path: str | None = None) -> bool:
    """Whether the mounted config is a runner's: the runtime image serves either kind."""
    try:
        data = json.loads(mounted(path or config_path()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # the agent server reports the unreadable file with its own message
    return isinstance(data, dict) and data.get("kind") == KIND


def load_pipeline_config(path: str | None = None) -> PipelineConfig:
    text = mounted(path or config_path()).read_text(encoding="utf-8")
    return PipelineConfig.model_validate(json.loads(text))
