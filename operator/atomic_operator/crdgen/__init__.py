"""Generate CustomResourceDefinitions from the pydantic API models."""

from atomic_operator.crdgen.crd import CRD_KINDS, render_crds, write_crds

__all__ = ["CRD_KINDS", "render_crds", "write_crds"]
