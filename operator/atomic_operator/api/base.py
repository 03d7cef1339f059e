"""The base every API model shares: camelCase on the wire, descriptions from docstrings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, JsonValue
from pydantic.alias_generators import to_camel

JsonDict = dict[str, JsonValue]


def cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    """One CEL rule for the CRD; a fieldPath makes the API server's error name the field."""
    out: JsonDict = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


def validations(*rules: JsonDict) -> ConfigDict:
    """Model config carrying cross-field rules the API server checks at admission.

    These run only in the API server; rules the models must also enforce when the operator
    reads an object are written as pydantic validators beside them.
    """
    listed: list[JsonValue] = list(rules)
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": listed})


class ApiModel(BaseModel):
    """A part of a custom resource.

    Attribute docstrings become the field descriptions of the generated CRD, so
    `kubectl explain` shows exactly what the code documents. Unknown fields are ignored
    rather than rejected: the API server already prunes them, and an operator one version
    behind must still read objects written by a newer CRD.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="ignore",
    )
