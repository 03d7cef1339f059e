"""The import-linter layers cover every module of the operator package.

`make lint` checks the layers; a module no layer names is checked against nothing. A new
top-level module or subpackage must be placed (pyproject.toml, [tool.importlinter]).
"""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import atomic_operator

ROOT = Path(__file__).resolve().parents[2]


def test_every_module_of_the_operator_is_in_a_layer() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"
                 and c["layers"][0].startswith("atomic_operator")]
    placed = {name.strip() for layer in layers for name in layer.split("|")}
    modules = {f"atomic_operator.{m.name}"
               for m in pkgutil.iter_modules(atomic_operator.__path__)}
    assert modules - placed == set(), "place these in pyproject.toml's operator layers"
    assert placed - modules == set(), "these layers name modules that do not exist"
