"""Problems with a spec that admission cannot catch, each naming the field to fix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong with a resource, reported as a condition reason and an event."""

    field: str
    """Dotted path of the offending field, e.g. spec.model.apiKeySecretRef."""

    reason: str
    """CamelCase reason for programs: InvalidSchema, MissingSecret, ..."""

    message: str
    """What is wrong, for people."""

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def summarize(problems: Iterable[SpecProblem]) -> tuple[str, str]:
    """The condition reason (of the first problem) and one message listing them all."""
    listed = list(problems)
    return listed[0].reason, "; ".join(str(p) for p in listed)


def field_path(parts: Iterable[str | int]) -> str:
    """A field path written the one way every message uses, the API server's own:
    `spec.steps[1].input.text`, list indexes in brackets."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def from_validation_error(err: ValidationError, root: str = "") -> list[SpecProblem]:
    """pydantic errors as problems, with the wire (camelCase) path of each field."""
    out = []
    for error in err.errors():
        path = field_path(error["loc"])
        field = f"{root}.{path}" if root and path else (path or root)
        out.append(SpecProblem(field=field, reason="InvalidSpec", message=error["msg"]))
    return out
