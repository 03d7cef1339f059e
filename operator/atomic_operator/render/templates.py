"""The jinja2 environment: templates shipped in the package, strict, YAML-safe.

User input never becomes YAML text by string formatting: every value from a spec goes
through `toyaml` or `tojson`, which emit one correctly quoted YAML flow value, so a prompt
containing `: ` or a newline cannot inject keys.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jinja2
import yaml

# libyaml's loader when PyYAML was built with it: parsing the rendered YAML was a fifth of
# the operator's CPU with the pure-Python loader (bench/operator_scale.py under py-spy).
# Both use the same resolver, so the loaded objects are the same.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _toyaml(value: Any) -> str:
    """A value as a single-line YAML flow node (JSON is valid YAML and always quotes)."""
    return json.dumps(value, sort_keys=False, ensure_ascii=False)


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("atomic_operator", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["toyaml"] = _toyaml
    return env


def render_template(template: str, /, **context: Any) -> dict[str, Any]:
    """Render one template into the object it describes."""
    text = environment().get_template(template).render(**context)
    loaded = yaml.load(text, Loader=_Loader)
    if not isinstance(loaded, dict):
        raise ValueError(f"template {template} did not render an object")
    return loaded
