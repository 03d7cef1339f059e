"""Write the chart's generated files from the models.

- `values.yaml`: every key of `Values`, its docstring as the comment above it, its default
  as the value;
- `values.schema.json`: the JSON Schema Helm validates values against (refs inlined, so any
  Helm version's validator reads it);
- `templates/crd-<name>.yaml`: the CRDs of crds/, wrapped in `crds.enabled` and `crds.keep`.
  CRDs live in templates/ rather than Helm's crds/ folder, which Helm never upgrades;
- `dashboards/atomic-agents.json`: the agents' Grafana dashboard (chart/dashboard.py).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from atomic_operator.chart.dashboard import render_dashboard
from atomic_operator.chart.values import Values
from atomic_operator.crdgen.crd import CRD_KINDS, render_crd

GENERATED = "Generated from operator/atomic_operator/chart by `make generate`; do not edit"
_WIDTH = 96


def render_values_yaml() -> str:
    lines = [
        "# Values of the atomic-operator chart.",
        f"# {GENERATED}.",
        "# The operator runs as exactly one replica with the Recreate strategy, so there is no",
        "# replica count: see docs/operations.md.",
        "",
    ]
    _emit_model(Values(), lines, indent=0)
    return "\n".join(lines).rstrip("\n") + "\n"


def _emit_model(model: BaseModel, lines: list[str], indent: int) -> None:
    pad = " " * indent
    fields = type(model).model_fields
    for index, (name, info) in enumerate(fields.items()):
        if index and indent == 0:
            lines.append("")
        text = info.description or ""
        width = _WIDTH - indent - 2
        for line in textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False):
            lines.append(f"{pad}# {line}")
        key = info.alias or name
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{key}:")
            _emit_model(value, lines, indent + 2)
        elif isinstance(value, dict | list) and value:
            lines.append(f"{pad}{key}:")
            block = yaml.safe_dump(_plain(value), sort_keys=False, default_flow_style=False)
            lines.extend(f"{pad}  {row}" for row in block.splitlines())
        else:
            lines.append(f"{pad}{key}: {json.dumps(_plain(value))}")


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def render_values_schema() -> str:
    schema = Values.model_json_schema(by_alias=True)
    inlined = _inline(schema, schema.pop("$defs", {}))
    inlined["$schema"] = "http://json-schema.org/draft-07/schema#"
    return json.dumps(inlined, indent=2, sort_keys=False) + "\n"


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Replace every $ref by its definition and drop pydantic's titles."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return _inline({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs)
    return {k: _inline(v, defs) for k, v in node.items() if k != "title" or not isinstance(v, str)}


CRD_HEADER = """\
# {generated}
{{{{- if .Values.crds.enabled }}}}
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {name}
  {{{{- if .Values.crds.keep }}}}
  annotations:
    helm.sh/resource-policy: keep
  {{{{- end }}}}
  labels:
    {{{{- include "atomic-operator.labels" . | nindent 4 }}}}
"""


def render_crd_template(name: str, crd: dict[str, Any]) -> str:
    body = yaml.safe_dump({"spec": crd["spec"]}, sort_keys=False, width=100, allow_unicode=True)
    if "{{" in body or "}}" in body:  # Helm would try to render it as a template
        raise ValueError(f"{name}: the CRD contains '{{{{' or '}}}}', which Helm would render")
    return CRD_HEADER.format(generated=GENERATED, name=name) + body + "{{- end }}\n"


def render_chart_files() -> dict[str, str]:
    """Path inside the chart → text, for every generated file."""
    files = {
        "values.yaml": render_values_yaml(),
        "values.schema.json": render_values_schema(),
        "dashboards/atomic-agents.json": render_dashboard(),
    }
    for kind in CRD_KINDS:
        files[f"templates/crd-{kind.name}.yaml"] = render_crd_template(
            kind.name, render_crd(kind)
        )
    return files


def write_chart_files(chart: Path) -> list[Path]:
    written = []
    for relative, text in render_chart_files().items():
        path = chart / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
