"""The chart's generated values.yaml and schema agree with the model and with each other."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import yaml
from jsonschema import Draft7Validator
from pydantic import BaseModel

from atomic_operator.chart.values import Values

CHART = Path(__file__).resolve().parents[2] / "charts" / "atomic-operator"


def test_values_yaml_is_the_models_defaults() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values == Values().model_dump(by_alias=True)
    assert Values.model_validate(values) == Values()


def test_values_yaml_passes_its_schema_and_the_schema_refuses_typos() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    validator = Draft7Validator(schema)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert list(validator.iter_errors(values)) == []
    typo = {**values, "replicaCount": 2}
    assert [e.message for e in validator.iter_errors(typo)] == [
        "Additional properties are not allowed ('replicaCount' was unexpected)"
    ]
    bad_port = {**values, "metrics": {**values["metrics"], "port": 0}}
    assert [list(e.absolute_path) for e in validator.iter_errors(bad_port)] == [["metrics", "port"]]


def test_every_value_is_documented() -> None:
    """Each key's docstring is its comment in values.yaml and its description in the schema."""

    def undocumented(model: type[BaseModel], prefix: str) -> list[str]:
        missing = []
        for name, info in model.model_fields.items():
            key = f"{prefix}{info.alias or name}"
            if not info.description:
                missing.append(key)
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
                missing += undocumented(info.annotation, f"{key}.")
        return missing

    assert undocumented(Values, "") == []


def test_chart_version_follows_the_package() -> None:
    pyproject = tomllib.loads((CHART.parents[1] / "pyproject.toml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == pyproject["project"]["version"] == chart["version"]
