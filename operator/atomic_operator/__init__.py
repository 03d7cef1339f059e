"""The atomic agents operator: typed AtomicAgent and AtomicPipeline resources as services."""

GROUP = "atomicagents.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
