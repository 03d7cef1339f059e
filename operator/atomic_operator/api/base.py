"""The base every API model shares: camelCase on the wire, descriptions from docstrings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


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
